"""Rejection sampling: which graded completions of one problem become SFT examples.

A completion is eligible when its reward reaches the threshold and it was not truncated (a
``length`` finish is kept in the raw log, never accepted). The problem's pass rate over all its
samples can filter it out (e.g. keep only problems the teacher sometimes fails); then identical
targets are merged, ``keep`` picks all / the first / the shortest, and ``max_per_problem`` caps the rest.
Every rejected sample is counted under one reason, so the acceptance numbers add up.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


def reward(row: dict[str, Any]) -> float:
    """0/1 reward of a graded sample row (room for partial rewards: a row may carry its own)."""
    if isinstance(row.get("reward"), int | float):
        return float(row["reward"])
    return 1.0 if row.get("correct") else 0.0


def pass_rate(rows: Sequence[dict[str, Any]]) -> float:
    return sum(bool(r.get("correct")) for r in rows) / len(rows) if rows else 0.0


@dataclass
class Selection:
    accepted: list[dict[str, Any]]
    rejected: Counter[str] = field(default_factory=Counter)
    pass_rate: float = 0.0


def select_problem(
    rows: Sequence[dict[str, Any]],
    targets: dict[int, str],
    *,
    reward_threshold: float = 1.0,
    keep: str = "all",
    max_per_problem: int | None = None,
    min_pass_rate: float = 0.0,
    max_pass_rate: float = 1.0,
    dedupe: bool = True,
) -> Selection:
    """Select among one problem's sample rows; ``targets`` maps an eligible row's sample_index to its text."""
    ordered = sorted(rows, key=lambda r: r["sample_index"])
    rate = pass_rate(ordered)
    rejected: Counter[str] = Counter()
    eligible = []
    for row in ordered:
        if reward(row) < reward_threshold:
            rejected["below_threshold"] += 1
        elif row.get("finish_reason") == "length":
            rejected["truncated"] += 1
        else:
            eligible.append(row)
    if eligible and not min_pass_rate <= rate <= max_pass_rate:
        rejected["pass_rate_filter"] += len(eligible)
        return Selection([], rejected, rate)
    if dedupe:
        seen: set[str] = set()
        unique = []
        for row in eligible:
            text = targets[row["sample_index"]]
            if text in seen:
                rejected["duplicate"] += 1
            else:
                seen.add(text)
                unique.append(row)
        eligible = unique
    if keep == "shortest":
        eligible.sort(key=lambda r: (len(targets[r["sample_index"]]), r["sample_index"]))
    limit = 1 if keep in ("first", "shortest") else None
    if max_per_problem is not None:
        limit = min(limit, max_per_problem) if limit is not None else max_per_problem
    if limit is not None and len(eligible) > limit:
        rejected["keep_policy" if keep != "all" else "max_per_problem"] += len(eligible) - limit
        eligible = eligible[:limit]
    return Selection(eligible, rejected, rate)
