"""The answer forms of MATH / NuminaMath / OpenThoughts data in long responses, each with its near misses
(tests/grading/competition_form_cases.py, also the benchmark's labelled suite)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from competition_form_cases import build_suite

from mathsft.grading import grade

SUITE = build_suite()
SUITE_FILE = Path(__file__).resolve().parents[2] / "bench" / "grading_suite.jsonl"


def test_every_category_is_large_and_labelled_both_ways():
    counts = Counter((row["category"], row["label"]) for row in SUITE)
    categories = {category for category, _ in counts}
    assert len(SUITE) >= 400 and len(categories) >= 10
    for category in categories:
        assert counts[category, True] + counts[category, False] >= 30, category
        assert counts[category, True] and counts[category, False], category


def test_responses_reason_before_the_answer():
    assert min(len(row["response"]) for row in SUITE) > 400


def test_benchmark_file_is_the_suite():
    """bench/grading_suite.jsonl is what the benchmark grades: rebuild it (bench/grading_suite.py) when the
    cases change."""
    rows = [json.loads(line) for line in SUITE_FILE.read_text().splitlines()]
    assert rows == SUITE


@pytest.mark.parametrize("row", SUITE, ids=[f"{row['category']}-{i}" for i, row in enumerate(SUITE)])
def test_labelled_pair(row: dict):
    result = grade(row["response"], row["gold"])
    assert result.correct is row["label"], (row["gold"], result)
