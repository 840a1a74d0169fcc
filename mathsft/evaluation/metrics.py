"""Pure metrics and statistics: pass@k, majority voting, bootstrap CIs, paired comparison, McNemar.

Everything here is a function of plain lists, so each formula is tested against hand-computed cases.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al., 2021): 1 - C(n-c, k) / C(n, k), for n samples of which c are correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    # the product form avoids huge binomials
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def ks_for(samples: int) -> list[int]:
    """The k values reported for ``samples`` per problem: powers of two up to it, and ``samples`` itself."""
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128, 256) if k <= samples]
    return ks if samples in ks else [*ks, samples]


def majority_vote(
    answers: Sequence[str | None], equivalent: Callable[[str, str], bool]
) -> tuple[int | None, int]:
    """Index of a representative of the largest class of equivalent answers, and that class's size.

    ``None`` answers (nothing extractable) never vote. Ties go to the class whose first member came first,
    so the result does not depend on anything but the sample order.
    """
    classes: list[list[int]] = []  # sample indices, grouped
    for i, answer in enumerate(answers):
        if answer is None:
            continue
        for members in classes:
            if answers[members[0]] == answer or equivalent(answer, answers[members[0]]):  # type: ignore[arg-type]
                members.append(i)
                break
        else:
            classes.append([i])
    if not classes:
        return None, 0
    best = max(classes, key=len)  # max keeps the first of equal-sized classes
    return best[0], len(best)


def bootstrap_ci(
    values: Sequence[float], resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of per-problem scores (seeded: the same data gives the same CI)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def paired_bootstrap_ci(
    a: Sequence[float], b: Sequence[float], resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """CI of mean(b) - mean(a) resampling problems, so both runs are judged on the same draws."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    return bootstrap_ci(np.asarray(b, dtype=float) - np.asarray(a, dtype=float), resamples, seed, level)


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (a binomial test with p = 1/2)."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(a_only, b_only) + 1)) / 2**n
    return min(1.0, 2 * tail)
