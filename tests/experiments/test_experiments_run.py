"""`mathsft run` / `mathsft sweep` end to end on a tiny random model: every stage's outputs, the paired
comparison, the report, and resume (finished stages and arms are not redone)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from mathsft.cli import app
from mathsft.config import ConfigError
from mathsft.errors import MathsftError
from mathsft.experiments.config import MAIN_JOB, load_experiment
from mathsft.experiments.run import claim_out_dir, run_experiment
from mathsft.experiments.sweep import run_sweep

TINY = [
    "data.train.limit=24",
    "data.test.limit=8",
    "eval.max_new_tokens=8",
    "eval.batch_size=8",
    "train.max_steps=2",
    "train.freeze_layers=1",  # the main job freezes 6 of 30 layers; the tiny model has 2
    "train.batch_size=4",
    "train.max_length=256",
    "budget_minutes=null",  # the main job's time budget sizes the training set; these tests fix it
]


def mtimes(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_run_end_to_end_then_resume(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = load_experiment(None, [*TINY, f"model={tiny_model_dir}", f"out={out}"])
    result = run_experiment(cfg)
    for stage in ("baseline", "final"):
        summary = json.loads((out / stage / "summary.json").read_text())
        assert summary["n"] == 8 and len(summary["ci95"]) == 2
    assert (out / "train" / "checkpoints" / "final" / "config.json").is_file()
    manifest = json.loads((out / "data" / "manifest.json").read_text())
    assert manifest["train"]["count"] == 24 and manifest["test"]["count"] == 8
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["n"] == 8 and 0 <= comparison["mcnemar_p"] <= 1
    assert result.report == out / "report" / "report.html" and result.report.is_file()

    before = mtimes(out / "train") | {f"b/{k}": v for k, v in mtimes(out / "baseline").items()}
    again = run_experiment(cfg)  # every stage complete: reused, nothing regenerated or retrained
    after = mtimes(out / "train") | {f"b/{k}": v for k, v in mtimes(out / "baseline").items()}
    assert before == after
    assert again.final["accuracy"] == result.final["accuracy"]


def test_validation_evals_name_the_dataset_of_their_problems(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Problems carved out of a synthetic training set are validated, and labelled, as synthetic."""
    out = tmp_path / "run"
    overrides = [*TINY, "data.val_size=4", "baseline=false", "train.val_max_new_tokens=4"]
    run_experiment(load_experiment(None, [*overrides, f"model={tiny_model_dir}", f"out={out}"]))
    summaries = sorted((out / "train" / "validation").glob("*/summary.json"))
    assert summaries and {json.loads(p.read_text())["dataset"] for p in summaries} == {"synthetic"}


def test_decontaminate_drops_training_problems_that_overlap_the_test_set(tmp_path: Path) -> None:
    """GSM8K train shares 13-grams with 3 test problems: with data.decontaminate they are not trained on."""
    from conftest import shared_file

    from mathsft.experiments.run import prepare_data

    train, test = shared_file("gsm8k/train.jsonl"), shared_file("gsm8k/test.jsonl")
    data = ["data.train.dataset=gsm8k", f"data.train.path={train}", "data.test.dataset=gsm8k"]
    data += [f"data.test.path={test}", f"out={tmp_path}"]
    kept = prepare_data(load_experiment(None, [*data, "data.decontaminate=true"]), tmp_path)
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    dropped = manifest["contamination"]["dropped_before_training"]
    assert len(dropped) == 4 and manifest["contamination"]["clean"]
    assert len(kept.train) == 7473 - 4 and not {p.id for p in kept.train} & set(dropped)
    reported = prepare_data(load_experiment(None, data), tmp_path / "b")
    assert len(reported.train) == 7473 and reported.manifest["contamination"]["contaminated_total"] == 4


def test_a_changed_config_never_mixes_into_an_old_run(tmp_path: Path) -> None:
    claim_out_dir(load_experiment(None, [f"out={tmp_path}"]), tmp_path)
    with pytest.raises(MathsftError, match=r"different config \(changed: train.lr\)"):
        claim_out_dir(load_experiment(None, [f"out={tmp_path}", "train.lr=0.5"]), tmp_path)


