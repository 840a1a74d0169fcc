"""The ``mathsft`` command. Each stage contributes its subcommands; ``python -m mathsft`` is the same."""

from __future__ import annotations

import sys

import typer

from mathsft import __version__
from mathsft.config import ConfigError
from mathsft.data.cli import data_app
from mathsft.errors import MathsftError
from mathsft.evaluation.cli import compare_command, eval_command
from mathsft.experiments.cli import run_command, sweep_command
from mathsft.grading.cli import grade_command
from mathsft.reporting.cli import report_command
from mathsft.rl.cli import CONTEXT as RL_CONTEXT
from mathsft.rl.cli import rl_command
from mathsft.traces.cli import traces_command
from mathsft.training.cli import CONTEXT as TRAIN_CONTEXT
from mathsft.training.cli import train_command

app = typer.Typer(
    name="mathsft",
    help="Supervised fine-tuning and RL for math: data, traces, train, rl, eval, report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Supervised fine-tuning and RL for math: data, traces, train, rl, eval, report."""


# Stage commands, in pipeline order.
app.add_typer(data_app, name="data")
app.command("grade")(grade_command)
app.command("eval")(eval_command)
app.command("compare")(compare_command)
app.command("train", context_settings=TRAIN_CONTEXT)(train_command)
app.command("rl", context_settings=RL_CONTEXT)(rl_command)
app.command("traces")(traces_command)
app.command("run")(run_command)
app.command("sweep")(sweep_command)
app.command("report")(report_command)


def main() -> None:
    """Run the app, turning user-facing errors into one clear line and exit code 2."""
    try:
        app()
    except (MathsftError, ConfigError) as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        sys.exit(2)
