"""The calculator tool's pure parts: a safe evaluator, GSM8K's result format, finding calls in text."""

from __future__ import annotations

import json
import re
from fractions import Fraction

import pytest
from conftest import shared_file

from mathsft.generation.calculator import (
    CalculatorError,
    call_result,
    evaluate,
    format_number,
    normalize_calls,
    pending_call,
    result_spans,
    strip_calls,
)


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("48/2", 24),
        ("2+3*4", 14),
        ("(2+3)*4", 20),
        ("10-4-3", 3),  # left to right
        ("64/4/2", 8),
        ("-2^2", -4),  # power binds tighter than a leading minus, as in math
        ("2^3^2", 512),  # and to the right
        ("2^-1", Fraction(1, 2)),
        ("0.1+0.2", Fraction(3, 10)),  # exact, not 0.30000000000000004
        (".75*4", 3),
        ("3 × 4 ÷ 2 − 1", 5),
        ("2**10", 1024),
        ("1/3*3", 1),
        (" 18 + 6 + 8 + 7 ", 39),
    ],
)
def test_evaluates_arithmetic_exactly(expression: str, value: Fraction | int) -> None:
    assert evaluate(expression) == value


@pytest.mark.parametrize(
    "expression",
    [
        "5/0",
        "2^0.5",  # only whole exponents
        "2^65",  # bounded exponent
        "9^64*9^64",  # bounded result
        "__import__('os')",
        "abs(-3)",
        "1e5",
        "2 apples * 3",
        "(1+2",
        "1+",
        "",
        "1" * 200,
        "1,000*3",
    ],
)
def test_refuses_what_is_not_bounded_arithmetic(expression: str) -> None:
    with pytest.raises(CalculatorError):
        evaluate(expression)


@pytest.mark.parametrize(
    ("value", "text"),
    [(Fraction(24), "24"), (Fraction(5, 2), "2.5"), (Fraction(-1, 4), "-0.25"), (Fraction(10, 3), "3.3333")],
)
def test_results_are_written_as_gsm8k_writes_them(value: Fraction, text: str) -> None:
    assert format_number(value) == text


def test_a_call_is_answered_only_when_the_text_ends_with_it() -> None:
    assert pending_call("Natalia sold 48/2 = <<48/2=") == "48/2"
    assert call_result("Natalia sold 48/2 = <<48/2=") == "24>>"
    assert call_result("she has <<3 apples + 2=") is None  # not arithmetic: the model writes its own
    assert call_result("<<48/2=24>> more 3+4=") is None  # a closed call, then a plain equation
    assert call_result("so x = 5") is None
    assert call_result("<<1\n+2=") is None  # a call never spans lines


def test_result_spans_mark_what_the_tool_inserts() -> None:
    text = "She sold 48/2 = <<48/2=24>>24 clips and <<x+1=5>>5 more, then <<24+5=29>>29."
    spans = result_spans(text)
    assert [text[a:b] for a, b in spans] == ["24>>", "29>>"]  # <<x+1=...>> is not the tool's


def test_normalize_and_strip() -> None:
    text = "It costs 8*18 = $<<8*18=144.00>>144.00 and 2*20*.01 = <<2*20*.01=.4>>.4 liters"
    assert (
        normalize_calls(text)
        == "It costs 8*18 = $<<8*18=144>>144.00 and 2*20*.01 = <<2*20*.01=0.4>>.4 liters"
    )
    assert strip_calls(text) == "It costs 8*18 = $144.00 and 2*20*.01 = .4 liters"


def test_every_gsm8k_train_annotation_is_reproduced_by_the_calculator() -> None:
    """GSM8K's reference solutions are the calculator's training data: its results must be theirs."""
    path = shared_file("gsm8k/train.jsonl")
    calls = agreed = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        for match in re.finditer(r"<<([^<>=]*)=([^<>]*)>>", json.loads(line)["answer"]):
            calls += 1
            result = call_result(f"<<{match.group(1)}=")
            agreed += result is not None and Fraction(result[:-2]) == Fraction(match.group(2))
    assert calls > 20_000
    assert calls - agreed <= 2  # '3/4=3/4' writes a fraction; one other is not arithmetic
