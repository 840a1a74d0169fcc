"""Prompt templates: the named ones render as documented; few-shot exemplars never come from the test set."""

from __future__ import annotations

from pathlib import Path

import pytest

from mathsft.data.schema import Problem
from mathsft.errors import MathsftError
from mathsft.evaluation.prompts import (
    TEMPLATES,
    build_prompt,
    fewshot_exemplars,
    get_template,
    reference_response,
)
from mathsft.models import load_tokenizer

PROBLEM = Problem(id="t/0", problem="What is $\\frac{1}{2} + 2$?", answer="\\frac{5}{2}")


def test_qwen_and_nemo_templates_render_the_published_text() -> None:
    assert build_prompt(PROBLEM, "qwen-boxed") == [
        {
            "role": "user",
            "content": "What is $\\frac{1}{2} + 2$?\nPlease reason step by step, and put your final answer "
            "within \\boxed{}.",
        }
    ]
    nemo = build_prompt(PROBLEM, "nemo")[0]["content"]
    assert nemo.startswith("Solve the following math problem. Make sure to put the answer (and only answer)")
    assert nemo.endswith("inside \\boxed{}.\n\nWhat is $\\frac{1}{2} + 2$?")


def test_r1_zero_is_raw_text_ending_in_think() -> None:
    text = build_prompt(PROBLEM, "r1-zero")
    assert isinstance(text, str)
    assert text.endswith("User: What is $\\frac{1}{2} + 2$?\nAssistant: <think>")


def test_system_prompt_and_chat_switch() -> None:
    messages = build_prompt(PROBLEM, "plain", system="You are careful.")
    assert messages[0] == {"role": "system", "content": "You are careful."}
    assert build_prompt(PROBLEM, "plain", chat=False) == PROBLEM.problem


def test_bare_replaces_the_default_system_prompt_with_an_empty_turn(smollm2_dir: Path) -> None:
    tokenizer = load_tokenizer(smollm2_dir)
    bare = build_prompt(PROBLEM, "bare")
    assert bare == [{"role": "system", "content": ""}, {"role": "user", "content": PROBLEM.problem}]
    assert build_prompt(PROBLEM, "bare", chat=False) == PROBLEM.problem
    rendered = tokenizer.apply_chat_template(bare, tokenize=False, add_generation_prompt=True)
    default = tokenizer.apply_chat_template(bare[1:], tokenize=False, add_generation_prompt=True)
    assert "SmolLM" in default and "SmolLM" not in rendered
    assert len(tokenizer(rendered)["input_ids"]) < len(tokenizer(default)["input_ids"])


def test_gsm8k_8shot_has_eight_worked_turns_before_the_question() -> None:
    messages = build_prompt(PROBLEM, "gsm8k-8shot")
    assert len(messages) == 17
    assert [m["role"] for m in messages[:2]] == ["user", "assistant"]
    assert messages[1]["content"].endswith("The answer is 6.")
    assert messages[-1]["content"] == "Question: What is $\\frac{1}{2} + 2$?\nAnswer:"


def test_exemplars_from_train_exclude_eval_problems() -> None:
    train = [Problem(id=f"tr/{i}", problem=f"q{i}", answer=str(i), solution=f"s{i}") for i in range(12)]
    shots = fewshot_exemplars(8, train, exclude={"q0", "q1", "q2", "q3"}, seed=0)
    assert len(shots) == 8
    assert not {q for q, _ in shots} & {"q0", "q1", "q2", "q3"}
    assert shots == fewshot_exemplars(8, train, exclude={"q0", "q1", "q2", "q3"}, seed=0)
    with pytest.raises(MathsftError, match="8-shot"):
        fewshot_exemplars(8, train[:5])


def test_template_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text('user: "Q: {problem}\\nA:"\nsystem: Be brief.\n')
    assert build_prompt(PROBLEM, str(path)) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Q: What is $\\frac{1}{2} + 2$?\nA:"},
    ]
    path.write_text("user: no placeholder\n")
    with pytest.raises(MathsftError, match="placeholder"):
        get_template(str(path))
    with pytest.raises(MathsftError, match="unknown prompt template"):
        get_template("nope")


def test_template_digests_differ() -> None:
    assert len({t.digest() for t in TEMPLATES.values()}) == len(TEMPLATES)


def test_reference_response_boxes_the_answer_once() -> None:
    gsm = Problem(id="g", problem="?", answer="18", solution="9 * 2 = 18")
    assert reference_response(gsm) == "9 * 2 = 18\nThe final answer is $\\boxed{18}$."
    math = Problem(id="m", problem="?", answer="5", solution="So it is $\\boxed{5}$.")
    assert reference_response(math) == "So it is $\\boxed{5}$."
    with pytest.raises(MathsftError, match="no reference solution"):
        reference_response(Problem(id="x", problem="?", answer="1"))


def test_reference_response_keeps_calculator_calls_only_for_the_calculator() -> None:
    gsm = Problem(id="g", problem="?", answer="6", solution="It costs 2*3 = $<<2*3=6.00>>6.00")
    assert reference_response(gsm) == "It costs 2*3 = $6.00\nThe final answer is $\\boxed{6}$."
    assert reference_response(gsm, calculator=True).startswith(
        "It costs 2*3 = $<<2*3=6>>6.00"
    )  # tool's format
