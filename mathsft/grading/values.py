"""Typed answer values parsed from canonical strings in pure Python (no SymPy, bounded sizes).

The gold's type decides how a prediction is compared: numbers exactly (``Fraction``) with a documented
tolerance, intervals and tuples in order with their brackets, sets and solution lists unordered,
matrices cell by cell, base-n numbers with their subscript, text case-insensitively.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from mathsft.grading.numeric import linear_form

MAX_DIGITS = 400  # longer digit strings are not numbers we compare exactly (they go to string comparison)
MAX_EXPONENT = 400  # 1e400 is fine as a Fraction; 1e4000000 is not
MAX_ITEMS = 64  # elements of a list/set/tuple/matrix we compare one by one

_D = r"(?:\d+(?:\.\d*)?|\.\d+)"
_INT_OR_DEC = re.compile(rf"^([+-]?)({_D})$")
_SCI_E = re.compile(rf"^([+-]?)({_D})[eE]([+-]?\d+)$")
_SCI_TIMES = re.compile(rf"^([+-]?)({_D})(?:\\times|\\cdot|\*|x)10\^(?:\{{([+-]?\d+)\}}|([+-]?\d))$")
_POW10 = re.compile(r"^([+-]?)10\^(?:\{([+-]?\d+)\}|(\d))$")
_FRAC = re.compile(rf"^([+-]?)\\frac(?:\{{([+-]?{_D})\}}|(\d))(?:\{{([+-]?{_D})\}}|(\d))$")
_SLASH = re.compile(rf"^([+-]?)({_D})/({_D})$")
_MIXED = re.compile(r"^([+-]?)(\d+)\\frac\{(\d+)\}\{(\d+)\}$")
_MIXED_SPACE = re.compile(r"^([+-]?)(\d+)\s+(\d+)/(\d+)$")
_BASE = re.compile(r"^([0-9A-Za-z]+)_(?:\{(\d{1,2})\}|(\d))$")
_CHOICE = re.compile(r"^\(?([A-Ea-e])\)?$")
_WORDS = re.compile(r"^[A-Za-z][A-Za-z' \-]*[A-Za-z]$")
_TEXT_WRAPPED = re.compile(r"\\(?:text|mbox|textbf|mathrm)\s*\{\s*\(?[A-Za-z][A-Za-z ,'\-()]*\}")
# A name whose value an answer states: x, a_1, f(2), f_{\max}, \theta, AB, |AB|, \angle ABC, x', and
# tuples (p,q) or ratios V_1:V_2 of names.
_NAME = r"(?:m?\\angle\s*)?(?:[A-Za-z]+|\\[a-zA-Z]+)(?:_(?:\{[^{}=]*\}|\w))?'*(?:\([^()=<>]*\))?"
_ATOM = rf"(?:{_NAME}|\|\s*{_NAME}\s*\||\\[lv]?[vV]?ert\s*{_NAME}\s*\\[rv]?[vV]?ert)"
_LABEL = re.compile(rf"^\s*(?:{_ATOM}(?:\s*:\s*{_ATOM})*|\(\s*{_ATOM}(?:\s*,\s*{_ATOM})+\s*\))\s*$")
_ABS_NAME = re.compile(rf"^\s*(?:\|\s*({_NAME})\s*\||\\[lv]?[vV]?ert\s*({_NAME})\s*\\[rv]?[vV]?ert)\s*$")
_COMMAND = re.compile(r"\\[a-zA-Z]+")
MEMBERSHIP = re.compile(r"\\in(?![a-zA-Z])")  # x \in S
_UNION_WORDS = (" or ", ";", r"\text{or}")
_BOTH_WORDS = (" and ", r"\text{and}")
_ALTERNATIVES = _UNION_WORDS + _BOTH_WORDS
_RELATION = re.compile(r"(\\leq|\\geq|\\neq|\\lt(?![a-zA-Z])|\\gt(?![a-zA-Z])|<|>)")
_LESS = frozenset(("<", r"\lt", r"\leq"))
_GREATER = frozenset((">", r"\gt", r"\geq"))
_FLIP = {">": "<", r"\gt": "<", r"\geq": r"\leq"}
_REVERSE = {
    "<": ">",
    ">": "<",
    r"\lt": ">",
    r"\gt": "<",
    r"\leq": r"\geq",
    r"\geq": r"\leq",
    r"\neq": r"\neq",
}
_MIRROR = {"[": "]", "(": ")", "]": "[", ")": "("}
# pmatrix, bmatrix, \left[\begin{array}{cc}...\end{array}\right] (brackets kept after \left/\right go),
# matrix in parentheses: one matrix; vmatrix is a determinant, another kind.
_ENVIRONMENT = r"\\begin\{([pbvBV]?matrix|array)\}(?:\{[^{}]*\})?((?:(?!\\begin|\\end).)*)\\end\{\2\}"
_MATRIX = re.compile(rf"^([\[(]?)\s*{_ENVIRONMENT}\s*([\])]?)$", re.DOTALL)
_MATRIX_TERM = re.compile(rf"([\[(]?)\s*{_ENVIRONMENT}\s*([\])]?)", re.DOTALL)
_MATRIX_JOIN = re.compile(r"^\s*(?:\\cdot|\\times)?\s*$")
_MATRIX_SCALAR = re.compile(r"^\s*([+-]?)\s*([^+\-]*?)\s*(?:\\cdot|\\times)?\s*$")
MAX_MATRICES = 4
MAX_SCALAR_CHARS = 40  # 2\sqrt{3}\cdot before a matrix; a longer "coefficient" is no matrix expression

_OPENERS = "([{"
_CLOSERS = ")]}"


@dataclass(frozen=True)
class Number:
    """An exact number; ``decimals`` counts digits after the point as written, ``percent`` a trailing %."""

    value: Fraction
    kind: str  # integer | decimal | fraction | mixed | scientific
    decimals: int = 0
    percent: bool = False

    @property
    def significant(self) -> int:
        """Significant digits as written (``0.0330`` -> 3)."""
        digits = str(abs(self.value.numerator * 10**self.decimals // self.value.denominator))
        return len(digits.lstrip("0")) or 1


@dataclass(frozen=True)
class BaseNumber:
    digits: str
    base: int


@dataclass(frozen=True)
class Sequence:
    """Bracketed items: a tuple/point or an interval (``open``/``close`` brackets matter), a set
    (``{``/``}``, unordered) or a bare comma list (empty brackets, unordered: a list of solutions)."""

    open: str
    close: str
    items: tuple[str, ...]

    @property
    def ordered(self) -> bool:
        return self.open in "([" and self.open != ""


@dataclass(frozen=True)
class Matrix:
    rows: tuple[tuple[str, ...], ...]
    determinant: bool = False  # vmatrix: |...| is a number, not a matrix

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(r) for r in self.rows)


@dataclass(frozen=True)
class Union:
    parts: tuple[str, ...]


def _digits_ok(*parts: str | None) -> bool:
    return sum(len(p) for p in parts if p) <= MAX_DIGITS


def _exp_ok(exponent: str) -> bool:
    return abs(int(exponent)) <= MAX_EXPONENT


def _signed(sign: str, value: Fraction) -> Fraction:
    return -value if sign == "-" else value


def _decimals(text: str) -> int:
    return len(text.split(".", 1)[1]) if "." in text else 0


def parse_number(s: str) -> Number | None:
    """An integer, decimal, fraction, mixed number, scientific number or percent; None otherwise."""
    s = s.strip()
    percent = s.endswith("%")
    if percent:
        s = s[:-1].strip()
    mixed = _MIXED_SPACE.match(s)
    s = s.replace(" ", "")
    if not s or not _digits_ok(s):
        return None
    if m := _INT_OR_DEC.match(s):
        decimals = _decimals(m.group(2))
        kind = "decimal" if decimals else "integer"
        return Number(_signed(m.group(1), Fraction(m.group(2))), kind, decimals, percent)
    if m := _FRAC.match(s):
        num, den = Fraction(m.group(2) or m.group(3)), Fraction(m.group(4) or m.group(5))
        return Number(_signed(m.group(1), num / den), "fraction", 0, percent) if den else None
    if m := _SLASH.match(s):
        num, den = Fraction(m.group(2)), Fraction(m.group(3))
        return Number(_signed(m.group(1), num / den), "fraction", 0, percent) if den else None
    if (m := _MIXED.match(s)) or mixed:
        m = m or mixed
        whole, num, den = int(m.group(2)), int(m.group(3)), int(m.group(4))
        if not den:
            return None
        return Number(_signed(m.group(1), whole + Fraction(num, den)), "mixed", 0, percent)
    if (m := _SCI_E.match(s)) or (m := _SCI_TIMES.match(s)):
        exponent = m.group(3) or m.group(4) if m.re is _SCI_TIMES else m.group(3)
        if not _exp_ok(exponent):
            return None
        value = Fraction(m.group(2)) * Fraction(10) ** int(exponent)
        return Number(_signed(m.group(1), value), "scientific", 0, percent)
    if m := _POW10.match(s):
        exponent = m.group(2) or m.group(3)
        if not _exp_ok(exponent):
            return None
        return Number(_signed(m.group(1), Fraction(10) ** int(exponent)), "scientific", 0, percent)
    return None


def is_plain_number(s: str) -> bool:
    """Whether a (canonical) gold is a plain integer or decimal: the GSM8K-style answers for which the
    last-number fallback is safe."""
    number = parse_number(s)
    return number is not None and number.kind in ("integer", "decimal") and not number.percent


def parse_base(s: str) -> BaseNumber | None:
    """``1011_2`` / ``2A_{16}`` -> digits and base (digits must be valid in the base)."""
    m = _BASE.match(s.replace(" ", ""))
    if not m:
        return None
    digits, base = m.group(1).upper(), int(m.group(2) or m.group(3))
    if not 2 <= base <= 36 or len(digits) > 64:
        return None
    try:
        int(digits, base)
    except ValueError:
        return None
    return BaseNumber(digits, base)


def is_text(gold_raw: str, gold: str) -> bool:
    """Whether a gold is a text answer: ``\\text{Evelyn}``, a choice ``(C)``, or plain words."""
    if _CHOICE.match(gold.replace(" ", "")):
        return True
    if _TEXT_WRAPPED.search(gold_raw) and not re.search(r"[\d=^_+*/]", gold.replace("-", "")):
        return True
    if gold.lower() in _WORD_ANSWERS:
        return True
    return bool(_WORDS.match(gold)) and (len(gold) >= 4 or " " in gold)


_WORD_ANSWERS = {"yes", "no", "true", "false", "none", "odd", "even", "neither", "all", "never", "always"}


def split_top(s: str, separator: str) -> list[str]:
    """Split at ``separator`` outside brackets/braces (``\\{``/``\\}`` count as braces)."""
    parts, depth, start, i, n = [], 0, 0, 0, len(s)
    while i < n:
        char = s[i]
        if char == "\\" and i + 1 < n and s[i + 1] in "{}":
            depth += 1 if s[i + 1] == "{" else -1
            i += 2
            continue
        if char in _OPENERS:
            depth += 1
        elif char in _CLOSERS:
            depth -= 1
        elif depth == 0 and s.startswith(separator, i):
            parts.append(s[start:i])
            i += len(separator)
            start = i
            continue
        i += 1
    parts.append(s[start:])
    return [p.strip() for p in parts]


def _wraps_whole(s: str, open_len: int, close_len: int) -> bool:
    """Whether the first bracket closes only at the very end (``(1,2)`` yes, ``(1)+(2)`` no)."""
    inner = s[open_len : len(s) - close_len]
    depth = 0
    i = 0
    while i < len(inner):
        char = inner[i]
        if char == "\\" and i + 1 < len(inner) and inner[i + 1] in "{}":
            depth += 1 if inner[i + 1] == "{" else -1
            i += 2
            if depth < 0:
                return False
            continue
        if char in _OPENERS:
            depth += 1
        elif char in _CLOSERS:
            depth -= 1
            if depth < 0:
                return False
        i += 1
    return depth == 0


def parse_structure(s: str) -> Sequence | Matrix | Union | None:
    """Matrix, union of intervals, set, tuple/interval or bare comma list; None for a single value."""
    s = s.strip()
    if (m := _MATRIX.match(s)) and _matched_brackets(m.group(1), m.group(4)):
        return _matrix(m.group(2), m.group(3))
    parts = split_top(s, r"\cup")
    if len(parts) > 1:
        return Union(tuple(parts)) if len(parts) <= MAX_ITEMS else None
    if s.startswith(r"\{") and s.endswith(r"\}") and _wraps_whole(s, 2, 2):
        items = split_top(s[2:-2], ",")
        return Sequence("{", "}", tuple(items)) if len(items) <= MAX_ITEMS else None
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]" and _wraps_whole(s, 1, 1):
        items = split_top(s[1:-1], ",")
        if len(items) >= 2 and len(items) <= MAX_ITEMS:
            return Sequence(s[0], s[-1], tuple(items))
        return None
    items = split_top(s, ",")
    if len(items) >= 2 and all(items) and len(items) <= MAX_ITEMS:
        return Sequence("", "", tuple(items))
    return None


def _matched_brackets(open_: str, close: str) -> bool:
    return (open_ + close) in ("", "()", "[]")


def _matrix(environment: str, body: str) -> Matrix | None:
    rows = [r for r in re.split(r"\\\\", body) if r.strip() and not r.strip().startswith(r"\hline")]
    cells = tuple(tuple(c.strip() for c in r.split("&")) for r in rows)
    if not cells or sum(len(r) for r in cells) > MAX_ITEMS or len(set(map(len, cells))) != 1:
        return None
    return Matrix(cells, environment.lower() == "vmatrix")


def _scaled(matrix: Matrix, sign: str, scalar: str) -> Matrix:
    if not scalar and sign != "-":
        return matrix
    factor = f"{sign}({scalar or 1})"
    return Matrix(tuple(tuple(f"{factor}\\cdot({c})" for c in row) for row in matrix.rows))


def _product(a: Matrix, b: Matrix) -> Matrix | None:
    if len(a.rows[0]) != len(b.rows) or len(a.rows) * len(b.rows[0]) > MAX_ITEMS:
        return None
    columns = list(zip(*b.rows, strict=True))
    return Matrix(
        tuple(
            tuple("+".join(f"({x})\\cdot({y})" for x, y in zip(row, col, strict=True)) for col in columns)
            for row in a.rows
        )
    )


def _sum(a: Matrix, b: Matrix) -> Matrix | None:
    if a.shape != b.shape:
        return None
    return Matrix(
        tuple(
            tuple(f"({x})+({y})" for x, y in zip(r, q, strict=True))
            for r, q in zip(a.rows, b.rows, strict=True)
        )
    )


def matrix_expression(s: str) -> Matrix | None:
    """A sum of scaled products of matrices (``2\\begin{pmatrix}3\\\\-2\\end{pmatrix}``, ``A + B``,
    ``-I``, ``AB``) as one matrix whose cells are the expressions to evaluate; None for anything else
    (at most ``MAX_MATRICES`` matrices, scalars without ``+``/``-`` inside)."""
    if s.count(r"\begin") > MAX_MATRICES:
        return None
    total: Matrix | None = None
    term: Matrix | None = None
    end = 0
    for m in _MATRIX_TERM.finditer(s):
        if (
            not _matched_brackets(m.group(1), m.group(4))
            or (matrix := _matrix(m.group(2), m.group(3))) is None
        ):
            return None
        if matrix.determinant:
            return None
        gap = s[end : m.start()]
        if term is not None and _MATRIX_JOIN.match(gap):  # a product
            term = _product(term, matrix)
        else:
            scalar = _MATRIX_SCALAR.match(gap) if len(gap) <= MAX_SCALAR_CHARS else None
            if scalar is None or (term is not None and not scalar.group(1)):
                return None
            total = term if total is None else _sum(total, term)
            term = _scaled(matrix, scalar.group(1), scalar.group(2))
        if term is None:
            return None
        end = m.end()
    if term is None or s[end:].strip():
        return None
    return term if total is None else _sum(total, term)


def split_equation(s: str) -> tuple[str, str] | None:
    """``lhs = rhs`` at the top level (exactly one ``=``, not part of ``\\leq``), else None."""
    parts = split_top(s, "=")
    if len(parts) != 2 or not parts[0] or not parts[1] or parts[0].endswith(("<", ">", "!")):
        return None
    return parts[0], parts[1]


def split_pm(s: str) -> tuple[str, str] | None:
    """``a \\pm b`` -> (``a+b``, ``a-b``) at the top level; ``\\pm b`` -> (``b``, ``-b``)."""
    parts = split_top(s, r"\pm")
    if len(parts) != 2:
        return None
    head, tail = parts
    if not tail:
        return None
    if not head:
        return tail, f"-{tail}" if not tail.startswith("-") else tail[1:]
    return f"{head}+{tail}", f"{head}-({tail})"


def is_label(lhs: str) -> bool:
    """Whether ``lhs`` only names what the answer states (``x``, ``(p,q)``, ``|AB|``, ``V_1:V_2``)."""
    return len(lhs) <= 80 and bool(_LABEL.match(lhs))


def has_variables(s: str) -> bool:
    """Whether a value has letters outside LaTeX commands (``2x+1`` yes; ``\\frac{\\pi}{2}`` no)."""
    return bool(re.search(r"[A-Za-z]", _COMMAND.sub("", s)))


@dataclass(frozen=True)
class Labelled:
    """An answer that names what it states: ``x = 5``, ``(p,q) = (3,2)``, ``a=2, b=3``, ``x=1, x=-3``."""

    names: tuple[str, ...]
    values: tuple[str, ...]

    @property
    def value(self) -> str:
        """The stated value: one value, a tuple for distinct names, a list for one name repeated."""
        if len(self.values) == 1:
            return self.values[0]
        if len(set(self.names)) == 1:
            return ", ".join(self.values)
        return "(" + ", ".join(self.values) + ")"


def parse_labelled(s: str) -> Labelled | None:
    """``name = value`` answers (see ``Labelled``); a chain ``x = \\frac{6}{3} = 2`` states its last part."""
    items = split_top(s, ",")
    if len(items) > 1 and len(items) <= MAX_ITEMS:
        pairs = [split_top(item, "=") for item in items]
        if all(len(p) == 2 and p[1] and is_label(p[0]) for p in pairs):
            return Labelled(tuple(p[0].replace(" ", "") for p in pairs), tuple(p[1] for p in pairs))
    parts = split_top(s, "=")
    if (
        len(parts) < 2
        or not parts[-1]
        or not is_label(parts[0])
        or any(p.endswith(("<", ">", "!")) for p in parts)
    ):
        return None
    name, value = parts[0].replace(" ", ""), parts[-1]
    if name.startswith("(") and value.startswith("(") and value.endswith(")"):
        names, values = split_top(name[1:-1], ","), split_top(value[1:-1], ",")
        if len(names) == len(values) > 1:
            return Labelled(tuple(names), tuple(values))
    return Labelled((name,), (value,))


def split_alternatives(s: str, separators: tuple[str, ...] = _ALTERNATIVES) -> list[str]:
    """``1 and 2 and 3``, ``(11,7) or (7,11)``, ``-12;-11;-10``: the parts, split outside brackets."""
    parts = [s]
    for separator in separators:
        if separator in s:
            parts = [piece for part in parts for piece in split_top(part, separator)]
    return [p for p in parts if p] if len(parts) <= MAX_ITEMS else [s]


def _negate(v: str) -> str:
    """``-v`` as a string: ``2`` -> ``-2``, ``-2`` -> ``2``, ``1+x`` -> ``-(1+x)``."""
    if v.startswith("-") and not re.search(r"[+-]", v[1:]):
        return v[1:]
    return "-" + v if not re.search(r"[+-]", v) else f"-({v})"


def _ray(name_left: bool, op: str, value: str, absolute: bool) -> str:
    """The set of ``x op value`` (or ``value op x`` when the name is on the right), ``|x|`` allowed."""
    less = op in _LESS
    if not name_left:
        less = not less
    closed = op in (r"\leq", r"\geq")
    lo, hi = ("[", "]") if closed else ("(", ")")
    if not absolute:
        return rf"(-\infty,{value}{hi}" if less else rf"{lo}{value},\infty)"
    neg = _negate(value)
    if less:
        return f"{lo}{neg},{value}{hi}"
    return rf"(-\infty,{neg}{hi}\cup{lo}{value},\infty)"


def _relation_set(s: str) -> str | None:
    """One relation or chain as an interval string: ``-793<a<10`` -> ``(-793,10)``, ``|x|>2`` -> a union."""
    if MEMBERSHIP.search(s):
        name, rest = MEMBERSHIP.split(s, maxsplit=1)
        return rest.strip() if is_label(name) and rest.strip() else None
    tokens = _RELATION.split(s.replace(" ", ""))
    if len(tokens) == 3:
        left, op, right = tokens
        for name, value, name_left in ((left, right, True), (right, left, False)):
            absolute = len(name) <= 80 and _ABS_NAME.match(name)
            if (absolute or is_label(name)) and value and not is_label(value):
                if op == r"\neq":
                    return None if absolute else rf"(-\infty,{value})\cup({value},\infty)"
                return _ray(name_left, op, value, bool(absolute))
        return _linear_relation(left, op, right) if left and right else None
    if len(tokens) != 5:
        return None
    low, op1, middle, op2, high = tokens
    if op1 in _GREATER and op2 in _GREATER:  # 10 > a > -793 is -793 < a < 10
        low, op1, op2, high = high, _FLIP[op2], _FLIP[op1], low
    if op1 not in _LESS or op2 not in _LESS or not low or not high:
        return None
    lo = "[" if op1 == r"\leq" else "("
    hi = "]" if op2 == r"\leq" else ")"
    if len(middle) <= 80 and _ABS_NAME.match(middle):  # low < |x| < high: (-high, -low) and (low, high)
        outer = f"{_MIRROR[hi]}{_negate(high)},"
        if low == "0":
            return f"{outer}{high}{hi}" if lo == "[" else f"{outer}0)\\cup(0,{high}{hi}"
        return f"{outer}{_negate(low)}{_MIRROR[lo]}\\cup{lo}{low},{high}{hi}"
    return f"{lo}{low},{high}{hi}" if is_label(middle) else None


def _fraction_latex(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return rf"{sign}\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


def _linear_relation(left: str, op: str, right: str) -> str | None:
    """``-x > -1``, ``-2x \\geq -8``, ``2x+1 < 5``: a linear relation in one variable as the ray it
    describes (dividing by a negative coefficient turns the relation round)."""
    form = linear_form(f"({left})-({right})")
    if form is None:
        return None
    _, slope, offset = form
    if slope < 0:
        op = _REVERSE[op]
    value = _fraction_latex(-offset / slope)
    if op == r"\neq":
        return rf"(-\infty,{value})\cup({value},\infty)"
    return _ray(True, op, value, False)


def _subject(relation: str) -> str | None:
    """The name a single relation bounds (``x`` in ``x>1`` and in ``3\\geq x``)."""
    tokens = _RELATION.split(relation.replace(" ", ""))
    return next((t for t in tokens[::2] if is_label(t)), None) if len(tokens) == 3 else None


def _intersect(a: str | None, b: str | None) -> str | None:
    """``x>1 and x\\leq 3``: a lower ray and an upper ray meet in one interval; anything else is None."""
    rays = sorted((a or "", b or ""), key=lambda r: not r.endswith(r",\infty)"))
    lower, upper = rays
    if not (lower.endswith(r",\infty)") and upper.startswith(r"(-\infty,")) or r"\cup" in lower + upper:
        return None
    return lower[: -len(r",\infty)")] + "," + upper[len(r"(-\infty,") :]


def relation_to_set(s: str) -> str | None:
    """An answer given as inequalities or membership (``0<f(x)<1``, ``x<-1 or x>3``, ``x>1 and x<3``,
    ``x \\in [2,5)``, ``1\\leq|z|\\leq\\frac32``) as the interval or union of intervals it describes; None
    otherwise."""
    membership = MEMBERSHIP.search(s)
    if not (membership or _RELATION.search(s)) or len(s) > 400:
        return None
    if membership:
        parts = [s]
    else:
        parts = [p for alt in split_alternatives(s, _UNION_WORDS) for p in split_top(alt, ",")]
    sets = []
    for part in parts:
        pieces = split_alternatives(part, _BOTH_WORDS)
        if not 1 <= len(pieces) <= 2:
            return None
        if len(pieces) == 2 and len({_subject(piece) for piece in pieces}) > 1:
            return None  # x<1 and y>2: two variables, not one set
        sets.append(_relation_set(part) if len(pieces) == 1 else _intersect(*map(_relation_set, pieces)))
    if not sets or any(x is None for x in sets):
        return None
    return r"\cup".join(x for x in sets if x)
