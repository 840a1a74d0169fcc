"""``mathsft sweep``: SFT at several dataset sizes (nested subsets, one seed), each validated during
training and evaluated on the held-out test set at the end, plus an optional "filtered" arm.

Layout (beside the ``mathsft run`` stages it shares: ``config.yaml``, ``data/``, ``baseline/``)::

    OUT/arms/n128/train/   training run (metrics.jsonl with eval/accuracy rows, checkpoints/final)
    OUT/arms/n128/eval/    final checkpoint on the test set
    OUT/sweep.json         one entry per finished arm (size, accuracy, CI, steps), rewritten as arms finish
    OUT/sweep.md           the table
    OUT/val-accuracy.png, OUT/accuracy-vs-size.png, OUT/loss.png
    OUT/report/            report.md / report.html over everything

Finished arms (final checkpoint and eval present) are not redone; an interrupted arm resumes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mathsft.data import Problem, SFTExample, subsample
from mathsft.errors import MathsftError
from mathsft.experiments.config import ExperimentConfig
from mathsft.experiments.run import (
    Prepared,
    claim_out_dir,
    evaluate,
    finetune,
    prepare_data,
    training_examples,
)
from mathsft.reporting.plots import AccuracyPoint, plot_accuracy_vs_size, plot_loss, plot_val_accuracy
from mathsft.reporting.report import read_rows, write_report

log = logging.getLogger("mathsft.experiments")


@dataclass(frozen=True)
class Arm:
    name: str
    examples: list[SFTExample]
    filtered: bool = False


def gold_of(example: SFTExample, problems_by_id: dict[str, Problem]) -> str:
    """The gold answer of a training example: its source problem's, or one carried in ``meta``."""
    for key in (example.id, example.meta.get("problem_id")):  # rendered problems / teacher traces
        if key in problems_by_id:
            return problems_by_id[key].answer
    for key in ("answer", "ground_truth", "gold"):
        if example.meta.get(key) not in (None, ""):
            return str(example.meta[key])
    raise MathsftError(
        f"filtered arm: training example {example.id!r} has no gold answer (its problem's answer, or "
        "meta.answer / meta.ground_truth) to grade its response against"
    )


def filter_correct(
    examples: Sequence[SFTExample], problems: Sequence[Problem], profile: str
) -> list[SFTExample]:
    """Examples whose reference response reaches the gold answer, graded by ``mathsft.grading``."""
    from mathsft.grading import grade

    by_id = {p.id: p for p in problems}
    return [ex for ex in examples if grade(ex.response, gold_of(ex, by_id), profile=profile).correct]


def make_arms(
    cfg: ExperimentConfig, examples: list[SFTExample], prepared: Prepared
) -> tuple[list[Arm], dict | None]:
    """Nested subsets for each size (a size at or above the data is the full set, run once), plus the
    filtered arm; returns the arms and the filter's counts."""
    assert cfg.sweep is not None
    arms: list[Arm] = []
    seen_sizes: set[int] = set()
    for size in cfg.sweep.sizes:
        subset = subsample(examples, None if size == "full" else min(size, len(examples)), cfg.data.seed)
        if len(subset) in seen_sizes:
            continue
        seen_sizes.add(len(subset))
        arms.append(Arm("full" if size == "full" else f"n{len(subset)}", subset))
    filtered_info = None
    if cfg.sweep.filtered:
        problems = [p for p in prepared.train if isinstance(p, Problem)]
        kept = filter_correct(examples, problems, cfg.sweep.filter_profile)
        if not kept:
            raise MathsftError("filtered arm: no training example's response reaches its gold answer")
        filtered_info = {"kept": len(kept), "candidates": len(examples), "profile": cfg.sweep.filter_profile}
        arms.append(Arm("filtered", kept, filtered=True))
    return arms, filtered_info


def _point(summary: dict[str, Any]) -> dict[str, Any]:
    return {"accuracy": summary["accuracy"], "ci95": summary["ci95"], "n": summary["n"]}


@dataclass
class SweepResult:
    out: Path
    table: list[dict[str, Any]]
    report: Path
    elapsed_s: float


def run_sweep(cfg: ExperimentConfig) -> SweepResult:
    if cfg.sweep is None:
        raise MathsftError(
            "this config has no sweep: section (sizes, filtered); use `mathsft run` for one run"
        )
    start = time.perf_counter()
    out = cfg.out_dir
    claim_out_dir(cfg, out)
    prepared = prepare_data(cfg, out)
    examples = training_examples(cfg, prepared, out)
    arms, filtered_info = make_arms(cfg, examples, prepared)
    sweep: dict[str, Any] = {"arms": [], "baseline": None, "filtered": filtered_info}
    if cfg.baseline:
        sweep["baseline"] = _point(evaluate(cfg, cfg.model, prepared.test, out / "baseline"))
    for arm in arms:
        log.info("arm %s: %d examples", arm.name, len(arm.examples))
        folder = out / "arms" / arm.name
        checkpoint = finetune(cfg, arm.examples, prepared.val, folder / "train")
        summary = evaluate(cfg, str(checkpoint), prepared.test, folder / "eval")
        steps = max(
            (r["train_step"] for r in read_rows(folder / "train" / "metrics.jsonl") if "train_step" in r),
            default=0,
        )
        sweep["arms"].append(
            {"name": arm.name, "size": len(arm.examples), "filtered": arm.filtered, "steps": steps}
            | _point(summary)
            | {"run_dir": str(folder / "train"), "eval_dir": str(folder / "eval")}
        )
        (out / "sweep.json").write_text(json.dumps(sweep, indent=2) + "\n", encoding="utf-8")
    write_outputs(out, sweep)
    _, html_path = write_report([out], out / "report", title=f"mathsft sweep: {cfg.name}")
    return SweepResult(out, sweep["arms"], html_path, time.perf_counter() - start)


def write_outputs(out: Path, sweep: dict[str, Any]) -> None:
    """The sweep's own PNGs and table beside its runs."""
    runs = {a["name"]: read_rows(Path(a["run_dir"]) / "metrics.jsonl") for a in sweep["arms"]}
    plot_val_accuracy(runs, out / "val-accuracy.png")
    plot_loss(runs, out / "loss.png")
    points = [
        AccuracyPoint(a["name"], a["accuracy"], tuple(a["ci95"]), a["n"], a["size"], a["filtered"])
        for a in sweep["arms"]
    ]
    base = sweep.get("baseline")
    baseline = (
        AccuracyPoint("untrained model", base["accuracy"], tuple(base["ci95"]), base["n"]) if base else None
    )
    plot_accuracy_vs_size(points, out / "accuracy-vs-size.png", baseline)
    (out / "sweep.md").write_text(sweep_table(sweep), encoding="utf-8")


def sweep_table(sweep: dict[str, Any]) -> str:
    lines = [
        "| arm | train examples | steps | test accuracy | 95% CI | n |",
        "|---|---|---|---|---|---|",
    ]
    rows = (
        [{"name": "untrained", "size": 0, "steps": 0} | sweep["baseline"]] if sweep.get("baseline") else []
    ) + sweep["arms"]
    for a in rows:
        lo, hi = a["ci95"]
        lines.append(
            f"| {a['name']} | {a['size']} | {a['steps']} | {100 * a['accuracy']:.1f}% | "
            f"[{100 * lo:.1f}, {100 * hi:.1f}] | {a['n']} |"
        )
    if sweep.get("filtered"):
        f = sweep["filtered"]
        lines.append(
            f"\nFiltered arm: {f['kept']} of {f['candidates']} examples reach the gold answer ({f['profile']})."
        )
    return "\n".join(lines) + "\n"
