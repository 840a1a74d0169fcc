"""The ``mathsft`` command: one app, ``python -m mathsft`` is the same, user errors are one line + exit 2."""

from __future__ import annotations

import subprocess
import sys

from mathsft import __version__


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mathsft", *args], capture_output=True, text=True, timeout=120
    )


def test_python_m_mathsft_lists_the_stage_commands() -> None:
    result = _run("--help")
    assert result.returncode == 0
    for command in ("data", "eval", "compare"):
        assert command in result.stdout
    assert _run("--version").stdout.strip() == __version__


def test_bad_input_is_one_clear_line_and_exit_2(tmp_path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "1+1?", "answer": "#### 2"}\n{"question": 3}\n')
    result = _run(
        "data", "prepare", "--dataset", "gsm8k", "--data-path", str(bad), "--out", str(tmp_path / "o.jsonl")
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "bad.jsonl, line 2" in result.stderr


def test_bad_override_names_the_key(tmp_path) -> None:
    result = _run("eval", "--out", str(tmp_path / "e"), "max_new_token=5")
    assert result.returncode == 2
    assert "max_new_token" in result.stderr and "unknown key" in result.stderr
