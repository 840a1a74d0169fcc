"""The toy task RL learns in a few steps: answer "7" (with ``conftest.save_toy_model``)."""

from __future__ import annotations

import json
from pathlib import Path

from mathsft.data.schema import Problem

ANSWER = "7"


def toy_problems(n: int, split: str = "train") -> list[Problem]:
    return [Problem(f"toy/{split}/{i}", f"What is {i} + {7 - i}?", ANSWER) for i in range(n)]


def write_gsm8k_file(path: Path, problems: list[Problem]) -> Path:
    """Problems in GSM8K's own format (``question``, ``answer`` ending in ``#### <gold>``)."""
    rows = [{"question": p.problem, "answer": f"{p.problem}\n#### {p.answer}"} for p in problems]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
