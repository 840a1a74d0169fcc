"""``mathsft run`` (the main job) and ``mathsft sweep``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from mathsft.errors import MathsftError
from mathsft.experiments.config import MAIN_JOB, ExperimentConfig, load_experiment

if TYPE_CHECKING:
    from mathsft.reporting.suites import SuiteMatrix

console = Console(soft_wrap=True)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="Experiment YAML (e.g. configs/recipes/X.yaml).")
]
DataOpt = Annotated[
    str | None, typer.Option("--data", help="Dataset for train and test (gsm8k, math, synthetic, ...).")
]
DataPathOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-path",
        help="Local folder holding the dataset's train and test files (e.g. ../shared/data/gsm8k).",
    ),
]
ModelOpt = Annotated[str | None, typer.Option("--model", help="Model spec (alias, HF dir, hub id, .gguf).")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Output folder (default runs/<name>).")]
Overrides = Annotated[
    list[str] | None, typer.Argument(help="Dotted overrides, e.g. train.lr=2e-5 data.test.limit=100")
]


def build(
    config: Path | None,
    data: str | None,
    data_path: Path | None,
    model: str | None,
    out: Path | None,
    overrides: list[str] | None,
    default: dict | None = None,
) -> ExperimentConfig:
    """``default`` (when no file is given) < file < command-line options < dotted overrides."""
    items: list[str] = []
    if data is not None:
        items += [f"data.train.dataset={data}", f"data.test.dataset={data}"]
    if data_path is not None:
        if not data_path.is_dir():
            raise MathsftError(
                f"--data-path {data_path} must be a folder holding the train and test splits (e.g. "
                "../shared/data/gsm8k); for separate files set data.train.path=... data.test.path=..."
            )
        items += [f"data.train.path={data_path}", f"data.test.path={data_path}"]
    if model is not None:
        items.append(f"model={model}")
    if out is not None:
        items.append(f"out={out}")
    return load_experiment(config, items + list(overrides or []), base=None if config else default)


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def _pct_ci(summary: dict) -> tuple[str, str]:
    lo, hi = summary["ci95"]
    return f"{100 * summary['accuracy']:.1f}%", f"[{100 * lo:.1f}, {100 * hi:.1f}]"


def run_command(
    overrides: Overrides = None,
    config: ConfigOpt = None,
    data: DataOpt = None,
    data_path: DataPathOpt = None,
    model: ModelOpt = None,
    out: OutOpt = None,
) -> None:
    """The main job: data → baseline eval → SFT → eval (→ RL → eval, with rl:) → paired comparisons →
    report (resumable).

    With no arguments (configs/run.yaml): the bundled SmolLM2-135M, SFT on as many real GSM8K training problems
    as this machine fits in the job's time budget, with the calculator tool, eval on 300-500 GSM8K test
    problems; offline (bundled GSM8K copy), on CPU."""
    from mathsft.experiments.run import STAGES, run_experiment

    _setup_logging()
    cfg = build(config, data, data_path, model, out, overrides, default=MAIN_JOB)
    result = run_experiment(cfg, console=console)
    table = Table(title=f"{cfg.name}: held-out test set ({result.final['n']} problems)")
    for column in ("model", "accuracy", "95% CI", "format rate"):
        table.add_column(column)
    for stage, summary in result.stages.items():
        acc, ci = _pct_ci(summary)
        table.add_row(STAGES[stage], acc, ci, f"{100 * summary.get('format_rate', 0):.1f}%")
    console.print(table)
    for c in result.comparisons:
        a, b = STAGES[c.a], STAGES[c.b]
        console.print(
            f"paired: {b} − {a} = {100 * c.diff:+.1f} pp, 95% CI [{100 * c.ci95[0]:+.1f}, {100 * c.ci95[1]:+.1f}] "
            f"(paired bootstrap), McNemar p = {c.p_value:.2g}; solved only by {a}: {c.a_only}, only by {b}: {c.b_only}"
        )
    if result.suites is not None:
        print_suites(result.suites, STAGES)
    console.print(f"elapsed {result.elapsed_s / 60:.1f} min · outputs {result.out}")
    console.print(f"report: {result.report}")


def print_suites(matrix: SuiteMatrix, labels: dict[str, str]) -> None:
    """Every stage on every suite, then each significant drop between stages (a regression)."""
    from mathsft.reporting.suites import matrix_table, significant_drop

    headers, rows = matrix_table(matrix, labels)
    table = Table(title="every stage on every suite (95% CI)")
    for column in headers:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for suite, c in matrix.comparisons:
        flag = "REGRESSION " if significant_drop(c) else ""
        console.print(
            f"{flag}{suite}: {labels.get(c.b, c.b)} − {labels.get(c.a, c.a)} = {100 * c.diff:+.1f} pp, "
            f"95% CI [{100 * c.ci95[0]:+.1f}, {100 * c.ci95[1]:+.1f}], McNemar p = {c.p_value:.2g}"
        )
    for note in matrix.notes:
        console.print(note)


def sweep_command(
    overrides: Overrides = None,
    config: ConfigOpt = None,
    data: DataOpt = None,
    data_path: DataPathOpt = None,
    model: ModelOpt = None,
    out: OutOpt = None,
) -> None:
    """SFT at several dataset sizes (nested subsets) plus an optional filtered arm; accuracy curves,
    a table and every run's directory. Finished arms are not redone."""
    from mathsft.experiments.sweep import run_sweep

    _setup_logging()
    cfg = build(config, data, data_path, model, out, overrides)
    result = run_sweep(cfg)
    table = Table(title=f"{cfg.name}: final test accuracy by training-set size")
    for column in ("arm", "train examples", "steps", "accuracy", "95% CI", "n"):
        table.add_column(column)
    for arm in result.table:
        acc, ci = _pct_ci(arm)
        table.add_row(arm["name"], str(arm["size"]), str(arm["steps"]), acc, ci, str(arm["n"]))
    console.print(table)
    console.print(f"curves: {result.out / 'val-accuracy.png'}, {result.out / 'accuracy-vs-size.png'}")
    console.print(f"report: {result.report}")
