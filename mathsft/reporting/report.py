"""``report.md`` and a self-contained ``report.html`` from eval, training, experiment and sweep directories.

The report is assembled once as a list of blocks (headings, tables, images, collapsible ``<details>``)
and rendered twice: Markdown that links the PNGs written beside it, and HTML with the same PNGs embedded
as base64 so the single file can be mailed or attached. Everything shown is read from the documented
output formats (see ARCHITECTURE.md); nothing is recomputed except the paired comparisons, which come
from ``mathsft.evaluation``.
"""

from __future__ import annotations

import base64
import html
import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from mathsft.errors import DataError, MathsftError
from mathsft.reporting.plots import (
    AccuracyPoint,
    plot_accuracy_bars,
    plot_accuracy_vs_size,
    plot_loss,
    plot_reward,
    plot_val_accuracy,
)

# Stage folders written by ``mathsft run`` / ``mathsft sweep``, in pipeline order; other folders follow
# alphabetically. Checkpoints and in-training validation evals are read through ``metrics.jsonl``.
STAGE_ORDER = ("data", "baseline", "train", "final", "rl", "rl-final", "arms")
SKIP_DIRS = {"checkpoints", "validation", "report", "cache"}
MAX_DEPTH = 4


# ----------------------------------------------------------------------------------------------------
# Reading run directories


