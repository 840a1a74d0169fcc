"""The SFT loss: cross-entropy on supervised positions only, normalized over the whole optimizer step.

The LM head runs on the supervised rows alone (``logits_to_keep`` with their indices for a packed row), so
prompt positions cost no vocabulary-sized logits. Normalization is by weights fixed before the first
micro-batch: ``1 / (supervised tokens of the step)`` per token (or ``1 / (sequences x tokens of that
sequence)`` for per-sequence averaging), so gradient accumulation — and ranks, whose gradients FSDP
averages — give exactly the update of one big batch.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F

from mathsft.training.packing import Batch


def step_loss(model: Any, batch: Batch, device: torch.device | str) -> torch.Tensor:
    """Per-target cross-entropy ``[N]`` (float32) of one micro-batch."""
    packed = batch.input_ids.shape[0] == 1
    index = batch.target_index.to(device, non_blocking=True)
    out = model(**batch.model_inputs(device), logits_to_keep=index if packed else 0, use_cache=False)
    logits = out.logits.flatten(0, 1)
    if not packed:
        logits = logits[index]
    return F.cross_entropy(logits.float(), batch.targets.to(device, non_blocking=True), reduction="none")


def target_weights(
    batch: Batch, average: Literal["token", "sequence"], step_targets: int, step_seqs: int
) -> torch.Tensor:
    """Weight of each target so that summing over all micro-batches of the step gives the mean."""
    if average == "token":
        return torch.full((batch.num_targets,), 1.0 / step_targets)
    counts = torch.bincount(batch.target_seq, minlength=batch.num_seqs).clamp(min=1).float()
    return 1.0 / (counts[batch.target_seq] * step_seqs)
