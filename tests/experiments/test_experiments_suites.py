"""An experiment's eval.suites: every stage on every suite, the stage x suite table with paired differences,
resumable; the CPU suite recipe and the continued fine-tuning recipes run on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_experiments_run import TINY, mtimes
from typer.testing import CliRunner

from mathsft.cli import app
from mathsft.config import ConfigError
from mathsft.evaluation.config import LmEvalSuite
from mathsft.experiments.config import MAIN_JOB, load_experiment
from mathsft.experiments.run import run_experiment
from mathsft.reporting.report import write_report

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "data" / "fixtures"
RECIPES = ROOT / "configs" / "recipes"


def test_every_stage_on_every_suite_then_resume(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    suites = json.dumps({"math500": {"data_path": str(FIXTURES / "math500.jsonl"), "max_new_tokens": 2}})
    result = CliRunner().invoke(
        app, ["run", *TINY, f"eval.suites={suites}", "--model", str(tiny_model_dir), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    for stage in ("baseline", "final"):
        rows = json.loads((out / stage / "suites.json").read_text())
        assert [(r["name"], r["n"]) for r in rows] == [("gsm8k", 8), ("math500", 2)]
        math500 = json.loads((out / stage / "math500" / "summary.json").read_text())
        assert math500["sampling"]["max_new_tokens"] == 2 and math500["dataset"] == "math500"
        held_out = json.loads((out / stage / "gsm8k" / "summary.json").read_text())
        assert held_out["sampling"]["max_new_tokens"] == 8  # the eval: keys
    matrix = json.loads((out / "suite-matrix.json").read_text())
    assert matrix["stages"] == ["baseline", "final"]
    assert [(c["suite"], c["a"], c["b"], c["n"]) for c in matrix["comparisons"]] == [
        ("gsm8k", "baseline", "final", 8),
        ("math500", "baseline", "final", 2),
    ]
    assert json.loads((out / "comparison.json").read_text())["n"] == 8  # the held-out set, as without suites
    assert (
        "every stage on every suite" in result.output
        and "math500: after SFT − before training" in result.output
    )
    report = (out / "report" / "report.md").read_text()
    assert "## Every stage on every suite" in report and "| math500 | pass@1 | 2 |" in report

    before = mtimes(out / "baseline") | {f"f/{k}": v for k, v in mtimes(out / "final").items()}
    run_experiment(
        load_experiment(
            None, [*TINY, f"eval.suites={suites}", f"model={tiny_model_dir}", f"out={out}"], base=MAIN_JOB
        )
    )
    after = mtimes(out / "baseline") | {f"f/{k}": v for k, v in mtimes(out / "final").items()}
    assert {k: v for k, v in after.items() if not k.endswith("suites.json")} == {
        k: v for k, v in before.items() if not k.endswith("suites.json")
    }  # nothing evaluated again


def test_the_main_job_keeps_one_suite_and_its_layout() -> None:
    cfg = load_experiment(ROOT / "configs" / "run.yaml")
    assert cfg.eval.suites == {} and cfg == load_experiment(None, base=MAIN_JOB)


def test_a_suite_may_not_take_the_held_out_sets_name() -> None:
    with pytest.raises(ConfigError, match="'gsm8k' names the held-out test set's suite"):
        load_experiment(None, ["data.test.dataset=gsm8k", "eval.suites.gsm8k.limit=3"])


def tiny(path: Path, tmp_path: Path, model: Path, **data_paths: str) -> list[str]:
    """Dotted overrides that cut recipe ``path`` to a test's size: a tiny model, a few problems per suite,
    two training steps."""
    overrides = [f"model={model}", f"out={tmp_path / path.stem}", "data.train.limit=16", "data.test.limit=4"]
    overrides += ["train.max_steps=2", "train.batch_size=4", "train.max_length=256", "train.dtype=fp32"]
    overrides += ["eval.max_new_tokens=4", "eval.batch_size=8", "eval.dtype=float32"]
    for name, suite in load_experiment(path).eval.suites.items():
        overrides.append(f"eval.suites.{name}.limit=4")
        overrides += [] if isinstance(suite, LmEvalSuite) else [f"eval.suites.{name}.max_new_tokens=4"]
        overrides += [f"eval.suites.{name}.data_path={data_paths[name]}"] if name in data_paths else []
    return overrides


@pytest.fixture
def lm_eval_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("lm_eval", reason="lm-eval suites need the lmeval extra (in dev)")
    monkeypatch.chdir(ROOT)  # the recipes' local paths are relative to the repository root
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.usefixtures("lm_eval_offline")
def test_the_cpu_suite_recipe_runs(tiny_model_dir: Path, tmp_path: Path) -> None:
    """GSM8K (bundled copy) + a MATH-500 subset + the local lm-eval task, before and after SFT."""
    path = RECIPES / "sft-suites-gsm8k-cpu.yaml"
    math500 = str(FIXTURES / "math500.jsonl")
    result = run_experiment(load_experiment(path, tiny(path, tmp_path, tiny_model_dir, math500=math500)))
    assert result.suites is not None
    assert result.suites.suites == ["gsm8k", "math500", "arith_mc"]
    assert {suite for suite, _ in result.suites.comparisons} == {"gsm8k", "math500", "arith_mc"}
    arith = json.loads((result.out / "final" / "arith_mc" / "summary.json").read_text())
    assert arith["n"] == 4 and arith["task"] == "arith_mc" and arith["per_sample"]


@pytest.mark.usefixtures("lm_eval_offline")
def test_continued_fine_tuning_lines_up_three_models_suite_by_suite(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Step 1 (base -> SFT on GSM8K) and step 2 (that checkpoint -> SFT on synthetic) evaluate the same
    problems of both datasets, so the joint report pairs base, after X and after X then Y on each suite."""
    one, two = RECIPES / "continued-sft-gsm8k-cpu.yaml", RECIPES / "continued-sft-synthetic-cpu.yaml"
    first = run_experiment(load_experiment(one, tiny(one, tmp_path, tiny_model_dir)))
    checkpoint = first.out / "train" / "checkpoints" / "final"
    second = run_experiment(load_experiment(two, tiny(two, tmp_path, checkpoint)))
    write_report([first.out, second.out], tmp_path / "retention")
    report = (tmp_path / "retention" / "report.md").read_text()
    table = report[report.index("## Every stage on every suite") :]
    assert (
        "| suite | metric | n | continued-sft-gsm8k-cpu/baseline | continued-sft-gsm8k-cpu/final |" in table
    )
    for suite in ("gsm8k", "synthetic", "arith_mc"):
        pairs = [line for line in table.splitlines() if line.startswith(f"| {suite} | ")]
        # the 3 stages' cells, then every pair of them
        assert len(pairs) == 1 + 3, pairs
        assert "continued-sft-synthetic-cpu/final" in pairs[-1]
    assert "not paired" not in table
