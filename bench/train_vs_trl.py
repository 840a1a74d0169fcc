"""SFT throughput and peak memory: mathsft vs TRL's SFTTrainer on the same 256 GSM8K examples.

Same model (bundled SmolLM2-135M-Instruct), batch 8, max length 512, lr, precision and completion-only loss.
Each run is its own subprocess so its peak RSS is measured alone (``os.wait4``). Supervised tokens/s
excludes the first (warm-up) step; for TRL it is the supervised tokens of the examples each step consumed
(counted with mathsft's tokenization: response + end-of-turn) over its measured step time; ``med 3-12`` is the median of
steps 3-12's own rates (a 12-step run's window; 32 steps are one epoch and hold it). TRL is fed mathsft's
batches (the examples of mathsft's step k at its step k, through a sequential sampler), so each step of the
window costs both trainers the same data: drawn in their own orders, a step's lengths (and TRL's padding to
the batch's longest) differed enough to move a 10-step median by 5-17% either way (``--trl-own-order`` keeps
TRL's own shuffled sampler, as a default user would run it). TRL runs with its
default gradient checkpointing (on); ``trl-padded-nogc`` / ``trl-packed-nogc`` turn it off (faster, more
memory). mathsft is compared with the fastest TRL run (its speed and its own peak: the issue's criterion) and
with the lowest TRL peak of the run (a stricter memory bar). Every run gets PyTorch's default allocation
(the caller's ``THP_MEM_ALLOC_ENABLE`` is dropped); a ``-thp`` suffix (``mathsft-thp``,
``trl-padded-nogc-thp``) runs with its huge-page CPU allocation on.

    .venv/bin/python bench/train_vs_trl.py --steps 6 --json bench/results/train-vs-trl.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "train.jsonl"
BATCH, MAX_LENGTH, LR, N = 8, 512, 3e-5, 256


def examples():
    from mathsft.data import load_problems
    from mathsft.training import problems_to_examples

    return problems_to_examples(load_problems("gsm8k", DATA, limit=N))


def run_mathsft(
    precision: str,
    steps: int,
    out: Path,
    micro_batch_tokens: int | None,
    checkpointing: bool,
    loss_chunk_tokens: int | None,
    checkpoint_layers: int | None,
    compile_regions: bool,
) -> dict:
    from mathsft.training import TrainConfig, train

    cfg = TrainConfig(
        model="smollm2-135m",
        out=str(out / "run"),
        max_steps=steps,
        batch_size=BATCH,
        max_length=MAX_LENGTH,
        lr=LR,
        dtype=precision,
        schedule="constant",
        keep_last=1,
        micro_batch_tokens=micro_batch_tokens,
        gradient_checkpointing=checkpointing,
        checkpoint_layers=checkpoint_layers,
        compile=compile_regions,
        # mathsft's own default unless told: 0 = whole logits
        **({} if loss_chunk_tokens is None else {"loss_chunk_tokens": loss_chunk_tokens or None}),
    )
    run = train(cfg, examples=examples())
    every = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rows = every[1:]
    seconds = sum(r["train/step_s"] for r in rows)
    return {
        "supervised_tokens_per_s": sum(r["train/supervised_tokens"] for r in rows) / seconds,
        "median_3_12_supervised_tokens_per_s": statistics.median(
            r["train/supervised_tokens"] / r["train/step_s"] for r in every[2:12]
        ),
        "first_step_s": every[0]["train/step_s"],
        "compile_s": sum(r.get("train/compile_s", 0.0) for r in every),
        "tokens_per_s": sum(r["train/tokens"] for r in rows) / seconds,
        "s_per_step": seconds / len(rows),
        "mfu": sum(r["train/mfu"] for r in rows) / len(rows),
        "peak_flops": json.loads((run / "preflight.json").read_text())["peak_flops"],
    }


def mathsft_order(steps: int) -> list[int]:
    """The examples mathsft's first ``steps`` steps take, in order (its default seed)."""
    from mathsft.training.loop import step_indices

    return [i for step in range(steps) for i in step_indices(step, N, BATCH, seed=0)]


