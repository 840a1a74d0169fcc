"""String canonicalization of answers: pure, linear-time rewrites that never change the mathematics.

Both the extracted answer and the gold go through ``canonical`` before any comparison, so that
``\\dfrac{1}{2}``, ``$\\frac12$.`` and ``\\left(\\frac{1}{2}\\right)`` meet as the same string whenever they
can: most answers are then settled by a string or number comparison, never reaching SymPy. Short arguments get
their braces (``\\frac13``, ``\\sqrt3``, ``x^{2}`` -> ``\\frac{1}{3}``, ``\\sqrt{3}``, ``x^2``), percent words
become ``%`` (``28 percent``, ``28 pct``, ``28 percentage points``), ``1 000``, ``1,000``, ``10{,}000`` and
MATH's ``11,\\! 111`` are thousands (``0,125`` is not: ``decimal_comma`` reads it, where the gold is a
number), ``+\\infty`` is ``\\infty``, relations have one spelling each (``>=``, ``\\ge``, ``\\geqslant`` ->
``\\geq``; ``!=``, ``\\ne`` -> ``\\neq``; ``\\lt`` -> ``<``), ``\\textbf{...}`` is text like ``\\text{...}``.
"""

from __future__ import annotations

import re
import unicodedata

# Look-alike characters models and datasets use; mapped before NFKC (which would turn "x²" into "x2").
_CHAR_MAP = {
    "\u2212": "-",  # minus sign
    "\u2010": "-",
    "\u2011": "-",
    "\u2012": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\ufe63": "-",
    "\uff0d": "-",
    "\u00b2": "^2",
    "\u00b3": "^3",
    "\u00b9": "^1",
    "\u00d7": r"\times ",
    "\u22c5": r"\cdot ",
    "\u00b7": r"\cdot ",
    "\u00f7": r"\div ",
    "\u03c0": r"\pi ",
    "\u221e": r"\infty ",
    "\u221a": r"\sqrt",
    "\u2264": r"\le ",
    "\u2265": r"\ge ",
    "\u2260": r"\ne ",
    "\u00b1": r"\pm ",
    "\u222a": r"\cup ",
    "\u2229": r"\cap ",
    "\u00b0": r"^\circ",
    "\u00a0": " ",
    "\u2009": " ",
    "\u202f": " ",
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
}
_CHAR_TABLE = str.maketrans(_CHAR_MAP)

