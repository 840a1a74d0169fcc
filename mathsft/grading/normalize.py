"""String canonicalization of answers: pure, linear-time rewrites that never change the mathematics.

Both the extracted answer and the gold go through ``canonical`` before any comparison, so that
``\\dfrac{1}{2}``, ``$\\frac12$.`` and ``\\left(\\frac{1}{2}\\right)`` meet as the same string whenever they can.
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
_STYLE_WRAPPERS = re.compile(
    r"\\(?:mathbf|mathrm|mathit|mathsf|mathnormal|textbf|textit|textrm|textsf|boldsymbol|bm)(?![a-zA-Z])"
)
_TEXT_CMD = re.compile(r"\\(?:text|mbox|textnormal|hbox)\s*\{([^{}]*)\}")
_DOLLARS = re.compile(r"\\\$|\$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_SPACE_THOUSANDS = re.compile(r"(?<=\d)(?:\{,\}|,\\!)(?=\d{3})")  # 1{,}000 and MATH's 1,\!000
_TRAILING_PUNCT = re.compile(r"[\s.;:,]+$")
_PERCENT = re.compile(r"\\?%")
_MULTISPACE = re.compile(r"\s+")
# Unit words dropped after a number ("5 cm", "18 dollars", "15\mbox{ cm}^2"); variables are single letters,
# so a unit list is only consulted for whole words.
_UNITS = (
    "units?|square units?|sq units?|cubic units?|cm|mm|km|meters?|metres?|centimeters?|millimeters?|"
    "kilometers?|inch(?:es)?|feet|foot|ft|yards?|yd|miles?|mph|hours?|hrs?|minutes?|mins?|seconds?|"
    "secs?|days?|weeks?|months?|years?|dollars?|cents?|degrees?|deg|radians?|pounds?|lbs?|ounces?|oz|"
    "grams?|kg|kilograms?|liters?|litres?|ml|gallons?|cups?|people|persons?|students?|apples?|"
    "marbles?|pages?|points?|ways?|times|percent|boxes|books?|cookies?|eggs?|pieces?|sq\\.? ?(?:ft|m|in)"
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


def canonical(answer: str) -> str:
    """The canonical LaTeX form used for every comparison (see module docstring)."""
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
    s = unwrap_text(s)
    s = _PERCENT.sub("%", s)
    s = s.replace(r"\le ", r"\leq ").replace(r"\ge ", r"\geq ")
    s = _MULTISPACE.sub(" ", s).strip()
    s = _TRAILING_PUNCT.sub("", s)
    s = strip_units(s)
    if _THOUSANDS.match(s):  # "1,000"; "200, 100" (a space after the comma) is a list
        s = s.replace(",", "")
    return s.strip()


def compact(s: str) -> str:
    """Whitespace-free form for math comparison (LaTeX whitespace carries no meaning outside text)."""
    return s.replace(" ", "")


def text_key(s: str) -> str:
    """Case- and markup-insensitive key for text answers: ``\\text{(C)}``, ``C``, ``(c)`` -> ``c``."""
    s = _TEXT_CMD.sub(r"\1", normalize_chars(s))
    s = re.sub(r"\\[a-zA-Z]+", " ", s)
    s = re.sub(r"[^0-9a-zA-Z]+", " ", s)
    return _MULTISPACE.sub(" ", s).strip().lower()
