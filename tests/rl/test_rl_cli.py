"""`mathsft rl` on the command line: bad input is one clear line (exit code 2), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import save_toy_model
from typer.testing import CliRunner

from mathsft.errors import MathsftError
from mathsft.rl import RLConfig
from mathsft.rl.loop import rl


def test_bad_input_is_one_clear_line(smollm2_dir: Path, tmp_path: Path) -> None:
    from mathsft.cli import app

    model = save_toy_model(tmp_path / "model", smollm2_dir)

    def error(*args: str) -> str:
        result = CliRunner().invoke(app, ["rl", "--out", str(tmp_path / "x"), *args])
        assert result.exit_code != 0
        return str(result.exception)

    assert "group_size must be at least 2" in error("--group-size", "1")
    assert "loss_type: Input should be 'grpo', 'dapo' or 'dr_grpo'" in error("loss_type=ppo")
    assert "nonsense_key: unknown key" in error("nonsense_key=1")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert "empty" in error("--model", str(model), "--data-path", str(empty))
    with pytest.raises(MathsftError, match="no problems to train on"):
        rl(RLConfig(model=str(model), out=str(tmp_path / "y")), problems=[])


def test_the_command_exits_2_with_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "mathsft", "rl", "--out", str(tmp_path), "--group-size", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("error: invalid config") and "Traceback" not in done.stderr
