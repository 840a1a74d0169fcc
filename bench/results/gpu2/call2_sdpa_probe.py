"""Per-example SDPA as mathsft's packed attention runs it on CUDA: fwd+bwd time for new vs repeated lengths,
with the default backend choice (cuDNN first on Hopper in torch 2.11) and with cuDNN SDPA disabled.

Ran on the device as .devcarry/probe/sdpa_probe.py (call2-probe.sh); this copy is the same code, ruff-formatted.
"""

import random
import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile


def run(lengths, label):
    ts = []
    for n in lengths:
        q = torch.randn(1, 14, n, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        k = torch.randn(1, 2, n, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        v = torch.randn(1, 2, n, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        torch.cuda.synchronize()
        t = time.perf_counter()
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        o.sum().backward()
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    ts.sort()
    mean, median = sum(ts) / len(ts) * 1e3, ts[len(ts) // 2] * 1e3
    print(f"{label}: {len(ts)} calls, mean {mean:.2f} ms, median {median:.2f} ms, max {ts[-1] * 1e3:.1f} ms")


for cudnn in (True, False):
    torch.backends.cuda.enable_cudnn_sdp(cudnn)
    rng = random.Random(int(cudnn))
    new = rng.sample(range(100 + 1000 * cudnn, 400 + 1000 * cudnn), 40)  # lengths never seen before
    run(new[:2], f"cudnn={cudnn} warm-up")
    run(new[2:], f"cudnn={cudnn} new lengths")
    run(new[2:], f"cudnn={cudnn} same lengths again")
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
        run([n + 5000 for n in new[2:6]], f"cudnn={cudnn} 4 new lengths, profiled")
    print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=6, max_name_column_width=45))
