"""Symbolic comparison of two LaTeX scalars or equations: exact/numeric evaluation of constants, then
random-point testing of expressions, and ``simplify`` only as the last resort.

This runs inside a worker process under a hard deadline (see ``timeout.py``): it may be slow, it may
not hang the caller.
"""

from __future__ import annotations

import random

import sympy

from mathsft.grading.parse import TooLarge, to_sympy

PRECISION = 30
REL_TOL = 1e-10
POINTS = 4


def _close(a: sympy.Expr, b: sympy.Expr) -> bool:
    """Relative closeness in SymPy arithmetic (no float overflow for 9^729 or underflow for 1/2004!)."""
    scale = max(abs(a), abs(b))
    return bool(scale == 0 or abs(a - b) <= REL_TOL * scale)


def _value(expr: sympy.Basic, subs: dict | None = None) -> sympy.Expr | None:
    """A finite numeric value, or None where the expression is undefined/infinite/non-numeric there."""
    try:
        value = expr.evalf(PRECISION, subs=subs)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError, AttributeError):
        return None
    if not value.is_number or value.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo):
        return None
    real, imag = value.as_real_imag()
    if not (real.is_Float or real.is_zero) or not (imag.is_Float or imag.is_zero):
        return None
    return value


def _points(symbols: list[sympy.Symbol], count: int, sign: int = 1) -> list[dict]:
    rng = random.Random(1234)
    return [
        {s: sympy.Float(sign * rng.uniform(0.13, 2.97), PRECISION) for s in symbols} for _ in range(count)
    ]


def _real(value: sympy.Expr | None) -> bool:
    return value is not None and value.as_real_imag()[1].is_zero


def _is_expr(x: object) -> bool:
    return isinstance(x, sympy.Expr)


def expressions_equal(a: sympy.Expr, b: sympy.Expr) -> tuple[bool | None, str]:
    """Equal as functions of their free symbols: numeric at random points, then ``simplify``."""
    if a == b:
        return True, "symbolic:structural"
    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    if not symbols:
        va, vb = _value(a), _value(b)
        if va is not None and vb is not None:
            return _close(va, vb), "symbolic:numeric"
    else:
        checked = 0
        for point in _points(symbols, POINTS):
            va, vb = _value(a, point), _value(b, point)
            if va is None or vb is None:
                continue
            if not _close(va, vb):
                return False, "symbolic:random-points"
            checked += 1
        # Equal at positive points; at negative ones, wherever both sides are real, they must agree too
        # (|x| is not x; log(x^2) and 2 log(x), complex there, are not tested there).
        if checked >= 2:
            for point in _points(symbols, POINTS, sign=-1):
                va, vb = _value(a, point), _value(b, point)
                if _real(va) and _real(vb) and not _close(va, vb):
                    return False, "symbolic:random-points"
            return True, "symbolic:random-points"
    try:
        return bool(sympy.simplify(a - b) == 0), "symbolic:simplify"
    except (TypeError, ValueError, AttributeError, NotImplementedError):
        return None, "symbolic:undecided"


def equations_equal(a: sympy.Basic, b: sympy.Basic) -> tuple[bool | None, str]:
    """Two equations are the same when ``lhs - rhs`` of one is a nonzero constant multiple of the other's."""
    da, db = a.lhs - a.rhs, b.lhs - b.rhs
    symbols = sorted(da.free_symbols | db.free_symbols, key=str)
    ratios = []
    for point in _points(symbols, POINTS + 2):
        va, vb = _value(da, point), _value(db, point)
        if va is None or vb is None or abs(vb) < 1e-12:
            continue
        ratios.append((va / vb).evalf(PRECISION))
    if len(ratios) < 2:
        return None, "equation:undecided"
    same = all(_close(r, ratios[0]) for r in ratios) and abs(ratios[0]) > 1e-12
    return bool(same), "equation:random-points"


def symbolic_equal(pred: str, gold: str) -> tuple[bool | None, str]:
    """Compare two canonical LaTeX strings symbolically; None verdict when it cannot decide."""
    try:
        a, b = to_sympy(pred), to_sympy(gold)
    except TooLarge as err:
        return None, f"too-large: {err}"
    except Exception:  # the grammar's errors are plain Exceptions; anything unparsable is no verdict
        return None, "unparsable"
    if isinstance(a, sympy.Eq) and isinstance(b, sympy.Eq):
        return equations_equal(a, b)
    if _is_expr(a) and _is_expr(b):
        return expressions_equal(a, b)
    try:
        return bool(a == b), "symbolic:structural"
    except TypeError:
        return None, "symbolic:undecided"
