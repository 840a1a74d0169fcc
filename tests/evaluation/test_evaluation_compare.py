"""``mathsft compare``: paired statistics over two eval directories, and refusal when they differ."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mathsft.errors import MathsftError
from mathsft.evaluation.compare import compare_dirs, format_comparison, read_results


def _write(dir_: Path, outcomes: dict[str, bool]) -> Path:
    dir_.mkdir()
    with (dir_ / "results.jsonl").open("w") as f:
        for pid, ok in outcomes.items():
            f.write(json.dumps({"id": pid, "correct": float(ok), "samples": [{"correct": ok}]}) + "\n")
    return dir_


def test_compare_counts_discordant_pairs(tmp_path: Path) -> None:
    ids = [f"p{i}" for i in range(20)]
    a = _write(tmp_path / "a", {p: i < 4 for i, p in enumerate(ids)})  # 4 correct
    b = _write(tmp_path / "b", {p: 2 <= i < 14 for i, p in enumerate(ids)})  # 12 correct, 2 lost, 10 gained
    result = compare_dirs(a, b)
    assert result["n"] == 20
    assert result["accuracy_a"] == pytest.approx(0.2) and result["accuracy_b"] == pytest.approx(0.6)
    assert (result["a_only_correct"], result["b_only_correct"]) == (2, 10)
    assert result["mcnemar_p"] == pytest.approx(2 * 79 / 4096)
    lo, hi = result["ci95"]
    assert lo < 0.4 < hi and lo > 0


def test_compare_refuses_different_problem_sets(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", {"p1": True, "p2": False})
    b = _write(tmp_path / "b", {"p1": True, "p3": False})
    with pytest.raises(MathsftError, match="same problems"):
        compare_dirs(a, b)


def test_resumed_rows_last_one_wins_and_bad_lines_are_located(tmp_path: Path) -> None:
    run = _write(tmp_path / "a", {"p1": False})
    with (run / "results.jsonl").open("a") as f:
        f.write(json.dumps({"id": "p1", "correct": 1.0, "samples": [{"correct": True}]}) + "\n")
    assert read_results(run) == [{"id": "p1", "correct": 1.0, "samples": [{"correct": True}]}]
    with (run / "results.jsonl").open("a") as f:
        f.write("{not json\n")
    with pytest.raises(MathsftError, match=r"results.jsonl, line 3"):
        read_results(run)


def test_common_pairs_a_subset_eval_with_a_full_eval_and_counts_what_it_left_out(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", {"p1": False, "p2": False, "p3": True})
    b = _write(tmp_path / "b", {"p1": True, "p2": True, "p3": True, "p4": False, "p5": True})
    result = compare_dirs(a, b, common=True)
    assert result["n"] == 3
    assert (result["a_only_correct"], result["b_only_correct"]) == (0, 2)
    assert (result["left_out_a"], result["left_out_b"]) == (0, 2)
    assert "left out: 0 of A's, 2 of B's" in format_comparison(result)
    disjoint = _write(tmp_path / "c", {"q1": True})
    with pytest.raises(MathsftError, match="same problems"):
        compare_dirs(a, disjoint, common=True)
