"""``run_eval``: generate, grade, score — resumable, one row per problem in ``results.jsonl``.

The flow is: problems -> prompts -> backend (results graded and appended as each problem finishes, so a
killed run loses nothing) -> metrics over every row of the problem set -> ``summary.json``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from mathsft import __version__
from mathsft.config import save_resolved
from mathsft.data import load_problems
from mathsft.data.io import cut_partial_last_line
from mathsft.data.schema import Problem, content_hash
from mathsft.errors import MathsftError
from mathsft.evaluation.compare import read_results
from mathsft.evaluation.config import EvalConfig
from mathsft.evaluation.metrics import bootstrap_ci, ks_for, majority_vote, pass_at_k
from mathsft.evaluation.prompts import build_prompt, fewshot_exemplars, get_template
from mathsft.generation.base import Backend, Completion, Request, SamplingParams
from mathsft.generation.speed import decode_ceiling

# settings that change what a row means: a resumed run must agree on all of them
_IDENTITY_KEYS = (
    "model", "dataset", "data_path", "split", "data_config", "backend", "prompt", "system", "chat",
    "fewshot_path", "samples", "temperature", "top_p", "top_k", "max_new_tokens", "stop", "seed",
    "grader_profile", "extract_style", "dtype", "calculator",
)  # fmt: skip


def load_eval_problems(cfg: EvalConfig) -> list[Problem]:
    """The problems ``cfg`` names: its ``limit`` first ones (``subset=first``) or a seeded, nested subset."""
    return load_problems(
        cfg.dataset,
        cfg.data_path,
        split=cfg.split,
        config=cfg.data_config,
        limit=cfg.limit,
        seed=cfg.seed,
        skip_bad=cfg.skip_bad,
        first=cfg.subset == "first",
    )


def sample_seed(base: int, problem_id: str) -> int:
    """Per-problem seed: a resumed or re-batched problem draws exactly the same samples."""
    digest = hashlib.sha256(f"{base}:{problem_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def build_prompts(cfg: EvalConfig, problems: list[Problem]) -> dict[str, Any]:
    template = get_template(cfg.prompt)
    exemplars = None
    if template.fewshot and cfg.fewshot_path:
        train = load_problems(cfg.dataset, cfg.fewshot_path, split="train", config=cfg.data_config)
        exemplars = fewshot_exemplars(
            template.fewshot, train, exclude={p.problem for p in problems}, seed=cfg.seed
        )
    return {
        p.id: build_prompt(p, template, system=cfg.system, chat=cfg.chat, exemplars=exemplars)
        for p in problems
    }


def grade_row(
    cfg: EvalConfig, problem: Problem, prompt: Any, completions: list[Completion]
) -> dict[str, Any]:
    """One ``results.jsonl`` row: every sample graded, the problem's mean correctness and majority answer."""
    from mathsft.grading import grade, is_equivalent

    samples = []
    for c in completions:
        g = grade(c.text, problem.answer, profile=cfg.grader_profile, style=cfg.extract_style)
        samples.append(
            {
                "response": c.text,
                "extracted": g.extracted,
                "answer_source": g.source,
                "correct": g.correct,
                "reason": g.reason,
                "finish_reason": c.finish_reason,
                "completion_tokens": c.completion_tokens,
                **({"tool_calls": c.extra["tool_calls"]} if "tool_calls" in c.extra else {}),
            }
        )
    winner, _ = majority_vote(
        [s["extracted"] for s in samples], lambda x, y: is_equivalent(x, y, profile=cfg.grader_profile)
    )
    return {
        "id": problem.id,
        "prompt": prompt,
        "gold": problem.answer,
        "meta": problem.meta,
        "samples": samples,
        "correct": sum(s["correct"] for s in samples) / len(samples),
        "majority": samples[winner]["extracted"] if winner is not None else None,
        "majority_correct": samples[winner]["correct"] if winner is not None else False,
    }


