"""Eval suites: several benchmarks for one model, each in OUT/<name>/, the table in OUT/suites.json, resumable
suite by suite; lm-eval tasks from a local task YAML, scored per document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_evaluation_run import Scripted
from typer.testing import CliRunner

from mathsft.cli import app
from mathsft.config import ConfigError, build_config
from mathsft.errors import MathsftError
from mathsft.evaluation.config import EvalConfig, LmEvalSuite, ProblemSuite
from mathsft.evaluation.suites import pick_metric, run_suites, sample_rows

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "data" / "fixtures"
TASKS = ROOT / "configs" / "recipes" / "lm_eval_tasks"


def mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_a_suite_sets_its_own_keys_and_inherits_the_rest() -> None:
    cfg = build_config(
        EvalConfig,
        overrides=[
            "max_new_tokens=64",
            "limit=5",
            "suites={gsm8k: {}, hard: {dataset: math500, samples: 4, limit: 2}}",
            "suites.hard.limit=3",  # a dotted override reaches one suite's key
        ],
    )
    plain, hard = (
        s.resolve(cfg, name, f"o/{name}") for name, s in cfg.suites.items() if isinstance(s, ProblemSuite)
    )
    assert (plain.dataset, plain.limit, plain.samples, plain.max_new_tokens) == ("gsm8k", 5, 1, 64)
    assert (hard.dataset, hard.limit, hard.samples, hard.max_new_tokens) == ("math500", 3, 4, 64)
    assert hard.out == "o/hard" and not hard.suites


def test_a_suite_naming_a_task_is_an_lm_eval_suite_and_names_are_folder_names() -> None:
    cfg = EvalConfig.model_validate(
        {"suites": {"arc": {"task": "arc_easy", "num_fewshot": 25}, "gsm8k": None}}
    )
    assert isinstance(cfg.suites["arc"], LmEvalSuite) and cfg.suites["arc"].num_fewshot == 25
    assert isinstance(cfg.suites["gsm8k"], ProblemSuite)
    with pytest.raises(ConfigError, match=r"suite name '\.\./x' names a folder"):
        build_config(EvalConfig, overrides=['suites={"../x": {}}'])
    with pytest.raises(ConfigError, match=r"suites\.a\.problems\.samples"):
        build_config(EvalConfig, overrides=["suites={a: {samples: 0}}"])


def gold_answers() -> dict[str, list[str]]:
    """Every fixture problem answered right, for the scripted backend."""
    from mathsft.data import load_problems

    problems = [
        *load_problems("gsm8k", FIXTURES / "gsm8k.jsonl", split="test"),
        *load_problems("math500", FIXTURES / "math500.jsonl", split="test"),
    ]
    return {p.id: [f"\\boxed{{{p.answer}}}"] for p in problems}


def two_suites(out: Path) -> EvalConfig:
    suites = {
        "gsm8k": {"data_path": str(FIXTURES / "gsm8k.jsonl")},
        "math500": {"data_path": str(FIXTURES / "math500.jsonl")},
    }
    return EvalConfig.model_validate({"model": "m", "out": str(out), "bootstrap": 200, "suites": suites})


def test_a_run_killed_between_suites_resumes_with_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No suite is evaluated twice and none is lost: the finished one is reused, the killed one runs."""
    generated: list[str] = []
    backends: list[str] = []

    def backend(cfg: EvalConfig) -> Scripted:
        backends.append(cfg.dataset)
        scripted = Scripted(gold_answers(), crash_after=len(generated) if len(backends) == 2 else None)
        scripted.seen = generated
        return scripted

    monkeypatch.setattr("mathsft.evaluation.run.make_eval_backend", backend)
    out = tmp_path / "o"
    with pytest.raises(RuntimeError, match="killed"):  # the process dies during the second suite
        run_suites(two_suites(out), out)
    assert [row["name"] for row in json.loads((out / "suites.json").read_text())] == ["gsm8k"]
    assert len(generated) == 3 and not (out / "math500" / "summary.json").exists()
    done = mtimes(out / "gsm8k")

    rows = run_suites(two_suites(out), out)
    assert backends == ["gsm8k", "math500", "math500"]  # gsm8k was not evaluated again
    assert len(generated) == 3 + 2 and mtimes(out / "gsm8k") == done
    assert [(r["name"], r["n"], r["accuracy"]) for r in rows] == [("gsm8k", 3, 1.0), ("math500", 2, 1.0)]
    assert json.loads((out / "suites.json").read_text()) == rows

    run_suites(two_suites(out), out)  # everything complete: nothing evaluated
    assert backends == ["gsm8k", "math500", "math500"]


def test_a_suite_folder_of_a_different_setup_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mathsft.evaluation.run.make_eval_backend", lambda cfg: Scripted(gold_answers()))
    out = tmp_path / "o"
    run_suites(two_suites(out), out)
    changed = two_suites(out).model_copy(update={"max_new_tokens": 7})
    with pytest.raises(MathsftError, match="max_new_tokens: 512 -> 7"):
        run_suites(changed, out)


