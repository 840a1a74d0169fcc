"""``mathsft report RUN_DIR... --out DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report_command(
    run_dirs: Annotated[
        list[Path], typer.Argument(help="Eval, training, `mathsft run` or `mathsft sweep` directories.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for report.md, report.html and the PNGs.")],
    title: Annotated[str, typer.Option(help="Heading of the report.")] = "mathsft report",
    max_failures: Annotated[int, typer.Option(help="Failures shown per eval run.")] = 20,
) -> None:
    """Write report.md and a self-contained report.html: results with CIs, paired comparisons, curves,
    breakdowns and a browsable sample of failures."""
    from mathsft.reporting.report import write_report  # matplotlib: only when a report is written

    md_path, html_path = write_report(run_dirs, out, title=title, max_failures=max_failures)
    typer.echo(f"report: {html_path}\n        {md_path}")
