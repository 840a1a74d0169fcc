"""``run_eval``: rows, summary, resume after a crash, refusing to mix set-ups — with a scripted backend."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from mathsft.data.schema import Problem
from mathsft.errors import MathsftError
from mathsft.evaluation import EvalConfig, run_eval
from mathsft.evaluation.run import summary_line
from mathsft.generation.base import Completion, Request, ResultCallback, SamplingParams

PROBLEMS = [
    Problem(id="p0", problem="1+1?", answer="2", meta={"subject": "Algebra", "level": 1}),
    Problem(id="p1", problem="2+2?", answer="4", meta={"subject": "Algebra", "level": 2}),
    Problem(id="p2", problem="half?", answer="\\frac{1}{2}", meta={"subject": "Geometry", "level": 2}),
    Problem(id="p3", problem="3+3?", answer="6", meta={"subject": "Geometry", "level": 1}),
]


class Scripted:
    """Answers each problem with fixed texts; can crash after a number of problems (a killed run)."""

    name = "scripted"
    model_name = "scripted"

    def __init__(self, answers: dict[str, list[str]], crash_after: int | None = None) -> None:
        self.answers = answers
        self.crash_after = crash_after
        self.seen: list[str] = []
        self.params: SamplingParams | None = None

    def generate(
        self, requests: Sequence[Request], params: SamplingParams, on_result: ResultCallback | None = None
    ) -> list[list[Completion]]:
        self.params = params
        out = []
        for i, request in enumerate(requests):
            if self.crash_after is not None and len(self.seen) == self.crash_after:
                raise RuntimeError("killed")
            self.seen.append(request.key.id)
            texts = self.answers[request.key.id][: request.n]
            completions = [
                Completion(t, "length" if "..." in t else "stop", completion_tokens=len(t.split()))
                for t in texts
            ]
            if on_result:
                on_result(i, request, completions)
            out.append(completions)
        return out

    def close(self) -> None:
        pass


ANSWERS = {
    "p0": ["So $\\boxed{2}$.", "It is $\\boxed{3}$.", "$\\boxed{2}$"],
    "p1": ["The answer is 4.", "The answer is 4.", "loops..."],
    "p2": ["$\\boxed{0.5}$", "$\\boxed{\\dfrac12}$", "$\\boxed{1/3}$"],
    "p3": ["I think 5. The final answer is $\\boxed{5}$", "loops...", "loops..."],
}


def _cfg(tmp_path: Path, **kw: object) -> EvalConfig:
    return EvalConfig(out=str(tmp_path / "eval"), dataset="custom", bootstrap=200, **kw)


def test_rows_and_summary(tmp_path: Path) -> None:
    summary = run_eval(_cfg(tmp_path), problems=PROBLEMS, backend=Scripted(ANSWERS))
    rows = [json.loads(line) for line in (tmp_path / "eval" / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["p0", "p1", "p2", "p3"]
    assert [r["samples"][0]["correct"] for r in rows] == [True, True, True, False]
    assert rows[2]["samples"][0]["extracted"] == "0.5" and rows[2]["gold"] == "\\frac{1}{2}"
    assert summary["n"] == 4 and summary["accuracy"] == pytest.approx(0.75) and summary["correct_count"] == 3
    lo, hi = summary["ci95"]
    assert lo <= 0.75 <= hi
    assert summary["format_rate"] == 1.0 and summary["truncation_rate"] == 0.0
    assert set(summary["breakdown"]) == {"subject", "level"}
    assert summary["breakdown"]["subject"]["Geometry"]["accuracy"] == pytest.approx(0.5)
    saved = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert saved["accuracy"] == summary["accuracy"] and saved["dataset_hash"]
    assert (tmp_path / "eval" / "config.yaml").is_file()


def test_a_guessed_last_number_is_graded_but_not_formatted(tmp_path: Path) -> None:
    answers = {
        "p0": ["1+1 is 2"],
        "p1": ["2+2 = 4, 4+4 = 8, 8+8 = 16, 16+16 = 32, 32+32 ="],
        "p2": ["x"],
        "p3": ["$$\\frac{12}{2}$$"],  # only an expression: graded (source 'whole'), not a stated answer
    }
    summary = run_eval(_cfg(tmp_path), problems=PROBLEMS, backend=Scripted(answers))
    rows = [json.loads(line) for line in (tmp_path / "eval" / "results.jsonl").read_text().splitlines()]
    assert rows[0]["samples"][0]["correct"] and rows[0]["samples"][0]["answer_source"] == "last-number"
    assert rows[3]["samples"][0]["correct"] and rows[3]["samples"][0]["answer_source"] == "whole"
    assert summary["correct_count"] == 2
    assert summary["answered_rate"] == pytest.approx(2 / 4)  # p1 is cut inside a computation: no answer
    assert summary["format_rate"] == 0.0  # nobody stated an answer


def test_pass_at_k_and_majority(tmp_path: Path) -> None:
    summary = run_eval(
        _cfg(tmp_path, samples=3, temperature=1.0), problems=PROBLEMS, backend=Scripted(ANSWERS)
    )
    # per-problem correct samples: p0 2/3, p1 2/3, p2 2/3, p3 0/3
    assert summary["accuracy"] == pytest.approx((2 / 3) * 3 / 4)
    assert summary["pass_at_k"]["1"] == pytest.approx(0.5)
    assert summary["pass_at_k"]["3"] == pytest.approx(0.75)
    # majority: p0 "2" (2 votes), p1 "4", p2 {0.5, 1/2} beat 1/3, p3: "5" is the only extracted answer
    assert summary["maj_at_k"]["3"] == pytest.approx(0.75)
    # every accuracy has its CI around it (4 problems: the bootstrap spans the possible 0/4 .. 4/4)
    for name, value in [("pass_at_k", "1"), ("pass_at_k", "3"), ("maj_at_k", "3")]:
        low, high = summary[f"{name}_ci95"][value]
        assert 0.0 <= low < summary[name][value] < high <= 1.0
    assert summary["pass_at_k_ci95"]["1"] != summary["pass_at_k_ci95"]["3"]
    printed = summary_line(summary).splitlines()
    assert printed[1].startswith("pass@1=0.5000 95% CI [") and printed[-1].startswith("maj@3=0.7500 95% CI [")
    assert summary["format_rate"] == pytest.approx(9 / 12)
    assert summary["truncation_rate"] == pytest.approx(3 / 12)


def test_a_kshot_template_stops_before_the_next_question(tmp_path: Path) -> None:
    """Raw-text 8-shot goes on to write the next "Question:"; its answer must not be graded."""
    backend = Scripted(ANSWERS)
    summary = run_eval(_cfg(tmp_path, prompt="gsm8k-8shot", stop=["\n\n\n"]), PROBLEMS, backend=backend)
    assert backend.params.stop == ("Question:", "\n\n\n")
    assert summary["sampling"]["stop"] == ["Question:", "\n\n\n"]


def test_a_crashed_run_resumes_without_regenerating(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    with pytest.raises(RuntimeError, match="killed"):
        run_eval(cfg, problems=PROBLEMS, backend=Scripted(ANSWERS, crash_after=2))
    assert len((tmp_path / "eval" / "results.jsonl").read_text().splitlines()) == 2
    again = Scripted(ANSWERS)
    summary = run_eval(cfg, problems=PROBLEMS, backend=again)
    assert again.seen == ["p2", "p3"]
    assert summary["n"] == 4 and summary["correct_count"] == 3
    # a third run generates nothing and gives the same numbers
    third = Scripted(ANSWERS)
    assert run_eval(cfg, problems=PROBLEMS, backend=third)["accuracy"] == summary["accuracy"]
    assert third.seen == []


def test_a_row_cut_by_a_kill_is_generated_again(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    with pytest.raises(RuntimeError, match="killed"):
        run_eval(cfg, problems=PROBLEMS, backend=Scripted(ANSWERS, crash_after=2))
    results = tmp_path / "eval" / "results.jsonl"
    with results.open("a") as f:
        f.write('{"id": "p2", "samples": [{"resp')  # the kill came in the middle of writing a row
    again = Scripted(ANSWERS)
    summary = run_eval(cfg, problems=PROBLEMS, backend=again)
    assert again.seen == ["p2", "p3"]
    assert summary["n"] == 4 and summary["correct_count"] == 3
    assert all(json.loads(line) for line in results.read_text().splitlines())


def test_resume_refuses_a_different_setup(tmp_path: Path) -> None:
    run_eval(_cfg(tmp_path), problems=PROBLEMS[:2], backend=Scripted(ANSWERS))
    with pytest.raises(MathsftError, match="max_new_tokens"):
        run_eval(_cfg(tmp_path, max_new_tokens=64), problems=PROBLEMS, backend=Scripted(ANSWERS))
