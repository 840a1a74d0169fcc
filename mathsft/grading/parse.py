"""LaTeX -> SymPy without running any Python: latex2sympy2_extended's ANTLR grammar, never ``eval``,
``sympify(str)`` or ``parse_expr`` on model text. Sizes are capped before and after parsing so nothing
like ``10^{10^{10}}`` or ``100000!`` is ever evaluated.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

import sympy
from latex2sympy2_extended import NormalizationConfig, latex2sympy
from latex2sympy2_extended.latex2sympy2 import ConversionConfig

MAX_LATEX_CHARS = 400
MAX_DIGIT_RUN = 120
MAX_POWERS = 12
MAX_NODES = 400
MAX_RESULT_DIGITS = 20_000  # log10 bound of any numeric power we allow evaluation of
MAX_FACTORIAL = 5000

_NORMALIZATION = NormalizationConfig(
    basic_latex=True, units=False, malformed_operators=True, nits=False, boxed="none", equations=False
)
_CONVERSION = ConversionConfig(lowercase_symbols=False)
_I = sympy.Symbol("i")
_DIGIT_RUN = re.compile(rf"\d{{{MAX_DIGIT_RUN + 1},}}")


class TooLarge(ValueError):
    """The expression is too big to evaluate safely; it is compared as a string instead."""


def check_latex(latex: str) -> None:
    """Cheap string-level caps applied before the parser sees anything."""
    if len(latex) > MAX_LATEX_CHARS:
        raise TooLarge(f"{len(latex)} characters")
    if _DIGIT_RUN.search(latex):
        raise TooLarge("digit string too long")
    if latex.count("^") > MAX_POWERS:
        raise TooLarge("too many powers")
    depth = 0
    for char in latex:
        depth += char == "{"
        depth -= char == "}"
        if depth > 12:
            raise TooLarge("nesting too deep")


def _log10_bound(expr: sympy.Basic) -> float:
    """An upper bound on log10 |expr| for a bounded numeric subtree (``math.inf`` if unknown/huge)."""
    if expr.is_Integer or expr.is_Rational:
        return max(math.log10(abs(expr.p) + 1), math.log10(expr.q + 1))
    if expr.is_Float or expr.is_NumberSymbol or expr is sympy.I:
        return 1.0
    if isinstance(expr, sympy.Pow):
        base, exp = expr.args
        exp_bound = _log10_bound(exp)
        if exp_bound > 6:
            return math.inf
        return _log10_bound(base) * 10**exp_bound
    if isinstance(expr, sympy.factorial):
        arg_bound = _log10_bound(expr.args[0])
        return math.inf if arg_bound > 4 else 10**arg_bound * arg_bound
    if isinstance(expr, sympy.Mul | sympy.Add):
        return sum(_log10_bound(a) for a in expr.args) + 1
    if not expr.args:
        return 1.0
    return max(_log10_bound(a) for a in expr.args) + 1


def check_tree(expr: sympy.Basic) -> None:
    """Reject numeric towers, huge factorials and oversized trees before anything evaluates them."""
    for nodes, node in enumerate(sympy.preorder_traversal(expr), start=1):
        if nodes > MAX_NODES:
            raise TooLarge("expression too large")
        if isinstance(node, sympy.Pow) and node.args[1].is_number:
            if _log10_bound(node) > MAX_RESULT_DIGITS:
                raise TooLarge("power too large")
        elif isinstance(node, sympy.factorial | sympy.gamma | sympy.binomial | sympy.factorial2):
            if any(a.is_number and _log10_bound(a) > math.log10(MAX_FACTORIAL) for a in node.args):
                raise TooLarge("factorial too large")
        elif node.is_Integer and abs(node.p).bit_length() > 3 * MAX_RESULT_DIGITS:
            raise TooLarge("integer too large")


@lru_cache(maxsize=4096)
def to_sympy(latex: str) -> sympy.Basic:
    """Parse LaTeX into an unevaluated SymPy tree; raises ``TooLarge`` or the parser's error."""
    check_latex(latex)
    expr = latex2sympy(latex, normalization_config=_NORMALIZATION, conversion_config=_CONVERSION)
    if isinstance(expr, sympy.Basic):
        check_tree(expr)
        expr = expr.xreplace({_I: sympy.I})  # MATH writes complex numbers as 6+9i
    return expr
