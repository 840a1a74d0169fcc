"""Answer forms of competition data and of R1-style or bare responses, and the profile chosen per kind."""

from __future__ import annotations

import pytest
from answer_form_cases import ANSWER_FORM_CASES

from mathsft.grading import clear_caches, extract_answer, grade, is_equivalent
from mathsft.grading.normalize import canonical


def test_every_kind_is_labelled_both_ways():
    kinds = {kind for *_, kind in ANSWER_FORM_CASES}
    for kind in kinds:
        labels = {label for *_, label, k in ANSWER_FORM_CASES if k == kind}
        assert labels == {True, False}, kind


@pytest.mark.parametrize(
    ("response", "gold", "label", "kind"),
    ANSWER_FORM_CASES,
    ids=[f"{c[3]}-{i}" for i, c in enumerate(ANSWER_FORM_CASES)],
)
def test_labelled_answer_form(response: str, gold: str, label: bool, kind: str):
    assert grade(response, gold).correct is label, grade(response, gold)


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ("(3,2)", "(p,q)=(3,2)"),  # a label over a constant only names the answer
        ("1", "|AB|=1"),
        ("q=2, p=3", "(p,q)=(3,2)"),
        ("4, 5", "AB=4,CD=5"),
        (r"[2,5)", r"x \in [2,5)"),  # membership states the set
        (r"-793<a<10", r"10>a>-793"),  # the same inequality both ways round
        ("(2,2),(6,2)", r"(6,2) \text{ or } (2,2)"),
        ("28 pct", r"28\%"),
        ("1 000", "1000"),
        (r"\text{E}", "E"),
        (r"\textbf{(C)}\ 12", "C"),
    ],
)
def test_strict_also_accepts(pred: str, gold: str):
    assert is_equivalent(pred, gold, profile="strict")


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ("(0,1)", "0<f(x)<1"),  # an interval for an inequality: the same set, another form
        (r"x>2", r"(2,\infty)"),
        ("2x+1", "y=2x+1"),  # the right-hand side of an equation over a variable
        (r"\text{No, it does not exist}", r"\text{No}"),
    ],
)
def test_lenient_only(pred: str, gold: str):
    assert is_equivalent(pred, gold, profile="lenient")
    assert not is_equivalent(pred, gold, profile="strict")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"$\boxed{(2,2)} \quad\text{and}\quad \boxed{(6,2)}$", "(2,2), (6,2)"),
        (r"\boxed{1},\boxed{2},\boxed{3}", "1, 2, 3"),
        (r"$\boxed{2}$ or $\boxed{-2}$.", "2, -2"),
        (r"$\boxed{4}$ and $\boxed{4}$", "4"),  # one answer written twice
        (r"We get $\boxed{3}$. Correcting the sign: $\boxed{4}$", "4"),
        (r"so $x=\boxed{3}$.\n\n**Final Answer**\n\boxed{3}", "3"),
        ("The answer is 72.\nLet me verify the answer: 48 + 24 = 72", "72"),
        ("Answer: 12\nDouble-check the answer: 12 = 3 * 4", "12"),
        ("So we can check that the answer is 5.", "5"),  # states the answer
        (r"$$(1, +\infty)$$", r"(1, +\infty)"),
        (r"\[\frac{10}{9}\]", r"\frac{10}{9}"),
        (r"x = \frac13.", r"x = \frac13"),
        ("I think it is 5", None),  # words: not a bare expression
        ("x", None),  # no mark of mathematics: not an answer
        ("42", None),  # a plain number is the last-number fallback's, as before
        ("2+2 = 4, 4+4 = 8, 8+8 =", None),  # a computation cut off, not an expression
        ("$1$ is less than $2$", None),
    ],
)
def test_extraction_of_several_checked_and_bare_answers(text: str, expected: str | None):
    assert extract_answer(text, style="math") == expected


def test_bare_expression_is_graded_but_not_formatted():
    result = grade(r"$\frac13$", r"\frac{1}{3}")
    assert (result.correct, result.source, result.formatted) == (True, "whole", False)


def test_gold_solution_is_graded_by_its_final_answer():
    gold = r"Since $2+3=5$ and $\boxed{5}$ is odd, ... Hence the answer is $\boxed{6}$."
    assert grade(r"\boxed{6}", gold).correct
    assert not grade(r"\boxed{5}", gold).correct


def test_clear_caches_forgets_symbolic_verdicts():
    assert grade(r"\boxed{(x+1)^3}", "x^3+3x^2+3x+1").correct
    clear_caches()
    assert grade(r"\boxed{(x+1)^3}", "x^3+3x^2+3x+1").correct


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"11,\! 111", "11111"),
        (r"10{,}000", "10000"),
        ("0,125", "0,125"),  # a leading zero: a decimal comma, not thousands
        (r"5 \textbf{ meters}", "5"),
        (r"2,5 \text{ m}", "2,5"),
        ("28 percentage points", "28%"),
        ("x >= 2", r"x \geq 2"),
        (r"x \lt 2", "x < 2"),
        ("x != 2", r"x \neq 2"),
    ],
)
def test_canonical_forms(text: str, expected: str):
    assert canonical(text) == expected
