"""The report reads the documented eval/training formats and writes a self-contained HTML + Markdown."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mathsft.cli import app
from mathsft.errors import DataError, MathsftError
from mathsft.reporting.report import collect, read_rows, write_report


def write_eval_dir(path: Path, correct: list[bool], model: str = "m", subjects: bool = True) -> Path:
    """An eval directory in the ARCHITECTURE.md format, with one greedy sample per problem."""
    path.mkdir(parents=True)
    n = len(correct)
    rows = []
    for i, ok in enumerate(correct):
        gold = str(i + 10)
        extracted = gold if ok else (None if i % 3 == 0 else str(i))
        rows.append(
            {
                "id": f"p{i}",
                "prompt": [{"role": "user", "content": f"What is {i} + 10? <problem-{i}>"}],
                "gold": gold,
                "meta": {"subject": "Algebra" if i % 2 else "Geometry", "level": 1 + i % 3},
                "samples": [
                    {
                        "response": f"Let me think <b>{i}</b>. The answer is {extracted}",
                        "extracted": extracted,
                        "correct": ok,
                        "reason": "numeric" if extracted else "no_answer",
                        "finish_reason": "stop",
                        "completion_tokens": 20,
                    }
                ],
                "correct": float(ok),
                "majority": extracted,
            }
        )
    (path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    acc = sum(correct) / n
    breakdown = {}
    if subjects:
        breakdown = {
            "subject": {
                "Algebra": {"n": n // 2, "accuracy": 0.5, "ci95": [0.2, 0.8]},
                "Geometry": {"n": n - n // 2, "accuracy": 0.25, "ci95": [0.0, 0.6]},
            },
            "level": {str(k): {"n": 3, "accuracy": 0.3, "ci95": [0.0, 0.7]} for k in (1, 2, 3)},
        }
    summary = {
        "model": model,
        "dataset": "synthetic",
        "n": n,
        "metric": "pass@1",
        "accuracy": acc,
        "correct_count": sum(correct),
        "ci95": [max(0.0, acc - 0.1), min(1.0, acc + 0.1)],
        "format_rate": 0.9,
        "truncation_rate": 0.05,
        "mean_response_tokens": 20.0,
        "breakdown": breakdown,
    }
    (path / "summary.json").write_text(json.dumps(summary))
    (path / "config.yaml").write_text(f"model: {model}\nmax_new_tokens: 128\n")
    return path


def write_train_dir(path: Path, steps: int = 40, val_every: int = 10, torn_tail: bool = False) -> Path:
    path.mkdir(parents=True)
    lines = []
    for step in range(1, steps + 1):
        lines.append(
            json.dumps(
                {
                    "train_step": step,
                    "train/loss": 2.0 / step**0.3,
                    "train/lr": 1e-4,
                    "train/supervised_tokens_per_s": 500.0,
                }
            )
        )
        if step % val_every == 0:
            acc = 0.1 + step / (steps * 2)
            row = {"train_step": step, "eval_step": step // val_every, "eval/loss": 1.0 / step**0.2}
            row |= {"eval/accuracy": acc, "eval/ci95": [acc - 0.08, acc + 0.08]}
            lines.append(json.dumps(row))
    text = "\n".join(lines) + "\n"
    if torn_tail:
        text += '{"train_step": 41, "train/lo'
    (path / "metrics.jsonl").write_text(text)
    (path / "config.yaml").write_text("model: smollm2-135m\nlr: 0.0001\n")
    (path / "manifest.json").write_text(json.dumps({"source": "synthetic", "hash": "abc123", "count": 1000}))
    (path / "preflight.md").write_text("# Pre-flight\nsupervised fraction 0.4\n")
    (path / "checkpoints" / "final").mkdir(parents=True)
    return path


@pytest.fixture
def experiment_dir(tmp_path: Path) -> Path:
    """A `mathsft run`-shaped directory: baseline eval, training run, final eval, on the same problems."""
    root = tmp_path / "run"
    write_eval_dir(root / "final", [i % 4 != 0 for i in range(40)], model="final")  # 30/40
    write_eval_dir(root / "baseline", [i % 4 == 0 for i in range(40)], model="base")  # 10/40
    write_train_dir(root / "train")
    (root / "config.yaml").write_text("data:\n  dataset: synthetic\n")
    (root / "data").mkdir()
    (root / "data" / "manifest.json").write_text(json.dumps({"train": {"count": 1000, "hash": "h1"}}))
    return root


def test_collect_orders_stages_and_skips_validation(experiment_dir: Path) -> None:
    (experiment_dir / "train" / "validation" / "step-000010").mkdir(parents=True)
    write_eval_dir(experiment_dir / "train" / "validation" / "step-000020", [True])
    found = collect([experiment_dir])
    assert [run.name for run in found.evals] == ["baseline", "final"]  # pipeline order, not alphabetical
    assert [run.name for run in found.trains] == ["train"]
    assert "data" not in found.configs and found.manifests["run"]["train"]["count"] == 1000


def test_report_is_self_contained_and_complete(experiment_dir: Path, tmp_path: Path) -> None:
    md_path, html_path = write_report([experiment_dir], tmp_path / "out")
    html = html_path.read_text()
    # no external assets: every image is inline PNG data, no links to files or the network
    assert not re.search(r'src="(?!data:image/png;base64,)', html)
    assert "http://" not in html and "https://" not in html and "<link" not in html
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 3  # accuracy bars, loss, validation accuracy
    assert all(base64.b64decode(img).startswith(b"\x89PNG") for img in images)
    # results with CIs, the paired comparison, per-subject/level breakdown, failures, config, manifest
    assert "75.0% (30/40)" in html and "25.0% (10/40)" in html
    assert "Paired comparison" in html and "+50.0 pp" in html and "McNemar" in html
    assert "By subject" in html and "By level" in html and "Geometry" in html
    assert html.count("<details>") >= 20 + 10  # failures of both runs (20 + 10) plus configs
    assert "&lt;b&gt;3&lt;/b&gt;" in html  # model text is escaped, never rendered as markup
    assert "(none: no answer found)" in html
    assert "abc123" in html and "dataset: synthetic" in html
    md = md_path.read_text()
    for png in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (md_path.parent / png).is_file()
    assert "| baseline |" in md and "<details>" in md
    comparisons = json.loads((tmp_path / "out" / "comparisons.json").read_text())
    assert comparisons[0]["a"] == "baseline" and comparisons[0]["b"] == "final"
    assert comparisons[0]["diff"] == pytest.approx(0.5)


def test_report_on_several_eval_dirs_names_them_by_folder(tmp_path: Path) -> None:
    a = write_eval_dir(tmp_path / "a" / "eval", [True, False, False, True], subjects=False)
    b = write_eval_dir(tmp_path / "b" / "eval", [True, True, True, False], subjects=False)
    other = write_eval_dir(tmp_path / "c", [True, True], subjects=False)
    found = collect([a, b, other])
    assert [run.name for run in found.evals] == ["a/eval", "b/eval", "c"]  # never two runs called "eval"
    _, html_path = write_report([tmp_path / "a", tmp_path / "b", other], tmp_path / "out")
    html = html_path.read_text()
    assert "a/eval" in html and "b/eval" in html
    assert "not paired with a/eval: their problem sets differ" in html
    assert "By subject" not in html


def test_root_labels_are_the_shortest_distinct_trailing_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mathsft.reporting.report import root_labels

    runs = tmp_path / "runs"
    assert root_labels([runs / "x" / "final", runs / "y" / "final", runs / "z"]) == [
        "x/final",
        "y/final",
        "z",
    ]
    monkeypatch.chdir(tmp_path)
    assert root_labels([Path(".")]) == [tmp_path.name]


def test_torn_last_metrics_line_is_ignored_but_a_bad_middle_line_is_an_error(tmp_path: Path) -> None:
    run = write_train_dir(tmp_path / "t", torn_tail=True)
    rows = read_rows(run / "metrics.jsonl")
    assert rows[-1]["train_step"] == 40
    lines = (run / "metrics.jsonl").read_text().splitlines()
    lines[3] = "{oops"
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"metrics.jsonl, line 4"):
        read_rows(run / "metrics.jsonl")


def test_empty_or_missing_directories_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(MathsftError, match="no eval run"):
        collect([tmp_path / "empty"])
    with pytest.raises(MathsftError, match="not a directory"):
        collect([tmp_path / "missing"])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "summary.json").write_text('{"n": 3}')
    with pytest.raises(DataError, match="field 'accuracy'"):
        collect([bad])


def test_report_command(experiment_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(experiment_dir), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "report.html").is_file() and "report.html" in result.output


def write_rl_dir(path: Path, steps: int = 30) -> Path:
    """An RL run directory: ``rl/*`` rows per step, validation rows every 10 steps."""
    path.mkdir(parents=True)
    lines = []
    for step in range(1, steps + 1):
        row = {"train_step": step, "rl/reward_mean": step / steps, "rl/pass_rate": step / steps}
        row |= {"rl/zero_signal_fraction": 0.25, "rl/response_tokens": 80.0}
        row |= {"rl/rollout_tokens_per_s": 150.0, "rl/update_tokens_per_s": 2000.0}
        lines.append(json.dumps(row))
        if step % 10 == 0:
            lines.append(
                json.dumps(
                    {
                        "train_step": step,
                        "eval_step": step // 10,
                        "eval/accuracy": 0.5,
                        "eval/ci95": [0.4, 0.6],
                    }
                )
            )
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (path / "config.yaml").write_text("model: train/checkpoints/final\nloss_type: grpo\n")
    return path


def test_base_sft_and_rl_side_by_side_with_every_pair_compared(experiment_dir: Path, tmp_path: Path) -> None:
    write_rl_dir(experiment_dir / "rl")
    write_eval_dir(experiment_dir / "rl-final", [i % 8 != 0 for i in range(40)], model="rl")  # 35/40
    found = collect([experiment_dir])
    assert [run.name for run in found.evals] == ["baseline", "final", "rl-final"]
    md_path, _ = write_report([experiment_dir], tmp_path / "out")
    pairs = [(c["a"], c["b"]) for c in json.loads((tmp_path / "out" / "comparisons.json").read_text())]
    assert pairs == [("baseline", "final"), ("baseline", "rl-final"), ("final", "rl-final")]
    md = md_path.read_text()
    assert "reward.png" in md and "loss.png" in md and "| rl |" in md
    assert "0.067 → 0.967" in md  # mean reward of the first and the last tenth (3 of 30 steps)
    assert "150 / 2000" in md
