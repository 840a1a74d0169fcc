"""`mathsft grade FILE.jsonl`: annotated rows, accuracy and format rate, clear errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mathsft.cli import app
from mathsft.errors import DataError, MathsftError

runner = CliRunner()


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_grade_command_annotates_rows(tmp_path: Path):
    rows = [
        {"id": "a", "out": r"so \boxed{\frac{1}{2}}", "gold": "0.5"},
        {"id": "b", "out": "The answer is 7.", "gold": 8},
        {"id": "c", "out": "no idea", "gold": r"\frac{1}{3}"},
    ]
    src = _write(tmp_path / "in.jsonl", [json.dumps(r) for r in rows])
    out = tmp_path / "out.jsonl"
    args = ["grade", str(src), "--response-field", "out", "--gold-field", "gold", "--out", str(out)]
    result = runner.invoke(app, [*args, "--workers", "2"])
    assert result.exit_code == 0, (result.output, result.exception)
    graded = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["id"] for g in graded] == ["a", "b", "c"]
    assert [g["correct"] for g in graded] == [True, False, False]
    assert [g["extracted"] for g in graded] == [r"\frac{1}{2}", "7", None]
    assert all(g["reason"] and g["profile"] == "lenient" for g in graded)
    assert "accuracy    0.3333 (1/3)" in result.output
    assert "format rate 0.6667 (2/3)" in result.output


def test_bad_line_names_file_and_line(tmp_path: Path):
    src = _write(tmp_path / "in.jsonl", ['{"response": "\\\\boxed{1}", "answer": "1"}', "{not json"])
    result = runner.invoke(app, ["grade", str(src), "--out", str(tmp_path / "o.jsonl")])
    assert isinstance(result.exception, DataError)
    assert "in.jsonl, line 2" in str(result.exception)
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize(
    ("row", "field"),
    [({"response": "1"}, "answer"), ({"response": ["1"], "answer": "1"}, "response")],
)
def test_missing_or_wrong_field_is_named(tmp_path: Path, row: dict, field: str):
    src = _write(tmp_path / "in.jsonl", [json.dumps(row)])
    result = runner.invoke(app, ["grade", str(src), "--out", str(tmp_path / "o.jsonl")])
    assert isinstance(result.exception, DataError)
    assert f"line 1, field '{field}'" in str(result.exception)


def test_bad_profile_is_a_clear_error(tmp_path: Path):
    src = _write(tmp_path / "in.jsonl", [json.dumps({"response": "1", "answer": "1"})])
    result = runner.invoke(app, ["grade", str(src), "--out", str(tmp_path / "o"), "--profile", "loose"])
    assert isinstance(result.exception, MathsftError) and "--profile" in str(result.exception)
