"""The stage x suite table: each suite paired across stages, a significant drop flagged as a regression."""

from __future__ import annotations

import json
from pathlib import Path

from test_reporting_report import write_eval_dir

from mathsft.reporting.report import write_report
from mathsft.reporting.suites import suite_matrix


def write_stage(path: Path, suites: dict[str, list[bool]]) -> Path:
    """A stage folder as run_suites writes it: one eval directory per suite and suites.json."""
    rows = []
    for name, correct in suites.items():
        write_eval_dir(path / name, correct, subjects=False)
        rows.append({"name": name, "n": len(correct), "accuracy": sum(correct) / len(correct)})
    (path / "suites.json").write_text(json.dumps(rows))
    return path


def test_a_significant_drop_on_one_suite_is_a_regression_and_noise_is_not(tmp_path: Path) -> None:
    run = tmp_path / "run"
    # math: 20 problems gained; general: 16 of 30 lost (McNemar p < 0.001); small: 1 of 4 lost
    write_stage(run / "baseline", {"math": [False] * 30, "general": [True] * 30, "small": [True] * 4})
    write_stage(
        run / "final",
        {
            "math": [True] * 20 + [False] * 10,
            "general": [False] * 16 + [True] * 14,
            "small": [False] + [True] * 3,
        },
    )
    matrix = suite_matrix({"baseline": run / "baseline", "final": run / "final"})
    assert matrix.suites == ["math", "general", "small"]
    assert [(suite, round(c.diff, 3)) for suite, c in matrix.comparisons] == [
        ("math", 0.667),
        ("general", -0.533),
        ("small", -0.25),
    ]
    assert [suite for suite, _ in matrix.regressions()] == ["general"]
    flagged = [c["suite"] for c in matrix.to_dict()["comparisons"] if c["regression"]]
    assert flagged == ["general"]

    md, _ = write_report([run], tmp_path / "report")
    text = md.read_text()
    table = text[text.index("## Every stage on every suite") :]
    assert "| general | pass@1 | 30 | 100.0% [90.0, 100.0] | 46.7% [36.7, 56.7] |" in table
    assert "| general | baseline | final | 30 | -53.3 pp |" in table and "**REGRESSION** |" in table
    assert "**Regression on general**: final is 53.3 pp below baseline" in table
    assert "Regression on small" not in table and "Regression on math" not in table
    # the suites are paired suite by suite, never across suites in the plain comparison table
    assert "Paired comparison (same problems)" not in text


def test_items_that_differ_between_stages_are_not_paired(tmp_path: Path) -> None:
    write_stage(tmp_path / "a", {"s": [True, False, True]})
    write_stage(tmp_path / "b", {"s": [True, False]})
    matrix = suite_matrix({"a": tmp_path / "a", "b": tmp_path / "b"})
    assert not matrix.comparisons and matrix.notes == [
        "s: a and b are not paired: they evaluated different items"
    ]
