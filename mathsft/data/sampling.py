"""Deterministic subsets: nested subsampling, a held-out validation split, dedupe.

Items are ranked by a hash of ``(seed, id)`` rather than by a shuffled position, so a subset depends
only on which items exist, and for one seed every smaller subset is a prefix of every larger one
(the 128-subset is the first 128 of the 256-subset): dataset-size sweeps compare nested data.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from typing import Any, TypeVar

from mathsft.errors import MathsftError

T = TypeVar("T")


def _rank(items: Sequence[Any], seed: int, salt: str) -> list[int]:
    """Indices of ``items`` ordered by ``sha256(salt:seed:id)`` (index when an item has no id)."""

    def key(i: int) -> tuple[bytes, int]:
        ident = getattr(items[i], "id", i)
        return hashlib.sha256(f"{salt}:{seed}:{ident}".encode()).digest(), i

    return sorted(range(len(items)), key=key)


def subsample(items: Sequence[T], limit: int | None, seed: int = 0) -> list[T]:
    """``limit`` items chosen by seed, nested across limits; all items (in order) when ``limit`` is None."""
    if limit is None:
        return list(items)
    if limit < 0:
        raise MathsftError(f"limit must be >= 0, got {limit}")
    return [items[i] for i in _rank(items, seed, "subsample")[:limit]]


def split_validation(items: Sequence[T], n_val: int, seed: int = 0) -> tuple[list[T], list[T]]:
    """Carve ``n_val`` held-out items from ``items``: ``(train, val)``, both in their original order."""
    if not 0 < n_val < len(items):
        raise MathsftError(
            f"cannot hold out {n_val} validation items from {len(items)}: need 0 < n_val < {len(items)}"
        )
    held = set(_rank(items, seed, "validation")[:n_val])
    train = [item for i, item in enumerate(items) if i not in held]
    val = [item for i, item in enumerate(items) if i in held]
    return train, val


def normalize_text(text: str) -> str:
    """Case, Unicode form and whitespace folded; symbols kept (``x^2+1`` and ``x^2-1`` differ)."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).lower()).strip()


def item_text(item: Any) -> str:
    """The problem text of a ``Problem``, or the prompt of an ``SFTExample``."""
    return item.problem if hasattr(item, "problem") else item.prompt


def dedupe(problems: Sequence[T]) -> list[T]:
    """Keep the first item of each normalized problem text (``Problem`` or ``SFTExample`` prompt)."""
    seen: set[str] = set()
    kept = []
    for item in problems:
        key = normalize_text(item_text(item))
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept
