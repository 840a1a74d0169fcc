"""Line-accurate readers and writers for ``.jsonl`` (also gzipped), ``.json`` and ``.parquet`` files or folders.

Every record remembers where it came from (file and line, or Parquet row), so a bad field can be
reported as ``train.jsonl, line 812, field 'answer': ...`` instead of a traceback. Row-level problems
(a malformed line, undecodable bytes, a row that is not an object) go to ``on_bad`` when given, so a
``--skip-bad`` run counts them; file-level problems (missing, empty, unreadable) always raise.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mathsft.errors import DataError

DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".jsonl.gz")
PARQUET_BATCH_ROWS = 1024

OnBad = Callable[[DataError], None] | None


@dataclass(frozen=True)
class Record:
    """One raw row plus its location: ``unit`` is ``line`` (JSONL), ``item`` (JSON array), ``row``."""

    data: dict[str, Any]
    path: str
    number: int
    unit: str = "line"

    def error(self, field: str | None, message: str) -> DataError:
        if self.unit == "line":
            return DataError.at(self.path, self.number, field, message)
        where = f"{self.path}, {self.unit} {self.number}"
        if field:
            where += f", field {field!r}"
        return DataError(f"{where}: {message}")

    def text(self, field: str, *, allow_empty: bool = False, allow_number: bool = False) -> str:
        """A required string field (``allow_number`` accepts ints/floats and turns them into text)."""
        if field not in self.data or self.data[field] is None:
            raise self.error(field, f"missing required field (row has: {', '.join(sorted(self.data))})")
        value = self.data[field]
        if allow_number and isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise self.error(field, f"expected a string, got {type(value).__name__}")
        if not allow_empty and not value.strip():
            raise self.error(field, "is empty")
        return value

    def optional_text(self, field: str) -> str:
        """A string field that may be absent or null (then ``""``)."""
        if self.data.get(field) is None:
            return ""
        return self.text(field, allow_empty=True)

    def meta(self, field: str = "meta") -> dict[str, Any]:
        """A free-form object field: a JSON object, JSON text of one (Parquet), or absent."""
        value = self.data.get(field)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise self.error(field, "is text but not JSON") from None
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(field, f"expected an object, got {type(value).__name__}")
        return value

    def integer(self, field: str) -> int:
        value = self.data.get(field)
        if value is None:
            raise self.error(field, "missing required field")
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(field, f"expected an integer, got {type(value).__name__} {value!r}")
        return value

    def list_of(self, field: str, kinds: tuple[type, ...]) -> list[Any]:
        value = self.data.get(field)
        if value is None:
            raise self.error(field, "missing required field")
        if not isinstance(value, list):
            raise self.error(field, f"expected a list, got {type(value).__name__}")
        for i, item in enumerate(value):
            if item is not None and not isinstance(item, kinds):
                names = "/".join(k.__name__ for k in kinds)
                raise self.error(field, f"item {i} should be {names}, got {type(item).__name__}")
        return value


def _report(error: DataError, on_bad: OnBad) -> None:
    if on_bad is None:
        raise error
    on_bad(error)


def data_suffix(path: Path) -> str:
    """``.jsonl.gz`` for a gzipped JSONL file, else the file's own suffix (lower case)."""
    return ".jsonl.gz" if path.name.lower().endswith(".jsonl.gz") else path.suffix.lower()


def data_files(path: str | Path, split: str | None = None) -> list[Path]:
    """The data files of ``path``: the file itself, or a folder's files (recursively, sorted).

    In a folder, ``split`` keeps the files whose relative path names that split as a whole word
    (``train-00000-of-00002.parquet``, ``test/algebra/1.json``, ``gsm8k/test.jsonl``).
    """
    path = Path(path)
    if path.is_file():
        if data_suffix(path) not in DATA_SUFFIXES:
            raise DataError.at(
                path, None, None, f"unsupported file type; use one of {', '.join(DATA_SUFFIXES)}"
            )
        return [path]
    if not path.exists():
        raise DataError.at(path, None, None, "no such file or folder")
    files = sorted(p for p in path.rglob("*") if p.is_file() and data_suffix(p) in DATA_SUFFIXES)
    if not files:
        raise DataError.at(path, None, None, f"folder has no {', '.join(DATA_SUFFIXES)} files")
    if split is None:
        return files
    word = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(split)}(?![A-Za-z0-9_])", re.IGNORECASE)
    chosen = [p for p in files if word.search(str(p.relative_to(path)))]
    if not chosen:
        names = ", ".join(str(p.relative_to(path)) for p in files[:8])
        raise DataError.at(path, None, None, f"unknown split {split!r}: no file names it (files: {names})")
    return chosen


def iter_records(path: str | Path, on_bad: OnBad = None) -> Iterator[Record]:
    """Yield the object rows of one data file, by suffix; bad rows go to ``on_bad`` (or raise)."""
    path = Path(path)
    suffix = data_suffix(path)
    if suffix == ".parquet":
        yield from _iter_parquet(path, on_bad)
    elif suffix == ".json":
        yield from _iter_json(path, on_bad)
    elif suffix == ".jsonl.gz":
        with gzip.open(path, "rb") as lines:
            yield from _parse_lines(path, lines, on_bad)
    else:
        yield from _iter_jsonl(path, on_bad)


