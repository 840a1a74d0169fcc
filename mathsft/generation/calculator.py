"""The calculator tool: the model writes an expression, mathsft computes it, generation goes on.

The format is GSM8K's own calculator annotation, so GSM8K's 7,473 reference solutions are training data
for it as they are: ``Natalia sold 48/2 = <<48/2=24>>24 clips in May.`` The model writes ``<<48/2=``; the
backend sees the open call end in ``=``, evaluates ``48/2`` here and inserts ``24>>`` as if the model had
written it; the model then goes on (``24 clips in May.``). The inserted result is the tool's, not the
model's: SFT does not train on it (``result_spans`` marks it for the loss mask) and RL does not score it.

The evaluator is a parser over numbers, ``+ - * / ^`` (also ``× ÷ − **``) and parentheses, in exact
rational arithmetic (``Fraction``): never ``eval``, bounded input size, exponent and result, so no text a
model writes can run code or take long. An expression it cannot evaluate (a word, a division by zero, a
result too large) inserts nothing, and the model writes its own result.
"""

from __future__ import annotations

import re
from fractions import Fraction

OPEN, CLOSE = "<<", ">>"
MAX_EXPRESSION_CHARS = 120
MAX_EXPONENT = 64
MAX_DIGITS = 30  # of a result's integer part, and of any intermediate value's numerator or denominator
DECIMALS = 4  # a non-terminating result is rounded to this many decimals (GSM8K's results are exact)

# an open call at the end of the text: "<<" then an expression then "=" (no ">>" or newline in between)
_PENDING = re.compile(rf"<<([^<>=\n]{{1,{MAX_EXPRESSION_CHARS}}})=$")
_CALL = re.compile(rf"<<([^<>=\n]{{1,{MAX_EXPRESSION_CHARS}}})=([^<>\n]*)>>")
_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?|\.\d+)|(\*\*|[-+*/^()×÷−]))")
_SYMBOLS = {"×": "*", "÷": "/", "−": "-", "**": "^"}


class CalculatorError(ValueError):
    """The expression is not one the calculator evaluates (the model then writes its own result)."""


def _tokens(expression: str) -> list[str]:
    out, pos = [], 0
    expression = expression.rstrip()
    while pos < len(expression):
        match = _TOKEN.match(expression, pos)
        if match is None:
            raise CalculatorError(f"unexpected {expression[pos : pos + 10]!r}")
        out.append(match.group(1) or _SYMBOLS.get(match.group(2), match.group(2)))
        pos = match.end()
    return out


class _Parser:
    """expr := term (('+'|'-') term)*; term := power (('*'|'/') power)*; power := unary ('^' power)?;
    unary := ('-'|'+') unary | atom; atom := number | '(' expr ')'. ``^`` binds right, above unary minus
    on its left (``-2^2`` is -4, as in math)."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens, self.pos = tokens, 0

    def parse(self) -> Fraction:
        value = self.expr()
        if self.pos != len(self.tokens):
            raise CalculatorError(f"unexpected {self.tokens[self.pos]!r}")
        return value

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise CalculatorError("the expression ends early")
        self.pos += 1
        return token

    def expr(self) -> Fraction:
        value = self.term()
        while self.peek() in ("+", "-"):
            value = _bounded(value + self.term() if self.take() == "+" else value - self.term())
        return value

    def term(self) -> Fraction:
        value = self.unary()
        while self.peek() in ("*", "/"):
            op, right = self.take(), self.unary()
            if op == "/" and right == 0:
                raise CalculatorError("division by zero")
            value = _bounded(value * right if op == "*" else value / right)
        return value

    def unary(self) -> Fraction:
        if self.peek() in ("-", "+"):
            return -self.unary() if self.take() == "-" else self.unary()
        return self.power()

    def power(self) -> Fraction:
        base = self.atom()
        if self.peek() != "^":
            return base
        self.take()
        exponent = self.unary()
        if exponent.denominator != 1 or abs(exponent) > MAX_EXPONENT:
            raise CalculatorError(f"exponent {exponent} is not a whole number up to {MAX_EXPONENT}")
        if base == 0 and exponent < 0:
            raise CalculatorError("division by zero")
        return _bounded(base ** int(exponent))

    def atom(self) -> Fraction:
        token = self.take()
        if token == "(":
            value = self.expr()
            if self.take() != ")":
                raise CalculatorError("unbalanced parentheses")
            return value
        if token[0].isdigit() or token[0] == ".":
            return Fraction(token)
        raise CalculatorError(f"unexpected {token!r}")


def _bounded(value: Fraction) -> Fraction:
    if max(len(str(abs(value.numerator))), len(str(value.denominator))) > MAX_DIGITS:
        raise CalculatorError("a value too large for the calculator")
    return value


def evaluate(expression: str) -> Fraction:
    """The exact value of an arithmetic expression; ``CalculatorError`` when it is not one."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"longer than {MAX_EXPRESSION_CHARS} characters")
    tokens = _tokens(expression)
    if not tokens:
        raise CalculatorError("empty expression")
    return _Parser(tokens).parse()


def format_number(value: Fraction) -> str:
    """GSM8K's way of writing a result: ``24``, ``2.5``, ``-0.25``; a non-terminating one rounded."""
    if value.denominator == 1:
        return str(value.numerator)
    text = f"{float(value):.{DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def pending_call(text: str) -> str | None:
    """The expression of a call the text ends with (``...<<48/2=``), or None."""
    match = _PENDING.search(text[-(MAX_EXPRESSION_CHARS + 3) :])
    return match.group(1) if match else None


def call_result(text: str) -> str | None:
    """What the tool inserts after ``text``: ``"24>>"`` when it ends with an open call it can evaluate."""
    expression = pending_call(text)
    if expression is None:
        return None
    try:
        return format_number(evaluate(expression)) + CLOSE
    except (CalculatorError, ZeroDivisionError, ValueError):
        return None


def result_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the results the tool would insert in ``text`` (``24>>`` in ``<<48/2=24>>``): the
    parts SFT must not train on. A call the tool cannot evaluate has no span (the model wrote it)."""
    spans = []
    for match in _CALL.finditer(text):
        if call_result(text[: match.start(2)]) is not None:
            spans.append((match.start(2), match.end()))
    return spans


def normalize_calls(text: str) -> str:
    """The text with each call's result written as the tool writes it (``<<3/4=3/4>>`` -> ``<<3/4=0.75>>``),
    so SFT shows the model exactly the tokens it will see at generation."""

    def rewrite(match: re.Match[str]) -> str:
        result = call_result(f"{OPEN}{match.group(1)}=")
        return match.group(0) if result is None else f"{OPEN}{match.group(1)}={result}"

    return _CALL.sub(rewrite, text)


def strip_calls(text: str) -> str:
    """The text without its calculator annotations (``48/2 = 24 clips``), for models trained without it."""
    return _CALL.sub("", text)