def test_the_eval_command_writes_each_suite_and_the_table_and_a_rerun_evaluates_nothing(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "O"
    args = ["eval", "--model", str(tiny_model_dir), "--suite", f"gsm8k={FIXTURES / 'gsm8k.jsonl'}"]
    args += ["--suite", f"math500={FIXTURES / 'math500.jsonl'}", "--limit", "8", "--max-new-tokens", "4"]
    args += ["--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for name, n in (("gsm8k", 3), ("math500", 2)):
        summary = json.loads((out / name / "summary.json").read_text())
        assert summary["n"] == n and summary["dataset"] == name and len(summary["ci95"]) == 2
        assert summary["sampling"]["max_new_tokens"] == 4  # today's summary form
    rows = json.loads((out / "suites.json").read_text())
    assert [(r["name"], r["n"]) for r in rows] == [("gsm8k", 3), ("math500", 2)]
    assert all({"name", "n", "accuracy", "ci95"} <= r.keys() for r in rows)
    assert "gsm8k: n=3 pass@1=" in result.output

    def no_model(_: Any) -> None:
        raise AssertionError("a rerun loaded a model")

    monkeypatch.setattr("mathsft.evaluation.run.make_eval_backend", no_model)
    before = mtimes(out)
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert mtimes(out) == before | {"suites.json": mtimes(out)["suites.json"]}


def test_a_bad_suite_spec_says_what_is_expected() -> None:
    result = CliRunner().invoke(app, ["eval", "--suite", "gsm8k"])
    assert isinstance(result.exception, MathsftError) and "NAME=PATH" in str(result.exception)


def test_the_metric_and_its_per_document_scores() -> None:
    reported = {"alias": "t", "acc,none": 0.5, "acc_stderr,none": 0.1, "acc_norm,none": 0.75}
    assert pick_metric(reported, None) == "acc,none"
    assert pick_metric(reported, "acc_norm") == "acc_norm,none"
    with pytest.raises(MathsftError, match=r"no metric 'exact_match'.*acc,none, acc_norm,none"):
        pick_metric(reported, "exact_match")
    choices = [("Q: 1+1?", " 2"), ("Q: 1+1?", " 3")]
    samples = {
        "g_a": [
            {"doc_id": 0, "filter": "none", "acc": 1.0, "arguments": choices, "target": 0,
             "filtered_resps": [(-0.5, True), (-2.0, False)]},
            {"doc_id": 1, "filter": "none", "acc": 0.0, "arguments": choices, "target": 0,
             "filtered_resps": [(-3.0, False), (-1.0, True)]},
        ],
        "g_b": [
            {"doc_id": 0, "filter": "none", "acc": True, "arguments": [("Q: 2+2?", {"until": ["\n"]})],
             "target": "4", "filtered_resps": ["4"]},
            {"doc_id": 0, "filter": "other", "acc": False},  # another filter's score of the same document
        ],
    }  # fmt: skip
    assert sample_rows(samples, "acc,none") == [
        {"id": "g_a/0", "task": "g_a", "correct": 1.0, "prompt": "Q: 1+1?", "gold": " 2", "response": " 2"},
        {"id": "g_a/1", "task": "g_a", "correct": 0.0, "prompt": "Q: 1+1?", "gold": " 2", "response": " 3"},
        {"id": "g_b/0", "task": "g_b", "correct": 1.0, "prompt": "Q: 2+2?", "gold": "4", "response": "4"},
    ]
    perplexity = {"wikitext": [{"doc_id": 0, "filter": "none", "word_perplexity": (-12.5, 7)}]}
    assert sample_rows(perplexity, "word_perplexity,none") == []


def test_a_local_lm_eval_multiple_choice_task(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task YAML of configs/recipes/lm_eval_tasks over its JSONL, offline, scored per document; a rerun
    reuses it, a different setting is refused."""
    pytest.importorskip("lm_eval", reason="lm-eval suites need the lmeval extra (in dev)")
    monkeypatch.chdir(ROOT)  # the task's data_files path is relative to the repository root
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "o"
    suite = {"task": "arith_mc", "include_path": str(TASKS), "limit": 6}
    cfg = EvalConfig.model_validate(
        {"model": str(tiny_model_dir), "batch_size": 8, "suites": {"arith": suite}}
    )
    [row] = run_suites(cfg, out)
    results = [json.loads(line) for line in (out / "arith" / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in results] == [f"arith_mc/{i}" for i in range(6)]
    assert {r["correct"] for r in results} <= {0.0, 1.0}
    summary = json.loads((out / "arith" / "summary.json").read_text())
    assert summary["n"] == 6 and summary["metric"] == "acc,none" and summary["per_sample"]
    assert summary["accuracy"] == pytest.approx(sum(r["correct"] for r in results) / 6)
    assert summary["accuracy"] == pytest.approx(summary["lm_eval_value"])  # lm-eval's own number
    assert row["accuracy"] == summary["accuracy"] and row["benchmark"] == "arith_mc"

    before = mtimes(out / "arith")
    run_suites(cfg, out)
    assert mtimes(out / "arith") == before
    other = EvalConfig.model_validate(cfg.model_dump() | {"suites": {"arith": suite | {"num_fewshot": 2}}})
    with pytest.raises(MathsftError, match="changed: num_fewshot"):
        run_suites(other, out)
    missing = EvalConfig.model_validate(
        cfg.model_dump() | {"suites": {"arith": suite | {"task": "no_such_task"}}}
    )
    with pytest.raises(MathsftError, match="knows no task 'no_such_task'"):
        run_suites(missing, tmp_path / "p")
