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


@pytest.mark.parametrize(
    ("pred", "gold", "equal"),
    [
        (
            r"\left[\begin{array}{cc} 1 & 2 \\ 3 & 4 \end{array}\right]",
            r"\begin{pmatrix}1&2\\3&4\end{pmatrix}",
            True,
        ),
        (
            r"\begin{vmatrix}1&2\\3&4\end{vmatrix}",
            r"\begin{pmatrix}1&2\\3&4\end{pmatrix}",
            False,
        ),  # a determinant
        (r"2\begin{pmatrix}3\\-2\end{pmatrix}", r"\begin{pmatrix}6\\-4\end{pmatrix}", True),
        (
            r"\begin{pmatrix}1&1\\0&1\end{pmatrix}\begin{pmatrix}2\\1\end{pmatrix}",
            r"\begin{pmatrix}3\\1\end{pmatrix}",
            True,
        ),
        (
            r"\begin{pmatrix}2\\1\end{pmatrix}\begin{pmatrix}1&1\\0&1\end{pmatrix}",
            r"\begin{pmatrix}3\\1\end{pmatrix}",
            False,
        ),
        ("-x > -1", "x < 1", True),  # a linear relation divided by a negative coefficient turns round
        ("-x < -1", "x < 1", False),
        ("2 >= x", r"x \geq 2", False),
        ("x != 3", r"x \ne 3", True),
        (r"x \neq 3", r"(-\infty,3)\cup(3,\infty)", True),
        ("x = 5+5+1 = 11", "11", True),  # a chain states its last side
        ("x = 5+5+1 = 12", "11", False),
        ("p=5, q=2; p=7, q=2", "(7,2),(5,2)", True),
        ("p=5, q=2", "(7,2),(5,2)", False),
        (r"0, \pm 1", "-1, 0, 1", True),
        ("1,22", "1.22", True),  # a decimal comma where it cannot separate thousands
        ("1,222", "1.222", False),
        ("0,125", "0.125", True),
        ("1, 22", "1.22", False),
        (r"11,\! 111", "11111", True),
        (r"(0.6, 2.6667]", r"(\frac{3}{5}, \frac{8}{3}]", True),  # endpoints rounded to 4+ digits
        (r"(0.6, 2.67]", r"(\frac{3}{5}, \frac{8}{3}]", False),
        (r"(3, 1.5708)", r"(3, \frac{\pi}{2})", False),  # may be a point: not rounded
        (r"2,5 \text{ m}", "2.5", True),  # a short unit in \text after a number
        (r"3+4\mathrm{i}", "7", False),  # but not the constant i
    ],
)
def test_competition_forms(pred: str, gold: str, equal: bool):
    assert is_equivalent(pred, gold) is equal, compare(pred, gold)


def test_interval_rounding_is_lenient_only():
    assert not is_equivalent(r"(0.6, 2.6667]", r"(\frac{3}{5}, \frac{8}{3}]", profile="strict")
