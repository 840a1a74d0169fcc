"""In-training validation: loss on held-out examples, and generation accuracy through the eval module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mathsft.data.schema import Problem
from mathsft.training.config import TrainConfig
from mathsft.training.distributed import Dist
from mathsft.training.loss import step_loss
from mathsft.training.packing import collate
from mathsft.training.tokenize import Tokenized


@torch.no_grad()
def validation_loss(
    model: Any,
    rows: list[Tokenized],
    cfg: TrainConfig,
    pad_id: int,
    device: torch.device,
    autocast: Any,
    dist: Dist,
) -> float:
    """Mean cross-entropy per supervised token over ``rows`` (split over the ranks)."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(2, dtype=torch.float64)
    for start in range(0, len(rows), cfg.batch_size):
        chunk = rows[start : start + cfg.batch_size]
        groups, fillers = dist.micro_batches(chunk, cfg.packing, cfg.micro_batch_tokens, cfg.grad_accum)
        for i, group in enumerate(groups):
            batch = collate(group, cfg.packing, pad_id)
            with autocast():
                ce = step_loss(model, batch, device)
            if i < len(groups) - fillers:
                sums += torch.tensor([float(ce.sum()), batch.num_targets], dtype=torch.float64)
    model.train(was_training)
    total, count = dist.all_reduce_sum(sums).tolist()
    return total / max(count, 1)


def validation_accuracy(
    checkpoint: Path, problems: list[Problem], cfg: TrainConfig, out: Path
) -> dict[str, Any]:
    """Greedy eval of a checkpoint directory on ``problems`` (an eval directory under ``out``)."""
    from mathsft.evaluation import EvalConfig, run_eval

    eval_cfg = EvalConfig(
        model=str(checkpoint),
        out=str(out),
        prompt=cfg.prompt,
        max_new_tokens=cfg.val_max_new_tokens,
        batch_size=cfg.val_batch_size,
        seed=cfg.seed,
    )
    return run_eval(eval_cfg, problems=problems)
