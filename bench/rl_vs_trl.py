"""GRPO speed and peak memory on CPU: ``mathsft rl`` against TRL's ``GRPOTrainer``, side by side in one run.

Same model (the bundled SmolLM2-135M-Instruct, or ``--model`` such as its SFT checkpoint; fp32, or bf16
autocast in both with ``--precision bf16``: a CPU with AVX512-BF16 or AMX computes it natively), same
training problems (the first ``steps x batch`` of GSM8K or ``--dataset synthetic``, each arm taking them
in its own order), same group size, max new tokens, problems per step, temperature, learning rate and
loss (``grpo``: per-sequence mean, advantages over the group's std, no KL, one optimizer step per
rollout batch), the reward from ``mathsft.grading`` in both: 1 when correct
plus ``--format-reward`` when the answer is stated (a 135M model is rarely right on GSM8K, so without
that term nearly every group would be without signal and mathsft, which skips those, would hardly update:
the term keeps both arms' update paths busy; so does an SFT checkpoint on synthetic problems). Each arm
runs in its own process so its peak RSS (``os.wait4``) is its own; the first step is a warm-up outside
the timing. Measured per step: seconds, rollout seconds (generation + grading + advantages), generated
tokens/s (tokens over generation seconds), update tokens/s (tokens forwarded in the update over its
seconds; mathsft leaves samples of groups without signal out of the forward, TRL forwards all).

TRL runs in the configurations it offers on CPU: its defaults (gradient checkpointing on), without
gradient checkpointing (``-nogc``), and with transformers' continuous-batching generation (``-cb``);
mathsft is compared with the fastest of them that ran. A configuration that fails is reported, not hidden.

    .venv/bin/python bench/rl_vs_trl.py --steps 6 --json bench/results/rl-vs-trl.json
    .venv/bin/python bench/rl_vs_trl.py --model runs/main/train/checkpoints/final --dataset synthetic \
        --steps 6 --json bench/results/rl-vs-trl-sft.json   # mixed rewards: every arm updates
    .venv/bin/python bench/rl_vs_trl.py --steps 1 --max-new-tokens 16 --arms mathsft,trl  # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "train.jsonl"
ARMS = ("mathsft", "trl", "trl-nogc", "trl-cb")


def problems(n: int, dataset: str) -> list[Any]:
    """The first ``n`` training problems of ``dataset`` (gsm8k: ../shared/data's file, else the packaged
    copy; synthetic: generated)."""
    from mathsft.data import load_problems

    path = DATA if dataset == "gsm8k" and DATA.is_file() else None
    return load_problems(dataset, path, split="train", limit=n, first=True)


def run_mathsft(opts: dict[str, Any], out: Path) -> dict[str, Any]:
    from mathsft.rl import RLConfig
    from mathsft.rl.loop import rl

    steps = opts["steps"] + 1  # the first is the warm-up
    cfg = RLConfig(
        model=opts["model"],
        out=str(out / "run"),
        max_steps=steps,
        batch_size=opts["batch"],
        group_size=opts["group"],
        max_new_tokens=opts["max_new_tokens"],
        temperature=1.0,
        lr=opts["lr"],
        loss_type="grpo",
        loss_chunk_tokens=opts["loss_chunk_tokens"],
        format_reward=opts["format_reward"],
        dtype=opts["precision"],  # rollouts in the same dtype (rollout_dtype auto)
        rollout_batch_size=opts["batch"] * opts["group"],
        log={"progress": False},
    )
    run = rl(cfg, problems=problems(steps * opts["batch"], opts["dataset"]))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][1:]
    n = opts["batch"] * opts["group"]
    generated = [r["rl/response_tokens"] * n for r in rows]
    generate_s = [g / r["rl/rollout_tokens_per_s"] for g, r in zip(generated, rows, strict=True)]
    update_tokens = sum(r["rl/update_tokens_per_s"] * r["rl/update_s"] for r in rows)
    return {
        "s_per_step": sum(r["rl/step_s"] for r in rows) / len(rows),
        "rollout_s_per_step": sum(r["rl/rollout_s"] for r in rows) / len(rows),
        "update_s_per_step": sum(r["rl/update_s"] for r in rows) / len(rows),
        "rollout_tokens_per_s": sum(generated) / sum(generate_s),
        "update_tokens_per_s": update_tokens / sum(r["rl/update_s"] for r in rows),
        "mean_completion_tokens": sum(generated) / (n * len(rows)),
        "reward_mean": sum(r["rl/reward_mean"] for r in rows) / len(rows),
    }


def run_trl(name: str, opts: dict[str, Any], out: Path) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from mathsft.evaluation.prompts import build_prompt
    from mathsft.grading import grade
    from mathsft.models import load_tokenizer, resolve_model

    steps = opts["steps"] + 1
    chosen = problems(steps * opts["batch"], opts["dataset"])
    rows = [{"prompt": build_prompt(p, "qwen-boxed"), "answer": p.answer} for p in chosen]

    def reward(prompts: list, completions: list, answer: list, **_: Any) -> list[float]:
        verdicts = [grade(c[-1]["content"], a) for c, a in zip(completions, answer, strict=True)]
        return [float(v.correct) + opts["format_reward"] * v.formatted for v in verdicts]

    step_s: list[float] = []
    phases: dict[str, list[float]] = {"rollout": [], "generate": [], "generated": [], "update_tokens": []}

    class Timer(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.t0 = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            step_s.append(time.perf_counter() - self.t0)

    model = AutoModelForCausalLM.from_pretrained(resolve_model(opts["model"]), dtype=torch.float32)
    args = GRPOConfig(
        output_dir=str(out / "trl"),
        per_device_train_batch_size=opts["batch"] * opts["group"],
        num_generations=opts["group"],
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        max_completion_length=opts["max_new_tokens"],
        temperature=1.0,
        learning_rate=opts["lr"],
        lr_scheduler_type="constant",
        loss_type="grpo",
        scale_rewards="group",
        beta=0.0,
        num_iterations=1,
        max_steps=steps,
        gradient_checkpointing=name == "trl",
        use_transformers_continuous_batching=name == "trl-cb",
        bf16=opts["precision"] == "bf16",
        use_cpu=True,
        shuffle_dataset=False,
        save_strategy="no",
        report_to=[],
        logging_steps=1,
        seed=0,
        dataloader_num_workers=0,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=load_tokenizer(opts["model"], padding_side="left"),
        callbacks=[Timer()],
    )
    generate, score = trainer._generate, trainer._generate_and_score_completions

    def timed_generate(prompts: list) -> Any:
        t0 = time.perf_counter()
        result = generate(prompts)
        phases["generate"].append(time.perf_counter() - t0)
        phases["generated"].append(sum(len(ids) for ids in result[1]))
        return result

    def timed_score(inputs: Any) -> Any:
        t0 = time.perf_counter()
        result = score(inputs)
        phases["rollout"].append(time.perf_counter() - t0)
        phases["update_tokens"].append(float(result["prompt_mask"].sum() + result["completion_mask"].sum()))
        return result

    trainer._generate, trainer._generate_and_score_completions = timed_generate, timed_score
    trainer.train()
    steady = slice(1, None)
    rollout, generated = phases["rollout"][steady], phases["generated"][steady]
    update = [s - r for s, r in zip(step_s[steady], rollout, strict=True)]
    return {
        "s_per_step": sum(step_s[steady]) / len(update),
        "rollout_s_per_step": sum(rollout) / len(update),
        "update_s_per_step": sum(update) / len(update),
        "rollout_tokens_per_s": sum(generated) / sum(phases["generate"][steady]),
        "update_tokens_per_s": sum(phases["update_tokens"][steady]) / sum(update),
        "mean_completion_tokens": sum(generated) / (len(update) * opts["batch"] * opts["group"]),
    }


def spawn(name: str, opts: dict[str, Any]) -> dict[str, Any]:
    """One arm in its own process: its result and its peak resident memory."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, __file__, "--worker", json.dumps({"name": name, "out": tmp, **opts})]
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        stderr = proc.stderr.read() if proc.stderr else ""
        if status != 0:
            return {"name": name, "failed": stderr.strip().splitlines()[-1:] or ["(no output)"]}
        result = json.loads((Path(tmp) / "result.json").read_text())
    return {"name": name, "peak_rss_gb": usage.ru_maxrss / 1e6, **result}


