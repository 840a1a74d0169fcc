"""``load_problems`` / ``load_sft_examples``: any source, hub or local, to normalized records.

Reading is lazy end to end (JSONL lines, Parquet batches, hub streams), so a streaming source with a
``limit`` reads only the head of its stream: the first ``max(limit, STREAM_POOL)`` rows, from which
the nested, seeded subset is drawn. Bad rows raise a ``DataError`` naming file, line and field, or
with ``skip_bad`` are counted in ``LoadStats`` and reported once at the end, never dropped silently.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mathsft.data.io import Record, data_files, iter_records
from mathsft.data.sampling import subsample
from mathsft.data.schema import Problem, SFTExample
from mathsft.data.sources import Adapter, get_adapter
from mathsft.data.synthetic import synthetic_problems
from mathsft.errors import DataError, MathsftError

log = logging.getLogger("mathsft.data")

STREAM_POOL = 10_000
SYNTHETIC_SIZES = {"train": 2000, "test": 500}


@dataclass
class LoadStats:
    """What a load read: rows seen, rows skipped as bad (with the first few reasons), records kept."""

    rows: int = 0
    skipped: int = 0
    loaded: int = 0
    kept: int = 0
    errors: list[str] = field(default_factory=list)

    def skip(self, error: DataError) -> None:
        self.skipped += 1
        if len(self.errors) < 5:
            self.errors.append(str(error))


def load_problems(
    dataset: str,
    path: str | Path | None = None,
    split: str | None = None,
    config: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    skip_bad: bool = False,
    stats: LoadStats | None = None,
    first: bool = False,
) -> list[Problem]:
    """Problems of ``dataset`` from the hub (``path=None``) or a local file/folder; ``limit`` is nested by
    seed, or (``first``) the first ``limit`` rows in file order."""
    adapter = get_adapter(dataset)
    if not adapter.gives_problems:
        raise MathsftError(f"{adapter.name} holds SFT examples, not problems: use load_sft_examples")
    if adapter.name == "synthetic" and path is None:
        split = split or adapter.default_split
        if split not in SYNTHETIC_SIZES:
            raise DataError(f"synthetic: unknown split {split!r}; known: {', '.join(SYNTHETIC_SIZES)}")
        problems = synthetic_problems(split, limit if limit is not None else SYNTHETIC_SIZES[split], seed)
        if stats is not None:
            stats.rows = stats.loaded = stats.kept = len(problems)
        return problems
    return _load(
        adapter,
        lambda r, s, i: [adapter.problem(r, s, i)],
        path,
        split,
        config,
        limit,
        seed,
        skip_bad,
        stats,
        first,
    )


def load_sft_examples(
    dataset: str,
    path: str | Path | None = None,
    split: str | None = None,
    config: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    skip_bad: bool = False,
    stats: LoadStats | None = None,
    first: bool = False,
) -> list[SFTExample]:
    """Ready SFT examples: ``sft`` files (CS336 / TRL forms) or OpenR1's verified, complete generations."""
    adapter = get_adapter(dataset)
    if not adapter.gives_sft:
        raise MathsftError(
            f"{adapter.name} is a problem dataset: training renders its problems through a prompt template "
            "(load_problems); load_sft_examples reads 'sft' files and 'openr1' generations"
        )
    return _load(adapter, adapter.sft_examples, path, split, config, limit, seed, skip_bad, stats, first)


Convert = Callable[[Record, str, int], list[Any]]


def _load(
    adapter: Adapter,
    convert: Convert,
    path: str | Path | None,
    split: str | None,
    config: str | None,
    limit: int | None,
    seed: int,
    skip_bad: bool,
    stats: LoadStats | None,
    first: bool = False,
) -> list[Any]:
    stats = stats if stats is not None else LoadStats()
    if limit is not None and limit < 0:
        raise MathsftError(f"limit must be >= 0, got {limit}")

    def skip(error: DataError) -> None:
        if not skip_bad:
            raise error
        stats.skip(error)

    def bad_row(error: DataError) -> None:  # a row the reader could not parse at all
        stats.rows += 1
        skip(error)

    if path is None:
        if adapter.requires_limit and limit is None:
            raise MathsftError(
                f"{adapter.hub_id} has millions of rows and is streamed: pass a limit (--limit N)"
            )
        where = f"{adapter.name} from the hub"
        sources = _hub_sources(adapter, config, split or adapter.default_split)
    else:
        where = str(path)
        sources = _local_sources(adapter, Path(path), split, bad_row)

    # a stream is read only as far as needed: the first `limit` rows, or a pool to draw the seeded subset from
    pool = None
    if adapter.streaming and limit is not None:
        pool = limit if first else max(limit, STREAM_POOL)
    items: list[Any] = []
    first_seen: dict[str, str] = {}
    offsets: dict[str, int] = {}
    for label, records in sources:
        last = 0
        for record in records:
            if pool is not None and stats.rows - stats.skipped >= pool:
                break
            stats.rows += 1
            last = record.number
            try:
                produced = convert(record, label, offsets.get(label, 0) + record.number - 1)
                for item in produced:
                    _check_unique(item.id, record, first_seen)
            except DataError as error:
                skip(error)
                continue
            items.extend(produced)
        offsets[label] = offsets.get(label, 0) + last
        if pool is not None and stats.rows - stats.skipped >= pool:
            break

    stats.loaded = len(items)
    if stats.skipped:
        log.warning(
            "%s: skipped %d bad row(s) of %d (--skip-bad); first: %s",
            where,
            stats.skipped,
            stats.rows,
            stats.errors[0],
        )
    if not items:
        reason = f"all {stats.skipped} rows were bad" if stats.skipped else "no rows gave a record"
        raise DataError(f"{where}: nothing loaded for dataset {adapter.name!r} ({reason})")
    items = items[:limit] if first else subsample(items, limit, seed)
    stats.kept = len(items)
    return items


