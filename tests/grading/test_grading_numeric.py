"""The in-process floating-point comparison: it answers only where SymPy (the worker) would agree."""

from __future__ import annotations

from fractions import Fraction

import pytest
from equivalence_cases import CASES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mathsft.grading.normalize import canonical, compact
from mathsft.grading.numeric import constant_value, float_equal, linear_form
from mathsft.grading.symbolic import symbolic_equal


@pytest.mark.parametrize(
    ("pred", "gold", "equal"),
    [
        (r"\frac{\sqrt{3}}{3}", r"\frac{1}{\sqrt{3}}", True),
        (r"7\pi", "6+9i", False),
        (r"\sin^2 x + \cos^2 x", "1", True),
        (r"\sin x^2", r"(\sin x)^2", False),  # latex2sympy's reading: sin(x^2)
        (r"\log 100", "2", True),  # \log is base 10, as latex2sympy reads it
        (r"\ln e^{2}", "2", True),
        (r"e^{i\pi}", "-1", True),
        ("|x|", "x", False),  # differs at negative points
        (r"2|x|", "|2x|", True),
        (r"\pi r^2", r"r^2\pi", True),
        ("x(x+1)", "x^2+x", True),
        (r"\binom{5}{2} + 3!", "16", True),
        ("21:11", "11:21", False),  # ratios are quotients, as latex2sympy reads them
        ("2x-y+1=0", "y=2x+1", True),  # equations: lhs - rhs proportional
        ("x^2+y^2=2", "x^2+y^2=4", False),
        (r"\alpha+\beta", r"\beta+\alpha", True),
    ],
)
def test_float_verdicts(pred: str, gold: str, equal: bool):
    assert float_equal(pred, gold) == (equal, float_equal(pred, gold)[1])


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        (r"2\frac{1}{2}", r"\frac{5}{2}"),  # a mixed number to the worker, a product here
        ("2^3^2", "64"),  # parsers disagree on a^b^c
        ("f(x)", "x"),  # a function application
        (r"\frac{1}{2004!}", r"\frac{1}{2006!}"),  # out of a float's range
        ("9^9^9^9", "2"),
        (r"10^{400}", r"10^{400}+1"),
        (r"\sqrt{2}-1.41421356", "0.00000000237"),  # cancellation: floats cannot tell
        (r"(-\infty, 2)", r"(-\infty, 2)"),
        (r"x \leq 2", "2"),
        (r"\frac{\pi}{2} + 10^{-11}", r"\frac{\pi}{2}"),  # between the tolerances: the worker decides
    ],
)
def test_undecided_goes_to_the_worker(pred: str, gold: str):
    assert float_equal(pred, gold) is None


def test_agrees_with_sympy_on_the_hard_suite():
    decided = 0
    for pred, gold, _, note in CASES:
        p, g = canonical(pred), canonical(gold)
        fast = float_equal(p, g)
        if fast is None:
            continue
        decided += 1
        slow, _ = symbolic_equal(compact(p), compact(g))
        assert fast[0] == bool(slow), (note, fast)
    assert decided >= 50


_ATOMS = st.sampled_from(["x", "y", "2", "3", r"\pi", r"\sqrt{2}", r"\frac{1}{3}", "0.5", "e", "i"])


def _expressions(depth: int) -> st.SearchStrategy[str]:
    if depth == 0:
        return _ATOMS
    inner = _expressions(depth - 1)
    return st.one_of(
        _ATOMS,
        st.tuples(inner, st.sampled_from(["+", "-", r"\cdot ", "/"]), inner).map(
            lambda t: f"({t[0]}{t[1]}{t[2]})"
        ),
        st.tuples(inner, st.sampled_from(["2", "3", "{-1}", "{0.5}"])).map(lambda t: f"{{{t[0]}}}^{t[1]}"),
        st.tuples(st.sampled_from([r"\sin", r"\cos", r"\ln", r"\sqrt"]), inner).map(
            lambda t: f"{t[0]}{{{t[1]}}}"
        ),
        inner.map(lambda t: f"|{t}|"),
    )


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=_expressions(2), b=_expressions(2), c=_expressions(1), same=st.booleans(), equation=st.booleans())
def test_random_expressions_agree_with_sympy(a: str, b: str, c: str, same: bool, equation: bool):
    """Wherever floats answer, SymPy at 30 digits gives the same verdict (equal pairs: a vs a + 0, or
    the equation a = b vs b = a; unequal ones mostly: a vs b, a = b vs a = c)."""
    if equation:
        pred, gold = f"{a}={b}", (f"{b}={a}" if same else f"{a}={c}")
    else:
        pred, gold = a, (f"{a}+0" if same else b)
    fast = float_equal(pred, gold)
    if fast is not None:
        slow, reason = symbolic_equal(pred, gold)
        assert slow is not None and fast[0] == slow, (pred, gold, fast, reason)


@pytest.mark.parametrize(
    ("text", "form"),
    [
        ("(-x)-(-1)", ("x", Fraction(-1), Fraction(1))),
        (r"\frac{a}{2}-1", ("a", Fraction(1, 2), Fraction(-1))),
        ("-3x+6", ("x", Fraction(-3), Fraction(6))),
        ("x^2-1", None),  # not linear
        ("xy+1", None),  # two variables
        ("5", None),  # no variable
        (r"\sqrt{2}x", None),  # an irrational coefficient: left to the other paths
    ],
)
def test_linear_form(text: str, form: tuple | None):
    assert linear_form(text) == form


def test_constant_value():
    assert constant_value(r"\frac{8}{3}") == pytest.approx(8 / 3)
    assert constant_value(r"\sqrt{2}") == pytest.approx(2**0.5)
    assert constant_value("x+1") is None
