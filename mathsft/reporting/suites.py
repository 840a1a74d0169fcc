"""The stage x suite table: every model of an experiment (base, SFT, RL, ...) on every benchmark, with the
paired difference between stages on each, and a flag where a stage lost ground (a capability regression).

A stage folder holding ``suites.json`` (written by ``mathsft.evaluation.suites.run_suites``) has one eval
directory per suite. Differences are paired on the same problems (or lm-eval documents): a paired bootstrap
CI and McNemar's exact test on the per-item outcomes, from ``mathsft.evaluation.compare``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mathsft.reporting.report import (
    ALL_PAIRS_UP_TO,
    Comparison,
    Doc,
    EvalRun,
    ci,
    compare_runs,
    load_eval_run,
    pct,
    signed_pct,
)


@dataclass
class SuiteMatrix:
    stages: list[str]  # stage labels, in pipeline order
    suites: list[str]  # suite names, in the order the first stage ran them
    cells: dict[tuple[str, str], EvalRun]  # (suite, stage) -> its eval
    comparisons: list[tuple[str, Comparison]] = field(default_factory=list)  # (suite, stage pair)
    notes: list[str] = field(default_factory=list)

    def regressions(self) -> list[tuple[str, Comparison]]:
        return [(suite, c) for suite, c in self.comparisons if significant_drop(c)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "stages": self.stages,
            "suites": [
                {
                    "name": suite,
                    **{
                        stage: {k: run.summary.get(k) for k in ("n", "accuracy", "ci95", "metric")}
                        for stage in self.stages
                        if (run := self.cells.get((suite, stage))) is not None
                    },
                }
                for suite in self.suites
            ],
            "comparisons": [
                {"suite": suite, **c.to_dict(), "regression": significant_drop(c)}
                for suite, c in self.comparisons
            ],
            "notes": self.notes,
        }


def significant_drop(c: Comparison) -> bool:
    """B is worse than A beyond chance: the paired CI lies below 0 and McNemar agrees (p < 0.05)."""
    return c.ci95[1] < 0 and c.p_value < 0.05


def suite_matrix(stage_dirs: dict[str, Path]) -> SuiteMatrix:
    """Read every stage's suites and pair each suite's stages (every pair among a few stages, else the
    first stage against each later one)."""
    stages = list(stage_dirs)
    suites: list[str] = []
    cells: dict[tuple[str, str], EvalRun] = {}
    for stage, folder in stage_dirs.items():
        for row in json.loads((folder / "suites.json").read_text(encoding="utf-8")):
            name = row["name"]
            suites += [] if name in suites else [name]
            cells[(name, stage)] = load_eval_run(folder / name, stage)
    matrix = SuiteMatrix(stages, suites, cells)
    firsts = stages[:-1] if len(stages) <= ALL_PAIRS_UP_TO else stages[:1]
    for suite in suites:
        for i, a in enumerate(firsts):
            for b in stages[i + 1 :]:
                _pair(matrix, suite, a, b)
    return matrix


def _pair(matrix: SuiteMatrix, suite: str, a: str, b: str) -> None:
    run_a, run_b = matrix.cells.get((suite, a)), matrix.cells.get((suite, b))
    if run_a is None or run_b is None:
        return
    if not run_a.results or not run_b.results:
        matrix.notes.append(f"{suite}: {a} and {b} are not paired (no per-item results, e.g. a perplexity)")
    elif sorted(run_a.ids) != sorted(run_b.ids):
        matrix.notes.append(f"{suite}: {a} and {b} are not paired: they evaluated different items")
    else:
        matrix.comparisons.append((suite, compare_runs(run_a, run_b)))


def matrix_table(
    matrix: SuiteMatrix, labels: dict[str, str] | None = None
) -> tuple[list[str], list[list[str]]]:
    """Rows = suites, columns = stages: accuracy and its 95% CI."""
    labels = labels or {}
    headers = ["suite", "metric", "n", *(labels.get(s, s) for s in matrix.stages)]
    rows = []
    for suite in matrix.suites:
        runs = [matrix.cells.get((suite, stage)) for stage in matrix.stages]
        first = next(run for run in runs if run is not None)
        cells = [f"{pct(r.summary['accuracy'])} {ci(r.summary.get('ci95'))}" if r else "–" for r in runs]
        rows.append([suite, str(first.summary.get("metric", "")), str(first.summary.get("n", "")), *cells])
    return headers, rows


def differences_table(
    matrix: SuiteMatrix, labels: dict[str, str] | None = None
) -> tuple[list[str], list[list[str]]]:
    """One row per suite and stage pair: B − A, its paired CI, McNemar p, and the regression flag."""
    labels = labels or {}
    headers = ["suite", "A", "B", "n", "B − A", "95% CI (paired bootstrap)", "McNemar p", "regression"]
    rows = [
        [
            suite,
            labels.get(c.a, c.a),
            labels.get(c.b, c.b),
            str(c.n),
            signed_pct(c.diff),
            f"[{100 * c.ci95[0]:+.1f}, {100 * c.ci95[1]:+.1f}] pp",
            f"{c.p_value:.2g}",
            "**REGRESSION**" if significant_drop(c) else "",
        ]
        for suite, c in matrix.comparisons
    ]
    return headers, rows


def suites_section(doc: Doc, stage_dirs: dict[str, Path]) -> None:
    """The report's stage x suite table, the paired differences and the regressions they show."""
    matrix = suite_matrix(stage_dirs)
    doc.heading(2, "Every stage on every suite")
    doc.para("Score per suite with its 95% bootstrap CI (problems or lm-eval documents resampled).")
    doc.table(*matrix_table(matrix))
    if matrix.comparisons:
        doc.heading(3, "Paired differences (same items)")
        doc.para(
            "A regression: the later stage is worse beyond chance (paired CI below 0 and McNemar p < 0.05)."
        )
        doc.table(*differences_table(matrix))
    for suite, c in matrix.regressions():
        doc.para(
            f"**Regression on {suite}**: {c.b} is {-100 * c.diff:.1f} pp below {c.a} (McNemar p = {c.p_value:.2g})."
        )
    for note in matrix.notes:
        doc.para(note)
