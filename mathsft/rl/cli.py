"""``mathsft rl``: GRPO from the command line; rerunning the same command resumes."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from mathsft.config import build_stage_config
from mathsft.rl.config import RLConfig

CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


def rl_command(
    ctx: typer.Context,
    model: Annotated[
        str | None, typer.Option(help="Model spec: smollm2-135m, an HF dir (an SFT checkpoint), a hub id.")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Problem dataset: gsm8k, math500, math, synthetic, ...")
    ] = None,
    data_path: Annotated[str | None, typer.Option(help="Local file or folder of the problems.")] = None,
    out: Annotated[str | None, typer.Option(help="Run directory (default runs/rl).")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Rollout steps.")] = None,
    group_size: Annotated[int | None, typer.Option(help="Samples per problem (G >= 2).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Problems per step.")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Longest sample in tokens.")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML of RLConfig keys (or an rl: section).")
    ] = None,
) -> None:
    """GRPO with the grader as reward. Other RLConfig keys as dotted overrides, e.g. loss_type=dr_grpo."""
    flags = {
        "model": model,
        "dataset": dataset,
        "data_path": data_path,
        "out": out,
        "max_steps": max_steps,
        "group_size": group_size,
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "lr": lr,
        "seed": seed,
    }
    cfg = build_stage_config(RLConfig, config, list(ctx.args), flags, "rl")
    from mathsft.rl.loop import rl

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run = rl(cfg)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line for the run, not one per rank
        typer.echo(f"trained: {run / 'checkpoints' / 'final'}")
