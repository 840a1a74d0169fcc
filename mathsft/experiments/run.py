"""``mathsft run``: data → baseline eval → SFT → eval → RL → eval → paired comparisons → report.

One output folder holds every stage, each in its documented format::

    runs/main/config.yaml          the resolved ExperimentConfig
    runs/main/data/                train / val / test JSONL + manifest.json (sources, counts, hashes)
    runs/main/traces/              teacher traces (recipes that distill), when configured
    runs/main/baseline/            eval of the untrained model on the held-out test set
    runs/main/train/               the SFT run (metrics.jsonl, checkpoints/final, ...), unless sft: false
    runs/main/final/               eval of the SFT checkpoint on the same test set
    runs/main/rl/                  the RL run (metrics.jsonl, rollouts.jsonl, checkpoints/final), with rl:
    runs/main/rl-final/            eval of the RL checkpoint on the same test set
    runs/main/comparison.json      paired bootstrap CI + McNemar: baseline against the first trained stage
    runs/main/comparisons.json     every pair of stages (baseline, SFT, RL), each paired on the same problems
    runs/main/suite-matrix.json    with eval.suites: every stage on every suite, paired differences, regressions
                                   (each stage folder then holds <suite>/ eval folders and its suites.json;
                                   the held-out test set is the suite named after data.test.dataset)
    runs/main/report/              report.md, report.html, PNGs

Rerunning the same command resumes: a stage whose outputs are complete is reused, an unfinished
training run resumes from its last checkpoint and an unfinished eval skips the problems it has.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from mathsft.config import save_resolved
from mathsft.data import (
    Problem,
    SFTExample,
    check_contamination,
    get_adapter,
    load_problems,
    load_sft_examples,
    split_validation,
    write_jsonl,
)
from mathsft.data.schema import content_hash
from mathsft.errors import MathsftError
from mathsft.evaluation.config import ProblemSuite
from mathsft.evaluation.run import eval_complete
from mathsft.experiments.config import ExperimentConfig, SourceConfig
from mathsft.experiments.plan import Plan, build_plan
from mathsft.reporting.report import Comparison, compare_runs, load_eval_run, write_report
from mathsft.reporting.suites import SuiteMatrix, suite_matrix

log = logging.getLogger("mathsft.experiments")


# ----------------------------------------------------------------------------------------------------
# Output folder


def claim_out_dir(cfg: ExperimentConfig, out: Path) -> None:
    """Write ``config.yaml``, or check that the one there describes the same experiment, so a rerun never
    mixes the outputs of two different configs."""
    path = out / "config.yaml"
    resolved = cfg.model_dump(mode="json")
    if path.is_file():
        previous = yaml.safe_load(path.read_text(encoding="utf-8"))
        if previous != resolved:
            changed = sorted(_diff_keys(previous or {}, resolved))
            raise MathsftError(
                f"{out} holds a run with a different config (changed: {', '.join(changed[:8])}); "
                "pass another --out, or delete the folder to start over"
            )
        return
    save_resolved(cfg, out)


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys: list[str] = []
        for key in sorted(set(a) | set(b)):
            keys += _diff_keys(a.get(key), b.get(key), f"{prefix}{key}.")
        return keys
    return [] if a == b else [prefix.rstrip(".")]


# ----------------------------------------------------------------------------------------------------
# Data


@dataclass
class Prepared:
    train: list[Problem] | list[SFTExample]
    val: list[Problem]
    test: list[Problem]
    manifest: dict[str, Any]


def training_form(source: SourceConfig) -> str:
    """``problems`` (rendered through the prompt template with their solutions) or ``sft`` (ready pairs)."""
    if source.form != "auto":
        return source.form
    return "problems" if get_adapter(source.dataset).gives_problems else "sft"


def load_source(source: SourceConfig, seed: int, skip_bad: bool, form: str = "problems") -> list[Any]:
    loader = load_sft_examples if form == "sft" else load_problems
    return loader(
        source.dataset,
        source.path,
        split=source.split,
        config=source.config,
        limit=source.limit,
        seed=seed,
        skip_bad=skip_bad,
        first=source.subset == "first",
    )


def prepare_data(cfg: ExperimentConfig, out: Path) -> Prepared:
    """Load train and test, carve the validation split, check train/test overlap, write ``data/``."""
    data = cfg.data
    form = training_form(data.train)
    train = load_source(data.train, data.seed, data.skip_bad, form)
    test = load_source(data.test, data.seed, data.skip_bad)
    val: list[Problem] = []
    if data.val_size:
        if form == "sft":
            raise MathsftError(
                "data.val_size needs problems to validate on; the training data is SFT examples"
            )
        train, val = split_validation(train, data.val_size, data.seed)
    elif data.val is not None:
        val = load_source(data.val, data.seed, data.skip_bad)
    overlap = check_contamination(train, {"test": test})
    dropped: list[str] = []
    if data.decontaminate and not overlap.clean:
        dropped = overlap.flagged_ids
        train = [item for item in train if item.id not in set(dropped)]
        log.info("decontaminated: dropped %s; the check now runs on the rest", overlap.summary())
        overlap = check_contamination(train, {"test": test})
    log.log(logging.INFO if overlap.clean else logging.WARNING, "contamination check: %s", overlap.summary())

    def entry(source: SourceConfig, items: Sequence[Any]) -> dict[str, Any]:
        return {**source.model_dump(exclude_none=True), "count": len(items), "hash": content_hash(items)}

    manifest = {
        "train": entry(data.train, train) | {"form": form},
        "val": (
            entry(data.val, val)
            if data.val is not None
            else {"count": len(val), "hash": content_hash(val), "carved_from": "train"}
        )
        if val
        else None,
        "test": entry(data.test, test),
        "seed": data.seed,
        "contamination": overlap.to_dict() | {"dropped_before_training": dropped},
    }
    return write_data(Prepared(train, val, test, manifest), out)


def write_data(prepared: Prepared, out: Path) -> Prepared:
    folder = out / "data"
    write_jsonl(folder / "train.jsonl", prepared.train)
    write_jsonl(folder / "test.jsonl", prepared.test)
    if prepared.val:
        write_jsonl(folder / "val.jsonl", prepared.val)
    (folder / "manifest.json").write_text(json.dumps(prepared.manifest, indent=2) + "\n", encoding="utf-8")
    return prepared


BUDGET = "budget.json"  # the training-set size that budget_minutes chose on the first run: kept on resume


def fit_budget(cfg: ExperimentConfig, prepared: Prepared, plan: Plan, out: Path) -> tuple[Prepared, Plan]:
    """``budget_minutes``: SFT trains on the longest prefix of the (seeded) training problems that the plan
    fits in the budget on this machine. The choice is saved, so a resumed run trains on the same problems."""
    assert cfg.budget_minutes is not None
    path = out / BUDGET
    if path.is_file():
        chosen = json.loads(path.read_text(encoding="utf-8"))
    else:
        n = plan.examples_within(60 * cfg.budget_minutes, cfg.train.batch_size)
        if n < cfg.train.batch_size:
            other = sum(s.seconds for s in plan.stages if s.name != "train" and not s.done) / 60
            raise MathsftError(
                f"budget_minutes={cfg.budget_minutes:g} leaves no time to train on this machine: the other "
                f"stages alone take ~{other:.1f} min here; raise budget_minutes or lower data.test.limit"
            )
        chosen = {"minutes": cfg.budget_minutes, "dtype": plan.dtype, "matmul_gflops": round(plan.gflops)}
        chosen |= {"examples": n, "loaded": len(prepared.train)}
        path.write_text(json.dumps(chosen, indent=2) + "\n", encoding="utf-8")
    train = prepared.train[: chosen["examples"]]
    entry = prepared.manifest["train"] | {"count": len(train), "hash": content_hash(train), "budget": chosen}
    fitted = write_data(
        Prepared(train, prepared.val, prepared.test, prepared.manifest | {"train": entry}), out
    )
    complete = frozenset(s.name for s in plan.stages if s.done)
    plan = build_plan(cfg, fitted, complete, gflops=plan.gflops)
    plan.notes.insert(
        0,
        f"budget {chosen['minutes']:g} min ({chosen['dtype']}): SFT on the first {len(train)} of the "
        f"{chosen['loaded']} training problems loaded, as many as this machine fits",
    )
    return fitted, plan


# ----------------------------------------------------------------------------------------------------
# Stages (each reused when its outputs are complete)


def heldout_suite(cfg: ExperimentConfig) -> tuple[str, ProblemSuite]:
    """The held-out test set (``data.test``) as a suite named after its dataset, run with the ``eval:`` keys."""
    test = cfg.data.test
    suite = ProblemSuite(
        dataset=test.dataset, data_path=test.path, split=test.split or "test", data_config=test.config
    )
    return test.dataset, suite


def heldout_dir(cfg: ExperimentConfig, out: Path) -> Path:
    """Where a stage's eval of the held-out test set is: the stage folder, or its suite's folder in it."""
    return out / cfg.data.test.dataset if cfg.eval.suites else out


def evaluate(cfg: ExperimentConfig, model: str, problems: list[Problem], out: Path) -> dict[str, Any]:
    """Eval ``model`` on the held-out ``problems`` into ``out`` (reused when already complete); with
    ``eval.suites``, on every suite, each in ``out/<suite>/`` (see mathsft.evaluation.suites). Returns the
    held-out set's summary."""
    if cfg.eval.suites:
        from mathsft.evaluation.suites import run_suites

        name, heldout = heldout_suite(cfg)
        every = cfg.eval.model_copy(update={"model": model, "suites": {name: heldout, **cfg.eval.suites}})
        run_suites(every, out, given={name: problems})
        return json.loads((heldout_dir(cfg, out) / "summary.json").read_text(encoding="utf-8"))
    if eval_complete(out, len(problems)):
        log.info("reusing %s", out)
        return json.loads((out / "summary.json").read_text(encoding="utf-8"))
    from mathsft.evaluation import run_eval

    test = cfg.data.test  # recorded in the eval's config.yaml and summary: which problems these are
    eval_cfg = cfg.eval.model_copy(
        update={
            "model": model,
            "out": str(out),
            "dataset": test.dataset,
            "data_path": test.path,
            "split": test.split or "test",
        }
    )
    return run_eval(eval_cfg, problems=problems)


