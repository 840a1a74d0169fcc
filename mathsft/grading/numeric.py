"""Fast in-process comparison of two LaTeX expressions by evaluating them in floating point.

Parsing LaTeX into SymPy (latex2sympy's ANTLR grammar) and evaluating at 30 digits costs 10-30 ms a
pair, in the symbolic worker; most pairs that reach it are plainly different (``7\\pi`` vs ``6+9i``) or
plainly equal (``\\frac{\\sqrt{3}}{3}`` vs ``\\frac{1}{\\sqrt{3}}``). This module reads the common subset of
LaTeX (numbers, letters, ``+ - \\cdot \\times /``, implicit products, ``^``, ``\\frac``, ``\\sqrt``, ``|x|``,
``!``, ``\\binom``, ``\\pi``, ``e``, ``i``, trigonometric and logarithmic functions) with a small
recursive-descent parser that builds a tree of tuples - never ``eval`` - and evaluates it with Python
complex numbers at the same points the symbolic worker uses. It answers only when floating point is
clearly enough: values far apart are different, values within ``EQUAL_TOL`` are equal (the worker's
tolerance is 1e-10); anything else (unknown syntax, overflow, cancellation, values near the tolerance,
too few defined points) is ``None`` and goes to the worker. It follows latex2sympy's readings: ``\\log``
is base 10, ``\\sin x^2`` is ``\\sin(x^2)``, ``e`` is Euler's number, ``i`` the imaginary unit.
"""

from __future__ import annotations

import cmath
import math
import random
import re
from fractions import Fraction

MAX_CHARS = 400
MAX_DEPTH = 40
MAX_FACTORIAL = 170  # 171! overflows a float
EQUAL_TOL = 1e-12  # relative: equal well inside the worker's 1e-10
UNEQUAL_TOL = 1e-7  # relative: different far outside it
RATIO_EQUAL_TOL = 1e-9  # equations: the spread of (lhs - rhs) ratios, each a quotient of two values
CANCELLATION = 1e-6  # a sum this much smaller than its largest term has lost too many digits
MAX_MAGNITUDE = 1e200
MIN_MAGNITUDE = 1e-9  # a nonzero value this small may be a float's rounding of 0 (\sin\pi): no verdict
POINTS = 4

_TOKEN = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+|\\[a-zA-Z]+|[a-zA-Z]|[-+*/^_(){}\[\]|!,=<>:])")
_FUNCTIONS = {
    "sin": cmath.sin,
    "cos": cmath.cos,
    "tan": cmath.tan,
    "cot": lambda z: 1 / cmath.tan(z),
    "sec": lambda z: 1 / cmath.cos(z),
    "csc": lambda z: 1 / cmath.sin(z),
    "arcsin": cmath.asin,
    "arccos": cmath.acos,
    "arctan": cmath.atan,
    "sinh": cmath.sinh,
    "cosh": cmath.cosh,
    "tanh": cmath.tanh,
    "exp": cmath.exp,
    "ln": cmath.log,
}
_GREEK = {"alpha", "beta", "gamma", "delta", "theta", "lambda", "mu", "phi", "varphi", "psi", "omega", "rho"}
_FUNCTION_LETTERS = {"f", "g", "h"}  # f(x) is a function application to latex2sympy, not a product


class Undecided(Exception):
    """Outside what floating point may decide: the symbolic worker answers instead."""


