"""Each part of one batched decode step of the hf backend against this machine's own limits.

Why the hf backend's speed-up over plain ``generate`` stops where it does on a small CPU: a decode step is
the layers' matmuls (compute: compared with the machine's matmul peak), the vocabulary head (reading its
weight: compared with the machine's memory bandwidth) and attention over the KV cache (reading the cache:
also bandwidth). Shapes come from the model's config; the weights are random (the cost does not depend on
the values), one tensor per layer so each is read from memory as in a real step, not from a warm cache. The kernels are the ones the backend uses: oneDNN pre-packed linears, grouped-query SDPA.

    python bench/decode_limits.py                      # SmolLM2-135M, 16 rows, widths 150/300/450
    python bench/decode_limits.py --rows 16,32 --json bench/results/decode-limits.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoConfig

from mathsft.generation.hf import _PackedLinear
from mathsft.models import resolve_model


def seconds_per_call(fn, repeats: int) -> float:
    for _ in range(max(3, repeats // 10)):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def machine_limits() -> dict[str, float]:
    """Matmul peak (a 2048^3 fp32 matmul) and memory bandwidth (copying 256 MB: read + write)."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    peak = 2 * 2048**3 / seconds_per_call(lambda: a @ b, 10) / 1e9
    src, dst = torch.empty(64 * 2**20), torch.empty(64 * 2**20)  # 256 MB each
    bandwidth = 2 * src.numel() * 4 / seconds_per_call(lambda: dst.copy_(src), 10) / 1e9
    return {"matmul_peak_gflops": round(peak, 1), "copy_gb_per_s": round(bandwidth, 1)}


def linear_parts(config, rows: int) -> list[dict]:
    hidden, inter = config.hidden_size, config.intermediate_size
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    kv = config.num_key_value_heads * head_dim
    layers = config.num_hidden_layers
    shapes = {  # name: (in, out, calls per step)
        "q_proj": (hidden, heads * head_dim, layers),
        "k_proj + v_proj": (hidden, kv, 2 * layers),
        "o_proj": (heads * head_dim, hidden, layers),
        "gate_proj + up_proj": (hidden, inter, 2 * layers),
        "down_proj": (inter, hidden, layers),
        "lm_head": (hidden, config.vocab_size, 1),
    }
    out = []
    with torch.inference_mode():
        for name, (fan_in, fan_out, calls) in shapes.items():
            # one weight per call, as in a real step: each is read from memory, not from a warm cache
            packed = [_PackedLinear(nn.Linear(fan_in, fan_out, bias=False), rows) for _ in range(calls)]
            x = torch.randn(rows, fan_in)
            t = seconds_per_call(lambda ps=packed, x=x: [p(x) for p in ps], 10) / calls
            out.append(
                {
                    "part": name,
                    "ms_per_step": round(t * calls * 1e3, 2),
                    "gflops": round(2 * rows * fan_in * fan_out / t / 1e9, 1),
                    "weight_gb_per_s": round(fan_in * fan_out * 4 / t / 1e9, 1),
                }
            )
    return out


def attention_parts(config, rows: int, widths: list[int]) -> list[dict]:
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    out = []
    with torch.inference_mode():
        for width in widths:
            # the backend's layout: one query token per row, query heads stacked per shared KV head
            q = torch.randn(rows, kv_heads, heads // kv_heads, head_dim)
            layers = config.num_hidden_layers
            caches = [
                (torch.randn(rows, kv_heads, width, head_dim), torch.randn(rows, kv_heads, width, head_dim))
                for _ in range(layers)
            ]  # one cache per layer, as in a real step
            mask = (torch.arange(width)[None, :] < torch.randint(width // 2, width + 1, (rows,))[:, None])[
                :, None, None
            ]

            def step(q=q, caches=caches, mask=mask) -> None:
                for k, v in caches:
                    F.scaled_dot_product_attention(q, k, v, mask)

            t = seconds_per_call(step, 10) / layers
            out.append(
                {
                    "part": f"attention, width {width}",
                    "ms_per_step": round(t * config.num_hidden_layers * 1e3, 2),
                    "kv_gb_per_s": round(2 * q.shape[0] * kv_heads * width * head_dim * 4 / t / 1e9, 1),
                }
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--rows", default="16", help="comma list of batch rows per step")
    parser.add_argument("--widths", default="150,300,450", help="cached positions attention reads")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    config = AutoConfig.from_pretrained(resolve_model(args.model))
    limits = machine_limits()
    print(f"model={args.model} threads={torch.get_num_threads()} torch={torch.__version__} "
          f"cpu={platform.processor() or platform.machine()} {json.dumps(limits)}")  # fmt: skip
    report = {"model": args.model, "machine": limits, "rows": {}}
    for rows in [int(r) for r in args.rows.split(",")]:
        parts = linear_parts(config, rows) + attention_parts(
            config, rows, [int(w) for w in args.widths.split(",")]
        )
        report["rows"][rows] = parts
        print(
            f"\n{rows} rows per step\n\n| part | ms per step | GFLOP/s | weight or KV GB/s read |\n|---|---|---|---|"
        )
        for p in parts:
            rate = p.get("weight_gb_per_s", p.get("kv_gb_per_s"))
            print(f"| {p['part']} | {p['ms_per_step']} | {p.get('gflops', '-')} | {rate} |")
        layers = sum(
            p["ms_per_step"] for p in parts if p["part"] not in {"lm_head"} and "attention" not in p["part"]
        )
        print(f"| all layer matmuls | {layers:.1f} | | |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
