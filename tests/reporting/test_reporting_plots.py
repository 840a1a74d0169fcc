"""Each plot writes a real PNG, also for edge cases (no data, single point, filtered arm)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg

from mathsft.reporting.plots import (
    AccuracyPoint,
    plot_accuracy_bars,
    plot_accuracy_vs_size,
    plot_loss,
    plot_val_accuracy,
)


def is_png(path: Path) -> bool:
    image = mpimg.imread(path)
    return path.read_bytes().startswith(b"\x89PNG") and image.shape[0] > 100 and image.shape[1] > 100


def test_curves(tmp_path: Path) -> None:
    rows = [{"train_step": s, "train/loss": 3.0 - s / 100} for s in range(1, 201)]
    rows += [
        {"train_step": s, "eval/loss": 2.5, "eval/accuracy": s / 400, "eval/ci95": [0, s / 200]}
        for s in (50, 100, 200)
    ]
    assert is_png(plot_loss({"a": rows, "b": rows[:3]}, tmp_path / "loss.png"))
    assert is_png(plot_val_accuracy({"a": rows, "no-val": rows[:3]}, tmp_path / "acc.png"))
    assert is_png(plot_loss({}, tmp_path / "sub" / "empty.png"))  # says "no loss logged", still a picture


def test_accuracy_vs_size_and_bars(tmp_path: Path) -> None:
    points = [
        AccuracyPoint(f"n{s}", 0.1 * i, (0.05 * i, 0.15 * i), 100, s) for i, s in enumerate([32, 64, 128], 1)
    ]
    points.append(AccuracyPoint("filtered", 0.25, (0.2, 0.3), 100, 90, filtered=True))
    base = AccuracyPoint("untrained", 0.02, (0.0, 0.05), 100)
    assert is_png(plot_accuracy_vs_size(points, tmp_path / "size.png", baseline=base))
    assert is_png(plot_accuracy_vs_size(points[:1], tmp_path / "one.png"))
    assert is_png(plot_accuracy_bars([base, points[0]], tmp_path / "bars.png"))