def _check_unique(ident: str, record: Record, first_seen: dict[str, str]) -> None:
    where = f"{record.path}, {record.unit} {record.number}"
    if ident in first_seen:
        raise record.error(None, f"duplicate id {ident!r} (first at {first_seen[ident]})")
    first_seen[ident] = where


def _infer_split(relative: str, splits: tuple[str, ...]) -> str | None:
    for name in sorted(splits, key=len, reverse=True):
        if re.search(rf"(?<![A-Za-z0-9]){re.escape(name)}(?![A-Za-z0-9])", relative, re.IGNORECASE):
            return name
    return None


def _local_sources(
    adapter: Adapter, path: Path, split: str | None, on_bad: Any
) -> Iterator[tuple[str, Iterator[Record]]]:
    """``(split label, records)`` per file: ``split``, else a split the path names, else the source's only
    split, else the file's stem."""
    files = data_files(path, split if path.is_dir() else None)
    for file in files:
        relative = str(file.relative_to(path)) if path.is_dir() else file.name
        only = adapter.splits[0] if len(adapter.splits) == 1 else None
        label = split or _infer_split(relative, adapter.splits) or only or file.stem
        yield label, iter_records(file, on_bad)


def _hub_sources(adapter: Adapter, config: str | None, split: str) -> Iterator[tuple[str, Iterator[Record]]]:
    if adapter.hub_id is None:
        raise MathsftError(
            f"dataset {adapter.name!r} has no hub copy: pass a local file or folder with --data-path"
        )
    named_configs = [c for c in adapter.configs if c is not None]
    config = config or adapter.configs[0]
    if named_configs and config not in named_configs:
        raise DataError(f"{adapter.hub_id}: unknown config {config!r}; known: {', '.join(named_configs)}")
    if split not in adapter.splits:
        raise DataError(f"{adapter.hub_id}: unknown split {split!r}; known: {', '.join(adapter.splits)}")
    yield split, _hub_records(adapter, config, split)


def _read_hub(adapter: Adapter, config: str | None, split: str) -> Iterator[Record]:
    reason = _hub_unreachable()
    if reason:
        raise _hub_failure(adapter, config, split, reason)
    import datasets

    where = f"hf://datasets/{adapter.hub_id}" + (f"[{config}]" if config else "") + f"/{split}"
    try:
        rows = datasets.load_dataset(adapter.hub_id, config, split=split, streaming=adapter.streaming)
        for number, row in enumerate(rows, start=1):
            yield Record(dict(row), where, number, "row")
    except Exception as err:  # datasets/huggingface_hub raise many types (offline, 401, 404, network)
        first_line = (str(err).splitlines() or [""])[0]
        raise _hub_failure(adapter, config, split, f"{type(err).__name__}: {first_line}") from None


class HubError(MathsftError):
    """The hub gave no rows; ``reason`` says why (unreachable, offline without a cache, 404, ...)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _hub_failure(adapter: Adapter, config: str | None, split: str, reason: str) -> HubError:
    what = (
        f"{adapter.hub_id} (config {config}, split {split})"
        if config
        else f"{adapter.hub_id} (split {split})"
    )
    return HubError(
        f"cannot load {what} from the Hugging Face hub: {reason}. To use a local copy, pass --data-path "
        f"FILE_OR_FOLDER (.jsonl, .json or .parquet rows in the {adapter.hub_id} schema; "
        f"path=... in Python); with HF_HUB_OFFLINE=1 a copy in the datasets cache is used",
        reason,
    )


def _hub_unreachable(timeout_s: float = 5.0) -> str | None:
    """Why the hub cannot be reached (None when it can, or when offline mode uses the local cache)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0") or os.environ.get(
        "HF_DATASETS_OFFLINE", "0"
    ) not in ("", "0"):
        return None
    import httpx

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    try:
        httpx.head(endpoint, timeout=timeout_s)
    except httpx.HTTPError as err:
        return f"{endpoint} is unreachable ({type(err).__name__}: {err})"
    return None


def _hub_records(adapter: Adapter, config: str | None, split: str) -> Iterator[Record]:
    """The hub's rows; when the hub gives none (unreachable, offline without a cached copy) and mathsft
    bundles the dataset, the bundled copy's rows, with a warning that says so."""
    rows = _read_hub(adapter, config, split)
    try:
        first = next(rows, None)
    except HubError as err:
        packaged = adapter.packaged_file(config, split)
        if packaged is None:
            raise
        log.warning(
            "%s from the hub: %s; reading the copy bundled with mathsft (%s)",
            adapter.hub_id,
            err.reason,
            packaged,
        )
        yield from iter_records(packaged)
        return
    if first is not None:
        yield first
        yield from rows