def read_rows(path: Path) -> list[dict[str, Any]]:
    """JSON object rows of a JSONL file. A torn last line (a run killed mid-write) is ignored; any other
    bad line is a ``DataError`` naming the file and line."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines):
                break
            raise DataError.at(path, number, None, f"not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise DataError.at(path, number, None, f"expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError.at(path, err.lineno, None, f"not valid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise DataError.at(path, None, None, f"expected a JSON object, got {type(data).__name__}")
    return data


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""


@dataclass
class EvalRun:
    """An eval directory: ``summary.json``, ``results.jsonl``, ``config.yaml``."""

    path: Path
    name: str
    summary: dict[str, Any]
    results: list[dict[str, Any]]
    config: str

    @property
    def ids(self) -> list[str]:
        return [str(row["id"]) for row in self.results]

    def point(
        self, label: str | None = None, size: int | None = None, filtered: bool = False
    ) -> AccuracyPoint:
        s = self.summary
        lo, hi = s.get("ci95") or (s["accuracy"], s["accuracy"])
        return AccuracyPoint(
            label or self.name, float(s["accuracy"]), (lo, hi), int(s.get("n", 0)), size, filtered
        )


@dataclass
class TrainRun:
    """A training run directory: ``metrics.jsonl``, ``config.yaml``, ``manifest.json``, ``preflight.md``."""

    path: Path
    name: str
    metrics: list[dict[str, Any]]
    config: str
    manifest: dict[str, Any]
    preflight: str


@dataclass
class Collected:
    """Everything found under the directories a report covers, in pipeline order."""

    roots: list[Path]
    configs: dict[str, str] = field(default_factory=dict)  # root-level config.yaml of experiments/sweeps
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)  # data manifests of experiments
    evals: list[EvalRun] = field(default_factory=list)
    trains: list[TrainRun] = field(default_factory=list)
    sweeps: dict[str, dict[str, Any]] = field(default_factory=dict)  # sweep.json of sweep directories
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)  # recipe: sections of experiment configs
    suite_stages: dict[str, Path] = field(default_factory=dict)  # folders of several suites (suites.json)
    stage_times: dict[str, tuple[Path, dict[str, float]]] = field(default_factory=dict)  # stages.json of runs


def load_eval_run(path: str | Path, name: str | None = None) -> EvalRun:
    path = Path(path)
    summary = _read_json(path / "summary.json")
    for key in ("accuracy", "n"):
        if key not in summary:
            raise DataError.at(path / "summary.json", None, key, "missing required field")
    results = read_rows(path / "results.jsonl") if (path / "results.jsonl").is_file() else []
    return EvalRun(path, name or path.name, summary, results, _read_text(path / "config.yaml"))


def load_train_run(path: str | Path, name: str | None = None) -> TrainRun:
    path = Path(path)
    manifest = _read_json(path / "manifest.json") if (path / "manifest.json").is_file() else {}
    return TrainRun(
        path,
        name or path.name,
        read_rows(path / "metrics.jsonl"),
        _read_text(path / "config.yaml"),
        manifest,
        _read_text(path / "preflight.md"),
    )


def _stage_key(path: Path) -> tuple[int, list[Any]]:
    """Pipeline stages in order, then other names in natural order (n32 before n128)."""
    name = path.name
    natural = [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
    return (STAGE_ORDER.index(name) if name in STAGE_ORDER else len(STAGE_ORDER), natural)


def collect(run_dirs: Sequence[str | Path]) -> Collected:
    """Find eval runs, training runs, experiment configs, data manifests and sweeps under ``run_dirs``."""
    roots = [Path(d) for d in run_dirs]
    found = Collected(roots)
    for root, label in zip(roots, root_labels(roots), strict=True):
        if not root.is_dir():
            raise MathsftError(f"{root} is not a directory (expected an eval, train, run or sweep directory)")
        before = len(found.evals) + len(found.trains)
        _walk(root, root, label, found, depth=0, several=len(roots) > 1)
        if len(found.evals) + len(found.trains) == before:
            raise MathsftError(
                f"{root}: no eval run (summary.json) or training run (metrics.jsonl) found in it or below it"
            )
    return found


def root_labels(roots: Sequence[Path]) -> list[str]:
    """Each root's shortest trailing path that no other root ends with, so two runs' ``final`` folders are
    told apart (``sft-2500x2/final``, ``sft-3200x2/final``) and ``.`` is named by its folder."""
    parts = [root.resolve().parts for root in roots]
    labels = []
    for own in parts:
        k = 1
        while k < len(own) and sum(other[-k:] == own[-k:] for other in parts) > 1:
            k += 1
        labels.append(str(Path(*own[-k:])))
    return labels


def _walk(path: Path, root: Path, label: str, found: Collected, depth: int, several: bool) -> None:
    rel = path.relative_to(root)
    name = str(Path(label) / rel) if several or rel == Path() else str(rel)
    if (path / "summary.json").is_file():
        found.evals.append(load_eval_run(path, name))
        return
    if (path / "metrics.jsonl").is_file():
        found.trains.append(load_train_run(path, name))
        return
    if (path / "config.yaml").is_file():
        found.configs[name] = _read_text(path / "config.yaml")
        recipe = (yaml.safe_load(found.configs[name]) or {}).get("recipe")
        if isinstance(recipe, dict):
            found.recipes[name] = recipe
    if (path / "data" / "manifest.json").is_file():
        found.manifests[name] = _read_json(path / "data" / "manifest.json")
    if (path / "sweep.json").is_file():
        found.sweeps[name] = _read_json(path / "sweep.json")
    if (path / "suites.json").is_file():
        found.suite_stages[name] = path
    if (path / "stages.json").is_file():
        found.stage_times[name] = (path, _read_json(path / "stages.json"))
    if depth >= MAX_DEPTH:
        return
    for child in sorted((c for c in path.iterdir() if c.is_dir()), key=_stage_key):
        if child.name not in SKIP_DIRS and not child.name.startswith("."):
            _walk(child, root, label, found, depth + 1, several)


# ----------------------------------------------------------------------------------------------------
# Paired comparisons


@dataclass
class Comparison:
    """Before/after on the same problems: a paired bootstrap CI of the difference and McNemar's exact test."""

    a: str
    b: str
    n: int
    accuracy_a: float
    accuracy_b: float
    diff: float
    ci95: tuple[float, float]
    p_value: float
    b_only: int  # problems only B solves
    a_only: int  # problems only A solves

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "n": self.n,
            "accuracy_a": self.accuracy_a,
            "accuracy_b": self.accuracy_b,
            "diff": self.diff,
            "ci95": list(self.ci95),
            "mcnemar_p": self.p_value,
            "b_only_correct": self.b_only,
            "a_only_correct": self.a_only,
        }