def worker(spec: dict[str, Any]) -> None:
    out = Path(spec["out"])
    name = spec["name"]
    result = run_mathsft(spec, out) if name == "mathsft" else run_trl(name, spec, out)
    (out / "result.json").write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m", help="e.g. an SFT checkpoint of it")
    parser.add_argument("--dataset", default="gsm8k", choices=["gsm8k", "synthetic"])
    parser.add_argument("--steps", type=int, default=6, help="measured steps (plus one warm-up step)")
    parser.add_argument("--batch", type=int, default=4, help="problems per step")
    parser.add_argument("--group", type=int, default=8, help="samples per problem")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-6)
    parser.add_argument("--loss-chunk-tokens", type=int, default=256, help="mathsft: fused LM head + loss")
    parser.add_argument("--format-reward", type=float, default=0.5, help="added when the answer is stated")
    parser.add_argument(
        "--precision", default="fp32", choices=["fp32", "bf16"], help="bf16: autocast in both"
    )
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    opts = {
        "model": args.model,
        "dataset": args.dataset,
        "steps": args.steps,
        "batch": args.batch,
        "group": args.group,
        "max_new_tokens": args.max_new_tokens,
        "lr": args.lr,
        "loss_chunk_tokens": args.loss_chunk_tokens,
        "format_reward": args.format_reward,
        "precision": args.precision,
    }
    results = []
    for name in args.arms.split(","):
        results.append(spawn(name, opts))
        print(json.dumps(results[-1]), flush=True)
    ran = [r for r in results if "failed" not in r]
    ours = next((r for r in ran if r["name"] == "mathsft"), None)
    trl = [r for r in ran if r["name"].startswith("trl")]
    summary: dict[str, Any] = {"settings": opts, "cpu": os.cpu_count(), "results": results}
    if ours and trl:
        fastest = min(trl, key=lambda r: r["s_per_step"])
        summary["vs_fastest_trl"] = {
            "trl_arm": fastest["name"],
            "speedup_s_per_step": fastest["s_per_step"] / ours["s_per_step"],
            "rollout_tokens_per_s_ratio": ours["rollout_tokens_per_s"] / fastest["rollout_tokens_per_s"],
            "peak_rss_ratio": ours["peak_rss_gb"] / fastest["peak_rss_gb"],
            "lowest_trl_peak_rss_gb": min(r["peak_rss_gb"] for r in trl),
        }
        print(json.dumps(summary["vs_fastest_trl"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
