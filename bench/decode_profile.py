"""Where the time of one batched decode step of the hf backend goes: today's engine and a past one, side by side.

A batch of ``--rows`` distinct GSM8K test prompts (the eval's default template) is decoded greedily with the
calculator on; after ``--skip`` decode steps (so the KV cache holds a realistic prompt + response), the next
``--steps`` steps run under ``torch.profiler``. Each operator's own time is put in a bucket:

- linears: the projections and the LM head (oneDNN packed or ``mm``);
- attention: SDPA (or its matmuls and softmax);
- norms, rotary, activations: the elementwise work between them;
- cache writes, masks: writing keys/values, building and converting the attention mask;
- sampling: argmax / the sampler's ops;
- framework: the step's wall time that no operator accounts for (Python in transformers and the engine:
  module calls, the calculator, row bookkeeping).

``--baseline-rev`` loads ``mathsft/generation/hf.py`` as it was at that git revision (its engine, with
that revision's defaults) next to today's, so both are profiled in one run on the same prompts. The step's
ideal time is its linear FLOPs at the machine's matmul rate (2048^3 matmuls in the dtype), printed with it.

    python bench/decode_profile.py --rows 64 --baseline-rev efec04e --json bench/results/decode-profile-avx2.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from mathsft.evaluation.config import EvalConfig
from mathsft.evaluation.run import build_prompts, load_eval_problems
from mathsft.generation import hf as current_hf
from mathsft.generation.base import Request, SamplingParams
from mathsft.generation.speed import forward_gflop_per_token, measured_peak_flops

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"

BUCKETS = {
    "linears": ("linear_pointwise", "aten::mm", "aten::addmm", "aten::linear", "aten::matmul"),
    "attention": ("scaled_dot_product", "aten::bmm", "aten::baddbmm", "softmax"),
    "cache writes, masks": ("index_put", "index_copy", "aten::fill_", "aten::masked_fill", "aten::where",
                            "aten::copy_", "aten::le", "aten::lt", "aten::ge", "aten::arange",
                            "aten::bitwise"),
    "sampling": ("argmax", "searchsorted", "cumsum", "aten::topk", "aten::sort", "aten::rand"),
}  # fmt: skip


def bucket(name: str) -> str:
    for label, keys in BUCKETS.items():
        if any(k in name for k in keys):
            return label
    return "norms, rotary, activations"


def engine_at(rev: str):
    """``mathsft/generation/hf.py`` as it was at git revision ``rev``, imported as its own module."""
    source = subprocess.run(
        ["git", "show", f"{rev}:mathsft/generation/hf.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / f"hf_{rev}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"hf_{rev}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def profile_engine(module, args, prompts: list) -> dict:
    backend = module.HFBackend(args.model, dtype=args.dtype, batch_size=args.rows)
    params = SamplingParams(max_new_tokens=args.skip + args.steps + 2, temperature=0.0, calculator=True)
    backend.generate([Request(p) for p in prompts[-4:]], SamplingParams(max_new_tokens=8))  # warm-up
    state = {"decode": 0, "wall": 0.0, "t0": 0.0, "rows": []}
    prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
    forward = backend.model.forward

    def timed_forward(*a, **kw):
        ids = kw["input_ids"]
        if ids.shape[1] == 1 or state["decode"]:  # decode steps (prefill forwards come first)
            state["decode"] += 1
            if state["decode"] == args.skip + 1:
                prof.start()
                state["t0"] = time.perf_counter()
            if state["decode"] == args.skip + args.steps + 1:
                state["wall"] = time.perf_counter() - state["t0"]
                prof.stop()
            if args.skip < state["decode"] <= args.skip + args.steps:
                state["rows"].append(ids.shape[0])
        return forward(*a, **kw)

    backend.model.forward = timed_forward
    backend.generate([Request(p) for p in prompts[: args.rows]], params)
    times: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        times[bucket(event.key)] += event.self_cpu_time_total / 1e6
    times["framework"] = max(0.0, state["wall"] - sum(times.values()))
    rows = sum(state["rows"]) / len(state["rows"])
    return {
        "step_ms": round(state["wall"] / args.steps * 1e3, 1),
        "rows_per_step": round(rows, 1),
        "tokens_per_s": round(rows * args.steps / state["wall"], 1),
        "ms_per_step": {
            k: round(v / args.steps * 1e3, 1) for k, v in sorted(times.items(), key=lambda x: -x[1])
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--skip", type=int, default=64, help="decode steps before the profiled ones")
    parser.add_argument("--steps", type=int, default=16, help="decode steps profiled")
    parser.add_argument("--prompt", default="qwen-boxed")
    parser.add_argument("--baseline-rev", help="also profile hf.py as of this git revision")
    parser.add_argument("--today-first", action="store_true", help="profile today's engine first")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not DATA.is_file():
        sys.exit(f"needs {DATA} (GSM8K test, ../shared/data beside the checkout)")
    cfg = EvalConfig(data_path=str(DATA), limit=args.rows + 4, prompt=args.prompt)
    problems = load_eval_problems(cfg)
    prompts = list(build_prompts(cfg, problems).values())
    peak = measured_peak_flops("cpu", args.dtype) / 1e9
    per_token = forward_gflop_per_token(args.model)
    ideal_ms = args.rows * per_token / peak * 1e3
    report = {
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                    "capability": torch.backends.cpu.get_cpu_capability(), "matmul_gflops": round(peak, 1)},
        "model": args.model, "dtype": args.dtype, "rows": args.rows, "skip": args.skip, "steps": args.steps,
        "gflop_per_token": round(per_token, 4), "ideal_step_ms": round(ideal_ms, 1), "engines": {},
    }  # fmt: skip
    engines = [("today", current_hf)]
    if args.baseline_rev:
        engines.insert(0, (args.baseline_rev, engine_at(args.baseline_rev)))
    if args.today_first:
        engines.reverse()
    for name, module in engines:
        result = profile_engine(module, args, prompts)
        result["ratio_to_ceiling"] = round(
            ideal_ms / result["step_ms"] * result["rows_per_step"] / args.rows, 3
        )
        report["engines"][name] = result
        print(f"\n{name}: {result['step_ms']} ms/step, {result['rows_per_step']} rows, "
              f"{result['tokens_per_s']} tokens/s, {result['ratio_to_ceiling']:.0%} of the ceiling")  # fmt: skip
        for part, ms in result["ms_per_step"].items():
            print(f"  {part:28s} {ms:8.1f} ms")
    print(
        f"\nmachine {json.dumps(report['machine'])}; ideal step (linears at the matmul rate) {ideal_ms:.1f} ms"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
