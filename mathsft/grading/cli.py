"""``mathsft grade``: grade a JSONL file of responses against gold answers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mathsft.data.io import iter_records, write_jsonl
from mathsft.errors import MathsftError
from mathsft.grading.equivalence import PROFILES
from mathsft.grading.extract import STYLES
from mathsft.grading.grade import grade_many


def grade_command(
    file: Annotated[Path, typer.Argument(help="JSONL file with one response and its gold per line.")],
    out: Annotated[Path, typer.Option("--out", help="Output JSONL: each row plus extracted/correct/reason.")],
    response_field: Annotated[str, typer.Option("--response-field", help="Field holding the response.")] = (
        "response"
    ),
    gold_field: Annotated[
        str, typer.Option("--gold-field", help="Field holding the gold answer.")
    ] = "answer",
    profile: Annotated[str, typer.Option("--profile", help="strict or lenient.")] = "lenient",
    style: Annotated[
        str, typer.Option("--style", help="auto, gsm8k or math (last-number fallback).")
    ] = "auto",
    workers: Annotated[int, typer.Option("--workers", min=1, help="Grading processes.")] = 1,
) -> None:
    """Add ``extracted``, ``correct`` and ``reason`` to every row; print accuracy and format rate."""
    if profile not in PROFILES:
        raise MathsftError(f"--profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    if style not in STYLES:
        raise MathsftError(f"--style must be one of {', '.join(STYLES)}, got {style!r}")
    if not file.is_file():
        raise MathsftError(f"{file}: no such file")
    rows, pairs = [], []
    for record in iter_records(file):  # a bad line raises a DataError naming file and line
        response = record.text(response_field, allow_empty=True)
        gold = record.text(gold_field, allow_number=True)
        rows.append(record.data)
        pairs.append((response, gold))
    grades = grade_many(pairs, workers=workers, profile=profile, style=style)
    for row, result in zip(rows, grades, strict=True):
        row.update(extracted=result.extracted, correct=result.correct, reason=result.reason, profile=profile)
    write_jsonl(out, rows)
    n = len(grades)
    correct = sum(g.correct for g in grades)
    formatted = sum(g.extracted is not None for g in grades)
    typer.echo(f"graded {n} rows -> {out}")
    typer.echo(f"accuracy    {correct / n:.4f} ({correct}/{n})")
    typer.echo(f"format rate {formatted / n:.4f} ({formatted}/{n})")
