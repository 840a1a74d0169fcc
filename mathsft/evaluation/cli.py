"""``mathsft eval`` and ``mathsft compare``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mathsft.config import build_config
from mathsft.errors import MathsftError
from mathsft.evaluation.compare import compare_dirs, format_comparison
from mathsft.evaluation.config import EvalConfig
from mathsft.evaluation.prompts import TEMPLATES
from mathsft.evaluation.run import run_eval
from mathsft.evaluation.suites import run_suites


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
    suite: Annotated[
        list[str] | None,
        typer.Option(
            help="A benchmark NAME=PATH (adapter NAME, e.g. gsm8k=../shared/data/gsm8k/test.jsonl) or "
            "NAME=lm_eval:TASK; repeat for several. Each goes to OUT/NAME/, the table to OUT/suites.json"
        ),
    ] = None,
    include_path: Annotated[
        str | None, typer.Option(help="Folder of local lm-eval task YAMLs, for the lm_eval:TASK suites")
    ] = None,
) -> None:
    """Evaluate a model: pass@1 / pass@k / maj@k with bootstrap CIs; writes results.jsonl and summary.json
    (with --suite or suites: in the config, one such folder per benchmark and suites.json)."""
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
    items = [*(overrides or []), *flags]
    cfg = build_config(EvalConfig, config, items, section=section)
    if suite:  # after the config's own suites
        added = dict(parse_suite(spec, include_path) for spec in suite)
        cfg = build_config(EvalConfig, config, [*items, f"suites={json.dumps(added)}"], section=section)
    if not cfg.suites:
        run_eval(cfg)
        return
    rows = run_suites(cfg, cfg.out_dir())
    for row in rows:
        spread = "95% CI [{:.3f}, {:.3f}]".format(*row["ci95"]) if row["ci95"] else "(no CI)"
        typer.echo(f"{row['name']}: n={row['n']} {row['metric']}={row['accuracy']:.4f} {spread}")
    typer.echo(f"suites: {Path(cfg.out_dir()) / 'suites.json'}")


def parse_suite(spec: str, include_path: str | None) -> tuple[str, dict[str, str | None]]:
    """``NAME=PATH`` (a problem benchmark read by the NAME adapter) or ``NAME=lm_eval:TASK``."""
    name, sep, target = spec.partition("=")
    if not sep or not name or not target:
        raise MathsftError(f"--suite {spec!r}: expected NAME=PATH or NAME=lm_eval:TASK")
    if target.startswith("lm_eval:"):
        return name, {"task": target.removeprefix("lm_eval:"), "include_path": include_path}
    return name, {"data_path": target}


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
