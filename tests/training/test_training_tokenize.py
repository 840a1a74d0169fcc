"""Loss masks from the chat template: the supervised tokens are exactly the response + end-of-turn token."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import shared_file

from mathsft.data import load_problems
from mathsft.data.schema import SFTExample
from mathsft.errors import DataError
from mathsft.training import problems_to_examples
from mathsft.training.tokenize import tokenize_cached, tokenize_example, tokenize_examples


@pytest.fixture(scope="module")
def tokenizer(smollm2_dir: Path):
    from mathsft.models import load_tokenizer

    return load_tokenizer(smollm2_dir, padding_side="right")


def example(
    response: str = "2+3=5. The final answer is $\\boxed{5}$.", prompt: str = "What is 2+3?"
) -> SFTExample:
    return SFTExample(
        "ex/1", [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    )


def test_supervised_tokens_of_a_real_gsm8k_example_are_response_plus_end_of_turn(tokenizer) -> None:
    problems = load_problems("gsm8k", shared_file("gsm8k/train.jsonl"), limit=1)
    ex = problems_to_examples(problems)[0]
    assert ex.response.endswith("$\\boxed{" + problems[0].answer + "}$.")
    assert "{% generation %}" not in tokenizer.chat_template  # masks come from rendering, not markers
    item = tokenize_example(tokenizer, ex)
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert tokenizer.decode(item.input_ids[item.supervised]) == ex.response + "<|im_end|>"
    assert item.input_ids[item.supervised][-1] == tokenizer.eos_token_id  # the stop token is learned
    # the prompt part is exactly what inference tokenizes: the generation prompt
    prompt = tokenizer.apply_chat_template(ex.messages[:-1], tokenize=False, add_generation_prompt=True)
    first = int(item.supervised.argmax())
    assert tokenizer.decode(item.input_ids[:first]) == prompt


def test_mask_variants(tokenizer) -> None:
    ex = example()
    header = tokenize_example(tokenizer, ex, "assistant_with_header")
    assert (
        tokenizer.decode(header.input_ids[header.supervised])
        == "<|im_start|>assistant\n" + ex.response + "<|im_end|>"
    )
    everything = tokenize_example(tokenizer, ex, "all")
    assert everything.supervised[1:].all() and not everything.supervised[0]


def test_empty_response_is_an_error_naming_the_example(tokenizer) -> None:
    with pytest.raises(DataError, match=r"ex/1.*response is empty"):
        tokenize_example(tokenizer, example(response="  "))


def test_last_turn_must_be_the_assistant(tokenizer) -> None:
    bad = SFTExample("ex/9", [{"role": "user", "content": "hi"}])
    with pytest.raises(DataError, match="ex/9"):
        tokenize_example(tokenizer, bad)


def test_overlong_examples_are_dropped_or_truncated_and_counted(tokenizer) -> None:
    short, long = example(), example(response="word " * 300)
    length = len(tokenize_example(tokenizer, short))
    kept, stats = tokenize_examples(tokenizer, [short, long], max_length=length + 5, overlong="drop")
    assert len(kept) == 1 and stats.dropped_overlong == 1 and stats.truncated == 0
    kept, stats = tokenize_examples(tokenizer, [short, long], max_length=length + 5, overlong="truncate")
    assert len(kept) == 2 and stats.truncated == 1 and len(kept[1]) == length + 5
    # truncated inside the prompt: nothing left to learn, so it is dropped (and counted)
    kept, stats = tokenize_examples(
        tokenizer, [example(prompt="x " * 400)], max_length=64, overlong="truncate"
    )
    assert kept == [] and stats.dropped_no_target == 1


def test_tokenization_cache_round_trips(tokenizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATHSFT_CACHE", str(tmp_path))
    data = [example(), example(response="Seven.")]
    first, stats, key = tokenize_cached(tokenizer, data, 256)
    assert (tmp_path / "tokenized" / f"{key}.npz").is_file()
    again, stats2, key2 = tokenize_cached(tokenizer, data, 256)
    assert key2 == key and stats2 == stats
    assert all(
        (a.input_ids == b.input_ids).all() and (a.supervised == b.supervised).all()
        for a, b in zip(first, again, strict=True)
    )
    assert tokenize_cached(tokenizer, data, 128)[2] != key  # max length is part of the key


def test_calculator_results_are_tokenized_as_inserted_and_left_out_of_the_loss(tokenizer) -> None:
    """With the calculator the model learns to write '<<48/2=' and to use '24' after the call, not to
    compute '24>>' (the tool inserts it, tokenized on its own): those tokens are not targets."""
    problems = load_problems("gsm8k", shared_file("gsm8k/train.jsonl"), limit=1, first=True)
    ex = problems_to_examples(problems, calculator=True)[0]
    assert ex.response.startswith("Natalia sold 48/2 = <<48/2=24>>24 clips in May.")
    item = tokenize_example(tokenizer, ex, calculator=True)
    start = int(item.supervised.argmax())
    response = item.input_ids[start:]
    assert tokenizer.decode(response).startswith(ex.response + "<|im_end|>")
    end = len(item) - int(item.supervised[::-1].argmax())  # after the end-of-turn token
    skipped = [tokenizer.decode(item.input_ids[i]) for i in range(start, end) if not item.supervised[i]]
    calls = ex.response.count("<<")
    assert "".join(skipped) == "".join(f"{r}>>" for r in ("24", "72")) and calls == 2
    plain = tokenize_example(tokenizer, ex)
    assert plain.supervised[start:end].all()  # without the calculator every response token is a target
    assert "<<" not in problems_to_examples(problems)[0].response  # nor are the calls shown to it


def test_preflight_checks_the_supervised_text_with_the_calculators_results_left_out(
    tokenizer, tmp_path: Path
) -> None:
    from mathsft.training.preflight import write_preflight
    from mathsft.training.tokenize import TokenizeStats

    problems = load_problems("gsm8k", shared_file("gsm8k/train.jsonl"), limit=1, first=True)
    ex = problems_to_examples(problems, calculator=True)[0]
    item = tokenize_example(tokenizer, ex, calculator=True)
    stats = TokenizeStats(examples=1, kept=1, tokens=len(item), supervised_tokens=int(item.supervised.sum()))
    stats.lengths.append(len(item))
    extra = {"max_length": 512, "mask": "completion", "packing": True, "prompt": "qwen-boxed"}
    hashes = {"chat_template_hash": "x", "prompt_template_hash": "y"}
    args = (tokenizer, [item], stats, ex.response, "<|im_end|>", 0.0, hashes)
    assert write_preflight(tmp_path, *args, {**extra, "calculator": True})["supervised_is_response_plus_eot"]
    assert "the calculator's results left out: True" in (tmp_path / "preflight.md").read_text()
    assert not write_preflight(tmp_path, *args, extra)["supervised_is_response_plus_eot"]