def _iter_jsonl(path: Path, on_bad: OnBad, data: bytes | None = None) -> Iterator[Record]:
    if data is not None:
        yield from _parse_lines(path, data.splitlines(keepends=True), on_bad)
        return
    with path.open("rb") as lines:
        yield from _parse_lines(path, lines, on_bad)


def _parse_lines(path: Path, lines: Iterable[bytes], on_bad: OnBad) -> Iterator[Record]:
    seen = 0
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as err:
            _report(
                DataError.at(path, number, None, f"not UTF-8 text (bad byte at column {err.start + 1})"),
                on_bad,
            )
            seen += 1
            continue
        if not line.strip():
            continue
        seen += 1
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            _report(
                DataError.at(path, number, None, f"not valid JSON ({err.msg} at column {err.colno})"), on_bad
            )
            continue
        if not isinstance(row, dict):
            _report(
                DataError.at(path, number, None, f"expected a JSON object, got {type(row).__name__}"), on_bad
            )
            continue
        yield Record(row, str(path), number, "line")
    if not seen:
        raise DataError.at(path, None, None, "file is empty: no records")


def _iter_json(path: Path, on_bad: OnBad) -> Iterator[Record]:
    """A JSON array of objects, one object (a raw MATH problem file), or JSON lines named ``.json``."""
    data = path.read_bytes()
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as err:
        raise DataError.at(path, None, None, f"not UTF-8 text (bad byte at offset {err.start})") from None
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # several documents: JSON lines (what `datasets` to_json writes)
            yield from _iter_jsonl(path, on_bad, data)
            return
        raise DataError.at(
            path, err.lineno, None, f"not valid JSON ({err.msg} at column {err.colno})"
        ) from None
    if isinstance(doc, dict):
        yield Record(doc, str(path), 1, "line")
        return
    if not isinstance(doc, list):
        raise DataError.at(path, None, None, f"expected a JSON array or object, got {type(doc).__name__}")
    if not doc:
        raise DataError.at(path, None, None, "file is empty: no records")
    for number, row in enumerate(doc, start=1):
        if not isinstance(row, dict):
            err = Record({}, str(path), number, "item").error(
                None, f"expected an object, got {type(row).__name__}"
            )
            _report(err, on_bad)
            continue
        yield Record(row, str(path), number, "item")


def _iter_parquet(path: Path, on_bad: OnBad) -> Iterator[Record]:
    """Batch-wise, so a multi-GB shard never sits in memory whole."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        reader = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError.at(path, None, None, f"not a readable Parquet file ({err})") from None
    if reader.metadata.num_rows == 0:
        raise DataError.at(path, None, None, "file is empty: no records")
    number = 0
    try:
        for batch in reader.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for row in batch.to_pylist():
                number += 1
                yield Record(row, str(path), number, "row")
    except pa.ArrowException as err:
        raise DataError.at(path, None, None, f"Parquet read failed after row {number} ({err})") from None


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All object rows of a JSONL file; any bad line raises a ``DataError`` naming it."""
    return [record.data for record in _iter_jsonl(Path(path), None)]


def cut_partial_last_line(path: Path, chunk: int = 1 << 16) -> int:
    """Truncate a last line that a kill left without its newline (append-only logs write whole lines,
    newline last, so that tail was never reported); returns how many bytes went (0: none). Reads only the
    file's tail, so resuming a large log costs no extra pass over it."""
    with path.open("r+b") as f:
        size = f.seek(0, os.SEEK_END)
        end = size
        while end > 0:  # scan back for the last newline
            start = max(0, end - chunk)
            f.seek(start)
            newline = f.read(end - start).rfind(b"\n")
            if newline >= 0:
                end = start + newline + 1
                break
            end = start
        if end == size:
            return 0
        f.truncate(end)
        f.flush()
        os.fsync(f.fileno())
    return size - end


def _plain(record: Any) -> dict[str, Any]:
    return record.to_dict() if hasattr(record, "to_dict") else dict(record)


def write_jsonl(path: str | Path, records: Iterable[Any]) -> int:
    """Write records (``Problem``/``SFTExample`` or dicts) as JSONL, atomically; returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for record in records:
                out.write(json.dumps(_plain(record), ensure_ascii=False) + "\n")
                count += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def write_parquet(path: str | Path, records: Iterable[Any]) -> int:
    """Write records as one Parquet file (``messages`` a list column, ``meta`` JSON text)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [_plain(record) for record in records]
    for row in rows:  # free-form meta as JSON text: its keys and types vary from row to row
        if isinstance(row.get("meta"), dict):
            row["meta"] = json.dumps(row["meta"], ensure_ascii=False)
    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise DataError.at(
            path, None, None, f"records do not fit one Parquet schema ({err}); write JSONL"
        ) from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return len(rows)
