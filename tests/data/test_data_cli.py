"""`mathsft data prepare | show | check-contamination` on fixtures and on the real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import shared_file
from typer.testing import CliRunner

from mathsft.cli import app
from mathsft.data import load_problems, load_sft_examples, read_jsonl

FIXTURES = Path(__file__).parent / "fixtures"
runner = CliRunner()


def _run(*args: str | Path) -> str:
    result = runner.invoke(app, ["data", *map(str, args)])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


@pytest.mark.parametrize(
    ("dataset", "fixture", "count"),
    [
        ("gsm8k", "gsm8k.jsonl", 3),
        ("math500", "math500.jsonl", 2),
        ("math", "hendrycks_math.jsonl", 3),
        ("deepscaler", "deepscaler.json", 2),
        ("openr1", "openr1.jsonl", 2),
    ],
)
def test_prepare_problem_adapters_write_normalized_jsonl(
    tmp_path: Path, dataset: str, fixture: str, count: int
):
    out = tmp_path / "out.jsonl"
    output = _run("prepare", "--dataset", dataset, "--data-path", FIXTURES / fixture, "--out", out)
    assert f"loaded {count} problems; wrote {count} to {out}" in output
    assert load_problems("problems", out) == load_problems(dataset, FIXTURES / fixture)


@pytest.mark.parametrize(
    "fixture", ["sft_cs336.jsonl", "sft_trl_messages.jsonl", "sft_trl_prompt_completion.jsonl"]
)
def test_prepare_sft_files_write_sft_examples(tmp_path: Path, fixture: str):
    out = tmp_path / "sft.jsonl"
    assert "loaded 2 SFT examples" in _run(
        "prepare", "--dataset", "sft", "--data-path", FIXTURES / fixture, "--out", out
    )
    rows = read_jsonl(out)
    assert set(rows[0]) == {"id", "messages", "prompt", "response", "source", "meta"}
    assert load_sft_examples("sft", out) == load_sft_examples("sft", FIXTURES / fixture)


def test_prepare_openr1_generations_and_parquet_output(tmp_path: Path):
    out = tmp_path / "r1.parquet"
    output = _run(
        "prepare", "--dataset", "openr1", "--sft", "--data-path", FIXTURES / "openr1.jsonl", "--out", out
    )
    assert "loaded 3 SFT examples" in output and "(parquet)" in output
    assert [e.id for e in load_sft_examples("sft", out)] == [
        "a1b2c3d4-0001/0",
        "a1b2c3d4-0002/0",
        "a1b2c3d4-0002/1",
    ]


def test_prepare_openmathinstruct2_parquet_with_limit(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {
            "problem": f"What is {i} * 2?",
            "generated_solution": f"$\\boxed{{{2 * i}}}$",
            "expected_answer": str(2 * i),
            "problem_source": "math",
        }
        for i in range(50)
    ]
    source = tmp_path / "omi2.parquet"
    pq.write_table(pa.Table.from_pylist(rows), source)
    out = tmp_path / "omi2.jsonl"
    output = _run(
        "prepare",
        "--dataset",
        "openmathinstruct2",
        "--data-path",
        source,
        "--split",
        "train",
        "--limit",
        "8",
        "--out",
        out,
    )
    assert "subset of 8 (limit 8, seed 0)" in output
    assert len(read_jsonl(out)) == 8


def test_prepare_synthetic_dedupe_and_skip_bad(tmp_path: Path):
    out = tmp_path / "syn.jsonl"
    assert "wrote 40 to" in _run(
        "prepare", "--dataset", "synthetic", "--split", "train", "--limit", "40", "--out", out
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        (FIXTURES / "gsm8k.jsonl").read_text()
        + "{oops\n"
        + (FIXTURES / "gsm8k.jsonl").read_text().splitlines()[0]
        + "\n"
    )
    output = _run("prepare", "--dataset", "gsm8k", "--data-path", bad, "--skip-bad", "--dedupe", "--out", out)
    assert "skipped 1 bad row(s)" in output and f"{bad}, line 4: not valid JSON" in output
    assert "read 5 rows, skipped 1, loaded 4 problems, 1 duplicates dropped; wrote 3" in output


def test_bad_input_exits_2_with_one_line_and_no_traceback(tmp_path: Path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q"}\n')
    cmd = [
        sys.executable,
        "-m",
        "mathsft",
        "data",
        "prepare",
        "--dataset",
        "gsm8k",
        "--data-path",
        str(bad),
        "--out",
        str(tmp_path / "o.jsonl"),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert f"error: {bad}, line 1, field 'answer': missing required field" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "o.jsonl").exists()


def test_show_guesses_prepared_files(tmp_path: Path):
    out = tmp_path / "p.jsonl"
    _run("prepare", "--dataset", "math", "--data-path", FIXTURES / "hendrycks_math.jsonl", "--out", out)
    output = _run("show", "--data-path", out, "-n", "2")
    assert (
        "vertical asymptotes" in output
        and "answer: 2\\sqrt{2}" in output
        and "2 of 3 records shown" in output
    )
    sft = _run("show", "--dataset", "sft", "--data-path", FIXTURES / "sft_trl_messages.jsonl", "-n", "1")
    assert "system: Solve step by step." in sft and "assistant: 9-4=5." in sft


def test_check_contamination_writes_report(tmp_path: Path):
    train = tmp_path / "train.jsonl"
    train.write_text((FIXTURES / "gsm8k.jsonl").read_text())
    report = tmp_path / "report.json"
    output = _run(
        "check-contamination", "--train-dataset", "gsm8k", "--train-path", train,
        "--eval-dataset", "gsm8k", "--eval-path", FIXTURES / "gsm8k.jsonl",
        "--eval-dataset", "math500", "--eval-path", FIXTURES / "math500.jsonl", "--out", report,
    )  # fmt: skip
    assert "3/3 training problems share a 13-gram" in output
    data = json.loads(report.read_text())
    assert data["contaminated"] == {"gsm8k": 3, "math500": 0} and data["clean"] is False


def test_prepare_real_gsm8k_and_math500(tmp_path: Path):
    gsm8k, math500 = shared_file("gsm8k/test.jsonl"), shared_file("math500/test.jsonl")
    out = tmp_path / "g.jsonl"
    assert "loaded 1319 problems; wrote 1319" in _run(
        "prepare", "--dataset", "gsm8k", "--data-path", gsm8k, "--out", out
    )
    first = read_jsonl(out)[0]
    assert (first["id"], first["answer"], first["meta"]) == ("gsm8k/test/0", "18", {"split": "test"})
    rows, raw = read_jsonl(out), gsm8k.read_text(encoding="utf-8")
    assert sum(row["solution"].count("<<") for row in rows) == raw.count("<<")  # annotations kept
    assert not any("####" in row["solution"] for row in rows)
    out = tmp_path / "m.parquet"
    assert "loaded 500 problems; wrote 500" in _run(
        "prepare", "--dataset", "math500", "--data-path", math500, "--out", out
    )
    problems = load_problems("problems", out)
    assert problems[0].id == "test/precalculus/807.json" and problems[0].meta["level"] == 2
    assert sum(p.meta["subject"] == "Algebra" for p in problems) > 50
