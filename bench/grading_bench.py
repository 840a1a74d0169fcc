"""Grader benchmark: mathsft.grading vs math-verify 0.9 on accuracy, disagreements and throughput.

    .venv/bin/python bench/grading_bench.py [--limit 64] [--max-new-tokens 384]

1. the labelled hard-equivalence suite (tests/grading/equivalence_cases.py): accuracy of each grader;
2. MATH-500 responses: greedy generations of the bundled smollm2-135m (cached in runs/grading-bench/)
   plus hand-written responses in stronger models' styles (bench/grading_styled_responses.jsonl);
   every pair where the two graders disagree is printed for checking by hand;
3. throughput on those responses, single process: ``grade`` vs ``verify(parse(gold), parse(response))``,
   and ``grade_many`` with 1 and 2 workers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "grading"))

from equivalence_cases import CASES  # noqa: E402

from mathsft.grading import grade, grade_many, is_equivalent  # noqa: E402

MATH500 = ROOT.parent / "shared" / "data" / "math500" / "test.jsonl"
CACHE = ROOT / "runs" / "grading-bench"
STYLED = ROOT / "bench" / "grading_styled_responses.jsonl"
SUFFIX = "\nPlease reason step by step, and put your final answer within \\boxed{}."


def generate(limit: int, max_new_tokens: int, batch_size: int = 8) -> list[dict]:
    """Greedy responses of the bundled model to the first ``limit`` MATH-500 problems, appended to a
    cache file batch by batch (a rerun resumes; the cache is what the rest of the benchmark reads)."""
    cache = CACHE / f"smollm2-135m-t{max_new_tokens}.jsonl"
    done = [json.loads(line) for line in cache.read_text().splitlines()] if cache.is_file() else []
    if len(done) >= limit:
        return done[:limit]
    import torch

    from mathsft.data import load_problems
    from mathsft.models import load_model, load_tokenizer

    torch.set_num_threads(1)  # a shared 2-core machine: one thread is faster than two contended ones
    problems = load_problems("math500", MATH500)[len(done) : limit]
    tokenizer = load_tokenizer("smollm2-135m")
    model = load_model("smollm2-135m")
    CACHE.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(problems), batch_size):
        batch = problems[start : start + batch_size]
        prompts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": p.problem + SUFFIX}], tokenize=False, add_generation_prompt=True
            )
            for p in batch
        ]
        inputs = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        texts = tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        rows = [
            {"id": p.id, "gold": p.answer, "response": t, "source": "smollm2-135m"}
            for p, t in zip(batch, texts, strict=True)
        ]
        with cache.open("a") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        done += rows
        print(f"generated {len(done)}/{limit}", flush=True)
    return done


def math_verify_pair(response: str, gold: str) -> bool:
    from math_verify import parse, verify

    return bool(verify(parse(gold), parse(response)))


def suite_accuracy() -> dict:
    mathsft_right = mv_right = 0
    misses = []
    for pred, gold, equal, note in CASES:
        ours = is_equivalent(pred, gold)
        theirs = math_verify_pair(f"${pred}$", f"${gold}$")
        mathsft_right += ours == equal
        mv_right += theirs == equal
        if theirs != equal or ours != equal:
            misses.append(
                {
                    "pred": pred,
                    "gold": gold,
                    "label": equal,
                    "mathsft": ours,
                    "math_verify": theirs,
                    "note": note,
                }
            )
    return {"n": len(CASES), "mathsft": mathsft_right, "math_verify": mv_right, "misses": misses}


def disagreements(rows: list[dict]) -> list[dict]:
    out = []
    for row in rows:
        ours = grade(row["response"], row["gold"])
        theirs = math_verify_pair(row["response"], f"${row['gold']}$")
        if ours.correct != theirs:
            out.append(
                {
                    "id": row["id"],
                    "source": row["source"],
                    "gold": row["gold"],
                    "extracted": ours.extracted,
                    "reason": ours.reason,
                    "mathsft": ours.correct,
                    "math_verify": theirs,
                    "tail": row["response"][-160:],
                }
            )
    return out


def throughput(rows: list[dict]) -> dict:
    from mathsft.grading.equivalence import _symbolic

    grade(r"\boxed{x+1}", "x+2")  # start the symbolic worker outside the timing
    _symbolic.cache_clear()
    pairs = [(r["response"], r["gold"]) for r in rows]
    start = time.perf_counter()
    for response, gold in pairs:
        grade(response, gold)
    ours = time.perf_counter() - start
    math_verify_pair("$1$", "$1$")  # import math-verify outside the timing
    start = time.perf_counter()
    for response, gold in pairs:
        math_verify_pair(response, f"${gold}$")
    theirs = time.perf_counter() - start
    result = {"n": len(pairs), "mathsft_s": ours, "math_verify_s": theirs, "speedup": theirs / ours}
    # grade_many scaling: the responses above (cheap: mostly fast paths) and a symbolic-heavy set of
    # distinct pairs (no cache hits); workers > 1 includes starting the child processes
    heavy = [(rf"\boxed{{(x+{k})^2}}", f"x^2+{2 * k}x+{k * k + k % 2}") for k in range(1, 201)]
    start = time.perf_counter()
    grade_many([(r"\boxed{1}", "1")] * 2, workers=2)
    result["grade_many_w2_startup_s"] = time.perf_counter() - start
    for name, batch in (("responses", pairs), ("symbolic", heavy)):
        for workers in (1, 2):
            _symbolic.cache_clear()
            start = time.perf_counter()
            grade_many(batch, workers=workers)
            result[f"grade_many_{name}_n{len(batch)}_w{workers}_s"] = time.perf_counter() - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=384)
    args = parser.parse_args()
    suite = suite_accuracy()
    print(json.dumps({k: v for k, v in suite.items() if k != "misses"}))
    for miss in suite["misses"]:
        print("suite", json.dumps(miss))
    rows = generate(args.limit, args.max_new_tokens)
    rows += [json.loads(line) for line in STYLED.read_text().splitlines() if line.strip()]
    ours = [grade(r["response"], r["gold"]) for r in rows]
    for source in sorted({r["source"] for r in rows}):
        picked = [g for g, r in zip(ours, rows, strict=True) if r["source"] == source]
        print(
            f"{source}: n={len(picked)} correct={sum(g.correct for g in picked)} "
            f"format={sum(g.formatted for g in picked)} answered={sum(g.extracted is not None for g in picked)}"
        )
    for row in disagreements(rows):
        print("disagree", json.dumps(row))
    print(json.dumps(throughput(rows)))


if __name__ == "__main__":
    main()