def training_examples(cfg: ExperimentConfig, prepared: Prepared, out: Path) -> list[SFTExample]:
    """What SFT trains on: teacher traces when configured, else ready examples, else the problems'
    reference solutions rendered through the eval prompt template (so train and eval prompts match)."""
    if cfg.traces is not None:
        return teacher_traces(cfg, prepared.train, out)  # type: ignore[arg-type]
    if prepared.manifest["train"]["form"] == "sft":
        return list(prepared.train)  # type: ignore[arg-type]
    from mathsft.training import problems_to_examples

    return problems_to_examples(prepared.train, cfg.eval.prompt, cfg.eval.calculator)  # type: ignore[arg-type]


def teacher_traces(cfg: ExperimentConfig, problems: list[Problem], out: Path) -> list[SFTExample]:
    """Run the teacher on the training problems (resumable: logged samples are never requested again)
    and read back the accepted, cleaned traces."""
    from mathsft.traces import run_traces

    assert cfg.traces is not None
    folder = out / "traces"
    run_traces(cfg.traces.model_copy(update={"out": str(folder)}), problems=problems)
    return load_sft_examples("sft", folder / "sft.jsonl")


def val_dataset(cfg: ExperimentConfig) -> str:
    """The dataset the validation problems come from (their evals are labelled with it)."""
    return (cfg.data.val or cfg.data.train).dataset


