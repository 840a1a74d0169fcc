"""The SFT loss: cross-entropy on supervised positions only, normalized over the whole optimizer step.

The LM head runs on the supervised rows alone (``logits_to_keep`` with their indices for a packed row), so
prompt positions cost no vocabulary-sized logits. With ``chunk_tokens`` the head and the cross-entropy run
on that many rows at a time and are recomputed in backward, so no ``[targets, vocab]`` logits (nor their
log-softmax and gradient) are ever held whole (0.4 GB less peak memory for a step of ~900 supervised
tokens of a 49k vocabulary, measured), for one more head forward. Normalization is by weights fixed before the first
micro-batch: ``1 / (supervised tokens of the step)`` per token (or ``1 / (sequences x tokens of that
sequence)`` for per-sequence averaging), so gradient accumulation — and ranks, whose gradients FSDP
averages — give exactly the update of one big batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from mathsft.training.packing import Batch

# config keys of architectures that transform the logits after the head: their loss is never chunked
LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


def step_loss(
    model: Any, batch: Batch, device: torch.device | str, chunk_tokens: int | None = None
) -> torch.Tensor:
    """Per-target cross-entropy ``[N]`` (float32) of one micro-batch."""
    packed = batch.input_ids.shape[0] == 1
    index = batch.target_index.to(device, non_blocking=True)
    targets = batch.targets.to(device, non_blocking=True)
    inputs = batch.model_inputs(device)
    chunked = chunk_tokens is not None and can_chunk(model)
    head = (
        head_computes_loss(model, None if packed else index, targets, chunk_tokens)
        if chunked
        else contextlib.nullcontext()
    )
    with head:
        out = model(**inputs, logits_to_keep=index if packed else 0, use_cache=False)
    if chunked:
        return out.logits  # the head's output is the per-target loss here
    logits = out.logits.flatten(0, 1)
    if not packed:
        logits = logits[index]
    return F.cross_entropy(logits.float(), targets, reduction="none")


def can_chunk(model: Any) -> bool:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    head = model.get_output_embeddings()
    plain_head = isinstance(head, torch.nn.Linear) and head.bias is None
    return plain_head and not any(getattr(config, key, None) for key in LOGIT_TRANSFORMS)


def _chunk_loss(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(F.linear(hidden, weight).float(), targets, reduction="none")


@contextlib.contextmanager
def head_computes_loss(
    model: Any, index: torch.Tensor | None, targets: torch.Tensor, chunk_tokens: int
) -> Iterator[None]:
    """Inside the block the model's LM head returns the cross-entropy of ``targets`` instead of logits,
    ``chunk_tokens`` rows at a time, each chunk's logits recomputed in backward rather than kept.

    It stays the model's own head, called inside the model's forward (so FSDP has its weight gathered and
    autocast applies), with its parameter untouched (tied embeddings stay tied, checkpoints unchanged).
    ``index`` picks the target rows from all positions (padded batches); packed batches pass them through
    ``logits_to_keep`` already."""
    head = model.get_output_embeddings()

    def forward(hidden: torch.Tensor) -> torch.Tensor:
        rows = hidden.flatten(0, -2)
        if index is not None:
            rows = rows[index]
        parts = [
            checkpoint(
                _chunk_loss,
                rows[i : i + chunk_tokens],
                head.weight,
                targets[i : i + chunk_tokens],
                use_reentrant=False,
            )
            for i in range(0, rows.shape[0], chunk_tokens)
        ]
        return torch.cat(parts) if parts else rows.new_zeros(0, dtype=torch.float32)

    head.forward = forward
    try:
        yield
    finally:
        del head.forward  # back to the class's forward


def target_weights(
    batch: Batch, average: Literal["token", "sequence"], step_targets: int, step_seqs: int
) -> torch.Tensor:
    """Weight of each target so that summing over all micro-batches of the step gives the mean."""
    if average == "token":
        return torch.full((batch.num_targets,), 1.0 / step_targets)
    counts = torch.bincount(batch.target_seq, minlength=batch.num_seqs).clamp(min=1).float()
    return 1.0 / (counts[batch.target_seq] * step_seqs)
