"""Paired comparison of two eval runs on the same problems (``mathsft compare``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mathsft.errors import DataError, MathsftError
from mathsft.evaluation.metrics import mcnemar_exact, paired_bootstrap_ci


def read_results(run_dir: str | Path) -> list[dict[str, Any]]:
    """The per-problem rows of an eval directory (the last row per id wins, as resume appends)."""
    path = Path(run_dir) / "results.jsonl"
    if not path.is_file():
        raise MathsftError(f"{run_dir}: no results.jsonl (is it an eval directory written by mathsft eval?)")
    rows: dict[str, dict[str, Any]] = {}
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError.at(path, line_no, None, f"not valid JSON: {err.msg}") from None
            if "id" not in row or "correct" not in row:
                raise DataError.at(path, line_no, "id" if "id" not in row else "correct", "missing")
            rows[str(row["id"])] = row
    return list(rows.values())


def compare_results(
    rows_a: Sequence[dict[str, Any]],
    rows_b: Sequence[dict[str, Any]],
    resamples: int = 10000,
    seed: int = 0,
    common: bool = False,
) -> dict[str, Any]:
    """Accuracy of B minus A with a paired bootstrap CI, and McNemar's exact test on the first sample of
    each problem (binary outcomes). Refuses when the two runs did not see the same problems, unless
    ``common``: then it pairs on the problems both saw (e.g. a 300-problem baseline against a full-test
    eval) and counts the ones it left out of each."""
    a = {str(r["id"]): r for r in rows_a}
    b = {str(r["id"]): r for r in rows_b}
    only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
    if (only_a or only_b) and not (common and a.keys() & b.keys()):
        raise MathsftError(
            "the runs did not evaluate the same problems "
            f"({len(only_a)} only in A, e.g. {only_a[:3]}; {len(only_b)} only in B, e.g. {only_b[:3]}); "
            "a paired comparison needs identical problem sets"
            + ("" if common else " (--common pairs on the problems both evaluated)")
        )
    ids = sorted(a.keys() & b.keys())
    score_a = [float(a[i]["correct"]) for i in ids]
    score_b = [float(b[i]["correct"]) for i in ids]
    first_a = [_first_correct(a[i]) for i in ids]
    first_b = [_first_correct(b[i]) for i in ids]
    a_only = sum(x and not y for x, y in zip(first_a, first_b, strict=True))
    b_only = sum(y and not x for x, y in zip(first_a, first_b, strict=True))
    n = len(ids)
    acc_a, acc_b = sum(score_a) / n if n else 0.0, sum(score_b) / n if n else 0.0
    return {
        "n": n,
        "accuracy_a": acc_a,
        "accuracy_b": acc_b,
        "diff": acc_b - acc_a,
        "ci95": list(paired_bootstrap_ci(score_a, score_b, resamples, seed)),
        "mcnemar_p": mcnemar_exact(a_only, b_only),
        "a_only_correct": a_only,
        "b_only_correct": b_only,
        "left_out_a": len(only_a),
        "left_out_b": len(only_b),
    }


def _first_correct(row: dict[str, Any]) -> bool:
    samples = row.get("samples") or []
    return bool(samples[0]["correct"]) if samples else float(row["correct"]) >= 0.5


def compare_dirs(
    dir_a: str | Path, dir_b: str | Path, resamples: int = 10000, seed: int = 0, common: bool = False
) -> dict[str, Any]:
    result = compare_results(read_results(dir_a), read_results(dir_b), resamples, seed, common)
    return {"a": str(dir_a), "b": str(dir_b), **result}


def format_comparison(result: dict[str, Any]) -> str:
    lo, hi = result["ci95"]
    return (
        f"A={result['a']} accuracy={result['accuracy_a']:.4f}\n"
        f"B={result['b']} accuracy={result['accuracy_b']:.4f}\n"
        f"n={result['n']} diff(B-A)={result['diff']:+.4f} 95% CI [{lo:+.3f}, {hi:+.3f}] "
        f"McNemar exact p={result['mcnemar_p']:.4g} "
        f"(only A correct: {result['a_only_correct']}, only B correct: {result['b_only_correct']})"
        + _left_out(result)
    )


def _left_out(result: dict[str, Any]) -> str:
    a, b = result["left_out_a"], result["left_out_b"]
    return (
        f"\npaired on the {result['n']} problems both evaluated; left out: {a} of A's, {b} of B's"
        if a or b
        else ""
    )