_SPACING = re.compile(r"(?<!\\)\\(?:[,;:! ]|quad\b|qquad\b|displaystyle\b|textstyle\b)|~")
_MATH_DELIMS = re.compile(r"(?<!\\)\\[()\[\]]")
_SIZING = re.compile(
    r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|Biggl|Biggr|big|Big|bigg|Bigg)(?![a-zA-Z])"
)
_FRAC_VARIANTS = re.compile(r"\\[dtc]frac(?![a-zA-Z])")
_BINOM_VARIANTS = re.compile(r"\\[dt]binom(?![a-zA-Z])")
_DEGREES = re.compile(
    r"\^\s*\{?\s*\\circ\s*\}?|\\circ(?![a-zA-Z])|\\degree(?![a-zA-Z])|\^\s*\{\s*\\text\{o\}\s*\}"
)
_STYLE_WRAPPERS = re.compile(r"\\(?:mathbf|mathit|mathsf|mathnormal|boldsymbol|bm)(?![a-zA-Z])")
_TEXT_CMD = re.compile(
    r"\\(?:text|mbox|textnormal|hbox|operatorname|mathrm|textbf|textit|textrm|textsf|emph)\s*\{([^{}]*)\}"
)
_UNIT_SLASH = re.compile(r"(?<=[A-Za-z])\s*/\s*(?=[A-Za-z])")  # km / h (from \mathrm{km}/\mathrm{h})
_DOLLARS = re.compile(r"\\\$|\$")
# 0,125 is no thousands: a leading zero makes it a decimal comma
_THOUSANDS = re.compile(r"^[+-]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?$|^[+-]?[1-9]\d{0,2}(?: \d{3})+(?:\.\d+)?$")
_SPACE_THOUSANDS = re.compile(r"(?<=\d)(?:\{,\}|,\\!\s*)(?=\d{3})")  # 1{,}000 and MATH's 1,\!000, 11,\! 111
# 1,22 / 0,5 / 12,5: a comma that cannot separate thousands (not three digits after it, or a leading 0)
_DECIMAL_COMMA = re.compile(r"[+-]?(?:\d+,\d{1,2}|0,\d+|\d+,\d{4,})")
_TRAILING_PUNCT = re.compile(r"[\s.;:,]+$")
_PERCENT = re.compile(r"\\?%|(?<=[\d}.])\s*(?:per\s?cent(?:age)?(?:\s+points?)?|pct)\b\.?", re.IGNORECASE)
# One-token arguments of \frac / \binom / \sqrt get braces (\frac13, \frac{\sqrt3}2, \frac ab); a braced
# single character after ^ or _ loses them, so both spellings meet as one string.
_ARG_COMMANDS = re.compile(r"\\(frac|binom|sqrt)(?![a-zA-Z])")
_TOKEN = re.compile(r"\s*(\d|[A-Za-z]|\\[a-zA-Z]+)")
_SCRIPT_BRACE = re.compile(r"([\^_])\{(\w)\}")
_PLUS_INFINITY = re.compile(r"(^|[,(\[{]|\\cup)\s*\+\s*\\infty")
_RELATIONS = re.compile(
    r"\\(?:le|leqslant|leq)(?![a-zA-Z])|<=|\\(?:ge|geqslant|geq)(?![a-zA-Z])|>=|\\(?:ne|neq)(?![a-zA-Z])|!="
    r"|\\[lg]t(?![a-zA-Z])"
)
_RELATION_NAMES = {"<": "\\leq ", ">": "\\geq ", "!": "\\neq ", "n": "\\neq ", "l": "\\leq ", "g": "\\geq "}
_MULTISPACE = re.compile(r"\s+")
_PLAIN_NUMBER = re.compile(r"-?\d{1,30}(?:\.\d{1,30})?")
# Unit words dropped after a number ("5 cm", "18 dollars", "15\mbox{ cm}^2"); variables are single letters,
# so a unit list is only consulted for whole words.
_UNITS = (
    "units?|square units?|sq units?|cubic units?|cm|mm|km|meters?|metres?|centimeters?|millimeters?|"
    "kilometers?|inch(?:es)?|feet|foot|ft|yards?|yd|miles?|mph|hours?|hrs?|minutes?|mins?|seconds?|"
    "secs?|days?|weeks?|months?|years?|dollars?|cents?|degrees?|deg|radians?|pounds?|lbs?|ounces?|oz|"
    "grams?|kg|kilograms?|liters?|litres?|ml|gallons?|cups?|people|persons?|students?|apples?|"
    "marbles?|pages?|points?|ways?|times|boxes|books?|cookies?|eggs?|pieces?|sq\\.? ?(?:ft|m|in)|"
    "km/h|km/hr|m/s|mi/h|m/min|cm/s|yuan|rubles?|rub|euros?|kopecks?"
)
# a short word in \text{} / \mathrm{} closing an answer after a number is its unit (2,5 \text{ m}, 9.8 \mathrm{N});
# not "or"/"and", nor the constants i and e (3+4\mathrm{i})
_TEXT_UNIT = re.compile(
    r"(?<=[\d}])\s*\\(?:text|mathrm|mbox)\s*\{\s*(?!(?:or|and|i|e)\b)[A-Za-z]{1,3}\s*\}(?:\s*\^\s*\{?[23]\}?)?\s*$"
)
_UNIT_TAIL = re.compile(rf"(?<=[\d}}).])\s*(?:(?:{_UNITS})(?:\s*\^\{{?[23]\}}?)?\s*)+$", re.IGNORECASE)


def normalize_chars(text: str) -> str:
    """Unicode look-alikes (minus signs, ×, π, ², non-breaking spaces) to their ASCII/LaTeX forms."""
    return unicodedata.normalize("NFKC", text.translate(_CHAR_TABLE))


def unwrap_text(text: str) -> str:
    """``\\text{...}`` / ``\\mbox{...}`` to their content, dropping a unit when it follows a number."""
    for _ in range(4):  # nested wrappers are rare; a bounded number of passes keeps this linear
        new = _TEXT_CMD.sub(lambda m: " " + m.group(1) + " ", text)
        if new == text:
            break
        text = new
    return text


def strip_units(text: str) -> str:
    """``15 cm^2`` -> ``15``; only whole unit words after a number, so ``5x`` is untouched."""
    stripped = _UNIT_TAIL.sub("", text).strip()
    return stripped or text


def _skip_group(s: str, i: int) -> int:
    """The index after the balanced ``{...}`` starting at ``s[i]`` (or ``len(s)`` if it never closes)."""
    depth = 0
    for j in range(i, len(s)):
        depth += {"{": 1, "}": -1}.get(s[j], 0)
        if depth == 0:
            return j + 1
    return len(s)


