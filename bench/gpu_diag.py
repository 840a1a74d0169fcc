"""Where the time goes on a lent GPU machine, in under a minute: is it the machine or the code?

On the first H200 session (bench/results/gpu.md) mathsft SFT, TRL SFT and HF generation all ran 10-100x
slower than an H200 should, with nvidia-smi showing the GPU at most 28 % busy, while a large bf16 matmul ran
at 808 TFLOP/s. This prints, for plain PyTorch without mathsft: the round trip of a tiny op + synchronize, a
fresh device allocation (cudaMalloc after empty_cache), a small pageable host-to-device copy, a plain bf16
forward+backward of the model on one 4096-token row (sdpa, no packing) and a batch-32 greedy decode, then
the top operators of that decode by self CPU time (torch.profiler).

    python bench/gpu_diag.py                                   # GPU
    python bench/gpu_diag.py --device cpu --arch tiny          # smoke test
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from random_models import RANDOM_CONFIGS, build_random_model


def per_call_us(fn, n: int, sync) -> float:
    fn()
    sync()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    sync()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="qwen2.5-0.5b", choices=sorted(RANDOM_CONFIGS))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tokens", type=int, default=4096, help="forward+backward row length")
    parser.add_argument("--model-cache", default=str(Path(tempfile.gettempdir()) / "mathsft-bench-models"))
    args = parser.parse_args()
    from transformers import AutoModelForCausalLM

    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    x = torch.zeros(16, device=args.device)
    print(f"tiny op, enqueue only: {per_call_us(lambda: x.add_(1), 2000, sync):.1f} us")
    print(f"tiny op + synchronize: {per_call_us(lambda: (x.add_(1), sync()), 500, sync):.1f} us")
    print(f"tiny op + .item():     {per_call_us(lambda: x.sum().item(), 500, sync):.1f} us")
    host = torch.zeros(1024)
    print(f"4 KB host->device copy: {per_call_us(lambda: host.to(args.device), 500, sync):.1f} us")
    if cuda:
        sizes = iter(range(2, 400))

        def fresh_alloc():
            torch.cuda.empty_cache()
            torch.empty(next(sizes) << 20, dtype=torch.uint8, device=args.device)

        print(f"fresh 2-400 MB cudaMalloc (after empty_cache): {per_call_us(fresh_alloc, 200, sync):.0f} us")

    path = build_random_model(args.arch, Path(args.model_cache) / args.arch)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, attn_implementation="sdpa")
    model.to(args.device).train()
    ids = torch.randint(0, model.config.vocab_size, (1, args.tokens), device=args.device)

    def fwd_bwd():
        model(input_ids=ids, labels=ids).loss.backward()

    seconds = per_call_us(fwd_bwd, 3, sync) / 1e6
    body = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n and "lm_head" not in n)
    tflops = 6 * body * args.tokens / seconds / 1e12
    print(
        f"bf16 fwd+bwd, 1 x {args.tokens} tokens: {seconds * 1e3:.0f} ms ({tflops:.1f} TFLOP/s on 6 x body params)"
    )

    model.eval()
    prompt = torch.randint(0, model.config.vocab_size, (32, 64), device=args.device)
    new = 32

    def decode():
        with torch.no_grad():
            model.generate(prompt, max_new_tokens=new, min_new_tokens=new, do_sample=False)

    seconds = per_call_us(decode, 1, sync) / 1e6
    print(f"greedy decode, batch 32, {new} tokens: {seconds / new * 1e3:.1f} ms per step")
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        decode()
        sync()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=50))


if __name__ == "__main__":
    main()
