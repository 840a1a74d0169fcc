"""Bad input: every problem is a clear error naming file, line and field, or a counted --skip-bad skip."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mathsft.data import (
    LoadStats,
    Problem,
    SFTExample,
    load_problems,
    load_sft_examples,
    read_jsonl,
    write_jsonl,
)
from mathsft.data.io import cut_partial_last_line, write_parquet
from mathsft.errors import DataError

GOOD = {"question": "What is 2 + 2?", "answer": "2 + 2 = <<2+2=4>>4\n#### 4"}


def _jsonl(path: Path, lines: list[str | bytes]) -> Path:
    path.write_bytes(b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines))
    return path


def test_malformed_json_line_names_file_and_line(tmp_path: Path):
    path = _jsonl(tmp_path / "g.jsonl", [json.dumps(GOOD), '{"question": "broken', json.dumps(GOOD)])
    with pytest.raises(DataError, match=rf"^{path}, line 2: not valid JSON"):
        load_problems("gsm8k", path)


def test_missing_and_mistyped_fields_are_named(tmp_path: Path):
    path = _jsonl(tmp_path / "g.jsonl", [json.dumps(GOOD), json.dumps({"question": "q"})])
    with pytest.raises(DataError, match=rf"^{path}, line 2, field 'answer': missing required field"):
        load_problems("gsm8k", path)
    path = _jsonl(tmp_path / "g.jsonl", [json.dumps({"question": 7, "answer": "#### 7"})])
    with pytest.raises(DataError, match=r"line 1, field 'question': expected a string, got int"):
        load_problems("gsm8k", path)
    path = _jsonl(tmp_path / "g.jsonl", [json.dumps({"question": "q", "answer": "no final line"})])
    with pytest.raises(DataError, match=r"line 1, field 'answer': has no '#### <final answer>' line"):
        load_problems("gsm8k", path)
    row = {
        "problem": "p",
        "solution": "s",
        "answer": "1",
        "subject": "Algebra",
        "level": "2",
        "unique_id": "u",
    }
    path = _jsonl(tmp_path / "m.jsonl", [json.dumps(row)])
    with pytest.raises(DataError, match=r"line 1, field 'level': expected an integer, got str '2'"):
        load_problems("math500", path)


def test_empty_file_and_blank_only_file(tmp_path: Path):
    for content in (b"", b"\n  \n"):
        path = tmp_path / "empty.jsonl"
        path.write_bytes(content)
        with pytest.raises(DataError, match=rf"^{path}: file is empty"):
            load_problems("gsm8k", path)


def test_undecodable_bytes_name_the_line(tmp_path: Path):
    path = _jsonl(tmp_path / "g.jsonl", [json.dumps(GOOD), b'{"question": "caf\xe9", "answer": "#### 1"}'])
    with pytest.raises(DataError, match=r"line 2: not UTF-8 text \(bad byte at column 18\)"):
        load_problems("gsm8k", path)


def test_non_object_rows_and_unsupported_files(tmp_path: Path):
    path = _jsonl(tmp_path / "g.jsonl", ["[1, 2]"])
    with pytest.raises(DataError, match="line 1: expected a JSON object, got list"):
        load_problems("gsm8k", path)
    path = tmp_path / "g.json"
    path.write_text(json.dumps([GOOD, "oops"]))
    with pytest.raises(DataError, match="item 2: expected an object, got str"):
        load_problems("gsm8k", path)
    path = tmp_path / "g.csv"
    path.write_text("question,answer\n")
    with pytest.raises(DataError, match="unsupported file type"):
        load_problems("gsm8k", path)
    with pytest.raises(DataError, match="no such file or folder"):
        load_problems("gsm8k", tmp_path / "missing.jsonl")


def test_skip_bad_counts_every_kind_of_bad_row_and_reports_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    lines = [
        json.dumps(GOOD),
        "{not json",
        b"\xff\xfe",
        json.dumps({"question": "q"}),
        "[]",
        json.dumps(GOOD),
    ]
    path = _jsonl(tmp_path / "g.jsonl", lines)
    stats = LoadStats()
    with caplog.at_level(logging.WARNING, logger="mathsft.data"):
        problems = load_problems("gsm8k", path, skip_bad=True, stats=stats)
    assert [p.id for p in problems] == ["gsm8k/g/0", "gsm8k/g/5"]  # ids follow lines, so they stay stable
    assert (stats.rows, stats.skipped, stats.loaded) == (6, 4, 2)
    assert "line 2" in stats.errors[0] and "line 3" in stats.errors[1] and "field 'answer'" in stats.errors[2]
    assert "skipped 4 bad row(s) of 6 (--skip-bad)" in caplog.text


def test_skip_bad_with_nothing_left_is_an_error(tmp_path: Path):
    path = _jsonl(tmp_path / "g.jsonl", ["{bad", "{worse"])
    with pytest.raises(DataError, match="nothing loaded for dataset 'gsm8k' \\(all 2 rows were bad\\)"):
        load_problems("gsm8k", path, skip_bad=True)


def test_duplicate_ids_are_errors(tmp_path: Path):
    row = {
        "problem": "p",
        "solution": "",
        "answer": "1",
        "subject": "Algebra",
        "level": 1,
        "unique_id": "u/1",
    }
    path = _jsonl(tmp_path / "m.jsonl", [json.dumps(row), json.dumps(row)])
    with pytest.raises(DataError, match=rf"line 2: duplicate id 'u/1' \(first at {path}, line 1\)"):
        load_problems("math500", path)


def test_json_lines_named_json_are_read_as_lines(tmp_path: Path):
    path = tmp_path / "g.json"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(GOOD) + "\n")
    assert len(load_problems("gsm8k", path)) == 2


def test_parquet_rows_are_numbered_and_unreadable_files_named(tmp_path: Path):
    path = tmp_path / "g.parquet"
    pq.write_table(pa.Table.from_pylist([GOOD, {"question": "q", "answer": None}]), path)
    with pytest.raises(DataError, match=rf"^{path}, row 2, field 'answer': missing required field"):
        load_problems("gsm8k", path)
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        load_problems("gsm8k", path)


def test_folder_with_split_picks_its_files(tmp_path: Path):
    _jsonl(tmp_path / "train.jsonl", [json.dumps(GOOD)] * 3)
    _jsonl(tmp_path / "test.jsonl", [json.dumps(GOOD)] * 2)
    assert [p.id for p in load_problems("gsm8k", tmp_path, split="test")] == ["gsm8k/test/0", "gsm8k/test/1"]
    both = load_problems("gsm8k", tmp_path)
    assert sorted(p.id for p in both) == [
        "gsm8k/test/0",
        "gsm8k/test/1",
        "gsm8k/train/0",
        "gsm8k/train/1",
        "gsm8k/train/2",
    ]
    with pytest.raises(DataError, match="unknown split 'validation'"):
        load_problems("gsm8k", tmp_path, split="validation")


def test_round_trip_jsonl_and_parquet(tmp_path: Path):
    problems = [Problem("a", "What is 1+1?", "2", "1+1=2", "x", {"split": "test", "level": 1})]
    examples = [
        SFTExample("e", [{"role": "user", "content": "q"}, {"role": "assistant", "content": "r"}], "sft")
    ]
    assert write_jsonl(tmp_path / "p.jsonl", problems) == 1
    assert read_jsonl(tmp_path / "p.jsonl") == [problems[0].to_dict()]
    assert load_problems("problems", tmp_path / "p.jsonl") == problems
    write_parquet(tmp_path / "p.parquet", problems)
    assert load_problems("problems", tmp_path / "p.parquet") == problems
    write_parquet(tmp_path / "e.parquet", examples)
    assert load_sft_examples("sft", tmp_path / "e.parquet") == examples


def test_read_jsonl_raises_with_line(tmp_path: Path):
    path = _jsonl(tmp_path / "r.jsonl", ['{"a": 1}', "nope"])
    with pytest.raises(DataError, match="line 2"):
        read_jsonl(path)


@pytest.mark.parametrize(
    "content",
    [b"", b"a\n", b"a\nbc", b"no newline at all", b'{"id": 1}\n' * 20 + b'{"id": 2, "cut', b"x" * 40],
)
def test_a_half_written_last_line_is_cut_and_whole_lines_stay(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "log.jsonl"
    whole = content[: content.rfind(b"\n") + 1]
    for chunk in (4, 1 << 16):  # the tail is scanned backwards in chunks: across their borders too
        path.write_bytes(content)
        assert cut_partial_last_line(path, chunk=chunk) == len(content) - len(whole)
        assert path.read_bytes() == whole