def compare_runs(a: EvalRun, b: EvalRun) -> Comparison:
    """Paired comparison of two eval runs over the same problem ids (``MathsftError`` when they differ)."""
    from mathsft.evaluation.compare import compare_results

    result = compare_results(a.results, b.results)
    return Comparison(
        a=a.name,
        b=b.name,
        n=result["n"],
        accuracy_a=result["accuracy_a"],
        accuracy_b=result["accuracy_b"],
        diff=result["diff"],
        ci95=tuple(result["ci95"]),
        p_value=result["mcnemar_p"],
        b_only=result["b_only_correct"],
        a_only=result["a_only_correct"],
    )


ALL_PAIRS_UP_TO = (
    4  # evals: every pair compared (baseline, SFT, RL, ...); more (sweep arms): the first vs each
)


def paired_comparisons(evals: Sequence[EvalRun]) -> tuple[list[Comparison], list[str]]:
    """Paired comparisons of evals of the same problem set, in pipeline order: every pair among a few
    stages (base vs SFT, base vs RL, SFT vs RL), the first eval (the baseline) against each later one when
    there are more (a sweep's arms); notes for the evals whose problems differ."""
    comparisons: list[Comparison] = []
    notes: list[str] = []
    firsts = evals[:-1] if len(evals) <= ALL_PAIRS_UP_TO else evals[:1]
    for i, reference in enumerate(firsts):
        for other in evals[i + 1 :]:
            if sorted(other.ids) != sorted(reference.ids):
                notes.append(f"{other.name} is not paired with {reference.name}: their problem sets differ")
                continue
            comparisons.append(compare_runs(reference, other))
    return comparisons, notes


# ----------------------------------------------------------------------------------------------------
# The document: blocks rendered as Markdown and as HTML


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    path: Path
    alt: str


@dataclass
class Details:
    """A collapsible item: a one-line summary and labelled preformatted fields."""

    summary: str
    fields: list[tuple[str, str]]


