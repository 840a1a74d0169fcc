"""``mathsft rl`` (GRPO) on one GPU in bf16, through the CLI: a smoke run of the toy task and a throughput run.

* ``toy``: the 2-layer llama of tests/rl (``conftest.save_toy_model``: its LM head puts 1/4 on each of
  "7", "8", "9" and end-of-turn) on "What is i + (7 - i)?", as ``test_a_tiny_model_learns_to_answer_7``
  (12 steps, 2 problems x 8 samples, lr 0.02), plus validation and step checkpoints: the reward should rise.
* ``throughput``: a Qwen2.5-0.5B-shaped policy (random weights, untied head) whose head puts 1/3 on each of
  " ", "7" and "8" and never ends a response, so every sample runs ``--max-new-tokens`` tokens; at 256 tokens
  about 1 in 8 ends on the number 7 (reward 1; shorter all-digit responses are graded as one expression and
  never pass), so groups hold right and wrong samples and steps also update.

Each run is ``python -m mathsft rl ...`` in a subprocess (log in ``<out>/<run>.log``); ``nvidia-smi`` samples
the GPU meanwhile. Prints and writes (``<out>/gpu_rl.json``) per run: reward per step, rollout and update
tokens/s (metrics.jsonl; the first step, which pays warm-up, reported apart), the files the run wrote, and the
peak GPU memory / utilization nvidia-smi saw.

    python bench/gpu_rl.py --out out/rl                                              # GPU, bf16
    python bench/gpu_rl.py --out /tmp/rl --device cpu --dtype fp32 --arch tiny --steps 2 --max-new-tokens 8  # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from random_models import RANDOM_CONFIGS


def toy_policy(out: Path, arch: str | None, likely: list[str], with_eos: bool) -> Path:
    """A random model (the tests' 2-layer llama, or ``arch`` of RANDOM_CONFIGS with an untied head) whose LM
    head puts equal probability on the single tokens ``likely`` (and end-of-turn when ``with_eos``)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig, LlamaConfig

    from mathsft.models import load_tokenizer

    tokenizer = load_tokenizer("smollm2-135m")
    special = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if arch is None:  # tests/conftest.py save_tiny_model
        config = LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
            tie_word_embeddings=False, **special,
        )  # fmt: skip
    else:
        spec = dict(RANDOM_CONFIGS[arch]) | {"tie_word_embeddings": False}
        config = AutoConfig.for_model(spec.pop("model_type"), vocab_size=len(tokenizer), **special, **spec)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    ids = []
    for text in likely:
        encoded = tokenizer.encode(text, add_special_tokens=False)
        assert len(encoded) == 1, (text, encoded)
        ids += encoded
    if with_eos:
        ids.append(tokenizer.eos_token_id)
    with torch.no_grad():
        # conftest.save_toy_model's construction: a constant first coordinate in every embedding survives the
        # final norm as a large positive value; the head reads only that coordinate, for the likely tokens
        # (the tests' 1.0 is swamped by 24 random layers: the Qwen2.5-0.5B shape needs a larger constant)
        model.get_input_embeddings().weight[:, 0] = 1.0 if arch is None else 100.0
        head = model.get_output_embeddings().weight
        head.zero_()
        head[ids, 0] = 20.0
    model.generation_config = GenerationConfig(**special)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def write_problems(path: Path, n: int, split: str) -> Path:
    """tests/rl/rl_toy.py's problems in GSM8K's format (gold answer 7)."""
    rows = [{"question": f"What is {i} + {7 - i}?", "answer": f"{i} + {7 - i} = 7\n#### 7"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


class GpuSampler:
    """nvidia-smi's GPU utilization and memory every 200 ms while a run goes (nothing on a CPU)."""

    def __init__(self, path: Path, device: str) -> None:
        self.proc = None
        if device.startswith("cuda"):
            query = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"]
            self.file = path.open("w")
            self.proc = subprocess.Popen([*query, "-lms", "200"], stdout=self.file, stderr=subprocess.DEVNULL)
        self.path = path

    def stop(self) -> dict:
        if self.proc is None:
            return {}
        self.proc.terminate()
        self.proc.wait()
        self.file.close()
        rows = [line.split(",") for line in self.path.read_text().splitlines() if line.count(",") == 1]
        util = [int(u) for u, _ in rows if u.strip().isdigit()]
        mem = [int(m) for _, m in rows if m.strip().isdigit()]
        return {
            "nvidia_smi_max_util_pct": max(util, default=None),
            "nvidia_smi_max_mem_mib": max(mem, default=None),
        }


def run_rl(name: str, model: Path, data: Path, out: Path, args: argparse.Namespace, extra: list[str]) -> dict:
    run = out / name
    cmd = [
        sys.executable, "-m", "mathsft", "rl", "--model", str(model), "--dataset", "gsm8k",
        "--data-path", str(data), "--out", str(run), "--seed", "0",
        f"dtype={args.dtype}", f"device={args.device}", "log.progress=false", *extra,
    ]  # fmt: skip
    sampler = GpuSampler(out / f"{name}.smi.csv", args.device)
    start = time.perf_counter()
    with (out / f"{name}.log").open("w") as log:
        done = subprocess.run(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
    wall = time.perf_counter() - start
    result = {
        "name": name,
        "command": " ".join(cmd[1:]),
        "returncode": done.returncode,
        "wall_s": round(wall, 1),
    }
    result |= sampler.stop()
    if done.returncode != 0:
        result["error"] = (out / f"{name}.log").read_text()[-3000:]
        return result
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "rl/reward_mean" in r]
    later = train[1:] or train
    result |= {
        "rewards": [round(r["rl/reward_mean"], 3) for r in train],
        "zero_signal_fraction": [round(r["rl/zero_signal_fraction"], 3) for r in train],
        "response_tokens": [r["rl/response_tokens"] for r in train],
        "rollout_tokens_per_s": [round(r["rl/rollout_tokens_per_s"]) for r in train],
        "update_tokens_per_s": [round(r["rl/update_tokens_per_s"]) for r in train],
        "rollout_s": [round(r["rl/rollout_s"], 3) for r in train],
        "update_s": [round(r["rl/update_s"], 3) for r in train],
        "mean_rollout_tokens_per_s_after_first": sum(r["rl/rollout_tokens_per_s"] for r in later)
        / len(later),
        "mean_update_tokens_per_s_after_first": sum(r["rl/update_tokens_per_s"] for r in later) / len(later),
        "validation": [
            {"step": r["train_step"], "accuracy": r["eval/accuracy"]} for r in rows if "eval/accuracy" in r
        ],
        "files": sorted(
            str(p.relative_to(run)) for p in run.rglob("*") if p.is_file() and "step-" not in str(p)
        ),
        "rollout_rows": len((run / "rollouts.jsonl").read_text().splitlines()),
    }
    resolved = run / "config.yaml"
    if resolved.is_file():
        result["resolved_device_dtype"] = [
            line.strip()
            for line in resolved.read_text().splitlines()
            if line.startswith(("device:", "dtype:"))
        ]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--runs", nargs="+", default=["toy", "throughput"], choices=["toy", "throughput"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument(
        "--arch", default="qwen2.5-0.5b", choices=sorted(RANDOM_CONFIGS), help="throughput run"
    )
    parser.add_argument("--steps", type=int, default=4, help="throughput run's steps")
    parser.add_argument("--batch-size", type=int, default=8, help="throughput run: problems per step")
    parser.add_argument("--group-size", type=int, default=8, help="throughput run: samples per problem")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="throughput run")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    models = args.out / "models"
    train = write_problems(args.out / "train.jsonl", 6, "train")
    val = write_problems(args.out / "val.jsonl", 3, "val")
    results = []
    if "toy" in args.runs:
        model = toy_policy(models / "toy", None, ["7", "8", "9"], with_eos=True)
        extra = [
            "--max-steps", "12", "--batch-size", "2", "--group-size", "8", "--max-new-tokens", "2",
            "--lr", "0.02", "adam_eps=0.01", "beta=0.01", "updates_per_batch=2", "micro_batch_tokens=64",
            "save_every=6", "keep_last=2", "eval_every=6", f"val_data={val}", "val_max_new_tokens=2",
        ]  # fmt: skip
        results.append(run_rl("toy", model, train, args.out, args, extra))
    if "throughput" in args.runs:
        model = toy_policy(models / args.arch, args.arch, [" ", "7", "8"], with_eos=False)
        tokens = args.batch_size * args.group_size * (args.max_new_tokens + 64)
        extra = [
            "--max-steps", str(args.steps), "--batch-size", str(args.batch_size),
            "--group-size", str(args.group_size), "--max-new-tokens", str(args.max_new_tokens),
            f"rollout_batch_size={args.batch_size * args.group_size}", f"micro_batch_tokens={min(tokens, 16384)}",
            "loss_chunk_tokens=4096",
        ]  # fmt: skip
        many = write_problems(args.out / "train-many.jsonl", max(6, args.batch_size * args.steps), "train")
        results.append(run_rl(f"throughput-{args.arch}", model, many, args.out, args, extra))
    for r in results:
        print(json.dumps({k: v for k, v in r.items() if k != "error"}), flush=True)
        if "error" in r:
            print(f"{r['name']} failed:\n{r['error']}", flush=True)
    (args.out / "gpu_rl.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
