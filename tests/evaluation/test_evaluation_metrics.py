"""The statistics against hand-computable cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mathsft.evaluation.metrics import (
    bootstrap_ci,
    ks_for,
    majority_vote,
    mcnemar_exact,
    paired_bootstrap_ci,
    pass_at_k,
)


def test_pass_at_k_matches_the_binomial_formula() -> None:
    # n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 is the plain fraction
    assert pass_at_k(4, 0, 4) == 0.0
    assert pass_at_k(4, 1, 4) == 1.0  # n - c < k: some draw of k always contains the correct one
    for n, c, k in [(16, 5, 4), (100, 7, 10), (64, 63, 8)]:
        assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))


def test_pass_at_k_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_ks_for() -> None:
    assert ks_for(1) == [1]
    assert ks_for(8) == [1, 2, 4, 8]
    assert ks_for(6) == [1, 2, 4, 6]


def test_majority_vote_groups_equivalent_answers_and_ignores_none() -> None:
    same = lambda a, b: a.replace(" ", "") == b.replace(" ", "")  # noqa: E731
    winner, size = majority_vote(["1/2", None, "3", "1 / 2", None, None], same)
    assert (winner, size) == (0, 2)
    # a tie goes to the class that appeared first
    assert majority_vote(["3", "4", "4", "3"], same) == (0, 2)
    assert majority_vote([None, None], same) == (None, 0)


def test_mcnemar_exact_on_known_tables() -> None:
    # 2 discordant pairs one way and 10 the other: 2 * P(X <= 2 | n=12, p=1/2) = 2 * 79/4096
    assert mcnemar_exact(2, 10) == pytest.approx(2 * 79 / 4096)
    assert mcnemar_exact(10, 2) == mcnemar_exact(2, 10)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 8) == pytest.approx(2 / 256)


def test_bootstrap_ci_is_seeded_and_brackets_the_mean() -> None:
    values = [1.0] * 30 + [0.0] * 70
    lo, hi = bootstrap_ci(values, 2000, seed=3)
    assert (lo, hi) == bootstrap_ci(values, 2000, seed=3)
    assert lo < 0.3 < hi
    # normal approximation: 0.3 +- 1.96 * sqrt(0.3 * 0.7 / 100) = [0.210, 0.390]
    assert lo == pytest.approx(0.21, abs=0.02) and hi == pytest.approx(0.39, abs=0.02)


def test_bootstrap_ci_covers_the_true_mean_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    trials, covered = 200, 0
    for t in range(trials):
        sample = (rng.random(200) < 0.4).astype(float)
        lo, hi = bootstrap_ci(sample, 1000, seed=t)
        covered += lo <= 0.4 <= hi
    assert 0.90 <= covered / trials <= 0.99


def test_paired_ci_is_narrower_than_unpaired_when_runs_agree() -> None:
    rng = np.random.default_rng(1)
    a = (rng.random(300) < 0.5).astype(float)
    b = a.copy()
    b[:15] = 1.0  # B fixes a few problems and breaks none
    lo, hi = paired_bootstrap_ci(a, b, 2000)
    assert 0 < lo <= (b.mean() - a.mean()) <= hi
    with pytest.raises(ValueError):
        paired_bootstrap_ci([1.0], [1.0, 0.0])
