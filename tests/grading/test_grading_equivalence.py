"""The labelled hard-equivalence suite and the profile rules."""

from __future__ import annotations

import pytest
from equivalence_cases import CASES

from mathsft.grading import GRADER_VERSION, grade, is_equivalent
from mathsft.grading.equivalence import compare


def test_suite_is_large_and_labels_both_ways():
    assert len(CASES) >= 100
    assert sum(eq for _, _, eq, _ in CASES) > 30 and sum(not eq for _, _, eq, _ in CASES) > 30


@pytest.mark.parametrize(("pred", "gold", "equal", "note"), CASES, ids=[c[3] for c in CASES])
def test_labelled_case(pred: str, gold: str, equal: bool, note: str):
    assert is_equivalent(pred, gold) is equal, compare(pred, gold)


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ("50", r"50\%"),
        ("2516", "2516_8"),
        (r"\pm 2", "2, -2"),
        ("2x+3", "y=2x+3"),
        ("0.3333333333", r"\frac{1}{3}"),
        (r"\frac{1}{3}", "0.33"),
    ],
)
def test_strict_rejects_lenient_conventions(pred: str, gold: str):
    assert is_equivalent(pred, gold, profile="lenient")
    assert not is_equivalent(pred, gold, profile="strict")


@pytest.mark.parametrize(
    ("pred", "gold"),
    [(r"\frac{1}{2}", "0.5"), (r"2\sqrt{2}", r"\sqrt{8}"), ("(1,2]", "(1,2]"), (r"50\%", "0.5")],
)
def test_strict_accepts_equal_values(pred: str, gold: str):
    assert is_equivalent(pred, gold, profile="strict")


def test_grade_records_profile_and_deciding_path():
    result = grade(r"Thus $\boxed{\dfrac{1}{2}}$.", "0.5", profile="strict")
    assert (result.correct, result.extracted, result.reason, result.profile) == (
        True,
        r"\dfrac{1}{2}",
        "numeric",
        "strict",
    )
    assert grade("nothing", "1").reason == "no-answer"
    assert grade(r"\boxed{x^2+2x+1}", "(x+1)^2").reason.startswith("symbolic")
    assert isinstance(GRADER_VERSION, str)


def test_unknown_profile_is_rejected():
    with pytest.raises(ValueError, match="profile"):
        grade("1", "1", profile="loose")


def test_prose_against_a_number_is_settled_without_sympy(monkeypatch: pytest.MonkeyPatch):
    """A real GSM8K response stated '2 pounds of peaches, 1 pound of plums, and 1 pound of apricots' for a
    gold of 38: no number, so no trip to the symbolic worker (1.3 s with its start)."""
    from mathsft.grading import clear_caches, equivalence

    def no_worker(*args: object) -> None:
        raise AssertionError("the symbolic worker was asked")

    monkeypatch.setattr(equivalence, "run_symbolic", no_worker)
    clear_caches()
    pred = "2 pounds of peaches, 1 pound of plums, and 1 pound of apricots"
    assert equivalence.compare(pred, "38") == (False, "prose")
    assert not equivalence.compare("38", "the number of plums picked")[0]
    assert is_equivalent("38 pounds", "38")  # a number stated in words is still read