def train_done(out: Path) -> bool:
    return (out / "checkpoints" / "final" / "config.json").is_file()


def reinforce(cfg: ExperimentConfig, start: str, prepared: Prepared, out: Path) -> Path:
    """GRPO on the training problems from model ``start`` into ``out`` (reused when its final checkpoint
    exists; resumed when it stopped half-way). Prompts, the calculator switch and validation problems are
    the experiment's, so RL samples what eval asks."""
    assert cfg.rl is not None
    if prepared.manifest["train"]["form"] != "problems":
        raise MathsftError("RL samples and grades problems, but the training data are SFT examples")
    if not train_done(out):
        from mathsft.rl import rl

        update = {
            "model": start,
            "out": str(out),
            "dataset": cfg.data.train.dataset,
            "val_dataset": val_dataset(cfg),
            "prompt": cfg.eval.prompt,
            "calculator": cfg.eval.calculator,
        }
        problems: list[Problem] = prepared.train  # type: ignore[assignment]  # the form is problems
        rl(cfg.rl.model_copy(update=update), problems=problems, val_problems=prepared.val or None)
    return out / "checkpoints" / "final"


def finetune(cfg: ExperimentConfig, examples: list[SFTExample], val: list[Problem], out: Path) -> Path:
    """SFT into ``out`` (reused when its final checkpoint exists; resumed when it stopped half-way)."""
    if not train_done(out):
        from mathsft.training import train

        # eval.calculator is the experiment's switch: SFT on the annotated solutions, validation with the tool
        update = {
            "model": cfg.model,
            "out": str(out),
            "val_dataset": val_dataset(cfg),
            "calculator": cfg.eval.calculator,
        }
        train_cfg = cfg.train.model_copy(update=update)
        train(train_cfg, examples=examples, val_problems=val or None)
    return out / "checkpoints" / "final"


# ----------------------------------------------------------------------------------------------------
# The experiment


STAGE_TIMES = "stages.json"  # each stage's wall time, seconds, by stage folder

# eval folder of each stage, and the label it gets in tables ("before training": the config's model, base or not)
STAGES = {"baseline": "before training", "final": "after SFT", "rl-final": "after RL"}


@contextmanager
def timed(plan: Plan, stage: str, reused: bool, console: Console, out: Path) -> Iterator[None]:
    """Time a stage: one that ran keeps its wall time in ``OUT/stages.json`` (the report's stage table) and
    tells the plan, which estimates the rest again; one reused on resume keeps the time it took then."""
    begin = time.perf_counter()
    yield
    seconds = 0.0 if reused else time.perf_counter() - begin
    plan.finished(stage, seconds)
    if not reused:
        record_stage(out, stage, seconds)
        plan.print_progress(console, stage)


