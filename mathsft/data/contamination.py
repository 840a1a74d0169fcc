"""Train-vs-eval decontamination check: word n-gram overlap of training problems with eval sets.

A training problem is flagged for an eval set when it shares any ``n``-word window (default 13, as in
the GPT-3 decontamination) with some problem of that set, after folding case and punctuation.
Texts shorter than ``n`` words are compared whole, so short duplicates are still caught.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mathsft.data.sampling import item_text, normalize_text


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """The ``n``-word windows of ``text`` (the whole word sequence when it has fewer than ``n`` words)."""
    words = re.findall(r"\w+", normalize_text(text))
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


@dataclass
class ContaminationReport:
    """Counts per eval set, and a few examples (train id, eval id, the shared words) to look at."""

    n: int
    train_count: int
    eval_counts: dict[str, int]
    contaminated: dict[str, int]
    eval_hits: dict[str, int]
    contaminated_total: int
    examples: list[dict[str, str]] = field(default_factory=list)
    flagged_ids: list[str] = field(default_factory=list)  # the training items that share an n-gram

    @property
    def clean(self) -> bool:
        return self.contaminated_total == 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"clean": self.clean}

    def summary(self) -> str:
        parts = [
            f"{name}: {self.contaminated[name]} train problems overlap {self.eval_hits[name]}/{self.eval_counts[name]} eval problems"
            for name in self.eval_counts
        ]
        return (
            f"{self.contaminated_total}/{self.train_count} training problems share a {self.n}-gram with an eval set"
            + ("" if not parts else " (" + "; ".join(parts) + ")")
        )


def check_contamination(
    train_problems: Sequence[Any],
    eval_problems: Sequence[Any] | Mapping[str, Sequence[Any]],
    n: int = 13,
    max_examples: int = 10,
) -> ContaminationReport:
    """Flag training items (``Problem`` or ``SFTExample`` prompts) that share an ``n``-gram with an eval set.

    ``eval_problems`` is a mapping ``{set name: problems}``, or one list grouped by each problem's ``source``.
    """
    if isinstance(eval_problems, Mapping):
        eval_sets = {name: list(items) for name, items in eval_problems.items()}
    else:
        eval_sets = {}
        for item in eval_problems:
            eval_sets.setdefault(getattr(item, "source", "") or "eval", []).append(item)

    indexes: dict[str, dict[tuple[str, ...], str]] = {}
    for name, items in eval_sets.items():
        index: dict[tuple[str, ...], str] = {}
        for item in items:
            for gram in ngrams(item_text(item), n):
                index.setdefault(gram, item.id)
        indexes[name] = index

    contaminated = dict.fromkeys(eval_sets, 0)
    hit_ids: dict[str, set[str]] = {name: set() for name in eval_sets}
    flagged: list[str] = []
    examples: list[dict[str, str]] = []
    for item in train_problems:
        grams = ngrams(item_text(item), n)
        any_hit = False
        for name, index in indexes.items():
            matches = [(gram, index[gram]) for gram in grams if gram in index]
            if not matches:
                continue
            any_hit = True
            contaminated[name] += 1
            hit_ids[name].update(eval_id for _, eval_id in matches)
            if len(examples) < max_examples:
                gram, eval_id = min(matches)  # deterministic across runs (set order is not)
                examples.append(
                    {"train_id": item.id, "eval_set": name, "eval_id": eval_id, "shared": " ".join(gram)}
                )
        if any_hit:
            flagged.append(item.id)
    return ContaminationReport(
        n=n,
        train_count=len(train_problems),
        eval_counts={name: len(items) for name, items in eval_sets.items()},
        contaminated=contaminated,
        eval_hits={name: len(ids) for name, ids in hit_ids.items()},
        contaminated_total=len(flagged),
        examples=examples,
        flagged_ids=flagged,
    )