def summarize(cfg: EvalConfig, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Metrics over per-problem rows (pure: the same rows give the same summary, CIs included)."""
    from mathsft.grading.grade import UNFORMATTED_SOURCES

    n = len(rows)
    scores = [float(r["correct"]) for r in rows]
    samples = [s for r in rows for s in r["samples"]]
    k_samples = min((len(r["samples"]) for r in rows), default=0)
    summary: dict[str, Any] = {
        "n": n,
        "metric": "pass@1" if cfg.samples == 1 else f"pass@1 (mean of {cfg.samples} samples)",
        "accuracy": sum(scores) / n if n else 0.0,
        "correct_count": sum(bool(r["samples"][0]["correct"]) for r in rows),
        "ci95": list(bootstrap_ci(scores, cfg.bootstrap, cfg.seed)),
        # Formatted = the response stated its answer (boxed, ####, "the answer is"); a last number taken
        # from a rambling or truncated response, or a response that is only an expression, is graded, but
        # it is not a format success (the grader's ``Grade.formatted``)
        "format_rate": _mean([s.get("answer_source") not in UNFORMATTED_SOURCES for s in samples]),
        "answered_rate": _mean([s["extracted"] is not None for s in samples]),
        "truncation_rate": _mean([s["finish_reason"] == "length" for s in samples]),
        "mean_response_tokens": _mean([s["completion_tokens"] for s in samples]),
        "samples_per_problem": cfg.samples,
    }
    if any("tool_calls" in s for s in samples):
        summary["mean_tool_calls"] = _mean([s.get("tool_calls", 0) for s in samples])
    if k_samples > 1:
        # Every accuracy gets its CI: problems are resampled over their per-problem unbiased pass@k
        # estimates, and over their majority-vote correctness.
        per_k = {
            str(k): [pass_at_k(len(r["samples"]), sum(s["correct"] for s in r["samples"]), k) for r in rows]
            for k in ks_for(k_samples)
        }
        majority = {str(k_samples): [float(bool(r["majority_correct"])) for r in rows]}
        for name, per_problem in (("pass_at_k", per_k), ("maj_at_k", majority)):
            summary[name] = {k: _mean(v) for k, v in per_problem.items()}
            summary[f"{name}_ci95"] = {
                k: list(bootstrap_ci(v, cfg.bootstrap, cfg.seed)) for k, v in per_problem.items()
            }
    summary["breakdown"] = {
        key: _breakdown(cfg, rows, key) for key in ("subject", "level") if _has(rows, key)
    }
    return summary


def _mean(values: list[Any]) -> float:
    return float(sum(values)) / len(values) if values else 0.0


def _has(rows: list[dict[str, Any]], key: str) -> bool:
    return any(key in (r.get("meta") or {}) for r in rows)


def _breakdown(cfg: EvalConfig, rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    groups: dict[str, list[float]] = {}
    for r in rows:
        groups.setdefault(str((r.get("meta") or {}).get(key, "?")), []).append(float(r["correct"]))
    return {
        name: {"n": len(v), "accuracy": _mean(v), "ci95": list(bootstrap_ci(v, cfg.bootstrap, cfg.seed))}
        for name, v in sorted(groups.items())
    }


def eval_complete(out: Path, n: int) -> bool:
    """``out`` holds a finished eval of ``n`` problems (its summary is written last)."""
    summary = out / "summary.json"
    return summary.is_file() and json.loads(summary.read_text(encoding="utf-8")).get("n") == n


def check_resume(cfg: EvalConfig, out: Path) -> None:
    """Refuse to mix rows of a different set-up into an existing results file."""
    previous = out / "config.yaml"
    if not (out / "results.jsonl").is_file() or not previous.is_file():
        return
    old = yaml.safe_load(previous.read_text(encoding="utf-8")) or {}
    new = cfg.model_dump(mode="json")
    # a key an older config does not name had its default then
    defaults = {k: EvalConfig.model_fields[k].default for k in _IDENTITY_KEYS}
    changed = [k for k in _IDENTITY_KEYS if old.get(k, defaults[k]) != new.get(k)]
    if changed:
        details = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
        raise MathsftError(
            f"{out} holds results of a different eval ({details}); use another --out or delete that folder"
        )


def versions() -> dict[str, str]:
    import torch
    import transformers

    from mathsft.grading import GRADER_VERSION

    return {
        "mathsft": __version__,
        "grader": GRADER_VERSION,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def make_eval_backend(cfg: EvalConfig) -> Backend:
    from mathsft.generation import make_backend

    options = dict(cfg.backend_options)
    if cfg.backend == "hf":
        options.setdefault("batch_size", cfg.batch_size)
        options.setdefault("dtype", cfg.dtype)
    return make_backend(cfg.backend, cfg.model, **options)


@dataclass
class _Generation:
    """What one call of the backend produced, for the summary's speed keys."""

    generated_tokens: int = 0
    prompt_tokens: int = 0  # a request's samples share one prefill
    seconds: float = 0.0
    ceiling: dict[str, Any] | None = None  # the machine's decode ceiling (in-process engines only)


def run_eval(
    cfg: EvalConfig,
    problems: list[Problem] | None = None,
    backend: Backend | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Evaluate ``cfg.model`` on ``problems`` (default: those ``cfg`` names) into ``cfg.out_dir()``.

    Problems already in ``results.jsonl`` are not generated again. Returns the summary (also written).
    """
    console = console or Console(stderr=True)
    start = time.perf_counter()
    problems = problems if problems is not None else load_eval_problems(cfg)
    if not problems:
        raise MathsftError("no problems to evaluate")
    if len({p.id for p in problems}) != len(problems):
        raise MathsftError("problem ids are not unique; results are keyed by id")
    out = Path(cfg.out_dir())
    out.mkdir(parents=True, exist_ok=True)
    check_resume(cfg, out)
    save_resolved(cfg, out)
    done = _resumable_ids(out, console)
    pending = [p for p in problems if p.id not in done]
    params = SamplingParams(
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=cfg.top_k,
        stop=tuple(dict.fromkeys([*get_template(cfg.prompt).stop, *cfg.stop])),
        seed=cfg.seed,
        calculator=cfg.calculator,
    )
    prompts = build_prompts(cfg, pending)  # before the model loads: a bad few-shot file fails fast
    requests = [
        Request(prompts[p.id], n=cfg.samples, seed=sample_seed(cfg.seed, p.id), key=p) for p in pending
    ]
    generation = _Generation()
    if requests:
        own_backend = backend is None
        backend = backend or make_eval_backend(cfg)
        try:
            generation = _generate(cfg, requests, len(problems), params, backend, out, console)
        finally:
            if own_backend:
                backend.close()
    rows = _rows_in_order(out, problems)
    rate = generation.generated_tokens / generation.seconds if generation.seconds > 0 else _previous_rate(out)
    summary = {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "data_path": cfg.data_path,
        "dataset_hash": content_hash(problems),
        **summarize(cfg, rows),
        "tokens_per_s": rate,
        # the rate against this machine's matmul ceiling (an in-process engine only)
        **({"decode_ceiling": _ceiling_fractions(generation)} if generation.ceiling else {}),
        "generated_tokens": generation.generated_tokens,
        "prompt_tokens": generation.prompt_tokens,
        "generation_s": generation.seconds,
        "prompt_template": cfg.prompt,
        "prompt_template_hash": get_template(cfg.prompt).digest(),
        "calculator": cfg.calculator,
        "dtype": getattr(backend, "dtype", cfg.dtype),  # what "auto" resolved to on this machine
        "sampling": params.__dict__ | {"stop": list(params.stop), "n": cfg.samples},
        "grader_profile": cfg.grader_profile,
        "backend": cfg.backend,
        "elapsed_s": time.perf_counter() - start,
        "versions": versions(),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    console.print(summary_line(summary), highlight=False, soft_wrap=True)
    return summary


def _resumable_ids(out: Path, console: Console) -> set[str]:
    """The ids already in ``results.jsonl``; a half-written last row (a kill mid-write) is cut and redone."""
    results_path = out / "results.jsonl"
    if not results_path.is_file():
        return set()
    cut = cut_partial_last_line(results_path)  # any other unreadable line stays an error
    if cut:
        console.print(f"{results_path}: dropped a half-written last row ({cut} bytes); generating it again")
    return {r["id"] for r in read_results(out)}


def _generate(
    cfg: EvalConfig,
    requests: list[Request],
    total: int,
    params: SamplingParams,
    backend: Backend,
    out: Path,
    console: Console,
) -> _Generation:
    """Generate ``requests``, grading and appending each problem's row as it finishes (nothing is lost)."""
    generation = _Generation()
    with (out / "results.jsonl").open("a", encoding="utf-8") as sink, _progress(console) as progress:
        task = progress.add_task(f"eval {cfg.dataset}", total=total, completed=total - len(requests))

        def on_result(_: int, request: Request, completions: list[Completion]) -> None:
            row = grade_row(cfg, request.key, request.prompt, completions)
            sink.write(json.dumps(row, ensure_ascii=False) + "\n")
            sink.flush()
            generation.generated_tokens += sum(c.completion_tokens for c in completions)
            generation.prompt_tokens += completions[0].prompt_tokens
            progress.advance(task)

        generation.ceiling = decode_ceiling(backend)  # measured before the clock starts
        t0 = time.perf_counter()
        try:
            backend.generate(requests, params, on_result=on_result)
        finally:
            generation.seconds = time.perf_counter() - t0
    return generation


def _rows_in_order(out: Path, problems: list[Problem]) -> list[dict[str, Any]]:
    """Every problem's row from ``results.jsonl``, in the problems' order; an error if any is missing."""
    wanted = {p.id for p in problems}
    rows = [r for r in read_results(out) if r["id"] in wanted]
    missing = wanted - {r["id"] for r in rows}
    if missing:
        raise MathsftError(
            f"{len(missing)} problems got no result (e.g. {sorted(missing)[:3]}); rerun to resume"
        )
    order = {p.id: i for i, p in enumerate(problems)}
    rows.sort(key=lambda r: order[r["id"]])
    return rows


def _ceiling_fractions(generation: _Generation) -> dict[str, Any]:
    """``fraction``: generated tokens/s over the ceiling. ``fraction_with_prompts``: the share of the machine's
    matmul rate the linears of every forward used, the prompts' prefill included (GSM8K's prompts are ~0.6x
    its responses' tokens, so ``fraction`` stays well below 1 even for an engine at the matmul rate)."""
    ceiling, seconds = generation.ceiling or {}, generation.seconds
    if seconds <= 0:
        return ceiling
    generated, prompts = generation.generated_tokens, generation.prompt_tokens
    gflop = generated * ceiling["gflop_per_token"] + prompts * ceiling["prompt_gflop_per_token"]
    return ceiling | {
        "fraction": round(generated / seconds / ceiling["ceiling_tokens_per_s"], 3),
        "fraction_with_prompts": round(gflop / seconds / ceiling["matmul_gflops"], 3),
    }


def _previous_rate(out: Path) -> float:
    """Throughput of the run that generated the rows, when this call only re-scored them."""
    path = out / "summary.json"
    return (
        float(json.loads(path.read_text(encoding="utf-8")).get("tokens_per_s", 0.0))
        if path.is_file()
        else 0.0
    )


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def _ceiling_text(ceiling: dict[str, Any]) -> str:
    if "fraction" not in ceiling:
        return ""
    return f" ({ceiling['fraction']:.0%} of ceiling, {ceiling['fraction_with_prompts']:.0%} with the prompts)"


def summary_line(s: dict[str, Any]) -> str:
    """The printed block: pass@1 with its CI, then a line per pass@k and maj@k when sampled."""
    lo, hi = s["ci95"]
    sampling = s["sampling"]
    text = (
        f"model={s['model']} dataset={s['dataset']} n={s['n']} max_new_tokens={sampling['max_new_tokens']} "
        f"temperature={sampling['temperature']} metric={s['metric']} score={s['accuracy']:.4f} "
        f"({s['correct_count']}/{s['n']}) 95% CI [{lo:.3f}, {hi:.3f}] format_rate={s['format_rate']:.3f} "
        f"truncated={s['truncation_rate']:.3f} tokens/s={s['tokens_per_s']:.1f}"
        + (_ceiling_text(s["decode_ceiling"]) if "decode_ceiling" in s else "")
        + (" calculator=on" if s.get("calculator") else "")
    )
    for name, label in (("pass_at_k", "pass"), ("maj_at_k", "maj")):
        for k, value in s.get(name, {}).items():
            k_lo, k_hi = s[f"{name}_ci95"][k]
            text += f"\n{label}@{k}={value:.4f} 95% CI [{k_lo:.3f}, {k_hi:.3f}]"
    return text
