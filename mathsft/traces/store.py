"""The durable sample log: ``samples.jsonl``, one graded completion per line, never rewritten.

A row counts only once it is on disk: ``append`` writes whole lines, flushes and ``fsync``s before
returning. A kill can leave at most a partial last line (no trailing newline); ``open`` cuts it off
and says so. Resume keys rows by ``(problem_id, sample_index)``: a key already present is never
requested again, so the log holds each sample once.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from mathsft.data.io import cut_partial_last_line
from mathsft.errors import DataError

log = logging.getLogger("mathsft.traces")

REQUIRED_FIELDS = ("problem_id", "sample_index", "response", "finish_reason", "correct")


class SampleLog:
    """Append-only JSONL of sample rows with crash-safe resume."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rows: dict[tuple[str, int], dict[str, Any]] = {}
        self.dropped_partial_bytes = 0
        self._file: IO[bytes] | None = None

    def open(self) -> SampleLog:
        """Read what is there (cutting a partial last line) and open for appending."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._recover()
        self._file = self.path.open("ab")
        return self

    def _recover(self) -> None:
        # a kill mid-write: the tail never counted, so dropping it loses nothing that was reported
        self.dropped_partial_bytes = cut_partial_last_line(self.path)
        if self.dropped_partial_bytes:
            log.warning(
                "%s: dropping a partial last line (%d bytes) left by an interrupted run",
                self.path,
                self.dropped_partial_bytes,
            )
        for number, raw in enumerate(self.path.read_bytes().splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise DataError.at(
                    self.path, number, None, f"not a JSON object ({err}); fix or remove the line"
                ) from None
            if not isinstance(row, dict):
                raise DataError.at(self.path, number, None, "not a JSON object")
            for name in REQUIRED_FIELDS:
                if name not in row:
                    raise DataError.at(self.path, number, name, "missing required field")
            key = (str(row["problem_id"]), int(row["sample_index"]))
            if key in self.rows:
                raise DataError.at(
                    self.path, number, "sample_index", f"sample {key} appears twice; the log was edited"
                )
            self.rows[key] = row

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        """Write ``rows`` durably (one write, flush, fsync); a key already logged is an error, not a duplicate."""
        if self._file is None:
            raise RuntimeError("SampleLog.append before open()")
        batch = list(rows)
        for row in batch:
            key = (str(row["problem_id"]), int(row["sample_index"]))
            if key in self.rows:
                raise RuntimeError(f"sample {key} is already in {self.path}")
        payload = b"".join(json.dumps(row, ensure_ascii=False).encode() + b"\n" for row in batch)
        self._file.write(payload)
        self._file.flush()
        os.fsync(self._file.fileno())
        for row in batch:
            self.rows[(str(row["problem_id"]), int(row["sample_index"]))] = row

    def rewrite(self) -> None:
        """Replace the file with ``self.rows`` (e.g. after regrading), atomically: a kill keeps the old file."""
        if self._file is not None:
            raise RuntimeError("SampleLog.rewrite while open for appending")
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("wb") as f:
            for row in self.rows.values():
                f.write(json.dumps(row, ensure_ascii=False).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> SampleLog:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