def run_trl(
    precision: str, steps: int, out: Path, packing: bool, checkpointing: bool, own_order: bool
) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from mathsft.models import load_tokenizer, resolve_model
    from mathsft.training.tokenize import tokenize_example

    exs = examples()
    tokenizer = load_tokenizer("smollm2-135m", padding_side="right")
    supervised = {e.id: int(tokenize_example(tokenizer, e).supervised.sum()) for e in exs}
    rows = [{"id": e.id, "prompt": e.messages[:-1], "completion": e.messages[-1:]} for e in exs]
    if not own_order:
        rows = [rows[i] for i in mathsft_order(steps)]
    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t0)

    model = AutoModelForCausalLM.from_pretrained(resolve_model("smollm2-135m"), dtype=torch.float32)
    args = SFTConfig(
        output_dir=str(out / "trl"),
        per_device_train_batch_size=BATCH,
        max_length=MAX_LENGTH,
        learning_rate=LR,
        max_steps=steps,
        lr_scheduler_type="constant",
        completion_only_loss=True,
        packing=packing,
        gradient_checkpointing=checkpointing,  # TRL's default is on
        bf16=precision == "bf16",
        use_cpu=True,
        save_strategy="no",
        report_to=[],
        logging_steps=1,
        seed=0,
        dataloader_num_workers=0,
        remove_unused_columns=True,
    )

    class SameBatches(SFTTrainer):
        def _get_train_sampler(self, *args, **kwargs):
            return torch.utils.data.SequentialSampler(self.train_dataset)

    trainer = (SFTTrainer if own_order else SameBatches)(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=[Timer()],
    )
    order = list(trainer.get_train_dataloader().sampler)  # the examples TRL draws, in order
    trainer.train()
    measured = times[1:]
    if packing:  # packed rows hold parts of several examples: supervised tokens per step from the mean
        per_step = sum(supervised.values()) / N * BATCH
        sup = per_step * len(measured)
        per_step_sup = [per_step] * steps
    else:
        ids = [rows[i]["id"] for i in order[: steps * BATCH]]
        sup = sum(supervised[i] for i in ids[BATCH:])
        per_step_sup = [sum(supervised[i] for i in ids[k * BATCH : (k + 1) * BATCH]) for k in range(steps)]
    return {
        "supervised_tokens_per_s": sup / sum(measured),
        "median_3_12_supervised_tokens_per_s": statistics.median(
            n / t for n, t in zip(per_step_sup[2:12], times[2:12], strict=True)
        ),
        "first_step_s": times[0],
        "s_per_step": sum(measured) / len(measured),
    }


def worker(args: argparse.Namespace) -> None:
    out = Path(args.out)
    if args.worker.startswith("mathsft"):
        result = run_mathsft(
            args.precision,
            args.steps,
            out,
            args.micro_batch_tokens,
            args.gradient_checkpointing,
            args.loss_chunk_tokens,
            args.checkpoint_layers,
            args.compile,
        )
    else:
        result = run_trl(
            args.precision,
            args.steps,
            out,
            packing=args.worker.startswith("trl-packed"),
            checkpointing="-nogc" not in args.worker,
            own_order=args.trl_own_order,
        )
    (out / "result.json").write_text(json.dumps(result))