def test_sweep_nested_arms_filtered_arm_and_resume(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    overrides = [*TINY, "data.val_size=4", "sweep.sizes=[8, 16, full]", "sweep.filtered=true"]
    cfg = load_experiment(None, [*overrides, f"model={tiny_model_dir}", f"out={out}"])
    result = run_sweep(cfg)
    names = [arm["name"] for arm in result.table]
    assert names == ["n8", "n16", "full", "filtered"]
    sizes = {arm["name"]: arm["size"] for arm in result.table}
    assert sizes["full"] == 20  # 24 minus 4 held out for validation
    sweep = json.loads((out / "sweep.json").read_text())
    # synthetic reference solutions all reach their gold answers
    assert sweep["filtered"] == {"kept": 20, "candidates": 20, "profile": "lenient"}
    metrics = [
        json.loads(line)
        for line in (out / "arms" / "n8" / "train" / "metrics.jsonl").read_text().splitlines()
    ]
    assert any("eval/accuracy" in row for row in metrics), "every arm is validated during training"
    for png in ("val-accuracy.png", "accuracy-vs-size.png", "loss.png"):
        assert (out / png).read_bytes().startswith(b"\x89PNG")
    assert "| n16 | 16 |" in (out / "sweep.md").read_text()

    before = mtimes(out / "arms")
    run_sweep(cfg)
    assert mtimes(out / "arms") == before  # finished arms are not redone


def test_run_command_prints_table_and_report(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["run", *TINY, "--model", str(tiny_model_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "before training" in result.output and "after SFT" in result.output and "95% CI" in result.output
    assert "McNemar" in result.output and f"report: {out / 'report' / 'report.html'}" in result.output
    # the plan before the first stage (this machine's measured rate, every stage's estimate), then each
    # stage's real time with the rest estimated again
    plan = result.output[result.output.index("plan on cpu") :]
    assert "GFLOP/s (measured now)" in plan and plan.index("baseline") < plan.index("train") < plan.index(
        "final"
    )
    assert "baseline took" in result.output and "the rest about" in result.output


def test_data_path_must_be_a_folder(tmp_path: Path) -> None:
    file = tmp_path / "test.jsonl"
    file.write_text("")
    result = CliRunner().invoke(app, ["run", "--data", "gsm8k", "--data-path", str(file)])
    assert result.exit_code != 0 and "must be a folder" in str(result.exception or result.output)


def toy_gsm8k(path: Path, split: str) -> Path:
    rows = [
        {"question": f"What is {i} + {7 - i}? ({split})", "answer": f"{i} + {7 - i} = 7\n#### 7"}
        for i in range(6)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_base_sft_rl_stages_side_by_side_then_resume(smollm2_dir: Path, tmp_path: Path) -> None:
    """base -> SFT -> RL: every stage evaluated on the same test problems, every pair compared, the RL run's
    reward curve in the report; a rerun reuses every stage."""
    from conftest import save_toy_model

    model = save_toy_model(tmp_path / "toy", smollm2_dir)
    out = tmp_path / "run"
    overrides = [
        f"model={model}", f"out={out}", "data.train.dataset=gsm8k", "data.test.dataset=gsm8k",
        f"data.train.path={toy_gsm8k(tmp_path / 'train.jsonl', 'train')}",
        f"data.test.path={toy_gsm8k(tmp_path / 'test.jsonl', 'test')}",
        "eval.max_new_tokens=2", "train.max_steps=1", "budget_minutes=null", "train.batch_size=4",
        "train.max_length=256",
        "train.freeze_layers=1",  # the toy model has 2 layers
        "rl.max_steps=2", "rl.group_size=4", "rl.batch_size=2", "rl.max_new_tokens=2", "rl.lr=0.02",
        "rl.adam_eps=0.01", "rl.log.progress=false",
    ]  # fmt: skip
    result = CliRunner().invoke(app, ["run", *overrides])
    assert result.exit_code == 0, result.output
    plan = result.output[result.output.index("plan on cpu") : result.output.index("baseline took")]
    assert "rl       ~" in plan and "GRPO: 2 steps of 2 x 4 samples, 2 groups sampled a step" in plan
    assert "rl-final ~" in plan and "(not estimated)" not in plan
    for label in ("before training", "after SFT", "after RL", "after RL − after SFT"):
        assert label in result.output
    for stage in ("baseline", "final", "rl-final"):
        assert json.loads((out / stage / "summary.json").read_text())["n"] == 6
    rl_config = (out / "rl" / "config.yaml").read_text()
    assert f"model: {out / 'train' / 'checkpoints' / 'final'}" in rl_config  # RL starts from SFT
    pairs = [(c["a"], c["b"]) for c in json.loads((out / "comparisons.json").read_text())]
    assert pairs == [("baseline", "final"), ("baseline", "rl-final"), ("final", "rl-final")]
    report = (out / "report" / "report.md").read_text()
    assert "reward.png" in report and "| rl-final |" in report and "RL run" in report
    times = json.loads((out / "stages.json").read_text())  # what each arm of a comparison spent
    assert list(times) == ["baseline", "train", "final", "rl", "rl-final"] and min(times.values()) > 0
    assert (
        "| rl | " in report
        and "RL, 2 steps: " in report
        and "| train | " in report
        and "SFT, 1 steps: " in report
    )
    assert "6 problems: " in report
    before = mtimes(out / "rl") | {f"e/{k}": v for k, v in mtimes(out / "rl-final").items()}
    printed = io.StringIO()
    run_experiment(load_experiment(None, overrides, base=MAIN_JOB), Console(file=printed, width=200))
    plan = printed.getvalue()  # what `mathsft run` ran, again: every stage done, nothing left to estimate
    assert "every stage is done: nothing left to run" in plan and plan.count("    done  ") == 5
    assert before == mtimes(out / "rl") | {f"e/{k}": v for k, v in mtimes(out / "rl-final").items()}
    assert json.loads((out / "stages.json").read_text()) == times  # reused stages keep the time they took


def test_rl_stage_config_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="nothing to train"):
        load_experiment(None, ["sft=false"])
    with pytest.raises(ConfigError, match="rl_from: sft needs the SFT stage"):
        load_experiment(None, ["sft=false", "rl.max_steps=2"])
    with pytest.raises(ConfigError, match=r"set eval\.calculator=true, not rl\.calculator"):
        load_experiment(None, ["rl.calculator=true"])
    assert load_experiment(None, ["sft=false", "rl.max_steps=2", "rl_from=base"]).rl is not None


def test_a_budget_trains_on_what_fits_and_a_resumed_run_keeps_it(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """budget_minutes: SFT on the longest prefix of the seeded training problems that this machine fits (its
    matmul rate here fixed at 1 GFLOP/s); the choice is saved, and a rerun on a faster machine keeps it."""
    from mathsft.experiments.plan import build_plan
    from mathsft.experiments.run import prepare_data
    from mathsft.generation import speed

    monkeypatch.setattr(speed, "measured_peak_flops", lambda device, dtype: 1e9)
    tiny = [item for item in TINY if not item.startswith("train.max_steps")]
    cfg = load_experiment(None, [*tiny, f"model={tiny_model_dir}", f"out={tmp_path / 'probe'}"])
    plan = build_plan(cfg, prepare_data(cfg, tmp_path / "probe"))
    train = next(s for s in plan.stages if s.name == "train")
    evals = sum(s.seconds for s in plan.stages if s.name != "train")
    half = sum(train.per_example[:12]) / (plan.gflops * plan.efficiency["train"])
    minutes = (evals + half) / 60
    out = tmp_path / "run"
    cfg = load_experiment(None, [*tiny, f"model={tiny_model_dir}", f"out={out}", f"budget_minutes={minutes}"])
    console = Console(file=io.StringIO(), width=200)
    run_experiment(cfg, console=console)
    budget = json.loads((out / "budget.json").read_text())
    assert budget["examples"] == 12 and budget["loaded"] == 24
    manifest = json.loads((out / "data" / "manifest.json").read_text())
    assert manifest["train"]["count"] == 12 and manifest["train"]["budget"] == budget
    assert len((out / "data" / "train.jsonl").read_text().splitlines()) == 12
    assert json.loads((out / "train" / "preflight.json").read_text())["examples"]["examples"] == 12
    assert "SFT on the first 12 of the 24 training problems loaded" in console.file.getvalue()

    monkeypatch.setattr(speed, "measured_peak_flops", lambda device, dtype: 1e12)  # a faster machine
    before = mtimes(out / "train")
    run_experiment(cfg, console=console)
    assert json.loads((out / "data" / "manifest.json").read_text())["train"]["count"] == 12
    assert mtimes(out / "train") == before


def test_a_budget_that_leaves_no_training_time_says_so(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mathsft.generation import speed

    monkeypatch.setattr(speed, "measured_peak_flops", lambda device, dtype: 1e3)  # a very slow machine
    tiny = [item for item in TINY if not item.startswith("train.max_steps")]
    cfg = load_experiment(None, [*tiny, f"model={tiny_model_dir}", f"out={tmp_path}", "budget_minutes=1"])
    with pytest.raises(MathsftError, match="budget_minutes=1 leaves no time to train on this machine"):
        run_experiment(cfg, console=Console(file=io.StringIO()))
