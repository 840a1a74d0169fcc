"""Quality parity with TRL: SFT the bundled model with TRL's SFTTrainer on exactly the problems a finished
`mathsft run` trained on, evaluate it with the same eval settings on the same test problems, and compare.

Same examples (the run's ``data/train.jsonl`` rendered by ``problems_to_examples`` with the run's prompt),
batch 8, max length 512, the run's lr / schedule / warmup, 1 epoch, completion-only loss, TRL's padded
batches (faster than its packing here, see ``train_vs_trl.py``), fp32 or bf16 autocast, and TRL's default
gradient checkpointing (on) unless ``--no-gradient-checkpointing`` (faster, more memory).

    .venv/bin/python bench/parity_trl.py --run runs/parity-gsm8k --out runs/parity-trl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml


def train_trl(run: Path, out: Path, precision: str, checkpointing: bool) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from mathsft.data import load_problems
    from mathsft.models import load_tokenizer, resolve_model
    from mathsft.training import problems_to_examples

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    train = cfg["train"]
    examples = problems_to_examples(
        load_problems("problems", run / "data" / "train.jsonl"), cfg["eval"]["prompt"]
    )
    rows = [{"prompt": e.messages[:-1], "completion": e.messages[-1:]} for e in examples]
    tokenizer = load_tokenizer(cfg["model"], padding_side="right")
    model = AutoModelForCausalLM.from_pretrained(resolve_model(cfg["model"]), dtype=torch.float32)
    args = SFTConfig(
        output_dir=str(out / "trainer"),
        per_device_train_batch_size=train["batch_size"],
        max_length=train["max_length"],
        learning_rate=train["lr"],
        lr_scheduler_type=train["schedule"],
        warmup_steps=train["warmup_steps"],
        weight_decay=train["weight_decay"],
        max_grad_norm=train["grad_clip"],
        num_train_epochs=train["epochs"],
        completion_only_loss=True,
        packing=False,
        gradient_checkpointing=checkpointing,
        bf16=precision == "bf16",
        use_cpu=True,
        save_strategy="no",
        report_to=[],
        logging_steps=1,
        seed=train["seed"],
        dataloader_num_workers=0,
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer
    )
    start = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    trainer.save_model(str(out / "model"))
    tokenizer.save_pretrained(str(out / "model"))
    return {
        "examples": len(rows),
        "steps": result.global_step,
        "train_s": seconds,
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "precision": precision,
        "gradient_checkpointing": checkpointing,
    }


def evaluate(run: Path, out: Path) -> dict:
    from mathsft.data import load_problems
    from mathsft.evaluation import EvalConfig, run_eval

    final = yaml.safe_load((run / "final" / "config.yaml").read_text())  # the mathsft arm's eval, verbatim
    final.update(model=str(out / "model"), out=str(out / "eval"))
    problems = load_problems("problems", run / "data" / "test.jsonl")
    return run_eval(EvalConfig(**final), problems=problems)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run", type=Path, default=Path("runs/parity-gsm8k"), help="a finished `mathsft run`"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/parity-trl"))
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument(
        "--no-gradient-checkpointing",
        dest="checkpointing",
        action="store_false",
        help="turn off TRL's default gradient checkpointing",
    )
    args = parser.parse_args()
    for need in ("config.yaml", "data/train.jsonl", "data/test.jsonl", "final/results.jsonl"):
        if not (args.run / need).is_file():
            raise SystemExit(f"{args.run / need} is missing: run the mathsft arm first (see BENCHMARKS.md)")
    args.out.mkdir(parents=True, exist_ok=True)
    trained = args.out / "train.json"
    if not trained.is_file():
        trained.write_text(
            json.dumps(train_trl(args.run, args.out, args.precision, args.checkpointing), indent=2)
        )
    print("TRL training:", trained.read_text())
    summary = evaluate(args.run, args.out)
    print(f"TRL arm: {summary['accuracy']:.1%} CI {summary['ci95']} format {summary['format_rate']:.1%}")

    from mathsft.evaluation.compare import compare_dirs, format_comparison

    for name, a, b in (
        ("baseline -> TRL", args.run / "baseline", args.out / "eval"),
        ("mathsft vs TRL", args.out / "eval", args.run / "final"),
    ):
        result = compare_dirs(a, b)
        (args.out / f"compare-{name.split()[0]}.json").write_text(json.dumps(result, indent=2))
        print(f"== {name}\n{format_comparison(result)}")


if __name__ == "__main__":
    main()
