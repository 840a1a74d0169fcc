"""SFT throughput and MFU on one GPU: mathsft (bf16, packing, gradient checkpointing on and off) against
TRL's SFTTrainer (bf16, packing) in the same run, for Qwen2.5-0.5B / 1.5B architectures with random weights.

Every step trains on ``--pack-tokens``-token packs (mathsft: ``micro_batch_tokens``; TRL: ``max_length``
with ``packing=True``, one pack per micro-batch) of GSM8K train (or the bundled synthetic problems when
../shared/data is absent). MFU = model FLOPs / step time / ``--peak-tflops`` with one formula for both
(mathsft.training.metrics.model_flops: 6 x body params x tokens + the LM head on the rows it runs on +
causal attention within each example), excluding the first two (warm-up) steps. Each run is its own
subprocess, so its peak GPU memory is its own.

    python bench/gpu_train.py --archs qwen2.5-0.5b qwen2.5-1.5b        # H100 (peak 989 bf16 TFLOP/s dense)
    python bench/gpu_train.py --archs tiny --device cpu --steps 3 --dtype fp32 --pack-tokens 1024  # smoke test
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from random_models import RANDOM_CONFIGS, build_random_model

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "train.jsonl"
RUNS = ("mathsft", "mathsft-ckpt", "trl-packed")


def examples(n: int):
    from mathsft.data import load_problems, synthetic_problems
    from mathsft.training import problems_to_examples

    problems = (
        load_problems("gsm8k", GSM8K, limit=n) if GSM8K.is_file() else synthetic_problems("train", n, 0)
    )
    return problems_to_examples(problems)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_mathsft(args: argparse.Namespace, model: Path, out: Path, checkpointing: bool) -> dict:
    from mathsft.training import TrainConfig, train

    cfg = TrainConfig(
        model=str(model),
        out=str(out / "run"),
        max_steps=args.steps,
        batch_size=args.batch_size,
        max_length=min(2048, args.pack_tokens),
        micro_batch_tokens=args.pack_tokens,
        lr=1e-5,
        schedule="constant",
        dtype=args.dtype,
        gradient_checkpointing=checkpointing,
        device=args.device,
        peak_tflops=args.peak_tflops,
        keep_last=1,
    )
    run = train(cfg, examples=examples(args.batch_size * args.steps))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][2:]
    seconds = sum(r["train/step_s"] for r in rows)
    return {
        "tokens_per_s": sum(r["train/tokens"] for r in rows) / seconds,
        "supervised_tokens_per_s": sum(r["train/supervised_tokens"] for r in rows) / seconds,
        "s_per_step": seconds / len(rows),
        "mfu": sum(r["train/mfu"] * r["train/step_s"] for r in rows) / seconds,
    }


def run_trl(args: argparse.Namespace, model_dir: Path, out: Path) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from mathsft.models import load_tokenizer
    from mathsft.training.metrics import model_flops

    exs = examples(args.batch_size * args.steps)
    tokenizer = load_tokenizer(str(model_dir), padding_side="right")
    rows = [{"prompt": e.messages[:-1], "completion": e.messages[-1:]} for e in exs]
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    body = sum(
        p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n and "lm_head" not in n
    )
    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            sync(args.device)
            self.t0 = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            sync(args.device)
            times.append(time.perf_counter() - self.t0)

    packs_per_step = max(1, round(args.batch_size * mean_length(exs, tokenizer) / args.pack_tokens))
    config = SFTConfig(
        output_dir=str(out / "trl"),
        per_device_train_batch_size=1,
        gradient_accumulation_steps=packs_per_step,
        max_length=args.pack_tokens,
        packing=True,
        completion_only_loss=True,
        learning_rate=1e-5,
        lr_scheduler_type="constant",
        max_steps=args.steps,
        bf16=args.dtype == "bf16",
        use_cpu=args.device == "cpu",
        save_strategy="no",
        report_to=[],
        logging_steps=1,
        seed=0,
        dataloader_num_workers=0,
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=[Timer()],
    )
    trainer.train()
    measured = times[2:]
    tokens = packs_per_step * args.pack_tokens  # packed rows are full (the tail of the data aside)
    mean_len = mean_length(exs, tokenizer)
    per_example = [round(mean_len)] * max(1, round(tokens / mean_len))
    flops = model_flops(model.config, body, tokens, tokens, per_example)  # TRL runs the head on every row
    seconds = sum(measured)
    return {
        "tokens_per_s": tokens * len(measured) / seconds,
        "s_per_step": seconds / len(measured),
        "mfu": flops * len(measured) / seconds / (args.peak_tflops * 1e12),
        "packs_per_step": packs_per_step,
    }


def mean_length(exs, tokenizer) -> float:
    from mathsft.training.tokenize import tokenize_example

    return sum(len(tokenize_example(tokenizer, e)) for e in exs) / len(exs)


def worker(args: argparse.Namespace) -> None:
    out = Path(args.out)
    model = build_random_model(args.arch, Path(args.model_cache) / args.arch)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    if args.worker == "trl-packed":
        result = run_trl(args, model, out)
    else:
        result = run_mathsft(args, model, out, checkpointing=args.worker == "mathsft-ckpt")
    if args.device.startswith("cuda"):
        result["peak_gpu_gb"] = torch.cuda.max_memory_allocated() / 1e9
    (out / "result.json").write_text(json.dumps(result))


def spawn(args: argparse.Namespace, name: str, arch: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, __file__, "--worker", name, "--arch", arch, "--out", tmp]
        for key in ("steps", "batch_size", "pack_tokens", "dtype", "device", "peak_tflops", "model_cache"):
            cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            return {"name": name, "arch": arch, "error": done.stderr[-2000:]}
        return {"name": name, "arch": arch, **json.loads((Path(tmp) / "result.json").read_text())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--archs", nargs="+", default=["qwen2.5-0.5b", "qwen2.5-1.5b"], choices=sorted(RANDOM_CONFIGS)
    )
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=RUNS)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128, help="examples per optimizer step")
    parser.add_argument("--pack-tokens", type=int, default=4096)
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="H100 SXM dense bf16")
    parser.add_argument("--model-cache", default=str(Path(tempfile.gettempdir()) / "mathsft-bench-models"))
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--arch", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    import transformers

    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"device: {device}; torch {torch.__version__}, transformers {transformers.__version__}")
    print(f"{'arch':<14} {'run':<13} {'tok/s':>9} {'s/step':>7} {'MFU':>6} {'peak GB':>8}")
    rows = []
    for arch in args.archs:
        for name in args.runs:
            r = spawn(args, name, arch)
            rows.append(r)
            if "error" in r:
                print(f"{arch:<14} {name:<13} failed: {r['error'].strip().splitlines()[-1]}", flush=True)
                continue
            peak = f"{r['peak_gpu_gb']:.1f}" if "peak_gpu_gb" in r else "-"
            print(
                f"{arch:<14} {name:<13} {r['tokens_per_s']:>9.0f} {r['s_per_step']:>7.2f} {r['mfu']:>6.1%} {peak:>8}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps({"device": device, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