class _Parser:
    """Recursive descent over the tokens of one expression; the tree is nested tuples."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0
        self.inside_abs = 0  # inside |...| a bar closes; it does not open a factor
        self.variables: set[str] = set()

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise Undecided(f"expected {expected!r}")
        self.i += 1
        return token

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise Undecided("nesting too deep")

    def parse(self) -> tuple:
        if self.tokens[:1] == ["{"]:  # the whole answer in braces is a set to latex2sympy
            self.primary()
            if self.peek() is None:
                raise Undecided("a braced whole")
            self.i = 0
        tree = self.sum()
        if self.peek() in (":", "="):  # a ratio 11:21 is a quotient; an equation keeps both sides
            kind = "div" if self.take() == ":" else "eq"
            tree = (kind, tree, self.sum())
        if self.peek() is not None:
            raise Undecided(f"unexpected {self.peek()!r}")
        return tree

    def sum(self) -> tuple:
        self.enter()
        terms = [self.signed()]
        while self.peek() in ("+", "-"):
            sign = self.take()
            term = self.product()
            terms.append(("neg", term) if sign == "-" else term)
        self.depth -= 1
        return terms[0] if len(terms) == 1 else ("add", tuple(terms))

    def signed(self) -> tuple:
        if self.peek() in ("+", "-"):
            sign = self.take()
            term = self.product()
            return ("neg", term) if sign == "-" else term
        return self.product()

    def product(self) -> tuple:
        node = self.power()
        while True:
            token = self.peek()
            if token in ("*", r"\cdot", r"\times"):
                self.take()
                node = ("mul", node, self.power())
            elif token in ("/", r"\div"):
                self.take()
                node = ("div", node, self.power())
            elif token is not None and _starts_factor(token) and not (token == "|" and self.inside_abs):
                previous = self.tokens[self.i - 1]
                if _is_number(previous) and (_is_number(token) or token == r"\frac"):
                    raise Undecided("two numbers side by side, or a mixed number (2\\frac{1}{2})")
                node = ("mul", node, self.power())
            else:
                return node

    def power(self) -> tuple:
        base = self.postfix(self.primary())
        if self.peek() == "^":
            self.take()
            exponent = self.script()
            if self.peek() == "^":
                raise Undecided("a^b^c is read differently by different parsers")
            base = self.postfix(("pow", base, exponent))
        return base

    def postfix(self, node: tuple) -> tuple:
        while self.peek() == "!":
            self.take()
            node = ("fact", node)
        return node

    def script(self) -> tuple:
        """The argument of ^ (or of \\frac, \\sqrt): a braced group or a single token."""
        if self.peek() == "{":
            return self.group("{", "}")
        token = self.take()
        if _is_number(token):
            if len(token) > 1 and "." not in token:
                raise Undecided("x^12 without braces")
            return ("num", complex(float(token)))
        if token == "-":
            return ("neg", self.script())
        self.i -= 1
        return self.primary()

    def group(self, open_: str, close: str) -> tuple:
        self.take(open_)
        node = self.sum()
        self.take(close)
        return node

    def primary(self) -> tuple:
        self.enter()
        try:
            return self._primary()
        finally:
            self.depth -= 1

    def _primary(self) -> tuple:
        token = self.take()
        if _is_number(token):
            return ("num", complex(float(token)))
        if token in ("(", "{", "["):
            node = self.sum()
            self.take({"(": ")", "{": "}", "[": "]"}[token])
            return node
        if token == "|":
            self.inside_abs += 1
            node = self.sum()
            self.take("|")
            self.inside_abs -= 1
            return ("abs", node)
        if len(token) == 1 and token.isalpha():
            return self.letter(token)
        if token.startswith("\\"):
            return self.command(token[1:])
        raise Undecided(f"unexpected {token!r}")

    def letter(self, token: str) -> tuple:
        if token in _FUNCTION_LETTERS and self.peek() == "(":
            raise Undecided("function application")
        if self.peek() == "_":
            self.take()
            sub = self.take()
            if sub == "{":
                parts = []
                while self.peek() not in ("}", None):
                    parts.append(self.take())
                self.take("}")
                sub = "{" + "".join(parts) + "}"
            name = f"{token}_{sub}"
        elif token == "e":
            return ("num", complex(math.e))
        elif token == "i":
            return ("num", 1j)
        else:
            name = token
        self.variables.add(name)
        return ("var", name)

    def command(self, name: str) -> tuple:
        if name in _GREEK:
            self.variables.add(name)
            return ("var", name)
        if name == "pi":
            return ("num", complex(math.pi))
        if name == "frac":
            return ("div", self.script(), self.script())
        if name == "binom":
            return ("binom", self.script(), self.script())
        if name == "sqrt":
            if self.peek() == "[":
                index = self.group("[", "]")
                return ("pow", self.script(), ("div", ("num", 1 + 0j), index))
            return ("pow", self.script(), ("num", 0.5 + 0j))
        if name in _FUNCTIONS or name == "log":
            return self.function(name)
        raise Undecided(f"\\{name}")

    def function(self, name: str) -> tuple:
        base = None
        if name == "log" and self.peek() == "_":
            self.take()
            base = self.script()
        power = None
        if self.peek() == "^":
            self.take()
            power = self.script()
        # \sin(x), or without parentheses the product that follows: \sin 2x, \sin x^2
        argument = self.group("(", ")") if self.peek() == "(" else self.product()
        if name == "log":
            node = ("log", argument, base if base is not None else ("num", 10 + 0j))
        else:
            node = ("fn", name, argument)
        return ("pow", node, power) if power is not None else node


def _tokenize(text: str) -> list[str]:
    tokens, i, n = [], 0, len(text)
    while i < n:
        match = _TOKEN.match(text, i)
        if match is None:
            if text[i:].strip():
                raise Undecided(f"unknown character {text[i]!r}")
            break
        tokens.append(match.group(1))
        i = match.end()
    return tokens


def _is_number(token: str) -> bool:
    return token[0].isdigit() or token[0] == "."


def _starts_factor(token: str) -> bool:
    return (
        token in ("(", "{", "|")
        or token[0].isalnum()
        or token[0] == "."
        or (token.startswith("\\") and token not in (r"\cdot", r"\times", r"\div"))
    )


class _Imprecise(Exception):
    """A value lost too many digits to cancellation (or is out of a float's safe range)."""


def _evaluate(node: tuple, point: dict[str, complex]) -> complex:
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "var":
        return point[node[1]]
    if kind == "neg":
        return -_evaluate(node[1], point)
    if kind == "add":
        values = [_evaluate(term, point) for term in node[1]]
        total = sum(values)
        largest = max(abs(v) for v in values)
        if largest and abs(total) < CANCELLATION * largest:
            raise _Imprecise
        return total
    if kind == "mul":
        return _evaluate(node[1], point) * _evaluate(node[2], point)
    if kind == "div":
        return _evaluate(node[1], point) / _evaluate(node[2], point)
    if kind == "pow":
        return _evaluate(node[1], point) ** _evaluate(node[2], point)
    if kind == "abs":
        return complex(abs(_evaluate(node[1], point)))
    if kind == "fn":
        return _not_rounded_zero(_FUNCTIONS[node[1]](_evaluate(node[2], point)))
    if kind == "log":
        argument, base = _evaluate(node[1], point), _evaluate(node[2], point)
        return _not_rounded_zero(cmath.log(argument) / cmath.log(base))
    if kind == "fact":
        return complex(math.factorial(_small_integer(_evaluate(node[1], point))))
    if kind == "binom":
        n, k = _small_integer(_evaluate(node[1], point)), _small_integer(_evaluate(node[2], point))
        return complex(math.comb(n, k))
    raise Undecided(kind)


def _not_rounded_zero(value: complex) -> complex:
    """A transcendental function's tiny result may be its float rounding of 0 (``\\sin\\pi``)."""
    if 0 < abs(value) < MIN_MAGNITUDE:
        raise _Imprecise
    return value


def _small_integer(value: complex) -> int:
    if value.imag or value.real != int(value.real) or not 0 <= value.real <= MAX_FACTORIAL:
        raise Undecided("factorial of a non-integer or large argument")
    return int(value.real)


def _value(tree: tuple, point: dict[str, complex]) -> complex | None:
    """The value at ``point``; None where it is undefined; ``_Imprecise`` where floats cannot tell."""
    try:
        value = _evaluate(tree, point)
    except (ZeroDivisionError, ValueError):
        return None
    except OverflowError as err:
        raise _Imprecise from err
    magnitude = abs(value)
    if math.isnan(magnitude) or magnitude > MAX_MAGNITUDE or 0 < magnitude < MIN_MAGNITUDE:
        raise _Imprecise
    return value


def _points(names: list[str], sign: int, count: int = POINTS) -> list[dict[str, complex]]:
    """The symbolic worker's points (``symbolic._points``): the same seed, draws and order."""
    rng = random.Random(1234)
    return [{name: complex(sign * rng.uniform(0.13, 2.97)) for name in names} for _ in range(count)]


def _relative(a: complex, b: complex) -> float:
    scale = max(abs(a), abs(b))
    return 0.0 if scale == 0 else abs(a - b) / scale


def _is_real(value: complex) -> bool:
    return abs(value.imag) <= EQUAL_TOL * abs(value)


def float_equal(pred: str, gold: str) -> tuple[bool, str] | None:
    """``(equal, reason)`` when floating point settles it, else None (see the module docstring)."""
    if len(pred) > MAX_CHARS or len(gold) > MAX_CHARS:
        return None
    try:
        a, b = _Parser(pred), _Parser(gold)
        tree_a, tree_b = a.parse(), b.parse()
        names = sorted(a.variables | b.variables)
        if (
            tree_a[0] == "eq" or tree_b[0] == "eq"
        ):  # SymPy evaluates 2 = 3 to False at once: no variables, no verdict
            both = tree_a[0] == tree_b[0] and a.variables and b.variables
            return _equations_equal(tree_a, tree_b, names) if both else None
        if not names:
            va, vb = _value(tree_a, {}), _value(tree_b, {})
            if va is None or vb is None:
                return None
            return _verdict(_relative(va, vb), "symbolic:float")
        checked = 0
        for point in _points(names, 1):
            va, vb = _value(tree_a, point), _value(tree_b, point)
            if va is None or vb is None:
                continue
            verdict = _verdict(_relative(va, vb), "symbolic:float-points")
            if verdict is None or not verdict[0]:
                return verdict
            checked += 1
        if checked < 2:
            return None
        for point in _points(names, -1):  # where both are real at negative points, they must agree too
            va, vb = _value(tree_a, point), _value(tree_b, point)
            if va is not None and vb is not None and _is_real(va) and _is_real(vb):
                verdict = _verdict(_relative(va, vb), "symbolic:float-points")
                if verdict is None or not verdict[0]:
                    return verdict
        return True, "symbolic:float-points"
    except (Undecided, _Imprecise, RecursionError, IndexError):
        return None


def _equations_equal(a: tuple, b: tuple, names: list[str]) -> tuple[bool, str] | None:
    """Two equations are the same when ``lhs - rhs`` of one is a constant nonzero multiple of the
    other's (``symbolic.equations_equal``, at its points)."""
    da, db = ("add", (a[1], ("neg", a[2]))), ("add", (b[1], ("neg", b[2])))
    ratios = []
    for point in _points(names, 1, POINTS + 2):
        va, vb = _value(da, point), _value(db, point)
        if va is not None and vb is not None and abs(vb) >= 1e-12:
            ratios.append(va / vb)
    if len(ratios) < 2 or abs(ratios[0]) <= 1e-9:
        return None
    spread = max(_relative(r, ratios[0]) for r in ratios)
    return _verdict(spread, "equation:float-points", RATIO_EQUAL_TOL)


def _verdict(relative: float, reason: str, equal_tol: float = EQUAL_TOL) -> tuple[bool, str] | None:
    if relative <= equal_tol:
        return True, reason
    if relative >= UNEQUAL_TOL:
        return False, reason
    return None


def constant_value(text: str) -> complex | None:
    """The value of a constant expression (``\\frac{8}{3}``, ``\\sqrt{2}``, ``\\pi``) in floating point, or
    None (variables, unknown syntax, undefined, imprecise)."""
    if len(text) > MAX_CHARS:
        return None
    try:
        parser = _Parser(text)
        tree = parser.parse()
        return None if parser.variables else _value(tree, {})
    except (Undecided, _Imprecise, RecursionError, IndexError):
        return None


_LINEAR_POINTS = (0.37, 1.91, 2.63)


def linear_form(text: str) -> tuple[str, Fraction, Fraction] | None:
    """``(x, a, b)`` when ``text`` is ``a x + b`` in its one variable with small rational ``a != 0`` and
    ``b`` (``-2x+8``, ``\\frac{x}{2}-1``), checked at three points; else None. It lets ``-2x \\geq -8`` be
    read as ``x \\leq 4``."""
    if len(text) > MAX_CHARS:
        return None
    try:
        parser = _Parser(text)
        tree = parser.parse()
        if len(parser.variables) != 1 or tree[0] == "eq":
            return None
        (name,) = parser.variables
        values = [_value(tree, {name: complex(x)}) for x in _LINEAR_POINTS]
    except (Undecided, _Imprecise, RecursionError, IndexError):
        return None
    if any(v is None or not _is_real(v) for v in values):
        return None
    (x0, x1, x2), (y0, y1, y2) = _LINEAR_POINTS, [v.real for v in values]
    slope = (y1 - y0) / (x1 - x0)
    if abs(y0 + slope * (x2 - x0) - y2) > EQUAL_TOL * max(1.0, abs(y2)):
        return None
    a = Fraction(slope).limit_denominator(1000)
    b = Fraction(y0 - slope * x0).limit_denominator(1000)
    if (
        a == 0
        or abs(float(a) - slope) > 1e-9 * max(1.0, abs(slope))
        or abs(float(b) - (y0 - slope * x0)) > 1e-9
    ):
        return None
    return name, a, b
