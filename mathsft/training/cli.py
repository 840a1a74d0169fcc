"""``mathsft train``: SFT from the command line; rerunning the same command resumes."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from mathsft.config import build_stage_config
from mathsft.training.config import TrainConfig

CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


def train_command(
    ctx: typer.Context,
    model: Annotated[
        str | None, typer.Option(help="Model spec: smollm2-135m, an HF dir, a .gguf, a hub id.")
    ] = None,
    data: Annotated[
        str | None, typer.Option(help="SFT file ({prompt, response} / {messages}) or problems.")
    ] = None,
    out: Annotated[str | None, typer.Option(help="Run directory (default runs/train).")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Optimizer steps (overrides epochs).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Examples per optimizer step.")] = None,
    max_length: Annotated[int | None, typer.Option(help="Longest example in tokens.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML of TrainConfig keys (or a train: section).")
    ] = None,
) -> None:
    """Supervised fine-tuning. Other TrainConfig keys as dotted overrides, e.g. dtype=bf16 schedule=linear."""
    flags = {
        "model": model,
        "data": data,
        "out": out,
        "max_steps": max_steps,
        "batch_size": batch_size,
        "max_length": max_length,
        "lr": lr,
        "seed": seed,
    }
    cfg = build_stage_config(TrainConfig, config, list(ctx.args), flags, "train")
    from mathsft.training.loop import train

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run = train(cfg)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line for the run, not one per rank
        typer.echo(f"trained: {run / 'checkpoints' / 'final'}")
