"""``mathsft data prepare | show | check-contamination``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.panel import Panel
from rich.text import Text

import mathsft
from mathsft.data.contamination import check_contamination
from mathsft.data.io import data_files, iter_records, write_jsonl, write_parquet
from mathsft.data.load import LoadStats, load_problems, load_sft_examples
from mathsft.data.sampling import dedupe
from mathsft.data.schema import Problem
from mathsft.data.sources import get_adapter
from mathsft.errors import MathsftError

data_app = typer.Typer(help="Prepare, inspect and decontaminate datasets.", no_args_is_help=True)
console = Console(soft_wrap=True)

DATASET_HELP = (
    "gsm8k, math500, math, openmathinstruct2, deepscaler, openr1, sft, synthetic, problems (a prepared file)"
)
DATA_PATH_HELP = (
    "Local .jsonl/.json/.parquet file or folder in the source's schema; without it the hub copy is used."
)


def _load(
    dataset: str,
    path: Path | None,
    split: str | None,
    config: str | None,
    limit: int | None,
    seed: int,
    skip_bad: bool,
    sft: bool,
    stats: LoadStats,
) -> list[Any]:
    loader = load_sft_examples if sft or get_adapter(dataset).name == "sft" else load_problems
    return loader(
        dataset, path, split=split, config=config, limit=limit, seed=seed, skip_bad=skip_bad, stats=stats
    )


def _print_skips(stats: LoadStats) -> None:
    if stats.skipped:
        console.print(f"[yellow]skipped {stats.skipped} bad row(s) (--skip-bad); first ones:[/yellow]")
        for message in stats.errors:
            console.print(Text(f"  {message}"))


@data_app.command()
def prepare(
    dataset: Annotated[str, typer.Option(help=DATASET_HELP)],
    out: Annotated[Path, typer.Option(help="Output file: .jsonl, or .parquet (or use --format).")],
    data_path: Annotated[Path | None, typer.Option(help=DATA_PATH_HELP)] = None,
    split: Annotated[
        str | None, typer.Option(help="Split (hub split; in a folder, the files naming it).")
    ] = None,
    config: Annotated[str | None, typer.Option(help="Hub config (e.g. gsm8k 'main').")] = None,
    limit: Annotated[
        int | None, typer.Option(help="Keep a seeded subset of N records (nested across N).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the subset (and of the synthetic generator).")] = 0,
    skip_bad: Annotated[
        bool, typer.Option(help="Skip and count bad rows instead of stopping at the first.")
    ] = False,
    sft: Annotated[
        bool, typer.Option(help="openr1: write its verified generations as SFT examples.")
    ] = False,
    dedupe_text: Annotated[
        bool, typer.Option("--dedupe", help="Drop repeated problems (normalized text).")
    ] = False,
    fmt: Annotated[
        str | None, typer.Option("--format", help="jsonl or parquet (default: from --out's suffix).")
    ] = None,
) -> None:
    """Load a dataset through its adapter and write normalized records (Problem or SFTExample rows)."""
    fmt = fmt or ("parquet" if out.suffix.lower() == ".parquet" else "jsonl")
    if fmt not in ("jsonl", "parquet"):
        raise MathsftError(f"--format must be jsonl or parquet, got {fmt!r}")
    stats = LoadStats()
    records = _load(dataset, data_path, split, config, limit, seed, skip_bad, sft, stats)
    duplicates = 0
    if dedupe_text:
        kept = dedupe(records)
        duplicates, records = len(records) - len(kept), kept
    written = (write_parquet if fmt == "parquet" else write_jsonl)(out, records)
    kind = "problems" if records and isinstance(records[0], Problem) else "SFT examples"
    _print_skips(stats)
    line = f"{dataset}: read {stats.rows} rows, skipped {stats.skipped}, loaded {stats.loaded} {kind}"
    if limit is not None:
        line += f", subset of {stats.kept} (limit {limit}, seed {seed})"
    if dedupe_text:
        line += f", {duplicates} duplicates dropped"
    console.print(Text(f"{line}; wrote {written} to {out} ({fmt})"))
    splits = Counter(str(r.meta.get("split", "")) for r in records)
    if len(splits) > 1:
        console.print(Text("by split: " + ", ".join(f"{k or '-'}={v}" for k, v in sorted(splits.items()))))


def _guess_dataset(path: Path) -> str:
    """``sft`` or ``problems`` from the first row of a prepared file (for ``show`` without --dataset)."""
    first = next(iter_records(data_files(path)[0]))
    if "messages" in first.data or "response" in first.data or "completion" in first.data:
        return "sft"
    if {"id", "problem", "answer"} <= set(first.data):
        return "problems"
    raise MathsftError(f"{path}: cannot tell the dataset from its first row; pass --dataset ({DATASET_HELP})")


def _panel(record: Any, width: int) -> Panel:
    def clip(text: str) -> str:
        return text if len(text) <= width else text[:width] + f" … [{len(text) - width} more chars]"

    if isinstance(record, Problem):
        parts = [
            Text("problem: ", style="bold") + Text(clip(record.problem)),
            Text("answer: ", style="bold green") + Text(record.answer),
        ]
        if record.solution:
            parts.append(Text("solution: ", style="bold") + Text(clip(record.solution), style="dim"))
    else:
        parts = [Text(f"{m['role']}: ", style="bold") + Text(clip(m["content"])) for m in record.messages]
    meta = json.dumps(record.meta, ensure_ascii=False)
    return Panel(
        Group(*parts), title=Text(record.id), subtitle=Text(f"{record.source} {meta}"), title_align="left"
    )


@data_app.command()
def show(
    data_path: Annotated[Path | None, typer.Option(help=DATA_PATH_HELP)] = None,
    dataset: Annotated[
        str | None, typer.Option(help=DATASET_HELP + " (default: guessed from a prepared file)")
    ] = None,
    n: Annotated[int, typer.Option("-n", "--num", help="How many records to print.")] = 3,
    split: Annotated[str | None, typer.Option()] = None,
    config: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[
        int | None, typer.Option(help="Draw a seeded subset first (needed for streamed hub sets).")
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
    skip_bad: Annotated[bool, typer.Option()] = False,
    sft: Annotated[bool, typer.Option(help="openr1: show its verified generations as SFT examples.")] = False,
    width: Annotated[int, typer.Option(help="Clip long texts to this many characters.")] = 600,
) -> None:
    """Print the first few records of a dataset (or a prepared file) as normalized records."""
    if dataset is None:
        if data_path is None:
            raise MathsftError("pass --data-path FILE and/or --dataset NAME")
        dataset = _guess_dataset(data_path)
    stats = LoadStats()
    records = _load(dataset, data_path, split, config, limit, seed, skip_bad, sft, stats)
    for record in records[:n]:
        console.print(_panel(record, width))
    _print_skips(stats)
    console.print(Text(f"{min(n, len(records))} of {len(records)} records shown"))


def shared_data_dir() -> Path | None:
    """``../shared/data`` beside the checkout (or beside the current folder), when present."""
    for base in (Path(mathsft.__file__).resolve().parents[1], Path.cwd().resolve()):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def _default_eval_sets() -> list[tuple[str, Path | None]]:
    shared = shared_data_dir()
    sets: list[tuple[str, Path | None]] = []
    for name, relative in (("math500", "math500/test.jsonl"), ("gsm8k", "gsm8k/test.jsonl")):
        path = shared / relative if shared else None
        sets.append((name, path if path and path.is_file() else None))
    return sets


@data_app.command("check-contamination")
def check_contamination_cmd(
    train_dataset: Annotated[str, typer.Option(help=DATASET_HELP)],
    train_path: Annotated[Path | None, typer.Option(help=DATA_PATH_HELP)] = None,
    train_split: Annotated[str | None, typer.Option()] = None,
    train_config: Annotated[str | None, typer.Option()] = None,
    train_sft: Annotated[
        bool, typer.Option(help="Check SFT examples' prompts (openr1 generations).")
    ] = False,
    eval_dataset: Annotated[
        list[str] | None, typer.Option(help="Eval set (repeat); default: math500 and gsm8k test.")
    ] = None,
    eval_path: Annotated[
        list[Path] | None, typer.Option(help="Path of each --eval-dataset, in order (repeat).")
    ] = None,
    eval_split: Annotated[str, typer.Option()] = "test",
    n: Annotated[int, typer.Option("-n", help="n-gram length in words.")] = 13,
    examples: Annotated[int, typer.Option(help="How many overlapping pairs to print.")] = 5,
    skip_bad: Annotated[bool, typer.Option()] = False,
    out: Annotated[Path | None, typer.Option(help="Write the full report as JSON.")] = None,
) -> None:
    """n-gram overlap of training problems with eval sets: counts per set and example pairs."""
    eval_dataset, eval_path = eval_dataset or [], eval_path or []
    if len(eval_path) > len(eval_dataset):
        raise MathsftError("each --eval-path needs its --eval-dataset (given in the same order)")
    sets = [(name, eval_path[i] if i < len(eval_path) else None) for i, name in enumerate(eval_dataset)]
    sets = sets or _default_eval_sets()
    train = _load(
        train_dataset, train_path, train_split, train_config, None, 0, skip_bad, train_sft, LoadStats()
    )
    eval_sets = {
        name if sum(s == name for s, _ in sets) == 1 else f"{name}:{path}": load_problems(
            name, path, split=None if path else eval_split, skip_bad=skip_bad
        )
        for name, path in sets
    }
    report = check_contamination(train, eval_sets, n=n, max_examples=max(examples, 10))
    console.print(Text(report.summary()))
    for example in report.examples[:examples]:
        console.print(
            Text(
                f'  {example["train_id"]} ~ {example["eval_set"]} {example["eval_id"]}: "{example["shared"]}"'
            )
        )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        console.print(Text(f"report written to {out}"))
