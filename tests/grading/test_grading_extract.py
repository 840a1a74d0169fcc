"""Answer extraction: boxes, GSM8K markers, answer phrases, think/answer tags, the number fallback."""

from __future__ import annotations

import pytest

from mathsft.grading import extract_answer, grade


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so the answer is $\boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),
        (r"first \boxed{3}, then corrected: \boxed{4}", "4"),
        (r"\boxed{\begin{pmatrix} 1 \\ 2 \end{pmatrix}}", r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}"),
        (r"nested \boxed{\{1, \frac{2}{3}\}} done", r"\{1, \frac{2}{3}\}"),
        (r"$\boxed 5$", "5"),
        (r"\fbox{7}", "7"),
        (r"an unfinished \boxed{3} and \boxed{4", "3"),
        ("She pays 3 + 4 = 7 dollars.\n#### 7", "7"),
        ("The answer is 12. Check: 12 + 3 = 15", "12"),
        ("The answer is 18.\nThe answer is 18.\nThe answer is 1", "18"),  # cut off mid-number
        ("The answer is 18.\nNo wait, the answer is 1", "1"),  # no loop: a correction
        ("Final Answer: The final answer is $\\frac{14}{3}$. I hope it is correct.", r"\frac{14}{3}"),
        ("**Answer:** 3.5", "3.5"),
        ("the final answer is 2.5.", "2.5"),
        ("<think>maybe \\boxed{4}</think>\nSo the final answer is \\boxed{5}.", "5"),
        ("<think>I think it is 4</think> The answer is 5.", "5"),
        ("<think>thinking \\boxed{4}</think> I give up.", None),
        ("<think>still thinking about \\boxed{4}", None),
        ("reasoning... <answer> \\frac{1}{2} </answer>", r"\frac{1}{2}"),
        ("<answer>The answer is 6</answer>", "6"),
        ("no final answer here, just 42 things", None),
        ("Work.\n\nAnswer\n\\[ (1, 2) \\]", "(1, 2)"),  # a heading above display math
        ("Work.\n\n### Final Answer\n\n$$\n-\\frac{1}{4}\n$$", r"-\frac{1}{4}"),
        ("Let me find the answer\nFirst, 5 apples", None),  # a heading states only the math below it
        ("We seek the answer\n$$x=3$$ gives", None),  # not at a line start: no heading
        ("The answer is $28$ %.", "28%"),  # a percent sign after the math span belongs to the answer
        ("The answer is $28$ percent of the total.", "28%"),
        (r"The solutions are $x=\boxed{1}$ and $x=\boxed{2}$.", "1, 2"),  # the label names the box
        (r"$x=\boxed{1}$ and $y=\boxed{2}$", "x=1, y=2"),  # distinct labels: a tuple
        (r"First $x=\boxed{3}$, then $x = \boxed{4}$", "4"),  # words between: a correction
        ("", None),
    ],
)
def test_extract_answer(text: str, expected: str | None):
    assert extract_answer(text, style="math") == expected


def test_number_fallback_follows_the_style():
    text = "Tom has 3 apples and buys 15 more, so he has 18 apples"
    assert extract_answer(text, style="gsm8k") == "18"
    assert extract_answer(text, style="math") is None
    assert extract_answer(text, style="auto") is None  # no gold known: no fallback
    assert grade(text, "18", style="auto").correct  # plain-number gold: fallback on
    assert grade(text, r"\frac{1}{2}", style="auto").extracted is None  # MATH-style gold: off
    assert extract_answer("I get -1,234.5 in total", style="gsm8k") == "-1,234.5"
    for cut in ("On Tuesday, she had 3 + 5 = <<", "she had 3 + 5 = <<3+5", "2+2 = 4, 4+4 = 8, 8+8 ="):
        assert extract_answer(cut, style="gsm8k") is None  # cut inside a computation: no result stated
        assert not grade(cut, "5", style="auto").correct
    truncated = r"We know that $\sin B = 2\sin A$. We can use the Law of Cosines"
    assert grade(truncated, "2", style="auto").extracted is None  # auto: final sentence only
    assert grade(truncated, "2", style="gsm8k").correct


@pytest.mark.parametrize(
    "response",
    [
        r"The answer is $\$18$.",
        "**Answer:** Janet makes $18 every day.",
        "The final answer is: She has 18 apples.",
        "The answer is 18, so Janet makes $18 every day.",
        "The answer is 18 (dollars).",
        r"\boxed{18 \text{ bags}}",
        r"\boxed{\$18 \text{ per week}}",
        "She pays 9 + 9 = 18 dollars.\n#### 18 lollipops",
        "She gives away 18 lollipops.\n\nI hope this helps! Let me know if you have questions.",
    ],
)
def test_a_number_stated_in_words_is_the_answer(response: str) -> None:
    result = grade(response, "18")
    assert result.correct and result.extracted in ("18", r"\$18"), result


@pytest.mark.parametrize(
    ("response", "gold"),
    [
        (r"\boxed{5x}", "5"),  # a variable, not a word
        ("The answer is 18 or 20.", "18"),  # two numbers: not one stated answer
        ("The answer is 5!", "5"),  # a factorial
        ("The answer is 50% of them.", "50"),  # a percentage of something
    ],
)
def test_no_number_is_read_out_of_math(response: str, gold: str) -> None:
    assert not grade(response, gold).correct


def test_answer_tag_beats_the_number_fallback():
    assert extract_answer("<answer>\\frac{1}{2}</answer> 7", style="gsm8k") == r"\frac{1}{2}"


def test_unicode_minus_is_normalized_before_comparison():
    result = grade(r"The answer is \boxed{−5}", "-5")
    assert result.correct and result.extracted == "−5"


def test_unknown_style_is_rejected():
    with pytest.raises(ValueError, match="style"):
        extract_answer("x", style="mathh")


def test_deeply_nested_braces_are_extracted_linearly():
    inner = "{" * 500 + "1" + "}" * 500
    assert extract_answer(rf"\boxed{{{inner}}}", style="math") == inner


def test_grade_says_where_the_answer_came_from() -> None:
    cases = {
        "So $\\boxed{7}$.": "boxed",
        "She pays 7.\n#### 7": "####",
        "The final answer is 7.": "phrase",
        "<answer> 7 </answer>": "tag",
        "so she has 7 apples.": "last-number",
    }
    for text, source in cases.items():
        result = grade(text, "7")
        assert (result.correct, result.source, result.formatted) == (True, source, source != "last-number")
    assert grade("no idea", "7").source is None


def test_gold_solution_ending_in_a_final_statement():
    gold = "Half of $24$ is $12$.\nFinal Answer: The final answer is $24$. I hope it is correct."
    assert grade(r"\boxed{24}", gold).correct
    assert not grade(r"\boxed{12}", gold).correct


@pytest.mark.parametrize(
    ("answer", "gold", "correct"),
    [
        (r"\text{Il costo è di } \$25", "25", True),  # prose in any language around one number
        (r"\text{Ela gasta } \$7,50", "7.5", True),  # with a decimal comma
        (r"\text{Ela gasta } \$7,05", "7.5", False),
        (r"x = 25", "25", True),
        (r"\text{Итого } 25 \text{ рублей}", "25", True),
        ("25π", "25", False),  # a lone Greek letter is a variable, not a word
        ("25 α", "25", False),
    ],
)
def test_number_stated_in_words(answer: str, gold: str, correct: bool):
    assert grade(rf"\boxed{{{answer}}}", gold).correct is correct
