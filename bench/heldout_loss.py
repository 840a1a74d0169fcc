"""Teacher-forced loss of checkpoints on held-out reference solutions: a cheap, low-noise way to rank
training configs at equal wall time before paying for greedy evals.

Why: at the main job's size a 300-problem greedy eval moves by a few problems between arms (the runs' own
scatter), so it cannot tell configs apart that differ by less than ~2 pp. The mean cross-entropy per
supervised token of the test problems' reference solutions (exactly what SFT minimizes, on problems it never
trained on; calculator results left out as in training) separates them from a few minutes of forward passes:

    python bench/heldout_loss.py runs/main/data/test.jsonl smollm2-135m runs/main/train/checkpoints/final \
        runs/other/train/checkpoints/final --prompt bare

``TEST`` is a run's ``data/test.jsonl`` (normalized problems with their solutions).
"""

from __future__ import annotations

import argparse

import torch

from mathsft.data import load_problems
from mathsft.models import load_model, load_tokenizer
from mathsft.training.config import TrainConfig
from mathsft.training.data import problems_to_examples
from mathsft.training.distributed import Dist
from mathsft.training.loop import autocast_for
from mathsft.training.tokenize import tokenize_examples
from mathsft.training.validate import validation_loss


def heldout_loss(spec: str, test: str, prompt: str, calculator: bool) -> tuple[float, int]:
    """Mean nats per supervised token of ``spec`` on ``test``'s reference solutions (the training loop's own
    ``validation_loss``, fp32), and the supervised-token count."""
    cfg = TrainConfig(model=spec, prompt=prompt, calculator=calculator, dtype="fp32", max_length=512)
    tokenizer = load_tokenizer(spec)
    model = load_model(spec, dtype="float32")
    examples = problems_to_examples(load_problems("problems", test), prompt, calculator)
    items, stats = tokenize_examples(tokenizer, examples, cfg.max_length, calculator=calculator)
    device = torch.device("cpu")
    pad_id = tokenizer.pad_token_id or 0
    loss = validation_loss(model, items, cfg, pad_id, device, autocast_for(cfg, device), Dist())
    return loss, stats.supervised_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("test", help="a run's data/test.jsonl")
    parser.add_argument("models", nargs="+", help="model specs or checkpoint directories")
    parser.add_argument("--prompt", default="bare")
    parser.add_argument("--no-calculator", action="store_true", help="solutions without the tool's calls")
    args = parser.parse_args()
    for spec in args.models:
        loss, tokens = heldout_loss(spec, args.test, args.prompt, not args.no_calculator)
        print(f"{loss:.4f} nats/token over {tokens} tokens  {spec}", flush=True)


if __name__ == "__main__":
    main()