def brace_arguments(s: str, depth: int = 0) -> str:
    """``\\frac13`` -> ``\\frac{1}{3}``, ``\\frac{\\sqrt3}2`` -> ``\\frac{\\sqrt{3}}{2}``,
    ``x^{2}`` -> ``x^2`` (nested groups too, a bounded number of levels deep)."""
    if depth < 8 and ("\\frac" in s or "\\sqrt" in s or "\\binom" in s):
        out, i = [], 0
        for match in _ARG_COMMANDS.finditer(s):
            if match.start() < i:
                continue
            out.append(s[i : match.end()])
            i = match.end()
            wanted = 1 if match.group(1) == "sqrt" else 2
            while wanted and i < len(s):
                if s[i] == " ":
                    i += 1
                elif s[i] == "[" and match.group(1) == "sqrt":  # \sqrt[3]{x}: the index, then the radicand
                    end = s.find("]", i)
                    end = len(s) if end < 0 else end + 1
                    out.append(s[i:end])
                    i = end
                elif s[i] == "{":
                    end = _skip_group(s, i)
                    out.append(brace_arguments(s[i:end], depth + 1))
                    i, wanted = end, wanted - 1
                elif token := _TOKEN.match(s, i):
                    out.append("{" + token.group(1) + "}")
                    i, wanted = token.end(), wanted - 1
                else:
                    break
        out.append(s[i:])
        s = "".join(out)
    return _SCRIPT_BRACE.sub(r"\1\2", s)


def _relation(match: re.Match) -> str:
    """``\\le``, ``<=`` -> ``\\leq``; ``\\ge``, ``>=`` -> ``\\geq``; ``\\ne``, ``!=`` -> ``\\neq``; ``\\lt`` -> ``<``."""
    text = match.group(0)
    if text in (r"\lt", r"\gt"):
        return "<" if text == r"\lt" else ">"
    return _RELATION_NAMES[text[0] if text[0] != "\\" else text[1]]


def canonical(answer: str) -> str:
    """The canonical LaTeX form used for every comparison (see module docstring)."""
    if _PLAIN_NUMBER.fullmatch(answer):  # most GSM8K answers and golds: nothing to rewrite
        return answer
    s = normalize_chars(answer).strip()
    s = _SPACE_THOUSANDS.sub(",", s)
    s = s.replace("{,}", ",")
    s = _DOLLARS.sub("", s)
    s = _MATH_DELIMS.sub("", s)
    s = _SIZING.sub("", s)
    s = _SPACING.sub(" ", s)
    s = _FRAC_VARIANTS.sub(r"\\frac", s)
    s = _BINOM_VARIANTS.sub(r"\\binom", s)
    s = _DEGREES.sub("", s)
    s = _STYLE_WRAPPERS.sub("", s)
    s = unwrap_text(_TEXT_UNIT.sub("", s))
    if "/" in s:
        s = _UNIT_SLASH.sub("/", s)
    s = _PERCENT.sub("%", s)
    s = _RELATIONS.sub(_relation, s)
    s = brace_arguments(s)
    if "infty" in s:
        s = _PLUS_INFINITY.sub(r"\1\\infty", s)
    s = _MULTISPACE.sub(" ", s).strip()
    s = _TRAILING_PUNCT.sub("", s)
    s = strip_units(s)
    if _THOUSANDS.match(s):  # "1,000", "1 000"; "200, 100" (a space after the comma) is a list
        s = s.replace(",", "").replace(" ", "")
    return s.strip()


def decimal_comma(s: str) -> str:
    """``1,22`` -> ``1.22``: a number whose comma cannot separate thousands (one or two digits after it,
    four or more, or a leading ``0,``) written with a decimal comma; anything else unchanged."""
    return s.replace(",", ".") if _DECIMAL_COMMA.fullmatch(s) else s


def compact(s: str) -> str:
    """Whitespace-free form for math comparison (LaTeX whitespace carries no meaning outside text)."""
    return s.replace(" ", "")


def text_key(s: str) -> str:
    """Case- and markup-insensitive key for text answers: ``\\text{(C)}``, ``C``, ``(c)`` -> ``c``."""
    s = _TEXT_CMD.sub(r"\1", normalize_chars(s))
    s = re.sub(r"\\[a-zA-Z]+", " ", s)
    s = re.sub(r"[^0-9a-zA-Z]+", " ", s)
    return _MULTISPACE.sub(" ", s).strip().lower()