@dataclass
class Doc:
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, level: int, text: str) -> None:
        self.blocks.append(("heading", (level, text)))

    def para(self, text: str) -> None:
        self.blocks.append(("para", text))

    def table(self, headers: list[str], rows: list[list[str]]) -> None:
        if rows:
            self.blocks.append(("table", Table(headers, rows)))

    def image(self, path: Path, alt: str) -> None:
        self.blocks.append(("image", Image(path, alt)))

    def details(self, summary: str, fields: list[tuple[str, str]]) -> None:
        self.blocks.append(("details", Details(summary, fields)))


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(doc: Doc, out_dir: Path) -> str:
    lines: list[str] = []
    for kind, value in doc.blocks:
        if kind == "heading":
            level, text = value
            lines += [f"{'#' * level} {text}", ""]
        elif kind == "para":
            lines += [value, ""]
        elif kind == "table":
            lines.append("| " + " | ".join(_md_cell(h) for h in value.headers) + " |")
            lines.append("|" + "---|" * len(value.headers))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in value.rows]
            lines.append("")
        elif kind == "image":
            lines += [f"![{value.alt}]({value.path.relative_to(out_dir).as_posix()})", ""]
        elif kind == "details":  # GitHub renders these HTML elements inside Markdown
            lines.append(f"<details><summary>{html.escape(value.summary)}</summary>\n")
            for label, text in value.fields:
                lines.append(f"<b>{html.escape(label)}</b>\n<pre>{html.escape(text)}</pre>\n")
            lines += ["</details>", ""]
    return "\n".join(lines)


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #1f2328; line-height: 1.45; }
h1 { border-bottom: 2px solid #d0d7de; padding-bottom: .3em; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #d0d7de; padding: .3em .65em; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
tr:nth-child(even) td { background: #fbfcfd; }
img { max-width: 100%; border: 1px solid #eaeef2; margin: .5em 0; }
details { border: 1px solid #d0d7de; border-radius: 6px; padding: .4em .8em; margin: .35em 0; }
details[open] { background: #fbfcfd; }
summary { cursor: pointer; font-family: ui-monospace, monospace; font-size: .9em; }
pre { white-space: pre-wrap; word-break: break-word; background: #f6f8fa; padding: .6em; border-radius: 4px;
      max-height: 28em; overflow: auto; font-size: .85em; }
.label { font-weight: 600; margin-top: .5em; }
code { background: #f6f8fa; padding: 0 .25em; border-radius: 3px; }
"""


def _inline(text: str) -> str:
    """Escape, then turn Markdown ``code`` spans and **bold** into tags (the only inline markup used)."""
    out = html.escape(text)
    parts = out.split("`")
    out = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    parts = out.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


def render_html(doc: Doc, title: str) -> str:
    body: list[str] = []
    for kind, value in doc.blocks:
        if kind == "heading":
            level, text = value
            body.append(f"<h{level}>{_inline(text)}</h{level}>")
        elif kind == "para":
            body.append(f"<p>{_inline(value)}</p>")
        elif kind == "table":
            head = "".join(f"<th>{_inline(h)}</th>" for h in value.headers)
            rows = "".join(
                "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in value.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "image":
            data = base64.b64encode(value.path.read_bytes()).decode("ascii")
            body.append(f'<img alt="{html.escape(value.alt)}" src="data:image/png;base64,{data}">')
        elif kind == "details":
            inner = "".join(
                f'<div class="label">{html.escape(label)}</div><pre>{html.escape(text)}</pre>'
                for label, text in value.fields
            )
            body.append(f"<details><summary>{html.escape(value.summary)}</summary>{inner}</details>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


# ----------------------------------------------------------------------------------------------------
# Formatting helpers


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def ci(pair: Iterable[float] | None) -> str:
    if not pair:
        return "–"
    lo, hi = pair
    return f"[{100 * lo:.1f}, {100 * hi:.1f}]"


def signed_pct(x: float) -> str:
    return f"{100 * x:+.1f} pp"


def results_rows(evals: Sequence[EvalRun]) -> list[list[str]]:
    rows = []
    for run in evals:
        s = run.summary
        correct = s.get("correct_count")
        score = pct(s["accuracy"]) + (f" ({correct:g}/{s['n']})" if correct is not None else "")
        rows.append(
            [
                run.name,
                str(s.get("model", "")),
                str(s.get("dataset", "")),
                str(s.get("metric", "pass@1")),
                score,
                ci(s.get("ci95")),
                pct(s.get("format_rate")),
                pct(s.get("truncation_rate")),
                f"{s['mean_response_tokens']:.0f}" if s.get("mean_response_tokens") is not None else "–",
            ]
        )
    return rows


RESULTS_HEADERS = [
    "run",
    "model",
    "dataset",
    "metric",
    "accuracy",
    "95% CI",
    "format",
    "truncated",
    "mean tokens",
]
COMPARISON_HEADERS = [
    "A (before)",
    "B (after)",
    "n",
    "A",
    "B",
    "B − A",
    "95% CI (paired bootstrap)",
    "McNemar p",
    "only A / only B correct",
]


def comparison_row(c: Comparison) -> list[str]:
    return [
        c.a,
        c.b,
        str(c.n),
        pct(c.accuracy_a),
        pct(c.accuracy_b),
        signed_pct(c.diff),
        f"[{100 * c.ci95[0]:+.1f}, {100 * c.ci95[1]:+.1f}] pp",
        f"{c.p_value:.2g}",
        f"{c.a_only} / {c.b_only}",
    ]


def verdict(c: Comparison) -> str:
    """One honest sentence: significant only when the paired CI excludes 0 and McNemar agrees."""
    if c.ci95[0] > 0 and c.p_value < 0.05:
        return f"**{c.b}** beats **{c.a}** by {signed_pct(c.diff)} (95% CI excludes 0, McNemar p = {c.p_value:.2g})."
    if c.ci95[1] < 0 and c.p_value < 0.05:
        return f"**{c.b}** is worse than **{c.a}** by {signed_pct(-c.diff)} (McNemar p = {c.p_value:.2g})."
    return f"No significant difference between **{c.a}** and **{c.b}** ({signed_pct(c.diff)}, p = {c.p_value:.2g})."


def _prompt_text(prompt: Any) -> str:
    """The shown problem: a raw prompt string, or the user turns of chat messages."""
    if isinstance(prompt, list):
        return "\n\n".join(
            str(m.get("content", "")) for m in prompt if isinstance(m, dict) and m.get("role") != "assistant"
        )
    return str(prompt)


def failure_sample(run: EvalRun, limit: int, seed: int = 0) -> list[dict[str, Any]]:
    """Up to ``limit`` problems the run got (at least partly) wrong, a seeded sample in file order."""
    failures = [row for row in run.results if float(row.get("correct", 0)) < 1.0]
    if len(failures) > limit:
        keep = set(random.Random(seed).sample(range(len(failures)), limit))
        failures = [row for i, row in enumerate(failures) if i in keep]
    return failures


def _failure_details(row: dict[str, Any]) -> Details:
    # an lm-eval document has no samples: its response is the generated text or the chosen answer
    samples = row.get("samples") or [{"response": row.get("response", ""), "extracted": row.get("response")}]
    wrong = next((s for s in samples if not s.get("correct")), samples[0])
    extracted = wrong.get("extracted")
    summary = (
        f"{row.get('id')} — gold {row.get('gold')!s} · extracted {'(none)' if extracted is None else extracted}"
        f" · {wrong.get('reason', '')}" + (" · truncated" if wrong.get("finish_reason") == "length" else "")
    )
    fields = [
        ("problem (prompt)", _prompt_text(row.get("prompt", ""))),
        ("response", str(wrong.get("response", ""))),
        ("extracted answer", "(none: no answer found)" if extracted is None else str(extracted)),
        ("gold", str(row.get("gold", ""))),
    ]
    return Details(summary, fields)


def breakdown_tables(evals: Sequence[EvalRun]) -> dict[str, Table]:
    """Per-dimension tables (subject, level, ...) from each summary's ``breakdown``: rows are groups,
    columns are runs (accuracy, CI, n)."""
    tables: dict[str, Table] = {}
    dims: list[str] = []
    for run in evals:
        for dim in run.summary.get("breakdown") or {}:
            if dim not in dims:
                dims.append(dim)
    for dim in dims:
        with_dim = [run for run in evals if (run.summary.get("breakdown") or {}).get(dim)]
        groups: list[str] = []
        for run in with_dim:
            for group in run.summary["breakdown"][dim]:
                if group not in groups:
                    groups.append(group)
        groups.sort(
            key=lambda g: (
                not str(g).lstrip("-").isdigit(),
                int(g) if str(g).lstrip("-").isdigit() else 0,
                str(g),
            )
        )
        rows = []
        for group in groups:
            row = [str(group)]
            for run in with_dim:
                cell = run.summary["breakdown"][dim].get(group)
                row.append(f"{pct(cell['accuracy'])} {ci(cell.get('ci95'))} (n={cell['n']})" if cell else "–")
            rows.append(row)
        tables[dim] = Table([dim, *(run.name for run in with_dim)], rows)
    return tables


# ----------------------------------------------------------------------------------------------------
# The report


def write_report(
    run_dirs: Sequence[str | Path], out: str | Path, title: str = "mathsft report", max_failures: int = 20
) -> tuple[Path, Path]:
    """Write ``OUT/report.md`` (+ PNGs beside it) and a self-contained ``OUT/report.html``."""
    found = collect(run_dirs)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = Doc()
    doc.heading(1, title)
    doc.para(
        f"Generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} from "
        + ", ".join(f"`{r}`" for r in found.roots)
        + f": {len(found.evals)} eval run(s), {len(found.trains)} training run(s)."
    )

    # evals of a suites folder are paired in the stage x suite section, suite by suite
    alone = [e for e in found.evals if e.path.parent not in found.suite_stages.values()]
    comparisons, notes = paired_comparisons(alone)
    _results_section(doc, found, comparisons, notes, out_dir)
    if found.suite_stages:
        from mathsft.reporting.suites import suites_section

        suites_section(doc, found.suite_stages)
    for name, sweep in found.sweeps.items():
        _sweep_section(doc, name, sweep, found, out_dir)
    _curves_section(doc, found, out_dir)
    _stages_section(doc, found)
    _breakdown_section(doc, found)
    _failures_section(doc, found, max_failures)
    _setup_section(doc, found)

    md_path = out_dir / "report.md"
    md_path.write_text(render_markdown(doc, out_dir), encoding="utf-8")
    html_path = out_dir / "report.html"
    html_path.write_text(render_html(doc, title), encoding="utf-8")
    (out_dir / "comparisons.json").write_text(
        json.dumps([c.to_dict() for c in comparisons], indent=2) + "\n", encoding="utf-8"
    )
    return md_path, html_path


def _results_section(
    doc: Doc, found: Collected, comparisons: list[Comparison], notes: list[str], out_dir: Path
) -> None:
    doc.heading(2, "Results")
    if not found.evals:
        doc.para("No eval runs.")
        return
    doc.para(
        'Accuracy with its 95% bootstrap CI; format = the response stated its answer (boxed, ####, "the answer is"; a last number picked from the text is graded but not counted here); truncated = hit max_new_tokens.'
    )
    doc.table(RESULTS_HEADERS, results_rows(found.evals))
    if 1 < len(found.evals) <= 8:
        doc.image(plot_accuracy_bars([r.point() for r in found.evals], out_dir / "accuracy.png"), "accuracy")
    if comparisons:
        doc.heading(3, "Paired comparison (same problems)")
        doc.table(COMPARISON_HEADERS, [comparison_row(c) for c in comparisons])
        for c in comparisons:
            doc.para(verdict(c))
    for note in notes:
        doc.para(note)
    for name, recipe in found.recipes.items():
        _published_section(doc, name, recipe)


def _published_section(doc: Doc, name: str, recipe: dict[str, Any]) -> None:
    """The recipe's source and its published result, to set beside ours."""
    doc.heading(3, f"Published reference: {recipe.get('title', name)}")
    doc.para(f"Source: {recipe.get('source', '?')} · hardware: {recipe.get('hardware', '?')}")
    rows = [
        [
            str(p.get("benchmark", "")),
            str(p.get("metric", "")),
            pct(p["value"]) if p.get("value") is not None else "not published",
            str(p.get("note", "")),
        ]
        for p in recipe.get("published") or []
    ]
    doc.table(["benchmark", "metric", "published", "note"], rows)


def _sweep_section(doc: Doc, name: str, sweep: dict[str, Any], found: Collected, out_dir: Path) -> None:
    doc.heading(2, f"Dataset-size sweep: {name}")
    arms = [a for a in sweep.get("arms", []) if a.get("accuracy") is not None]
    if not arms:
        doc.para("No arm has finished yet.")
        return
    points = [
        AccuracyPoint(
            a["name"], a["accuracy"], tuple(a["ci95"]), a.get("n", 0), a.get("size"), a.get("filtered", False)
        )
        for a in arms
    ]
    base = sweep.get("baseline")
    baseline = (
        AccuracyPoint("untrained model", base["accuracy"], tuple(base["ci95"]), base.get("n", 0))
        if base
        else None
    )
    slug = name.replace("/", "-") or "sweep"
    doc.image(
        plot_accuracy_vs_size(points, out_dir / f"{slug}-accuracy-vs-size.png", baseline), "accuracy vs size"
    )
    rows = [
        [
            a["name"],
            str(a.get("size", "")),
            "yes" if a.get("filtered") else "",
            pct(a["accuracy"]),
            ci(a["ci95"]),
            str(a.get("n", "")),
            str(a.get("steps", "")),
        ]
        for a in arms
    ]
    if base:
        rows.insert(
            0, ["untrained", "0", "", pct(base["accuracy"]), ci(base["ci95"]), str(base.get("n", "")), "0"]
        )
    doc.table(["arm", "train examples", "filtered", "accuracy", "95% CI", "n eval", "steps"], rows)
    if sweep.get("filtered"):
        f = sweep["filtered"]
        doc.para(
            f"Filtered arm: kept {f['kept']} of {f['candidates']} examples whose reference response reaches the "
            f"gold answer (grader profile `{f.get('profile', 'lenient')}`)."
        )


def _curves_section(doc: Doc, found: Collected, out_dir: Path) -> None:
    if not found.trains:
        return
    doc.heading(2, "Training curves")
    runs = {run.name: run.metrics for run in found.trains}
    sft = {name: rows for name, rows in runs.items() if any("train/loss" in row for row in rows)}
    rl = {name: rows for name, rows in runs.items() if any("rl/reward_mean" in row for row in rows)}
    if sft or not rl:
        doc.image(plot_loss(sft, out_dir / "loss.png"), "loss curves")
    if rl:
        doc.image(plot_reward(rl, out_dir / "reward.png"), "RL reward")
    if any(row.get("eval/accuracy") is not None for rows in runs.values() for row in rows):
        doc.image(plot_val_accuracy(runs, out_dir / "val-accuracy.png"), "validation accuracy")
    _rl_table(doc, [run for run in found.trains if run.name in rl])
    rows = []
    for run in found.trains:
        if run.name in rl:
            continue
        train_rows = [r for r in run.metrics if r.get("train/loss") is not None]
        val = [r for r in run.metrics if r.get("eval/accuracy") is not None]
        tps = [
            r["train/supervised_tokens_per_s"] for r in train_rows if r.get("train/supervised_tokens_per_s")
        ]
        rows.append(
            [
                run.name,
                str(max((r["train_step"] for r in train_rows), default=0)),
                f"{train_rows[0]['train/loss']:.3f} → {train_rows[-1]['train/loss']:.3f}"
                if train_rows
                else "–",
                f"{sum(tps) / len(tps):.0f}" if tps else "–",
                f"{pct(val[-1]['eval/accuracy'])} {ci(val[-1].get('eval/ci95'))}" if val else "–",
                f"{pct(max(r['eval/accuracy'] for r in val))}" if val else "–",
            ]
        )
    doc.table(["run", "steps", "loss first → last", "supervised tok/s", "last validation acc", "best"], rows)


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    return sum(float(r.get(key, 0.0)) for r in rows) / max(len(rows), 1)


def _early_late(steps: list[dict[str, Any]], key: str, show: Any) -> str:
    """``key`` averaged over the first and the last tenth of the steps."""
    tenth = max(1, len(steps) // 10)
    return f"{show(_mean(steps[:tenth], key))} → {show(_mean(steps[-tenth:], key))}"


def _rl_table(doc: Doc, runs: list[TrainRun]) -> None:
    """One row per RL run: reward and pass rate early and late, groups without signal, lengths, speed."""
    rows = []
    for run in runs:
        steps = [r for r in run.metrics if r.get("rl/reward_mean") is not None]
        val = [r for r in run.metrics if r.get("eval/accuracy") is not None]
        speed = (
            f"{_mean(steps, 'rl/rollout_tokens_per_s'):.0f} / {_mean(steps, 'rl/update_tokens_per_s'):.0f}"
        )
        rows.append(
            [
                run.name,
                str(max(r["train_step"] for r in steps)),
                _early_late(steps, "rl/reward_mean", lambda x: f"{x:.3f}"),
                _early_late(steps, "rl/pass_rate", pct),
                pct(_mean(steps, "rl/zero_signal_fraction")),
                f"{_mean(steps, 'rl/response_tokens'):.0f}",
                speed,
                f"{pct(val[-1]['eval/accuracy'])} {ci(val[-1].get('eval/ci95'))}" if val else "–",
            ]
        )
    headers = [
        "RL run",
        "steps",
        "reward (first → last tenth of steps)",
        "pass rate",
        "groups without signal",
    ]
    headers += ["mean response tokens", "rollout / update tok/s", "last validation acc"]
    doc.table(headers, rows)


def _stages_section(doc: Doc, found: Collected) -> None:
    """Each stage of a ``mathsft run`` with its wall time and the tokens it generated or trained on: what
    two arms of an equal-compute comparison each spent."""
    for name, (path, times) in found.stage_times.items():
        doc.heading(2, "Stages" if len(found.stage_times) == 1 else f"Stages: {name}")
        rows = [
            [stage, f"{seconds / 60:.1f} min", stage_work(path / stage, found)]
            for stage, seconds in times.items()
        ]
        doc.table(["stage", "wall time", "work"], rows)


def stage_work(folder: Path, found: Collected) -> str:
    """What a stage folder holds, in tokens: an eval's generated and prompt tokens (all its suites), an SFT
    run's trained tokens, an RL run's sampled and trained tokens."""
    evals = [e for e in found.evals if folder in (e.path, e.path.parent)]
    if evals:
        generated = sum(int(e.summary.get("generated_tokens", 0)) for e in evals)
        prompts = sum(int(e.summary.get("prompt_tokens", 0)) for e in evals)
        problems = sum(int(e.summary["n"]) for e in evals)
        return f"{problems:,} problems: {generated:,} tokens generated, {prompts:,} prompt tokens"
    run = next((t for t in found.trains if t.path == folder), None)
    if run is None:
        return "–"
    steps = {int(r["train_step"]): r for r in run.metrics if "train/tokens" in r or "rl/reward_mean" in r}
    if any("rl/reward_mean" in r for r in steps.values()):
        sampled = sum(int(r.get("rl/generated_tokens", 0)) for r in steps.values())
        trained = sum(int(r.get("rl/update_tokens", 0)) for r in steps.values())
        return f"RL, {len(steps)} steps: {sampled:,} tokens sampled, {trained:,} trained on"
    trained = sum(int(r["train/tokens"]) for r in steps.values())
    supervised = sum(int(r.get("train/supervised_tokens", 0)) for r in steps.values())
    return f"SFT, {len(steps)} steps: {trained:,} tokens trained on ({supervised:,} supervised)"


def _breakdown_section(doc: Doc, found: Collected) -> None:
    tables = breakdown_tables(found.evals)
    if not tables:
        return
    doc.heading(2, "Breakdown")
    for dim, table in tables.items():
        doc.heading(3, f"By {dim}")
        doc.table(table.headers, table.rows)


def _failures_section(doc: Doc, found: Collected, max_failures: int) -> None:
    runs = [run for run in found.evals if run.results]
    if not runs:
        return
    doc.heading(2, "Failures")
    doc.para(
        f"A seeded sample of up to {max_failures} problems each run got wrong: click one to see the problem, "
        "the model's response, the extracted answer and the gold answer."
    )
    for run in runs:
        wrong = sum(1 for row in run.results if float(row.get("correct", 0)) < 1.0)
        sample = failure_sample(run, max_failures)
        doc.heading(3, f"{run.name}: {wrong} of {len(run.results)} wrong, {len(sample)} shown")
        for row in sample:
            detail = _failure_details(row)
            doc.details(detail.summary, detail.fields)


def _setup_section(doc: Doc, found: Collected) -> None:
    doc.heading(2, "Configuration and data")
    for name, text in found.configs.items():
        doc.details(f"{name}/config.yaml (experiment)", [("config.yaml", text)])
    for name, manifest in found.manifests.items():
        doc.heading(3, f"Data manifest: {name}")
        _manifest_table(doc, manifest)
    for run in found.trains:
        if run.manifest:
            doc.heading(3, f"Training data: {run.name}")
            _manifest_table(doc, run.manifest)
        fields = [("config.yaml", run.config)] if run.config else []
        if run.preflight:
            fields.append(("preflight.md", run.preflight))
        if fields:
            doc.details(f"{run.name}: training config and pre-flight report", fields)
    for run in found.evals:
        if run.config:
            doc.details(f"{run.name}: eval config", [("config.yaml", run.config)])


def _manifest_table(doc: Doc, manifest: dict[str, Any]) -> None:
    """Scalars as a table; nested values (versions, per-split entries) as compact JSON."""
    rows = []
    for key, value in manifest.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
        rows.append([key, text if len(text) <= 300 else text[:297] + "..."])
    doc.table(["field", "value"], rows)
