"""Every adapter on fixture rows written in its source's exact schema."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import shared_file

from mathsft.data import LoadStats, get_adapter, last_boxed, load_problems, load_sft_examples
from mathsft.data import load as load_module
from mathsft.errors import DataError, MathsftError

FIXTURES = Path(__file__).parent / "fixtures"


def test_gsm8k_gold_after_hashes_without_commas_and_solution_with_its_calculator_notes():
    """The annotations stay in the solution (the calculator tool trains on them); the final line goes."""
    problems = load_problems("gsm8k", FIXTURES / "gsm8k.jsonl")
    assert [p.answer for p in problems] == ["6", "14400", "12"]
    first = problems[0]
    assert first.id == "gsm8k/gsm8k/0"  # no split given and the file name names none: its stem labels it
    assert (
        first.solution
        == "Mira bakes 3 * 12 = <<3*12=36>>36 muffins.\nShe has 36 - 30 = <<36-30=6>>6 muffins left."
    )
    assert "####" not in problems[1].solution
    assert problems[1].solution.endswith("In a year it makes 1,200 * 12 = $<<1200*12=14400>>14,400.")


def test_split_labels_ids_and_meta():
    problems = load_problems("gsm8k", FIXTURES / "gsm8k.jsonl", split="test")
    assert [p.id for p in problems] == ["gsm8k/test/0", "gsm8k/test/1", "gsm8k/test/2"]
    assert problems[0].meta == {"split": "test"}
    assert problems[0].source == "gsm8k"


def test_math500_keeps_unique_id_level_and_subject():
    problems = load_problems("MATH-500", FIXTURES / "math500.jsonl")
    assert [p.id for p in problems] == ["test/prealgebra/1001.json", "test/algebra/2002.json"]
    assert problems[0].answer == "\\frac{5}{6}"
    assert problems[1].meta == {"subject": "Algebra", "level": 2, "split": "test"}


def test_hendrycks_math_gold_is_last_balanced_box_and_level_parsed():
    problems = load_problems("math", FIXTURES / "hendrycks_math.jsonl", split="test")
    assert [p.answer for p in problems] == ["2", "2\\sqrt{2}", "\\{-1, 1\\}"]
    assert problems[0].meta == {"subject": "Algebra", "level": 3, "split": "test"}
    assert problems[2].meta["level"] is None  # "Level ?" occurs in the real MATH train set


def test_hendrycks_raw_folder_of_single_problem_json_files(tmp_path: Path):
    for split, number in (("train", 1), ("test", 2)):
        folder = tmp_path / "MATH" / split / "algebra"
        folder.mkdir(parents=True)
        row = {
            "problem": f"p{number}",
            "level": "Level 2",
            "type": "Algebra",
            "solution": f"$\\boxed{{{number}}}$",
        }
        (folder / f"{number}.json").write_text(json.dumps(row))
    problems = load_problems("math", tmp_path / "MATH", split="test")
    assert [(p.id, p.answer) for p in problems] == [("math/test/0", "2")]
    with pytest.raises(DataError, match="unknown split 'validation'"):
        load_problems("math", tmp_path / "MATH", split="validation")


@pytest.mark.parametrize(
    ("text", "boxed"),
    [
        ("so $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
        ("first \\boxed{1} then \\boxed{x^{2}+1}", "x^{2}+1"),
        ("answer $\\boxed 5$.", "5"),
        ("\\fbox{7}", "7"),
        ("unbalanced \\boxed{\\frac{1}{2}", None),
        ("no box at all", None),
    ],
)
def test_last_boxed(text: str, boxed: str | None):
    assert last_boxed(text) == boxed


def _omi2_rows(count: int) -> list[dict[str, str]]:
    return [
        {
            "problem": f"What is {i} + {i}?",
            "generated_solution": f"{i} + {i} = {2 * i}, so the answer is $\\boxed{{{2 * i}}}$.",
            "expected_answer": str(2 * i),
            "problem_source": "augmented_gsm8k" if i % 2 else "math",
        }
        for i in range(count)
    ]


def test_openmathinstruct2_parquet_streams_only_the_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "data" / "train_1M-00000-of-00001.parquet"
    path.parent.mkdir()
    pq.write_table(pa.Table.from_pylist(_omi2_rows(3000)), path, row_group_size=500)
    monkeypatch.setattr(load_module, "STREAM_POOL", 1200)
    stats = LoadStats()
    problems = load_problems("openmathinstruct2", tmp_path, split="train_1M", limit=5, seed=1, stats=stats)
    assert stats.rows == 1200  # the head of the stream, not all 3000 rows
    assert len(problems) == 5 and all(int(p.id.rsplit("/", 1)[1]) < 1200 for p in problems)
    p = problems[0]
    assert p.id.startswith("openmathinstruct2/train_1M/") and p.source == "openmathinstruct2"
    assert p.answer == str(2 * int(p.problem.split()[2]))
    assert p.meta["problem_source"] in {"augmented_gsm8k", "math"}
    with pytest.raises(DataError, match="unknown split 'train_2M'"):
        load_problems("openmathinstruct2", tmp_path, split="train_2M")


def test_deepscaler_json_array():
    problems = load_problems("deepscaler", FIXTURES / "deepscaler.json", split="train")
    assert [p.answer for p in problems] == ["-\\frac{2}{3}", "56"]
    assert problems[1].solution == ""


def test_openr1_problems_and_only_verified_complete_generations_as_sft():
    problems = load_problems("openr1", FIXTURES / "openr1.jsonl")
    assert [p.id for p in problems] == ["a1b2c3d4-0001", "a1b2c3d4-0002"]
    assert problems[0].meta["origin"] == "olympiads" and problems[0].meta["correctness_count"] == 1
    examples = load_sft_examples("openr1", FIXTURES / "openr1.jsonl")
    assert [e.id for e in examples] == ["a1b2c3d4-0001/0", "a1b2c3d4-0002/0", "a1b2c3d4-0002/1"]
    first = examples[0]
    assert first.prompt == "Find $x$ if $2x + 3 = 11$."
    assert first.response.endswith("$x = \\boxed{4}$.")
    assert first.meta["finish_reason"] == "stop" and first.meta["answer"] == "4"
    assert "finish_reason" not in examples[1].meta  # null finish reason in the source row


def test_openr1_mismatched_lists_name_the_field(tmp_path: Path):
    row = json.loads((FIXTURES / "openr1.jsonl").read_text().splitlines()[0])
    row["is_reasoning_complete"] = [True]
    path = tmp_path / "openr1.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(
        DataError, match=r"line 1, field 'is_reasoning_complete': has 1 entries for 3 generations"
    ):
        load_sft_examples("openr1", path)


@pytest.mark.parametrize(
    ("name", "prompts", "responses"),
    [
        ("sft_cs336.jsonl", ["What is 2+3?", "What is 4*6?"], ["$\\boxed{5}$.", "$\\boxed{24}$."]),
        ("sft_trl_messages.jsonl", ["What is 9-4?", "What is 10/2?"], ["$\\boxed{5}$.", "$\\boxed{5}$."]),
        (
            "sft_trl_prompt_completion.jsonl",
            ["What is 3*3?", "What is 8+8?"],
            ["$\\boxed{9}$.", "$\\boxed{16}$."],
        ),
    ],
)
def test_sft_file_forms(name: str, prompts: list[str], responses: list[str]):
    examples = load_sft_examples("sft", FIXTURES / name)
    assert [e.prompt for e in examples] == prompts
    assert all(e.response.endswith(r) for e, r in zip(examples, responses, strict=True))
    assert all(e.messages[-1]["role"] == "assistant" for e in examples)


def test_sft_system_turn_kept_and_round_trip_through_to_dict(tmp_path: Path):
    examples = load_sft_examples("sft", FIXTURES / "sft_trl_messages.jsonl", split="train")
    assert examples[0].messages[0] == {"role": "system", "content": "Solve step by step."}
    assert examples[0].id == "sft/train/0"
    path = tmp_path / "prepared.jsonl"
    path.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in examples))
    again = load_sft_examples("sft", path)
    assert [e.messages for e in again] == [e.messages for e in examples]
    assert [e.id for e in again] == [e.id for e in examples]


def test_sft_row_of_unknown_form_and_bad_turns_are_named(tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    with pytest.raises(
        DataError, match=r"line 1: not an SFT row: expected 'messages'.*row has: answer, question"
    ):
        load_sft_examples("sft", path)
    path.write_text(
        json.dumps({"messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "x"}]})
        + "\n"
    )
    with pytest.raises(DataError, match=r"field 'messages': the last turn must be the assistant's"):
        load_sft_examples("sft", path)


def test_problem_datasets_are_not_sft_and_sft_files_are_not_problems():
    with pytest.raises(MathsftError, match="prompt template"):
        load_sft_examples("gsm8k", FIXTURES / "gsm8k.jsonl")
    with pytest.raises(MathsftError, match="use load_sft_examples"):
        load_problems("sft", FIXTURES / "sft_cs336.jsonl")


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(MathsftError, match=r"unknown dataset 'gsm9k'; known: gsm8k, math500"):
        get_adapter("gsm9k")


def test_unreachable_hub_is_one_clear_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(
        load_module, "_hub_unreachable", lambda: "https://huggingface.co is unreachable (ConnectError)"
    )
    with pytest.raises(MathsftError, match=r"cannot load HuggingFaceH4/MATH-500 \(split test\).*--data-path"):
        load_problems("math500")  # not bundled (GSM8K is: see below)


def test_hub_errors_from_datasets_become_one_clear_error(monkeypatch: pytest.MonkeyPatch):
    import datasets

    def refuse(*args: object, **kwargs: object) -> None:
        raise ConnectionError(
            "Couldn't reach 'HuggingFaceH4/MATH-500' on the Hub (LocalEntryNotFoundError)\nmore"
        )

    monkeypatch.setattr(load_module, "_hub_unreachable", lambda: None)
    monkeypatch.setattr(datasets, "load_dataset", refuse)
    with pytest.raises(
        MathsftError, match=r"MATH-500 \(split test\).*ConnectionError: Couldn't reach.*--data-path"
    ):
        load_problems("math500")


def test_hub_rows_are_converted(monkeypatch: pytest.MonkeyPatch):
    import datasets

    rows = [{"question": "What is 1 + 1?", "answer": "1 + 1 = <<1+1=2>>2\n#### 2"}]
    calls = []

    def fake_load(hub_id: str, config: str, split: str, streaming: bool) -> list[dict[str, str]]:
        calls.append((hub_id, config, split, streaming))
        return rows

    monkeypatch.setattr(load_module, "_hub_unreachable", lambda: None)
    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    problems = load_problems("gsm8k", split="train")
    assert calls == [("openai/gsm8k", "main", "train", False)]
    assert (problems[0].id, problems[0].answer, problems[0].solution) == (
        "gsm8k/train/0",
        "2",
        "1 + 1 = <<1+1=2>>2",
    )


def test_gsm8k_without_hub_or_path_reads_the_copy_bundled_with_mathsft(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    """A fresh machine with no hub and no ../shared still runs the main job on real GSM8K."""
    monkeypatch.setattr(load_module, "_hub_unreachable", lambda: "huggingface.co is unreachable (test)")
    with caplog.at_level("WARNING"):
        bundled = load_problems("gsm8k", split="test")
    assert "reading the copy bundled with mathsft" in caplog.text and "unreachable (test)" in caplog.text
    assert bundled == load_problems("gsm8k", shared_file("gsm8k/test.jsonl"), split="test")  # same problems
    assert len(load_problems("gsm8k", split="train")) == 7473
    licence = get_adapter("gsm8k").packaged_file("main", "test").parent / "LICENSE"
    assert "MIT License" in licence.read_text() and "OpenAI" in licence.read_text()
    with pytest.raises(MathsftError, match=r"socratic.*unreachable"):  # only config main is bundled
        load_problems("gsm8k", split="test", config="socratic")


def test_gzipped_jsonl_errors_name_file_and_line(tmp_path: Path):
    import gzip

    path = tmp_path / "train.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(json.dumps({"question": "Q?", "answer": "1 + 1 = 2\n#### 2"}) + "\n{broken\n")
    with pytest.raises(DataError, match=r"train.jsonl.gz, line 2: not valid JSON"):
        load_problems("gsm8k", path)
    assert len(load_problems("gsm8k", path, skip_bad=True)) == 1


def test_hub_unknown_split_or_config_fail_before_any_download():
    with pytest.raises(DataError, match=r"openai/gsm8k: unknown split 'dev'; known: train, test"):
        load_problems("gsm8k", split="dev")
    with pytest.raises(DataError, match=r"unknown config 'nope'; known: main, socratic"):
        load_problems("gsm8k", config="nope")


def test_streamed_hub_set_needs_a_limit():
    with pytest.raises(MathsftError, match="pass a limit"):
        load_problems("openmathinstruct2")
