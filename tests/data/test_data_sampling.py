"""Subsets are deterministic and nested; validation is carved disjointly; dedupe folds trivial differences."""

from __future__ import annotations

import pytest

from mathsft.data import Problem, dedupe, split_validation, subsample
from mathsft.errors import MathsftError


def _problems(count: int) -> list[Problem]:
    return [Problem(f"p/{i}", f"What is {i} + 1?", str(i + 1)) for i in range(count)]


def test_subsample_is_deterministic_and_nested():
    items = _problems(1000)
    small, large = subsample(items, 128, seed=3), subsample(items, 256, seed=3)
    assert subsample(items, 128, seed=3) == small
    assert large[:128] == small  # the 128-subset is inside (indeed the head of) the 256-subset
    assert len({p.id for p in large}) == 256
    assert subsample(items, 128, seed=4) != small


def test_subsample_depends_on_ids_not_positions():
    items = _problems(500)
    assert subsample(list(reversed(items)), 50, seed=0) == subsample(items, 50, seed=0)


def test_subsample_edges():
    items = _problems(10)
    assert subsample(items, None) == items
    assert sorted(p.id for p in subsample(items, 50)) == sorted(p.id for p in items)
    assert subsample(items, 0) == []
    with pytest.raises(MathsftError):
        subsample(items, -1)


def test_split_validation_is_disjoint_complete_and_ordered():
    items = _problems(2000)
    train, val = split_validation(items, 512, seed=0)
    assert len(val) == 512 and len(train) == 1488
    assert {p.id for p in train}.isdisjoint(p.id for p in val)
    assert [p.id for p in val] == [p.id for p in items if p in val]  # original order kept
    assert split_validation(items, 512, seed=0) == (train, val)
    with pytest.raises(MathsftError, match="cannot hold out 10 validation items from 10"):
        split_validation(items[:10], 10)


def test_dedupe_by_normalized_text_keeps_first():
    items = [
        Problem("a", "What is  2+2?", "4"),
        Problem("b", "what is 2+2?\n", "4"),
        Problem("c", "What is 2-2?", "0"),
    ]
    assert [p.id for p in dedupe(items)] == ["a", "c"]
