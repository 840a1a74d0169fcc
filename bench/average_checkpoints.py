"""Average the weights of checkpoints fine-tuned from one base model (a "model soup", Wortsman et al. 2022).

Why: one-hour GSM8K runs of the bundled model that differ only in their data subset and batch order each
score ~8-9% but are right on largely different problems (BENCHMARKS.md, "What each ingredient adds"); averaging asks
whether a single greedy model can keep more of both. The output is a normal HF checkpoint directory:

    python bench/average_checkpoints.py runs/A/train/checkpoints/final runs/B/train/checkpoints/final \
        --out runs/soup
    mathsft eval --model runs/soup --dataset gsm8k calculator=true --out runs/soup-eval
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

WEIGHTS = "model.safetensors"


def average(paths: list[Path]) -> dict[str, torch.Tensor]:
    """The element-wise mean of the checkpoints' tensors, accumulated in fp32, stored in their own dtype."""
    configs = [json.loads((p / "config.json").read_text()) for p in paths]
    if any(c != configs[0] for c in configs[1:]):
        raise SystemExit("the checkpoints' config.json differ: a soup needs one architecture")
    states = [load_file(p / WEIGHTS) for p in paths]
    if any(s.keys() != states[0].keys() for s in states[1:]):
        raise SystemExit("the checkpoints hold different tensors: a soup needs one architecture")
    return {
        name: (sum(s[name].float() for s in states) / len(states)).to(tensor.dtype)
        for name, tensor in states[0].items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path, help="HF checkpoint directories (two or more)")
    parser.add_argument("--out", type=Path, required=True, help="directory for the averaged checkpoint")
    args = parser.parse_args()
    if len(args.checkpoints) < 2:
        parser.error("give two or more checkpoints")
    missing = [str(p) for p in args.checkpoints if not (p / WEIGHTS).is_file()]
    if missing:
        parser.error(f"no {WEIGHTS} in: {', '.join(missing)}")
    soup = average(args.checkpoints)
    args.out.mkdir(parents=True, exist_ok=True)
    for f in args.checkpoints[0].iterdir():  # config, tokenizer, chat template; not the optimizer state
        if f.is_file() and f.name not in {WEIGHTS, "trainer_state.pt"}:
            shutil.copy2(f, args.out / f.name)
    save_file(soup, args.out / WEIGHTS, metadata={"format": "pt"})
    sources = [str(p) for p in args.checkpoints]
    (args.out / "soup.json").write_text(json.dumps({"averaged": sources}, indent=1) + "\n")
    print(f"averaged {len(sources)} checkpoints into {args.out}")


if __name__ == "__main__":
    main()
