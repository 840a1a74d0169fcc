"""User-facing errors: the CLI prints their message and exits 2, never a traceback."""

from __future__ import annotations


class MathsftError(Exception):
    """Base of every error caused by the user's input, files or environment."""


class DataError(MathsftError):
    """Bad input data. Build with ``DataError.at(path, line, field, msg)`` so users can find it."""

    @classmethod
    def at(cls, path: object, line: int | None, field: str | None, message: str) -> DataError:
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if field:
            where += f", field {field!r}"
        return cls(f"{where}: {message}")


class ModelError(MathsftError):
    """A model spec that cannot be resolved or loaded."""
