"""``run_traces``: k graded teacher completions per problem, logged durably, rejection-sampled into SFT data.

Flow: load problems -> read ``samples.jsonl`` (resume) -> request only the missing (problem,
sample_index) pairs -> grade and append each completion as it arrives -> rebuild ``sft.jsonl``,
``sft.parquet``, ``problems.jsonl`` (the problems kept, e.g. for RL) and ``stats.json`` from the whole log.
The outputs are a pure function of the log and the selection settings, so rerunning with other
``--keep``/threshold settings re-selects without generating anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from mathsft.config import save_resolved
from mathsft.data.schema import Problem, SFTExample, content_hash
from mathsft.errors import MathsftError
from mathsft.generation.base import Backend, Completion, Request, SamplingParams
from mathsft.traces.cleaning import clean_trace, split_think
from mathsft.traces.config import TracesConfig
from mathsft.traces.selection import pass_rate, reward, select_problem
from mathsft.traces.store import SampleLog

log = logging.getLogger("mathsft.traces")

# provenance keys that must match for a resumed run to append to an existing log
GENERATION_KEYS = ("teacher", "sampling", "prompt_template")


def sample_seed(base: int, problem_id: str, sample_index: int) -> int:
    """A stable per-sample seed, so a resumed sample is drawn exactly as it would have been."""
    digest = hashlib.sha256(f"{base}:{problem_id}:{sample_index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def make_teacher(cfg: TracesConfig) -> Backend:
    """The teacher backend the config names (openai client, or an in-process engine)."""
    if cfg.resolved_backend == "openai":
        from mathsft.generation.openai import OpenAIBackend

        return OpenAIBackend(
            base_url=cfg.base_url or "",
            model=cfg.model,
            api_key_env=cfg.api_key_env,
            concurrency=cfg.concurrency,
            timeout=cfg.timeout,
            max_retries=cfg.max_retries,
            endpoint=cfg.endpoint,
            n_mode=cfg.n_mode,
            extra_body=cfg.extra_body,
        )
    from mathsft.generation import make_backend

    return make_backend(cfg.resolved_backend, cfg.model, **cfg.backend_options)


def build_prompt(cfg: TracesConfig, problem: Problem) -> Any:
    """The teacher prompt: the eval module's named template, so traces and eval see the same text."""
    from mathsft.evaluation.prompts import build_prompt as eval_build_prompt

    return eval_build_prompt(problem, template=cfg.prompt)


def grader_version() -> str:
    import mathsft.grading as grading

    return str(getattr(grading, "GRADER_VERSION", getattr(grading, "__version__", "unknown")))


def provenance(cfg: TracesConfig, problems_hash: str) -> dict[str, Any]:
    teacher: dict[str, Any] = {"backend": cfg.resolved_backend, "model": cfg.model}
    if cfg.resolved_backend == "openai":
        teacher |= {"base_url": cfg.base_url, "endpoint": cfg.endpoint}
    return {
        "teacher": teacher,
        "sampling": {
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "top_k": cfg.top_k,
            "max_tokens": cfg.max_tokens,
            "seed": cfg.seed,
            **({"calculator": True} if cfg.calculator else {}),
        },
        "prompt_template": cfg.prompt,
        "grader": {"profile": cfg.grader_profile, "version": grader_version()},
        "problem_set_hash": problems_hash,
    }


def _check_same_generation(rows: list[dict[str, Any]], current: dict[str, Any], path: Path) -> None:
    """Refuse to mix samples from another teacher, prompt or sampling setting into one log."""
    if not rows:
        return

    def identity(prov: dict[str, Any]) -> dict[str, Any]:
        # the server's address may change between runs (a restarted server); the teacher may not
        teacher = {k: v for k, v in (prov.get("teacher") or {}).items() if k != "base_url"}
        return {"teacher": teacher} | {k: prov.get(k) for k in GENERATION_KEYS if k != "teacher"}

    logged, now = identity(rows[0].get("provenance") or {}), identity(current)
    differing = [k for k in GENERATION_KEYS if logged[k] != now[k]]
    if differing:
        details = "; ".join(f"{k}: log has {logged[k]!r}, now {now[k]!r}" for k in differing)
        raise MathsftError(
            f"{path} holds samples generated differently ({details}). Use a new --out, or rerun with "
            "the original settings to resume."
        )


def _row(
    problem: Problem,
    sample_index: int,
    completion: Completion,
    seed: int | None,
    cfg: TracesConfig,
    prov: dict[str, Any],
) -> dict[str, Any]:
    row = {
        "problem_id": problem.id,
        "sample_index": sample_index,
        "response": completion.text,
        "reasoning": completion.reasoning,
        "finish_reason": completion.finish_reason,
        **_grade_fields(completion.text, problem.answer, cfg),
        "gold": problem.answer,
        "latency": round(completion.latency_s, 4),
        "usage": {
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
        },
        "seed": seed,
        "provenance": prov,
    }
    row["reward"] = reward(row)
    return row


