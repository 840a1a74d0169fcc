"""Is a predicted answer equal to the gold? Type-aware, fast paths first, symbolic last.

1. canonical strings equal -> ``exact``;
2. the answer forms of competition data are read as what they state: several answers joined by words
   (``1 and 2 and 3``, ``(11,7) or (7,11)``, ``-12;-11;-10``) are a list, a part naming several unknowns
   a tuple (``p=5, q=2; p=7, q=2``); inequalities and membership (``0<f(x)<1``, ``x<-1 or x>3``,
   ``1\\leq|z|\\leq\\frac32``, ``x \\in [2,5)``, ``x \\neq 3``, a linear relation such as ``-x > -1`` or
   ``-2x \\geq -8`` solved for its one variable) the interval or union they describe; a chain of equalities
   (``x = 5+5+1 = 11``) its last side; labelled answers (``(p,q)=(3,2)``, ``AB=4,CD=5``, ``|AB|=1``, ``a=2, b=3``, ``x_1=1, x_2=2``)
   their values, matched by name when both sides name them; a computation ``48 + 24 = 72`` its result;
   ``\\text{The minimum value is } \\frac12`` the value after the sentence;
3. the gold's type decides: text (case/markup-insensitive; a choice letter also matches
   ``\\textbf{(C)}\\ 12``), equation, structure (matrix in any of ``pmatrix``/``bmatrix``/``matrix``/
   ``\\left[\\begin{array}...\\end{array}\\right]`` cell by cell, also a scaled sum or product of matrices
   that evaluates to it, ``vmatrix`` being a determinant; union of intervals, tuple/interval with its
   brackets, set or list of solutions unordered), base-n number (the subscript must match; ``lenient``
   accepts it dropped), number (exact ``Fraction`` arithmetic);
4. anything else is evaluated in floating point in process (``numeric.py``) where that clearly settles it,
   and goes to SymPy in a child process under a hard deadline (``symbolic.py``) where it does not.

Profiles: ``strict`` accepts only mathematically equal answers in the requested form's type;
``lenient`` (default) also accepts what MATH graders conventionally accept: a dropped ``\\%`` or base
subscript, ``\\pm 2`` for ``2, -2``, ``y = 2x + 3`` answered as ``2x + 3``, a decimal with two more
places, or an exact fraction or constant (``\\frac{\\sqrt3}{2}`` for 0.87), rounding to a decimal gold's
precision (of two or more significant digits),
a float printout (``MIN_SIGNIFICANT`` correct significant digits) for a fraction gold; a rounded decimal
such as 13.29 for 3840/289 is a different number in both profiles, except as an interval's endpoint
(``(0.6, 2.6667]`` for ``(\\frac35, \\frac83]``, ``MIN_ENDPOINT_SIGNIFICANT`` digits, ``lenient`` only; a
pair in parentheses may be a point and is not rounded). A decimal comma (``1,22``, ``0,5``) is read for a
number gold where it cannot separate thousands (``1,222`` is 1222). Neither profile makes 50 equal 0.5 or
1/2004! equal 1/2006!. Per answer form: both profiles drop a label over a constant (``f(x)=1`` only names
the answer; over an expression, ``y=2x+1``, only ``lenient`` does), read ``x \\in S`` as ``S``, compare two
inequalities as sets, take percent words as ``%`` and a choice with its value as the choice; only
``lenient`` accepts an interval for an inequality or the reverse (the same set in another form) and a
sentence opening with a yes/no gold's word ("No, such a number does not exist" for ``No``).
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache

from mathsft.grading.normalize import canonical, compact, decimal_comma, normalize_chars, text_key
from mathsft.grading.numeric import constant_value, float_equal
from mathsft.grading.timeout import clear_worker_cache, run_symbolic
from mathsft.grading.values import (
    MEMBERSHIP,
    Matrix,
    Number,
    Sequence,
    Union,
    has_variables,
    is_text,
    matrix_expression,
    parse_base,
    parse_labelled,
    parse_number,
    parse_structure,
    relation_to_set,
    split_alternatives,
    split_equation,
    split_pm,
    split_top,
)

PROFILES = ("strict", "lenient")
MIN_SIGNIFICANT = 10  # a decimal for a non-decimal gold: a float printout, not a rounded answer
MIN_ENDPOINT_SIGNIFICANT = 4  # an interval endpoint as a decimal: 2.6667 for 8/3, not 2.7
MAX_DEPTH = 4
_LEAD_IN = re.compile(r"^\s*\\text\s*\{\s*[A-Za-z][A-Za-z ,.:']*[A-Za-z:]\s*\}\s*(\S.*)$", re.DOTALL)
_CHOICE_WITH_VALUE = re.compile(r"^\s*\(([A-Ea-e])\)[\s\\:.,]")


_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")
_FUNCTION_NAMES = {"sqrt", "frac", "sin", "cos", "tan", "cot", "sec", "csc", "log", "exp", "arcsin", "arccos"}
_FUNCTION_NAMES |= {"arctan", "sinh", "cosh", "tanh", "max", "min", "gcd", "lcm", "mod", "det", "infty"}


def check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise ValueError(f"unknown grader profile {profile!r}; choose one of {', '.join(PROFILES)}")


def _round(value: Fraction, decimals: int) -> Fraction:
    """Round half away from zero to ``decimals`` places, exactly."""
    scale = 10**decimals
    magnitude = (abs(value) * scale + Fraction(1, 2)).__floor__()
    return Fraction(magnitude if value >= 0 else -magnitude, scale)


def numbers_equal(pred: Number, gold: Number, lenient: bool) -> tuple[bool, str]:
    """Exact comparison with the percent and precision rules in the module docstring."""
    p = pred.value / 100 if pred.percent else pred.value
    g = gold.value / 100 if gold.percent else gold.value
    if p == g:
        return True, "numeric"
    if pred.percent != gold.percent:
        if lenient and pred.value == gold.value:
            return True, "numeric:dropped-percent"
        return False, "numeric"
    if not lenient:
        return False, "numeric"
    # Rounding to the gold's precision: only for a pred clearly finer than the gold (two more decimals,
    # or an exact fraction against a gold of two or more significant digits), so 0.54 is not 0.5 and
    # 1/4 is not 0.3.
    finer = pred.decimals >= gold.decimals + 2 if pred.kind == "decimal" else gold.significant >= 2
    if gold.kind == "decimal" and finer and _round(p, gold.decimals) == g:
        return True, "numeric:gold-precision"
    approximates = pred.kind == "decimal" and gold.kind != "decimal" and pred.significant >= MIN_SIGNIFICANT
    if approximates and _round(g, pred.decimals) == p:
        return True, "numeric:decimal-approximation"
    return False, "numeric"


@lru_cache(maxsize=1 << 16)
def _symbolic(pred: str, gold: str) -> tuple[bool, str]:
    """Floating point first (``numeric.float_equal``, in process, microseconds); the symbolic worker
    (SymPy, under a deadline) only for what floats cannot settle."""
    fast = float_equal(pred, gold)
    if fast is not None:
        return fast
    try:
        verdict, reason = run_symbolic(compact(pred), compact(gold))
    except Exception as err:  # inline in a worker: a SymPy failure is no verdict, not a crash
        verdict, reason = None, f"symbolic-error: {type(err).__name__}"
    return bool(verdict), reason


def clear_caches() -> None:
    """Forget every memoized verdict and parse, here and in the symbolic worker: a benchmark that grades
    each input cold measures what a stream of new responses costs."""
    from mathsft.grading.parse import to_sympy

    _symbolic.cache_clear()
    to_sympy.cache_clear()
    clear_worker_cache()


def _unordered(preds: tuple[str, ...] | list[str], golds: tuple[str, ...], lenient: bool, depth: int) -> bool:
    if len(preds) != len(golds):
        return False
    unused = list(preds)
    for gold in golds:
        match = next((p for p in unused if _compare(p, gold, lenient, depth + 1)[0]), None)
        if match is None:
            return False
        unused.remove(match)
    return True


def _compare_structure(
    pred: str, gold: Sequence | Matrix | Union, lenient: bool, depth: int
) -> tuple[bool, str]:
    structure = parse_structure(pred)
    if isinstance(gold, Matrix):
        if structure is None:
            structure = matrix_expression(pred)  # 2\begin{pmatrix}..\end{pmatrix}, A + B, AB
        if (
            not isinstance(structure, Matrix)
            or structure.shape != gold.shape
            or structure.determinant != gold.determinant
        ):
            return False, "matrix"
        cells = zip(sum(structure.rows, ()), sum(gold.rows, ()), strict=True)
        return all(_compare(p, g, lenient, depth + 1)[0] for p, g in cells), "matrix"
    if isinstance(gold, Union):
        if not isinstance(structure, Union):
            return False, "interval-union"
        return _unordered(structure.parts, gold.parts, lenient, depth), "interval-union"
    if gold.ordered:
        kind = "interval" if gold.open != gold.close.translate(str.maketrans(")]", "([")) else "tuple"
        if not isinstance(structure, Sequence) or (structure.open, structure.close) != (
            gold.open,
            gold.close,
        ):
            return False, kind
        if len(structure.items) != len(gold.items):
            return False, kind
        pairs = zip(structure.items, gold.items, strict=True)
        if lenient and _is_interval(gold):
            return all(_endpoint_equal(p, g, depth) for p, g in pairs), kind
        return all(_compare(p, g, lenient, depth + 1)[0] for p, g in pairs), kind
    if structure is None:
        items: tuple[str, ...] = (pred,)
    elif isinstance(structure, Sequence) and not structure.ordered:
        items = structure.items
    else:
        return False, "set"
    return _unordered(items, gold.items, lenient, depth), "set"


def _is_interval(gold: Sequence) -> bool:
    """Brackets that only an interval has (``(a, b]``, ``[a, b]``) or an infinite end; ``(3, \\frac{\\pi}{2})``
    may be a point, whose coordinates are not rounded."""
    return len(gold.items) == 2 and (gold.open + gold.close != "()" or any("infty" in i for i in gold.items))


def _endpoint_equal(pred: str, gold: str, depth: int) -> bool:
    """An interval's endpoints: equal, or (lenient) a decimal of ``MIN_ENDPOINT_SIGNIFICANT`` or more
    significant digits that is the gold endpoint rounded to its places (``2.6667`` for ``\\frac{8}{3}``,
    ``1.4142`` for ``\\sqrt{2}``): interval answers are often given to four decimals."""
    if _compare(pred, gold, True, depth + 1)[0]:
        return True
    number = parse_number(pred)
    if number is None or number.kind != "decimal" or number.significant < MIN_ENDPOINT_SIGNIFICANT:
        return False
    exact = parse_number(gold)
    if exact is not None:
        return _round(exact.value, number.decimals) == number.value
    value = constant_value(gold)
    if value is None or abs(value.imag) > 0:
        return False
    return _round(Fraction(value.real), number.decimals) == number.value


def _expand_pm(s: str) -> str:
    """``\\pm 2`` -> ``2, -2``, item by item (``0, \\pm 1`` -> ``0, 1, -1``)."""
    return ", ".join(", ".join(pm) if (pm := split_pm(item)) else item for item in split_top(s, ","))


def _as_list(s: str) -> str:
    """Several answers joined by words (``1 and 2 and 3``, ``(11,7) or (7,11)``, ``-12;-11;-10``): a list;
    a part naming several unknowns (``p=5, q=2; p=7, q=2``, ``(x,y)=(1,1) or (x,y)=(0,0)``) is the tuple
    of its values as written."""
    parts = split_alternatives(s)
    if len(parts) < 2:
        return s
    return ", ".join(_as_tuple(part) for part in parts)


def _as_tuple(part: str) -> str:
    label = parse_labelled(part) if "=" in part else None
    if label is None or len(set(label.names)) != len(label.names) or len(label.names) < 2:
        return part
    return "(" + ", ".join(label.values) + ")"


def _bare_list_as_tuple(s: str) -> str:
    structure = parse_structure(s)
    return f"({s})" if isinstance(structure, Sequence) and not structure.open else s


def _labelled(pred: str, gold: str, lenient: bool, depth: int) -> tuple[str, str, tuple[bool, str] | None]:
    """Labels dropped (``(p,q)=(3,2)``, ``|AB|=1``, ``a=2, b=3``): the two values left to compare, and a
    verdict when the labels or the equations already decide.

    A gold label over a constant (``f(x)=1``) only names the answer, so both profiles drop it; over an
    expression (``y=2x+3``) the gold is an equation, and only ``lenient`` accepts its right-hand side.
    """
    gold_label, pred_label = parse_labelled(gold), parse_labelled(pred)
    if gold_label and pred_label and sorted(gold_label.names) == sorted(pred_label.names):
        by_name = dict(zip(pred_label.names, pred_label.values, strict=True))
        if len(by_name) == len(pred_label.names):  # distinct names: match them up by name
            values = tuple(by_name[name] for name in gold_label.names)
            pairs = zip(values, gold_label.values, strict=True)
            return pred, gold, (all(_compare(p, g, lenient, depth + 1)[0] for p, g in pairs), "labelled")
        return pred, gold, (_compare(pred_label.value, gold_label.value, lenient, depth + 1)[0], "labelled")
    gold_eq, pred_eq = split_equation(gold), split_equation(pred)
    if gold_eq and pred_eq and not (gold_label and pred_label):
        return pred, gold, _symbolic(pred, gold)
    if gold_label:
        if not lenient and has_variables(gold_label.value):
            return pred, gold, (False, "equation")
        gold = gold_label.value
        if len(gold_label.names) > 1 and not pred_label:
            pred = _bare_list_as_tuple(pred)
    elif gold_eq:
        return pred, gold, (False, "equation")
    if pred_label:
        pred = pred_label.value
        gold_structure = parse_structure(gold)
        if isinstance(gold_structure, Sequence) and not gold_structure.ordered:  # x_1=1, x_2=2 for "1, 2"
            pred = ", ".join(pred_label.values)
    elif pred_eq and not has_variables(pred_eq[0]):  # a computation ending in its result: 48 + 24 = 72
        pred = split_top(pred, "=")[-1]
    elif pred_eq:  # x + y = 5 states an equation, not the value the gold is
        return pred, gold, (False, "equation")
    return pred, gold, None


def _compare(pred: str, gold: str, lenient: bool, depth: int = 0) -> tuple[bool, str]:
    """Compare two canonical strings (the core of ``compare``; recursive for structures)."""
    if compact(pred) == compact(gold):
        return True, "exact"
    if depth > MAX_DEPTH:
        return False, "too-deep"
    gold_set, pred_set = relation_to_set(gold), relation_to_set(pred)
    if gold_set or pred_set:  # inequalities and x \in S: the set they describe
        membership = bool(MEMBERSHIP.search(gold + pred))
        if (gold_set and pred_set) or lenient or membership:
            return _compare(pred_set or pred, gold_set or gold, lenient, depth + 1)
        return False, "relation"
    pred, gold = _as_list(pred), _as_list(gold)
    sides = split_top(pred, "=") if pred.count("=") > 1 and "=" not in gold else []
    if len(sides) > 2 and all(sides) and len(split_top(pred, ",")) == 1:  # x = 5+5+1 = 11: its last side
        pred = sides[-1]
    if "=" in pred or "=" in gold:
        pred, gold, verdict = _labelled(pred, gold, lenient, depth)
        if verdict is not None:
            return verdict
        if compact(pred) == compact(gold):
            return True, "exact"
    if lenient and r"\pm" in gold + pred:
        gold, pred = _expand_pm(gold), _expand_pm(pred)
    gold_structure = parse_structure(gold) or (matrix_expression(gold) if r"\begin" in gold else None)
    if gold_structure is not None:
        return _compare_structure(pred, gold_structure, lenient, depth)
    pred_structure = parse_structure(pred)
    if pred_structure is not None:
        # A list for one value is right only when every item is that value: 15\frac{39}{40}, \frac{639}{40}
        items = (
            pred_structure.items if isinstance(pred_structure, Sequence) and not pred_structure.open else ()
        )
        if items and all(_compare(item, gold, lenient, depth + 1)[0] for item in items):
            return True, "one-answer-written-twice"
        return False, "structure"
    gold_base = parse_base(gold)
    if gold_base is not None:
        pred_base = parse_base(pred)
        if pred_base is not None:
            return pred_base == gold_base, "base"
        return lenient and compact(pred).upper() == gold_base.digits, "base:dropped-subscript"
    if parse_base(pred) is not None:  # 40_9 for a decimal gold: another form (SymPy reads a symbol)
        return False, "base"
    gold_number, pred_number = parse_number(gold), parse_number(pred)
    if gold_number is not None and pred_number is not None:
        return numbers_equal(pred_number, gold_number, lenient)
    if "%" in pred + gold:  # one side a percent, the other not a plain number: compare without it
        if not lenient:
            return False, "numeric"
        pred, gold = pred.replace("%", ""), gold.replace("%", "")
    if (gold_number is not None and _is_prose(pred)) or (pred_number is not None and _is_prose(gold)):
        return False, "prose"  # "2 pounds of peaches, 1 pound of plums" is no number: SymPy would agree
    if lenient and gold_number is not None and _rounds_to(pred, gold_number):
        return True, "numeric:gold-precision"
    return _symbolic(pred, gold)


def _rounds_to(pred: str, gold: Number) -> bool:
    """An exact constant (``\\frac{\\sqrt{3}}{2}``, ``\\pi``) for a decimal gold of two or more significant
    digits that is its rounding (0.87, 3.14), as an exact fraction is."""
    if gold.kind != "decimal" or gold.percent or gold.significant < 2:
        return False
    value = constant_value(pred)
    return value is not None and value.imag == 0 and _round(Fraction(value.real), gold.decimals) == gold.value


def _is_prose(text: str) -> bool:
    """Two or more words (three letters or more, not a LaTeX command or a function name): text, not math."""
    words = [w for w in _WORD.findall(text) if w.lower() not in _FUNCTION_NAMES]
    return len(words) >= 2


def compare_text(pred: str, gold: str, lenient: bool) -> tuple[bool, str]:
    """Text answers, case- and markup-insensitive. A choice letter also matches ``\\textbf{(C)}\\ 12`` (the
    choice with its value); ``lenient`` also accepts a yes/no gold answered by a sentence that opens
    with that word (``No, such a number does not exist``)."""
    p, g = text_key(pred), text_key(gold)
    if p == g:
        return True, "text"
    choice = _CHOICE_WITH_VALUE.match(
        normalize_chars(pred).replace(r"\textbf", "").replace("{", "").replace("}", "")
    )
    if choice and len(g) == 1 and choice.group(1).lower() == g:
        return True, "text:choice"
    if lenient and g in ("yes", "no") and p.split(" ", 1)[0] == g:
        return True, "text:yes-no-sentence"
    return False, "text"


def compare(pred: str, gold: str, profile: str = "lenient") -> tuple[bool, str]:
    """``(equal, reason)`` for a predicted and a gold answer; ``reason`` names the deciding path."""
    check_profile(profile)
    p, g = canonical(pred), canonical(gold)
    if not p:
        return False, "empty"
    if compact(p) == compact(g):
        return True, "exact"
    if is_text(gold, g):
        return compare_text(pred, gold, profile == "lenient")
    lead_in = _LEAD_IN.match(pred)
    if lead_in:  # \text{The minimum value is } \frac{1}{2}: the sentence states the value after it
        p = canonical(lead_in.group(1))
    if (
        "," in p and parse_number(g) is not None
    ):  # 1,22 for a number: a decimal comma where it cannot be thousands
        p = decimal_comma(p)
    return _compare(p, g, profile == "lenient")


def is_equivalent(pred: str, gold: str, profile: str = "lenient") -> bool:
    """Whether ``pred`` and ``gold`` are the same answer under ``profile`` (``strict`` or ``lenient``)."""
    return compare(pred, gold, profile)[0]
