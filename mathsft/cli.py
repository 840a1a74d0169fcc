"""The ``mathsft`` command. Each stage contributes its subcommands; ``python -m mathsft`` is the same."""

from __future__ import annotations

import sys

import typer

from mathsft import __version__
from mathsft.config import ConfigError
from mathsft.errors import MathsftError

app = typer.Typer(
    name="mathsft",
    help="Supervised fine-tuning for math: data, traces, train, eval, report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


# Stage commands (one line each; a command is registered only once it really works).
from mathsft.data.cli import data_app  # noqa: E402

app.add_typer(data_app, name="data")


def main() -> None:
    """Run the app, turning user-facing errors into one clear line and exit code 2."""
    try:
        app()
    except (MathsftError, ConfigError) as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        sys.exit(2)