def _grade_fields(text: str, gold: str, cfg: TracesConfig) -> dict[str, Any]:
    from mathsft.grading import grade

    # grade the answer part: a think block may hold boxed drafts the model later revised
    _, answer_part = split_think(text)
    result = grade(answer_part, gold, profile=cfg.grader_profile)
    return {"extracted": result.extracted, "correct": bool(result.correct), "grade_reason": result.reason}


def regrade_stale(store: SampleLog, cfg: TracesConfig, prov: dict[str, Any]) -> int:
    """Regrade rows graded by another grader version or profile, rewriting the log atomically.

    Generation is the expensive part; a grader fix should not cost a single request.
    """
    stale = [
        row for row in store.rows.values() if (row.get("provenance") or {}).get("grader") != prov["grader"]
    ]
    for row in stale:
        row.update(_grade_fields(row["response"], str(row["gold"]), cfg))
        row["reward"] = reward(row | {"reward": None})
        row["provenance"] = {**(row.get("provenance") or {}), "grader": prov["grader"]}
    if stale:
        store.rewrite()
        log.warning("regraded %d logged samples with grader %s", len(stale), prov["grader"])
    return len(stale)


def _requests(cfg: TracesConfig, problems: list[Problem], done: set[tuple[str, int]]) -> list[Request]:
    """Requests for the missing samples: one per sample (n_mode seeds), or one per problem with n=missing."""
    requests = []
    for problem in problems:
        missing = [i for i in range(cfg.samples) if (problem.id, i) not in done]
        if not missing:
            continue
        prompt = build_prompt(cfg, problem)
        if cfg.n_mode == "seeds":
            for i in missing:
                seed = sample_seed(cfg.seed, problem.id, i)
                requests.append(Request(prompt, n=1, seed=seed, key=(problem, [i])))
        else:
            seed = sample_seed(cfg.seed, problem.id, missing[0])
            requests.append(Request(prompt, n=len(missing), seed=seed, key=(problem, missing)))
    return requests