def spawn(name: str, precision: str, steps: int, options: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            name,
            "--precision",
            precision,
            "--steps",
            str(steps),
            "--out",
            tmp,
        ]
        if options.gradient_checkpointing:
            cmd.append("--gradient-checkpointing")
        if options.micro_batch_tokens:
            cmd += ["--micro-batch-tokens", str(options.micro_batch_tokens)]
        if options.loss_chunk_tokens is not None:
            cmd += ["--loss-chunk-tokens", str(options.loss_chunk_tokens)]
        if options.checkpoint_layers is not None:
            cmd += ["--checkpoint-layers", str(options.checkpoint_layers)]
        if options.compile:
            cmd.append("--compile")
        if options.trl_own_order:
            cmd.append("--trl-own-order")
        env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}  # PyTorch's default
        if name.endswith("-thp"):
            env["THP_MEM_ALLOC_ENABLE"] = "1"
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        stderr = proc.stderr.read() if proc.stderr else ""
        if status != 0:
            raise SystemExit(f"{name} {precision} failed:\n{stderr[-3000:]}")
        result = json.loads((Path(tmp) / "result.json").read_text())
    return {"name": name, "precision": precision, "peak_rss_gb": usage.ru_maxrss / 1e6, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument(
        "--runs", nargs="+", default=["mathsft", "trl-padded", "trl-padded-nogc", "trl-packed"]
    )
    parser.add_argument(
        "--micro-batch-tokens",
        type=int,
        help="mathsft: token budget per forward/backward (gradient accumulation inside a step; less memory)",
    )
    parser.add_argument(
        "--gradient-checkpointing", action="store_true", help="mathsft: recompute activations"
    )
    parser.add_argument(
        "--loss-chunk-tokens",
        type=int,
        help="mathsft: LM head + loss on this many supervised rows at a time (default: mathsft's default, "
        "256; 0: whole logits)",
    )
    parser.add_argument(
        "--checkpoint-layers", type=int, help="mathsft: with checkpointing, recompute only the first N layers"
    )
    parser.add_argument("--compile", action="store_true", help="mathsft: torch.compile the norms and MLPs")
    parser.add_argument(
        "--trl-own-order", action="store_true", help="TRL: its own shuffled sampler, not mathsft's batches"
    )
    parser.add_argument("--json", type=Path, help="also write every run's numbers here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--precision", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.steps * BATCH > N and any(r.startswith("trl") for r in args.runs):
        # TRL's supervised tokens are counted from its sampler's first-epoch order
        raise SystemExit(f"--steps at most {N // BATCH} (one epoch) when TRL runs")
    if not DATA.is_file():
        raise SystemExit(f"needs {DATA}")
    print(
        f"{'run':<16} {'prec':<5} {'sup tok/s':>10} {'med 3-12':>10} {'s/step':>7} {'step 1 s':>9} "
        f"{'peak RSS GB':>12} {'MFU':>6}"
    )
    everything = []
    for precision in args.precisions:
        results = [spawn(name, precision, args.steps, args) for name in args.runs]
        for r in results:
            mfu = f"{r['mfu']:.1%}" if "mfu" in r else "-"
            print(
                f"{r['name']:<16} {precision:<5} {r['supervised_tokens_per_s']:>10.1f} "
                f"{r['median_3_12_supervised_tokens_per_s']:>10.1f} {r['s_per_step']:>7.2f} "
                f"{r['first_step_s']:>9.1f} {r['peak_rss_gb']:>12.2f} {mfu:>6}",
                flush=True,
            )
        everything += results
        ours = next((r for r in results if r["name"] == "mathsft"), None)
        trl = [r for r in results if r["name"].startswith("trl")]
        if ours and trl:
            best = max(trl, key=lambda r: r["supervised_tokens_per_s"])
            print(
                f"  {precision}: mathsft / fastest TRL ({best['name']}): "
                f"{ours['supervised_tokens_per_s'] / best['supervised_tokens_per_s']:.2f}x supervised tokens/s, "
                f"{ours['peak_rss_gb'] / best['peak_rss_gb']:.2f}x its peak RSS, "
                f"{ours['peak_rss_gb'] / min(r['peak_rss_gb'] for r in trl):.2f}x the lowest TRL peak RSS"
            )
            key = "median_3_12_supervised_tokens_per_s"
            best = max(trl, key=lambda r: r[key])
            print(
                f"  median of steps 3-12: mathsft / fastest TRL ({best['name']}): {ours[key] / best[key]:.2f}x"
            )
        if ours:
            print(f"  peak: {ours['peak_flops'] / 1e9:.0f} GFLOP/s measured {precision} matmul")
    if args.json:
        options = {k: v for k, v in vars(args).items() if k not in {"json", "worker", "precision", "out"}}
        args.json.write_text(json.dumps({"options": options, "runs": everything}, indent=1) + "\n")


if __name__ == "__main__":
    main()