def record_stage(out: Path, stage: str, seconds: float) -> None:
    """Write a stage's wall time into ``OUT/stages.json``. A stage resumed after a kill counts from the resume."""
    path = out / STAGE_TIMES
    times = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    times[stage] = round(seconds, 1)
    path.write_text(json.dumps(times, indent=2) + "\n", encoding="utf-8")


@dataclass
class ExperimentResult:
    out: Path
    stages: dict[str, dict[str, Any]]  # eval folder -> summary, in pipeline order (baseline, final, rl-final)
    comparisons: list[Comparison]  # every pair of stages, in pipeline order
    report: Path
    elapsed_s: float
    suites: SuiteMatrix | None = None  # every stage on every suite, with eval.suites

    @property
    def baseline(self) -> dict[str, Any] | None:
        return self.stages.get("baseline")

    @property
    def final(self) -> dict[str, Any]:
        """The last trained stage's eval."""
        return list(self.stages.values())[-1]

    @property
    def comparison(self) -> Comparison | None:
        """Baseline against the first trained stage."""
        return self.comparisons[0] if self.baseline is not None and self.comparisons else None


def run_experiment(cfg: ExperimentConfig, console: Console | None = None) -> ExperimentResult:
    start = time.perf_counter()
    console = console or Console(stderr=True)
    out = cfg.out_dir
    claim_out_dir(cfg, out)
    prepared = prepare_data(cfg, out)
    log.info("data: %d train, %d val, %d test", len(prepared.train), len(prepared.val), len(prepared.test))
    n_test = len(prepared.test)
    complete = {  # stages an earlier run of this command finished: reused, not run again
        "baseline": eval_complete(heldout_dir(cfg, out / "baseline"), n_test),
        "train": train_done(out / "train"),
        "final": eval_complete(heldout_dir(cfg, out / "final"), n_test),
        "rl": train_done(out / "rl"),
        "rl-final": eval_complete(heldout_dir(cfg, out / "rl-final"), n_test),
    }
    plan = build_plan(cfg, prepared, frozenset(name for name, done in complete.items() if done))
    if cfg.budget_minutes is not None:
        prepared, plan = fit_budget(cfg, prepared, plan, out)
    plan.print(console)
    stages: dict[str, dict[str, Any]] = {}
    if cfg.baseline:
        with timed(plan, "baseline", complete["baseline"], console, out):
            stages["baseline"] = evaluate(cfg, cfg.model, prepared.test, out / "baseline")
    checkpoint = None
    if cfg.sft:
        with timed(plan, "train", complete["train"], console, out):
            checkpoint = finetune(cfg, training_examples(cfg, prepared, out), prepared.val, out / "train")
        with timed(plan, "final", complete["final"], console, out):
            stages["final"] = evaluate(cfg, str(checkpoint), prepared.test, out / "final")
    if cfg.rl is not None:
        begin = str(checkpoint) if cfg.rl_from == "sft" else cfg.model
        with timed(plan, "rl", complete["rl"], console, out):
            policy = reinforce(cfg, begin, prepared, out / "rl")
        with timed(plan, "rl-final", complete["rl-final"], console, out):
            stages["rl-final"] = evaluate(cfg, str(policy), prepared.test, out / "rl-final")
    runs = [load_eval_run(heldout_dir(cfg, out / name), name) for name in stages]
    comparisons = [compare_runs(a, b) for i, a in enumerate(runs) for b in runs[i + 1 :]]
    if cfg.baseline and comparisons:
        (out / "comparison.json").write_text(
            json.dumps(comparisons[0].to_dict(), indent=2) + "\n", encoding="utf-8"
        )
    (out / "comparisons.json").write_text(
        json.dumps([c.to_dict() for c in comparisons], indent=2) + "\n", encoding="utf-8"
    )
    matrix = stage_suite_matrix(out, list(stages)) if cfg.eval.suites else None
    title = f"mathsft run: {cfg.name}" + (f" ({cfg.recipe.title})" if cfg.recipe else "")
    _, html_path = write_report([out], out / "report", title=title)
    return ExperimentResult(out, stages, comparisons, html_path, time.perf_counter() - start, matrix)


def stage_suite_matrix(out: Path, stages: list[str]) -> SuiteMatrix:
    """Every stage on every suite, paired suite by suite; written to ``suite-matrix.json`` (regressions flagged)."""
    matrix = suite_matrix({name: out / name for name in stages})
    (out / "suite-matrix.json").write_text(json.dumps(matrix.to_dict(), indent=2) + "\n", encoding="utf-8")
    return matrix
