"""Matplotlib (Agg) PNGs for reports: loss curves, RL reward curves, validation accuracy vs step, accuracy
vs data size.

Each function takes plain data (metric rows as written to ``metrics.jsonl``, or accuracy points) and a
path, draws one figure, writes it and returns the path, so the same pictures serve ``report.html``
(embedded), ``report.md`` (linked) and ``mathsft sweep`` (written beside the runs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display here, and none needed: files only

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

Rows = Sequence[Mapping[str, Any]]
DPI = 120


@dataclass(frozen=True)
class AccuracyPoint:
    """One accuracy with its 95% CI, e.g. the final eval of one sweep arm (``size`` examples)."""

    label: str
    accuracy: float
    ci95: tuple[float, float]
    n: int
    size: int | None = None
    filtered: bool = False


def _series(rows: Rows, key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(train_step, value)`` for the rows that carry ``key`` (train rows or validation rows)."""
    pairs = [
        (row["train_step"], row[key]) for row in rows if row.get(key) is not None and "train_step" in row
    ]
    if not pairs:
        return np.array([]), np.array([])
    steps, values = zip(*sorted(pairs, key=lambda p: p[0]), strict=True)
    return np.asarray(steps, dtype=float), np.asarray(values, dtype=float)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (the first points average what exists), to show the trend of noisy losses."""
    csum = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - window, 0)
    return (csum[idx] - csum[lo]) / (idx - lo)


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_loss(runs: Mapping[str, Rows], path: str | Path) -> Path:
    """Training loss per step for each run (raw, faint, plus a moving average when noisy) and, where
    logged, validation loss as markers on the same axes."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    drawn = False
    for i, (label, rows) in enumerate(runs.items()):
        color = colors[i % len(colors)]
        steps, loss = _series(rows, "train/loss")
        if len(steps):
            window = max(1, len(steps) // 20)
            if window > 1:
                ax.plot(steps, loss, color=color, alpha=0.25, linewidth=0.8)
                ax.plot(
                    steps,
                    _smooth(loss, window),
                    color=color,
                    label=f"{label}: train loss (avg of {window} steps)",
                )
            else:
                ax.plot(
                    steps,
                    loss,
                    color=color,
                    label=f"{label}: train loss",
                    marker="." if len(steps) < 30 else None,
                )
            drawn = True
        val_steps, val_loss = _series(rows, "eval/loss")
        if len(val_steps):
            ax.plot(
                val_steps,
                val_loss,
                color=color,
                linestyle="--",
                marker="o",
                label=f"{label}: validation loss",
            )
            drawn = True
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (mean over supervised tokens)")
    ax.set_title("Loss")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no loss logged", ha="center", va="center", transform=ax.transAxes)
    return _save(fig, path)


def plot_reward(runs: Mapping[str, Rows], path: str | Path) -> Path:
    """RL runs: mean reward of each step's samples (raw, faint, plus a moving average when noisy) and the
    fraction of groups without signal (all rewards equal), dotted."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, rows) in enumerate(runs.items()):
        color = colors[i % len(colors)]
        steps, reward = _series(rows, "rl/reward_mean")
        window = max(1, len(steps) // 20)
        name = f"{label}: reward" + (f" (avg of {window} steps)" if window > 1 else "")
        raw = {"alpha": 0.25, "linewidth": 0.8} if window > 1 else {"label": name}
        ax.plot(steps, reward, color=color, **raw)
        if window > 1:
            ax.plot(steps, _smooth(reward, window), color=color, label=name)
        zero_steps, zero = _series(rows, "rl/zero_signal_fraction")
        ax.plot(
            zero_steps, zero, color=color, linestyle=":", linewidth=1, label=f"{label}: groups without signal"
        )
    ax.set_xlabel("RL step")
    ax.set_ylabel("mean reward / fraction")
    ax.set_title("RL: reward of the step's samples")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_val_accuracy(runs: Mapping[str, Rows], path: str | Path) -> Path:
    """Validation accuracy vs step for each run, with its 95% CI as a band."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    drawn = False
    for i, (label, rows) in enumerate(runs.items()):
        color = colors[i % len(colors)]
        points = sorted(
            (row for row in rows if row.get("eval/accuracy") is not None and "train_step" in row),
            key=lambda row: row["train_step"],
        )
        if not points:
            continue
        steps = np.array([row["train_step"] for row in points], dtype=float)
        acc = np.array([row["eval/accuracy"] for row in points], dtype=float)
        ax.plot(steps, acc, color=color, marker="o", markersize=4, label=label)
        cis = [row.get("eval/ci95") for row in points]
        if all(ci is not None for ci in cis):
            lo, hi = np.array(cis, dtype=float).T
            ax.fill_between(steps, lo, hi, color=color, alpha=0.15, linewidth=0)
        drawn = True
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("validation accuracy")
    _percent_axis(ax)
    ax.set_title("Validation accuracy (band: 95% CI)")
    ax.grid(alpha=0.3)
    if drawn:
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no validation accuracy logged", ha="center", va="center", transform=ax.transAxes)
    return _save(fig, path)


def plot_accuracy_vs_size(
    points: Sequence[AccuracyPoint], path: str | Path, baseline: AccuracyPoint | None = None
) -> Path:
    """Final accuracy vs number of training examples (log2 axis) with 95% CI bars; filtered arms are
    drawn apart and labelled with their size; the untrained model, when given, as a band."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    sized = sorted((p for p in points if p.size is not None and not p.filtered), key=lambda p: p.size or 0)
    filtered = [p for p in points if p.size is not None and p.filtered]

    def errorbar(group: Sequence[AccuracyPoint], **style: Any) -> None:
        x = np.array([p.size for p in group], dtype=float)
        y = np.array([p.accuracy for p in group])
        yerr = np.array([[p.accuracy - p.ci95[0] for p in group], [p.ci95[1] - p.accuracy for p in group]])
        ax.errorbar(x, y, yerr=np.clip(yerr, 0, None), capsize=4, **style)

    if sized:
        errorbar(sized, marker="o", label="nested subsets")
    if filtered:
        errorbar(
            filtered, marker="D", linestyle="none", color="tab:red", label="filtered (correct responses only)"
        )
        for p in filtered:
            ax.annotate(
                f"n={p.size}", (p.size, p.accuracy), textcoords="offset points", xytext=(6, 6), fontsize=8
            )
    if baseline is not None:
        ax.axhline(baseline.accuracy, color="gray", linestyle="--", linewidth=1, label=f"{baseline.label}")
        ax.axhspan(*baseline.ci95, color="gray", alpha=0.12, linewidth=0)
    # ticks at the nested sizes only: a filtered arm carries its size as a label, not a crowding tick
    ticks = sorted({p.size for p in sized if p.size}) or sorted({p.size for p in filtered if p.size})
    sizes = sorted({p.size for p in [*sized, *filtered] if p.size})
    if sizes:
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([str(s) for s in ticks])
        ax.set_xlim(sizes[0] / 1.4, sizes[-1] * 1.4)
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no finished arms", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("training examples")
    ax.set_ylabel("test accuracy")
    _percent_axis(ax)
    ax.set_ylim(bottom=0)
    ax.set_title("Final accuracy vs dataset size (bars: 95% CI)")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_accuracy_bars(points: Sequence[AccuracyPoint], path: str | Path) -> Path:
    """Accuracy of several evals side by side (e.g. before/after SFT) with 95% CI bars."""
    fig, ax = plt.subplots(figsize=(max(4.0, 1.4 * len(points) + 2), 4.0))
    x = np.arange(len(points))
    acc = np.array([p.accuracy for p in points])
    yerr = np.array([[p.accuracy - p.ci95[0] for p in points], [p.ci95[1] - p.accuracy for p in points]])
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ax.bar(x, acc, yerr=np.clip(yerr, 0, None), capsize=6, color=[colors[i % len(colors)] for i in x])
    for xi, p in zip(x, points, strict=True):
        ax.text(xi, p.ci95[1], f"{p.accuracy:.1%}\n(n={p.n})", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [p.label for p in points])
    _percent_axis(ax)
    top = max([p.ci95[1] for p in points] + [0.05])
    ax.set_ylim(0, min(1.0, top * 1.25 + 0.02))
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy (bars: 95% CI)")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _percent_axis(ax: Any) -> None:
    """Whole-percent labels on ticks that are whole percents (no 2.5% tick shown as "2%")."""
    ax.yaxis.set_major_locator(MaxNLocator(nbins=8, steps=[1, 2, 5, 10]))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{100 * y:.4g}%"))
