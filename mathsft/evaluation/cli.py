"""``mathsft eval`` and ``mathsft compare``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mathsft.config import build_config
from mathsft.evaluation.compare import compare_dirs, format_comparison
from mathsft.evaluation.config import EvalConfig
from mathsft.evaluation.prompts import TEMPLATES
from mathsft.evaluation.run import run_eval


def eval_command(
    overrides: Annotated[list[str] | None, typer.Argument(help="Dotted overrides, e.g. top_p=0.95")] = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML file (an eval config, or an experiment's eval:)")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="smollm2-135m, a hub id, a local HF dir or a .gguf")
    ] = None,
    dataset: Annotated[str | None, typer.Option(help="gsm8k, math500, math, synthetic, ...")] = None,
    data_path: Annotated[str | None, typer.Option(help="Local .jsonl/.json/.parquet file or folder")] = None,
    split: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[
        int | None, typer.Option(help="The first N problems (subset=seeded for a seeded subset)")
    ] = None,
    out: Annotated[str | None, typer.Option(help="Output folder (rerunning resumes)")] = None,
    backend: Annotated[str | None, typer.Option(help="hf, vllm or openai")] = None,
    prompt: Annotated[
        str | None,
        typer.Option(help=f"Template: {', '.join(TEMPLATES)}, or a .yaml"),
    ] = None,
    samples: Annotated[int | None, typer.Option(help="Completions per problem (pass@k, maj@k)")] = None,
    temperature: Annotated[float | None, typer.Option()] = None,
    max_new_tokens: Annotated[int | None, typer.Option()] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Evaluate a model: pass@1 / pass@k / maj@k with bootstrap CIs; writes results.jsonl and summary.json."""
    given = {
        "model": model,
        "dataset": dataset,
        "data_path": data_path,
        "split": split,
        "limit": limit,
        "out": out,
        "backend": backend,
        "prompt": prompt,
        "samples": samples,
        "temperature": temperature,
        "max_new_tokens": max_new_tokens,
        "batch_size": batch_size,
    }
    flags = [f"{k}={json.dumps(v)}" for k, v in given.items() if v is not None]
    section = "eval" if config is not None and "eval" in _top_keys(config) else None
    cfg = build_config(EvalConfig, config, [*(overrides or []), *flags], section=section)
    run_eval(cfg)


def _top_keys(path: Path) -> set[str]:
    from mathsft.config import read_yaml

    return set(read_yaml(path))


def compare_command(
    run_a: Annotated[Path, typer.Argument(help="Eval directory A (e.g. the baseline)")],
    run_b: Annotated[Path, typer.Argument(help="Eval directory B")],
    resamples: Annotated[int, typer.Option(help="Paired bootstrap resamples")] = 10000,
    seed: Annotated[int, typer.Option()] = 0,
    out: Annotated[Path | None, typer.Option(help="Also write the comparison as JSON here")] = None,
    common: Annotated[
        bool, typer.Option(help="Pair on the problems both evaluated (e.g. a subset vs the full test)")
    ] = False,
) -> None:
    """Paired comparison of two evals on the same problems: difference, paired bootstrap CI, McNemar p."""
    result = compare_dirs(run_a, run_b, resamples, seed, common)
    typer.echo(format_comparison(result))
    if out is not None:
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
