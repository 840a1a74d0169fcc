"""Where an eval's generation time goes: prefilling prompts into freed slots against decoding.

Why: the decoding rate an eval reports (generated tokens/s against the machine's ceiling) leaves the prompts
out, yet every refill is a forward over a new prompt. This runs ``mathsft eval`` as given by an eval config
(plus dotted overrides), times each prefill forward of the hf backend, and prints the split with the rate
each part reached:

    python bench/eval_time_split.py runs/main/baseline/config.yaml dataset=problems \
        data_path=runs/main/data/test.jsonl out=runs/eval-split dtype=bfloat16 --json split.json
"""

from __future__ import annotations

import argparse
import json
import time

import mathsft.generation.hf as hf
from mathsft.config import build_config
from mathsft.evaluation.config import EvalConfig
from mathsft.evaluation.run import run_eval


def timed_prefills(stats: dict[str, float]) -> None:
    """Wrap ``HFBackend._prefill`` so each call adds its wall time and rows to ``stats``."""
    prefill = hf.HFBackend._prefill

    def timed(self, group, cache, start):
        begin = time.perf_counter()
        logits = prefill(self, group, cache, start)
        stats["prefill_s"] += time.perf_counter() - begin
        stats["prefill_calls"] += 1
        stats["prefill_rows"] += len(group)
        return logits

    hf.HFBackend._prefill = timed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", help="an eval config (a run's <stage>/config.yaml)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. dtype=float32 out=DIR")
    parser.add_argument("--json", help="also write the split here")
    args = parser.parse_args()
    stats = {"prefill_s": 0.0, "prefill_calls": 0, "prefill_rows": 0}
    timed_prefills(stats)
    summary = run_eval(build_config(EvalConfig, args.config, args.overrides))
    ceiling = summary["decode_ceiling"]
    gflops = ceiling["matmul_gflops"]
    decode_s = summary["generation_s"] - stats["prefill_s"]
    split = {
        **stats,
        "generation_s": summary["generation_s"],
        "prompt_tokens": summary["prompt_tokens"],
        "generated_tokens": summary["generated_tokens"],
        "prefill_of_matmul_rate": summary["prompt_tokens"]
        * ceiling["prompt_gflop_per_token"]
        / stats["prefill_s"]
        / gflops,
        "decode_of_ceiling": summary["generated_tokens"] / decode_s / ceiling["ceiling_tokens_per_s"],
        "decode_ceiling": ceiling,
        "dtype": summary["dtype"],
    }
    print(
        f"prefill {stats['prefill_s']:.1f} s of {summary['generation_s']:.1f} s ({stats['prefill_calls']} "
        f"forwards, {stats['prefill_rows']} prompts) at {split['prefill_of_matmul_rate']:.0%} of the matmul "
        f"rate; decode {decode_s:.1f} s at {split['decode_of_ceiling']:.0%} of the ceiling "
        f"({gflops:.0f} GFLOP/s, {summary['dtype']})"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(split, f, indent=1)


if __name__ == "__main__":
    main()