def rows_by_problem(rows: dict[tuple[str, int], dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The logged sample rows grouped by problem id."""
    by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (pid, _), row in rows.items():
        by_problem[pid].append(row)
    return by_problem


def build_sft(
    cfg: TracesConfig, problems: list[Problem], rows: dict[tuple[str, int], dict[str, Any]]
) -> tuple[list[SFTExample], dict[str, Any]]:
    """Select and clean the logged samples of ``problems`` into SFT examples, plus the selection stats."""
    by_problem = rows_by_problem(rows)
    examples: list[SFTExample] = []
    rejected: Counter[str] = Counter()
    pass_rates: dict[str, float] = {}
    groups: dict[str, dict[str, Counter[str]]] = {
        "subject": defaultdict(Counter),
        "level": defaultdict(Counter),
    }
    for problem in problems:
        problem_rows = by_problem.get(problem.id, [])
        if not problem_rows:
            continue
        targets = _targets(cfg, problem_rows)
        selection = select_problem(
            problem_rows,
            targets,
            reward_threshold=cfg.reward_threshold,
            keep=cfg.keep,
            max_per_problem=cfg.max_per_problem,
            min_pass_rate=cfg.min_pass_rate,
            max_pass_rate=cfg.max_pass_rate,
            dedupe=cfg.dedupe,
        )
        rejected.update(selection.rejected)
        pass_rates[problem.id] = selection.pass_rate
        prompt = build_prompt(cfg, problem)
        examples += [
            _example(cfg, problem, prompt, row, targets[row["sample_index"]]) for row in selection.accepted
        ]
        for name in ("subject", "level"):
            if name in problem.meta:
                counts = groups[name][str(problem.meta[name])]
                counts["samples"] += len(problem_rows)
                counts["correct"] += sum(bool(r.get("correct")) for r in problem_rows)
                counts["accepted"] += len(selection.accepted)
    breakdown = {
        name: {
            key: {**c, "acceptance_rate": c["accepted"] / c["samples"] if c["samples"] else 0.0}
            for key, c in sorted(values.items())
        }
        for name, values in groups.items()
        if values
    }
    histogram = Counter(f"{rate:.2f}" for rate in pass_rates.values())
    selection_stats = {
        "rejected": dict(sorted(rejected.items())),
        "pass_rate_histogram": dict(sorted(histogram.items())),
        "mean_pass_rate": sum(pass_rates.values()) / len(pass_rates) if pass_rates else 0.0,
        "breakdown": breakdown,
    }
    return examples, selection_stats


def _targets(cfg: TracesConfig, rows: list[dict[str, Any]]) -> dict[int, str]:
    """Each correct sample's SFT target by sample index: its trace cleaned as ``cfg`` says."""
    return {
        r["sample_index"]: clean_trace(
            r["response"],
            r.get("reasoning"),
            r.get("extracted"),
            think=cfg.think,
            drop_patterns=cfg.drop_patterns,
            box_answer=cfg.box_answer,
            answer_line=cfg.answer_line,
        )
        for r in rows
        if r.get("correct")
    }


def _example(
    cfg: TracesConfig, problem: Problem, prompt: Any, row: dict[str, Any], target: str
) -> SFTExample:
    """An accepted sample as an SFT example: the eval prompt, then the cleaned trace as the reply."""
    messages = list(prompt) if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    messages.append({"role": "assistant", "content": target})
    return SFTExample(
        id=f"{problem.id}/sample-{row['sample_index']}",
        messages=messages,
        source="traces",
        meta={
            "problem_id": problem.id,
            "sample_index": row["sample_index"],
            "answer": row.get("extracted"),
            "gold": problem.answer,
            "teacher": cfg.model,
            **{k: problem.meta[k] for k in ("subject", "level", "split") if k in problem.meta},
        },
    )


def _contamination(cfg: TracesConfig, accepted: list[Problem]) -> dict[str, Any]:
    """The data layer's n-gram check of the accepted problems against the eval sets (never fatal)."""
    from mathsft.data import check_contamination, load_problems

    entries = cfg.contamination
    if entries is None:
        from mathsft.data.cli import shared_data_dir

        shared = shared_data_dir()
        found = [
            (name, shared / rel)
            for name, rel in (("math500", "math500/test.jsonl"), ("gsm8k", "gsm8k/test.jsonl"))
            if shared and (shared / rel).is_file()
        ]
        if not found:
            return {"skipped": "no eval sets given and none found in ../shared/data"}
        sets = [(name, str(path)) for name, path in found]
    else:
        if not entries:
            return {"skipped": "disabled (contamination: [])"}
        sets = [(e.split("=", 1)[0], e.split("=", 1)[1] if "=" in e else None) for e in entries]
    try:
        eval_sets = {
            f"{name}:{Path(path).name if path else 'hub'}": load_problems(name, path, split="test")
            for name, path in sets
        }
    except MathsftError as err:
        log.warning("contamination check skipped: %s", err)
        return {"skipped": f"could not load an eval set: {err}"}
    return check_contamination(accepted, eval_sets, n=cfg.contamination_n).to_dict()


def _sum_stats(old: Any, new: Any) -> Any:
    """Add numeric leaves of two nested stats dicts (request counts accumulate across resumed runs)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return {k: _sum_stats(old.get(k), new.get(k)) for k in {**old, **new}}
    if isinstance(new, int | float) and isinstance(old, int | float):
        return old + new
    return new if new is not None else old


def run_traces(
    cfg: TracesConfig,
    problems: list[Problem] | None = None,
    backend: Backend | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Generate, grade, log and select; returns the ``stats.json`` dict. Rerunning resumes."""
    if cfg.out is None:
        raise MathsftError("traces: set out (the output folder)")
    out = Path(cfg.out)
    if problems is None:
        if cfg.dataset is None:
            raise MathsftError("traces: set dataset (and data_path for a local file)")
        from mathsft.data import load_problems

        problems = load_problems(
            cfg.dataset,
            cfg.data_path,
            split=cfg.split,
            config=cfg.data_config,
            limit=cfg.limit,
            seed=cfg.seed,
            skip_bad=cfg.skip_bad,
        )
    if not problems:
        raise MathsftError("traces: no problems to generate for")
    if len({p.id for p in problems}) != len(problems):
        raise MathsftError("traces: problem ids are not unique; sample rows could not be told apart")
    save_resolved(cfg, out)
    prov = provenance(cfg, content_hash(problems))
    store = SampleLog(out / "samples.jsonl").open()
    started = time.perf_counter()
    generated = Counter()
    error: MathsftError | None = None
    teacher = None
    try:
        _check_same_generation(list(store.rows.values()), prov, store.path)
        requests = _requests(cfg, problems, set(store.rows))
        total = sum(len(r.key[1]) for r in requests)
        log.info("traces: %d samples logged, %d to generate", len(store.rows), total)
        if requests:
            teacher = backend or make_teacher(cfg)

            def on_result(_: int, request: Request, completions: list[Completion]) -> None:
                problem, indices = request.key
                rows = [
                    _row(problem, i, c, request.seed if request.n == 1 else None, cfg, prov)
                    for i, c in zip(indices, completions, strict=True)
                ]
                store.append(rows)
                generated["samples"] += len(rows)
                generated["completion_tokens"] += sum(c.completion_tokens for c in completions)
                if progress is not None:
                    progress(generated["samples"], total)

            params = SamplingParams(
                max_new_tokens=cfg.max_tokens,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                top_k=cfg.top_k,
                seed=cfg.seed,
                calculator=cfg.calculator,
            )
            try:
                teacher.generate(requests, params, on_result=on_result)
            except MathsftError as err:  # the server kept failing: keep what arrived, report, then stop
                error = err
    finally:
        store.close()
    elapsed = time.perf_counter() - started
    generated["regraded"] = regrade_stale(store, cfg, prov)
    stats = _write_outputs(cfg, problems, store, prov, teacher, generated, elapsed, error)
    if backend is None and teacher is not None:
        teacher.close()
    if error is not None:
        raise error
    return stats


def _write_outputs(
    cfg: TracesConfig,
    problems: list[Problem],
    store: SampleLog,
    prov: dict[str, Any],
    teacher: Backend | None,
    generated: Counter[str],
    elapsed: float,
    error: MathsftError | None,
) -> dict[str, Any]:
    from mathsft.data import write_jsonl, write_parquet

    out = Path(cfg.out or ".")
    ids = {p.id for p in problems}
    rows = {key: row for key, row in store.rows.items() if key[0] in ids}
    examples, selection = build_sft(cfg, problems, rows)
    write_jsonl(out / "sft.jsonl", examples)
    kept = kept_problems(cfg, problems, rows)
    write_jsonl(out / "problems.jsonl", kept)
    if examples:
        write_parquet(out / "sft.parquet", examples)
    else:
        (out / "sft.parquet").unlink(missing_ok=True)

    samples = len(rows)
    correct = sum(bool(r.get("correct")) for r in rows.values())
    truncated = sum(r.get("finish_reason") == "length" for r in rows.values())
    completion_tokens = sum((r.get("usage") or {}).get("completion_tokens", 0) for r in rows.values())
    accepted_ids = {e.meta["problem_id"] for e in examples}
    this_run: dict[str, Any] = {
        "generated_samples": generated["samples"],
        "elapsed_s": round(elapsed, 2),
        "samples_per_s": round(generated["samples"] / elapsed, 4) if elapsed else 0.0,
        "completion_tokens_per_s": round(generated["completion_tokens"] / elapsed, 2) if elapsed else 0.0,
        "dropped_partial_bytes": store.dropped_partial_bytes,
        "regraded_samples": generated["regraded"],
    }
    requests = dict(getattr(teacher, "stats", {})) if teacher is not None else {}
    previous = _read_json(out / "stats.json")
    stats = {
        "complete": samples == len(problems) * cfg.samples,
        "error": str(error) if error else None,
        "problems": len(problems),
        "samples_per_problem": cfg.samples,
        "samples": samples,
        "missing_samples": len(problems) * cfg.samples - samples,
        "requests": _sum_stats(previous.get("requests", {}), requests)
        if requests
        else previous.get("requests", {}),
        "this_run": this_run,
        "acceptance": {
            "correct": correct,
            "correct_rate": correct / samples if samples else 0.0,
            "truncated": truncated,
            "accepted": len(examples),
            "acceptance_rate": len(examples) / samples if samples else 0.0,
            "problems_with_accepted": len(accepted_ids),
            "problems_kept": len(kept),
            **selection,
        },
        "tokens": {
            "completion": completion_tokens,
            "mean_completion": completion_tokens / samples if samples else 0.0,
            "prompt": sum((r.get("usage") or {}).get("prompt_tokens", 0) for r in rows.values()),
        },
        "provenance": prov,
        "contamination": _contamination(cfg, [p for p in problems if p.id in accepted_ids])
        if accepted_ids
        else {"skipped": "no accepted traces"},
        "outputs": {
            "samples": "samples.jsonl",
            "sft": "sft.jsonl",
            "sft_parquet": "sft.parquet",
            "problems": "problems.jsonl",
        },
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return stats


def kept_problems(
    cfg: TracesConfig, problems: list[Problem], rows: dict[tuple[str, int], dict[str, Any]]
) -> list[Problem]:
    """The sampled problems whose pass rate lies in [``min_pass_rate``, ``max_pass_rate``], in the
    normalized form (``dataset: problems`` reads them back), each with its pass rate in ``meta``: an RL
    problem set filtered by difficulty, the problems the starting policy sometimes, not always, solves,
    as Skywork-OR1 and Polaris filter theirs offline (a group of all-equal rewards gives GRPO nothing).
    Unlike ``sft.jsonl`` it does not depend on which traces survive cleaning."""
    by_problem = rows_by_problem(rows)
    rates = {p.id: pass_rate(by_problem[p.id]) for p in problems if by_problem.get(p.id)}
    return [
        replace(p, meta={**p.meta, "pass_rate": rates[p.id]})
        for p in problems
        if p.id in rates and cfg.min_pass_rate <= rates[p.id] <= cfg.max_pass_rate
    ]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
