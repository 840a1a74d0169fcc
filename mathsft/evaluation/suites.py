"""``run_suites``: one model on several benchmarks, each in its own eval directory, one table of them all.

``OUT/<suite>/`` is an eval directory in the usual format (``summary.json``, ``results.jsonl`` with one row
per problem or per lm-eval document, ``config.yaml``), and ``OUT/suites.json`` holds one row per suite (name,
n, accuracy, ci95). Suites run one after another; a suite whose summary is complete is reused, never
evaluated again, so a run killed between suites resumes with the next one and loses none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from mathsft.data.schema import Problem
from mathsft.errors import MathsftError
from mathsft.evaluation.config import EvalConfig, LmEvalSuite, ProblemSuite
from mathsft.evaluation.metrics import bootstrap_ci
from mathsft.evaluation.run import check_resume, eval_complete, load_eval_problems, run_eval, versions


def run_suites(
    cfg: EvalConfig, out: str | Path, given: dict[str, list[Problem]] | None = None
) -> list[dict[str, Any]]:
    """Evaluate ``cfg.model`` on each of ``cfg.suites`` into ``out/<name>/``; ``given`` holds the problems
    of suites whose problems the caller already has (an experiment's held-out test set). Returns the rows
    of ``out/suites.json``, which is rewritten after every suite."""
    if not cfg.suites:
        raise MathsftError("no suites to evaluate (give --suite NAME=PATH, or suites: in the config)")
    out = Path(out)
    rows: list[dict[str, Any]] = []
    for name, suite in cfg.suites.items():
        folder = out / name
        if isinstance(suite, ProblemSuite):
            summary = problem_suite(suite.resolve(cfg, name, str(folder)), (given or {}).get(name))
        else:
            summary = lm_eval_suite(suite, cfg, folder)
        rows.append(suite_row(name, summary))
        out.mkdir(parents=True, exist_ok=True)
        (out / "suites.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return rows


def suite_row(name: str, summary: dict[str, Any]) -> dict[str, Any]:
    """A suite's line in ``suites.json``: what a stage x suite table shows."""
    return {
        "name": name,
        "n": summary["n"],
        "accuracy": summary["accuracy"],
        "ci95": summary["ci95"],
        "metric": summary.get("metric", "pass@1"),
        "benchmark": summary.get("task") or summary.get("dataset"),
    }


def problem_suite(cfg: EvalConfig, problems: list[Problem] | None) -> dict[str, Any]:
    """A problem benchmark: reused when its eval directory is complete for these problems, else ``run_eval``
    (which itself skips the problems already in ``results.jsonl``)."""
    problems = problems if problems is not None else load_eval_problems(cfg)
    out = Path(cfg.out_dir())
    check_resume(cfg, out)
    if eval_complete(out, len(problems)):
        return read_summary(out)
    return run_eval(cfg, problems=problems)


def read_summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------------------------------
# lm-eval tasks


def lm_eval_settings(suite: LmEvalSuite, base: EvalConfig) -> dict[str, Any]:
    """What an lm-eval suite's results depend on (its ``config.yaml``): the suite with the inherited keys
    filled in, and the model."""
    return suite.model_dump() | {
        "limit": suite.limit or base.limit,
        "batch_size": suite.batch_size or base.batch_size,
        "model": base.model,
        "dtype": base.dtype,
        "bootstrap": base.bootstrap,
    }


def lm_eval_suite(suite: LmEvalSuite, base: EvalConfig, out: Path) -> dict[str, Any]:
    """An lm-eval task on ``base.model`` (reused when ``out`` holds its complete result for the same
    settings). lm-eval's request cache in ``out`` lets a killed task resume without recomputing answers."""
    settings = lm_eval_settings(suite, base)
    saved = out / "config.yaml"
    if saved.is_file():
        previous = yaml.safe_load(saved.read_text(encoding="utf-8"))
        if previous != settings:
            changed = sorted(k for k in settings if previous.get(k) != settings[k])
            raise MathsftError(
                f"{out} holds results of a different lm-eval suite (changed: {', '.join(changed)}); "
                "use another --out or delete that folder"
            )
        if (out / "summary.json").is_file():
            return read_summary(out)
    out.mkdir(parents=True, exist_ok=True)
    saved.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    results = simple_evaluate(suite, settings, out)
    metric = pick_metric(results["results"][suite.task], suite.metric)
    rows = sample_rows(results.get("samples") or {}, metric)
    summary = lm_eval_summary(suite, settings, results, metric, rows, base)
    if rows:
        with (out / "results.jsonl").open("w", encoding="utf-8") as sink:
            sink.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    raw = {k: v for k, v in results.items() if k in ("results", "configs", "versions", "n-shot", "n-samples")}
    (out / "lm_eval.json").write_text(json.dumps(raw, indent=2, default=str) + "\n", encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def simple_evaluate(suite: LmEvalSuite, settings: dict[str, Any], out: Path) -> dict[str, Any]:
    """``lm_eval.simple_evaluate`` with the per-sample log, on the model's HF directory."""
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise MathsftError("lm-eval suites need lm-eval: pip install 'mathsft[lmeval]'") from None
    from mathsft.generation.hf import resolve_device, resolve_dtype
    from mathsft.models import resolve_model

    if suite.include_path is not None and not Path(suite.include_path).is_dir():
        raise MathsftError(f"{out}: include_path {suite.include_path} is not a folder")
    device = resolve_device("auto")
    manager = task_manager(suite, TaskManager, out)
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args={
            "pretrained": str(resolve_model(settings["model"])),
            "dtype": resolve_dtype(settings["dtype"], device),
        },
        tasks=[suite.task],
        num_fewshot=suite.num_fewshot,
        limit=settings["limit"],
        batch_size=settings["batch_size"],
        device=device,
        use_cache=str(out / "lm-eval-cache"),
        log_samples=True,
        task_manager=manager,
        apply_chat_template=suite.apply_chat_template,
        bootstrap_iters=settings["bootstrap"],  # the stderr of a corpus-level score (a perplexity)
    )
    if results is None:  # lm-eval returns None on non-zero ranks of a distributed run
        raise MathsftError(f"{out}: lm-eval returned no results")
    return results


def task_manager(suite: LmEvalSuite, cls: Any, out: Path) -> Any:
    """lm-eval's task index: the ``include_path`` folder alone when it defines the task (indexing lm-eval's
    thousands of bundled task files takes ~10 s), else everything."""
    if suite.include_path is not None:
        local = cls(include_path=suite.include_path, include_defaults=False)
        if local.match_tasks([suite.task]):
            return local
    manager = cls(include_path=suite.include_path)
    if not manager.match_tasks([suite.task]):
        raise MathsftError(
            f"{out}: lm-eval knows no task {suite.task!r}"
            + (f" (nor does {suite.include_path})" if suite.include_path else " (local tasks: include_path)")
        )
    return manager


def pick_metric(task_results: dict[str, Any], wanted: str | None) -> str:
    """The ``metric,filter`` key of lm-eval's results that scores the suite: ``wanted`` (with or without
    its filter), else the task's first metric."""
    keys = [k for k in task_results if "," in k and "_stderr," not in k]
    if wanted is None and keys:
        return keys[0]
    for key in keys:
        if wanted in (key, key.split(",")[0]):
            return key
    raise MathsftError(f"lm-eval reported no metric {wanted!r}; it reported {', '.join(keys) or 'none'}")


def sample_rows(samples: dict[str, list[dict[str, Any]]], metric: str) -> list[dict[str, Any]]:
    """One ``results.jsonl`` row per document (every subtask of a group): its score under ``metric``.
    Empty when the metric has no per-document number (perplexities are aggregated over a corpus)."""
    name, filt = metric.split(",", 1)
    rows = []
    for task, docs in samples.items():
        for doc in docs:
            if doc.get("filter", filt) != filt:
                continue
            value = doc.get(name)
            if not isinstance(value, bool | int | float):
                return []
            row = {"id": f"{task}/{doc['doc_id']}", "task": task, "correct": float(value)}
            rows.append(row | shown(doc))
    return rows


def shown(doc: dict[str, Any]) -> dict[str, str]:
    """What a report shows of a document: its prompt, the model's answer and the target; for a multiple
    choice, the choices' texts (the answer: the choice of highest log-likelihood)."""
    arguments = doc.get("arguments") or [("", "")]
    response, target = doc.get("filtered_resps"), doc.get("target", "")
    choices = [str(a[1]) for a in arguments if len(a) > 1]
    if isinstance(response, list) and response and all(isinstance(r, list | tuple) for r in response):
        response = choices[max(range(len(response)), key=lambda i: response[i][0])]
        target = choices[int(target)] if str(target).isdigit() and int(target) < len(choices) else target
    elif isinstance(response, list) and len(response) == 1:
        response = response[0]
    return {"prompt": str(arguments[0][0]), "gold": str(target), "response": str(response)}


def lm_eval_summary(
    suite: LmEvalSuite,
    settings: dict[str, Any],
    results: dict[str, Any],
    metric: str,
    rows: list[dict[str, Any]],
    base: EvalConfig,
) -> dict[str, Any]:
    """The eval summary of an lm-eval suite: the score is the mean over documents when lm-eval logged
    per-document scores (its bootstrap CI resamples them), else lm-eval's aggregate, with +-1.96 stderr
    where lm-eval gives one."""
    task_results = results["results"][suite.task]
    value = float(task_results[metric])
    if rows:
        scores = [r["correct"] for r in rows]
        accuracy, ci95 = sum(scores) / len(scores), list(bootstrap_ci(scores, base.bootstrap, base.seed))
    else:
        stderr = task_results.get(metric.replace(",", "_stderr,", 1))
        ok = isinstance(stderr, int | float)
        accuracy, ci95 = value, [value - 1.96 * stderr, value + 1.96 * stderr] if ok else None
    n = len(rows) or sum(int(v.get("effective", 0)) for v in (results.get("n-samples") or {}).values())
    return {
        "model": settings["model"],
        "task": suite.task,
        "dataset": f"lm-eval {suite.task}",
        "n": n,
        "metric": metric,
        "accuracy": accuracy,
        "ci95": ci95,
        "lm_eval_value": value,
        "higher_is_better": (results.get("higher_is_better") or {})
        .get(suite.task, {})
        .get(metric.split(",")[0]),
        "num_fewshot": (results.get("n-shot") or {}).get(suite.task),
        "per_sample": bool(rows),
        "versions": versions() | {"lm_eval": _lm_eval_version()},
    }


def _lm_eval_version() -> str:
    from importlib.metadata import version

    return version("lm-eval")
