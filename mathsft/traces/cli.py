"""``mathsft traces``: teacher traces from a server or an in-process model, resumable."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from mathsft.config import build_config, deep_merge, read_yaml
from mathsft.traces.config import TracesConfig
from mathsft.traces.run import run_traces

console = Console(soft_wrap=True, stderr=True)


def traces_command(
    overrides: Annotated[
        list[str] | None, typer.Argument(help="Dotted config overrides, e.g. extra_body.seed=1 keep=first")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML file of TracesConfig keys.")] = None,
    base_url: Annotated[
        list[str] | None,
        typer.Option(
            help="OpenAI-compatible server, http://HOST:PORT/v1; repeat to share work over several."
        ),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Served model name, or a model spec for hf/vllm.")] = None,
    backend: Annotated[
        str | None, typer.Option(help="openai, hf or vllm (default: openai with --base-url).")
    ] = None,
    endpoint: Annotated[str | None, typer.Option(help="chat or completions (openai).")] = None,
    n_mode: Annotated[str | None, typer.Option(help="n (one request, n=k) or seeds (k requests).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Data-layer adapter: gsm8k, math500, math, ...")] = None,
    data_path: Annotated[str | None, typer.Option(help="Local .jsonl/.json/.parquet file or folder.")] = None,
    split: Annotated[
        str | None, typer.Option(help="Split (default: from the file name; on the hub the adapter default).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="A seeded subset of N problems.")] = None,
    prompt: Annotated[
        str | None, typer.Option(help="Prompt template name (mathsft.evaluation.prompts).")
    ] = None,
    samples: Annotated[int | None, typer.Option(help="k completions per problem.")] = None,
    temperature: Annotated[float | None, typer.Option()] = None,
    top_p: Annotated[float | None, typer.Option()] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Max new tokens per completion.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Requests in flight at once (openai).")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds per HTTP attempt (openai).")] = None,
    max_retries: Annotated[int | None, typer.Option(help="Retries per request (openai).")] = None,
    reward_threshold: Annotated[
        float | None, typer.Option(help="Accept samples with reward >= this.")
    ] = None,
    keep: Annotated[
        str | None, typer.Option(help="all, first or shortest correct trace per problem.")
    ] = None,
    max_per_problem: Annotated[int | None, typer.Option(help="Cap on accepted traces per problem.")] = None,
    min_pass_rate: Annotated[
        float | None, typer.Option(help="Drop problems whose pass rate is below.")
    ] = None,
    max_pass_rate: Annotated[
        float | None, typer.Option(help="Drop problems whose pass rate is above.")
    ] = None,
    think: Annotated[str | None, typer.Option(help="keep or strip R1 <think> reasoning.")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    out: Annotated[str | None, typer.Option(help="Output folder (rerun the same command to resume).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every retry.")] = False,
) -> None:
    """Sample k traces per problem from a teacher, grade them, log every one durably, select SFT data."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    flags: dict[str, Any] = {
        name: value
        for name, value in {
            "base_url": base_url[0] if base_url and len(base_url) == 1 else base_url,
            "model": model,
            "backend": backend,
            "endpoint": endpoint,
            "n_mode": n_mode,
            "dataset": dataset,
            "data_path": data_path,
            "split": split,
            "limit": limit,
            "prompt": prompt,
            "samples": samples,
            "temperature": temperature,
            "top_p": top_p,
            "max_tokens": max_tokens,
            "concurrency": concurrency,
            "timeout": timeout,
            "max_retries": max_retries,
            "reward_threshold": reward_threshold,
            "keep": keep,
            "max_per_problem": max_per_problem,
            "min_pass_rate": min_pass_rate,
            "max_pass_rate": max_pass_rate,
            "think": think,
            "seed": seed,
            "out": out,
        }.items()
        if value is not None
    }
    # defaults < --config file < flags < dotted overrides
    base = deep_merge(read_yaml(config) if config else {}, flags)
    cfg = build_config(TracesConfig, None, overrides, base=base)

    with Progress(
        TextColumn("traces"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("samples", total=None)
        stats = run_traces(cfg, progress=lambda done, total: bar.update(task, completed=done, total=total))
    console.print(Text(summary_line(stats, cfg)))


def summary_line(stats: dict[str, Any], cfg: TracesConfig) -> str:
    acc = stats["acceptance"]
    failures = (stats.get("requests") or {}).get("failures") or {}
    failed = ", ".join(f"{k}={v}" for k, v in failures.items() if v) or "none"
    return (
        f"teacher={cfg.model} problems={stats['problems']} k={cfg.samples} samples={stats['samples']} "
        f"missing={stats['missing_samples']} correct={acc['correct_rate']:.3f} truncated={acc['truncated']} "
        f"accepted={acc['accepted']} ({acc['acceptance_rate']:.3f}) "
        f"samples/s={stats['this_run']['samples_per_s']} "
        f"retries={(stats.get('requests') or {}).get('retries', 0)} failures: {failed}\n"
        f"wrote {Path(cfg.out or '.') / 'sft.jsonl'}, problems.jsonl "
        f"({acc['problems_kept']} problems in the pass-rate range) and stats.json "
        f"(contamination: {json.dumps(stats['contamination'].get('contaminated_total', stats['contamination']))})"
    )
