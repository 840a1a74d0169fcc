"""The SFT loss: cross-entropy on supervised positions only, normalized over the whole optimizer step.

The LM head runs on the supervised rows alone (``logits_to_keep`` with their indices for a packed row), so
prompt positions cost no vocabulary-sized logits. With ``chunk_tokens`` the head and the cross-entropy run
on that many rows at a time with their gradient formed on the spot (``FusedHeadLoss``): no ``[targets,
vocab]`` logits, log-softmax or gradient is ever held whole (~0.18 GB each for ~900 supervised tokens of a
49k vocabulary), and the head is faster too. Normalization is by weights fixed before the first
micro-batch: ``1 / (supervised tokens of the step)`` per token (or ``1 / (sequences x tokens of that
sequence)`` for per-sequence averaging), so gradient accumulation — and ranks, whose gradients FSDP
averages — give exactly the update of one big batch.

The RL loop uses the same path with a ``TokenLoss`` in place of the weights: a per-token loss of each
target's cross-entropy (the clipped policy-gradient objective of ``mathsft/rl/objective.py``), whose
derivative the fused head takes on each chunk's rows, so a ratio to old log-probabilities, clipping and a
KL term cost no second forward. Either path can also return each target's entropy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Literal

import torch
import torch.nn.functional as F

from mathsft.training.packing import Batch

# config keys of architectures that transform the logits after the head: their loss is never chunked
LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")

TokenLoss = Callable[[torch.Tensor, slice], torch.Tensor]
"""``loss(ce, rows)``: the per-target loss of targets ``rows`` of a micro-batch from their cross-entropy
``ce`` (float32 ``[len(rows)]``), differentiable in ``ce`` (RL objectives; SFT passes weights instead)."""


def target_losses(model: Any, batch: Batch, device: torch.device | str) -> torch.Tensor:
    """Per-target cross-entropy ``[N]`` (float32) of one micro-batch."""
    return _target_losses(model, batch, device, None)


def _target_losses(
    model: Any, batch: Batch, device: torch.device | str, entropy: torch.Tensor | None
) -> torch.Tensor:
    """Per-target cross-entropy from whole logits; ``entropy`` ([N]), when given, gets each target
    position's entropy."""
    logits, index, targets = _forward(model, batch, device)
    logits = logits.flatten(0, 1)
    if index is not None:
        logits = logits[index]
    logits = logits.float()
    if entropy is not None:
        with torch.no_grad():
            logp = logits.log_softmax(-1)
            entropy.copy_(-(logp.exp() * logp).sum(-1))
    return F.cross_entropy(logits, targets, reduction="none")


def step_loss(
    model: Any,
    batch: Batch,
    device: torch.device | str,
    weights: torch.Tensor | TokenLoss,
    chunk_tokens: int | None = None,
    entropy: torch.Tensor | None = None,
) -> torch.Tensor:
    """This micro-batch's share of the step loss (a scalar, float32): ``sum(weights * cross-entropy)`` over
    its targets, or ``sum(weights(cross-entropy, all rows))`` for a ``TokenLoss``. With ``chunk_tokens`` the
    LM head computes it ``chunk_tokens`` rows at a time (``FusedHeadLoss``). ``entropy`` ([N] float32),
    when given, receives each target position's entropy (no gradient)."""
    if chunk_tokens is None or not can_chunk(model):
        ce = _target_losses(model, batch, device, entropy)
        return weights(ce, slice(0, len(ce))).sum() if callable(weights) else (ce * weights).sum()
    loss, _, _ = _forward(
        model,
        batch,
        device,
        lambda index, targets: head_computes_loss(model, index, targets, weights, chunk_tokens, entropy),
    )
    return loss  # the head's output is the weighted loss here


def _forward(
    model: Any, batch: Batch, device: torch.device | str, head: Any = None
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """The model's head output on the target rows, the index of those rows among all positions (``None``
    for a packed row, whose head already ran on them alone through ``logits_to_keep``), and the targets.
    ``head(index, targets)``, when given, is a context that replaces the head during the call."""
    packed = batch.input_ids.shape[0] == 1
    index = batch.target_index.to(device, non_blocking=True)
    targets = batch.targets.to(device, non_blocking=True)
    rows = None if packed else index
    with head(rows, targets) if head else contextlib.nullcontext():
        out = model(**batch.model_inputs(device), logits_to_keep=index if packed else 0, use_cache=False)
    return out.logits, rows, targets


def can_chunk(model: Any) -> bool:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    head = model.get_output_embeddings()
    plain_head = isinstance(head, torch.nn.Linear) and head.bias is None
    return plain_head and not any(getattr(config, key, None) for key in LOGIT_TRANSFORMS)


class FusedHeadLoss(torch.autograd.Function):
    """``sum(weights * cross_entropy(rows @ weight.T, targets))`` with its gradient formed during forward,
    ``chunk`` rows at a time, as Liger-Kernel's fused linear cross-entropy does. ``weights`` may be a
    ``TokenLoss`` instead: each chunk's loss is then ``weights(ce, chunk rows)`` and its derivative in the
    cross-entropy takes the place of the weights. ``entropy``, when given, receives each row's entropy.

    Each chunk's logits become ``weights * (softmax - one_hot)`` in place and are multiplied straight into
    the gradient of ``rows``, so no ``[targets, vocab]`` float32 tensor outlives its chunk and the head costs
    three matmuls per chunk (a recomputed head costs four, plus a log-softmax and its backward). Under
    autocast the matmuls run in the autocast dtype (weight cast once), the softmax in float32, as autocast
    would. The head weight's gradient (vocab x hidden, float32) is held from forward to backward. In float32
    each chunk adds into it in place. On CPU in a lower precision, which CPU matmuls cannot accumulate into
    float32, the chunks' logit gradients are held in that precision and reach it in one matmul per ``2 x
    hidden`` rows: converting and adding each chunk's product took ~0.1 s per chunk (profiled, bf16
    SmolLM2-135M, 2-core Xeon). That block is as large as the float32 weight gradient, and its product
    half as large again; on a GPU, where the conversion is cheap, each chunk is added as it comes."""

    @staticmethod
    def forward(
        ctx: Any,
        rows: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        weights: torch.Tensor | TokenLoss,
        chunk: int,
        entropy: torch.Tensor | None = None,
    ) -> torch.Tensor:
        device = rows.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weight.dtype
        n, vocab = rows.shape[0], weight.shape[0]
        weight_grad = ctx.needs_input_grad[1]  # a frozen head (freeze_embeddings) needs none
        lumped = weight_grad and dtype != torch.float32 and device == "cpu"
        block = max(chunk, 2 * weight.shape[1]) if lumped else chunk
        with torch.autocast(device, enabled=False):
            x, w = rows.to(dtype), weight.to(dtype)
            grad_rows = torch.empty_like(rows)
            grad_weight: torch.Tensor | None = None
            held = rows.new_empty((min(block, n), vocab), dtype=dtype)  # logit gradients of one block
            # one chunk's softmax in float32 (in float32 the gradient overwrites its logits in place)
            scratch = None if dtype == torch.float32 else rows.new_empty((min(chunk, n), vocab))
            total = torch.zeros((), dtype=torch.float32, device=rows.device)
            for start in range(0, n, block):
                xb = x[start : start + block]
                gb = held[: len(xb)]
                for i in range(0, len(xb), chunk):
                    xi, gi = xb[i : i + chunk], gb[i : i + chunk]
                    rows_i = slice(start + i, start + i + len(xi))
                    if scratch is None:
                        logits = torch.mm(xi, w.T, out=gi)
                    else:
                        logits = scratch[: len(xi)].copy_(xi @ w.T)
                    coef = weights if callable(weights) else weights[rows_i].float()
                    out = None if entropy is None else entropy[rows_i]
                    total += _to_logit_gradient(logits, targets[rows_i], coef, rows_i, out)
                    if logits is not gi:
                        gi.copy_(logits)
                    grad_rows[rows_i] = gi @ w
                if not weight_grad:
                    continue
                if grad_weight is None:
                    grad_weight = (gb.T @ xb).float()
                elif dtype == torch.float32:
                    grad_weight.addmm_(gb.T, xb)
                else:
                    grad_weight += gb.T @ xb
        if grad_weight is None and weight_grad:  # a micro-batch without targets
            grad_weight = torch.zeros_like(weight, dtype=torch.float32)
        ctx.save_for_backward(grad_rows, grad_weight)
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grad_rows, grad_weight = ctx.saved_tensors
        # in place: a new vocabulary-sized gradient costs ~0.1 s to allocate and fill; backward runs once (a
        # retained graph's second backward fails on the saved tensors' version check, not silently)
        weight = None if grad_weight is None else grad_weight.mul_(grad).to(ctx.weight_dtype)
        return grad_rows.mul_(grad), weight, None, None, None, None


def _to_logit_gradient(
    logits: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor | TokenLoss,
    rows: slice,
    entropy: torch.Tensor | None = None,
) -> torch.Tensor:
    """Turn float32 ``logits`` [rows, vocab] in place into ``d loss / d logits`` of
    ``sum(weights * cross_entropy)`` (or of ``sum(weights(cross_entropy, rows))``); returns that sum.
    ``entropy`` ([rows]), when given, receives each row's entropy."""
    target_logit = logits.gather(1, targets[:, None]).squeeze(1)
    top = logits.amax(1, keepdim=True)
    probs = logits.sub_(top).exp_()  # unnormalized softmax from here on
    norm = probs.sum(1)
    ce = top.squeeze(1) + norm.log() - target_logit
    if entropy is not None:  # log(norm) - sum(p * (logit - top)), with p * (logit - top) = xlogy(q, q) / norm
        entropy.copy_(norm.log() - torch.special.xlogy(probs, probs).sum(1) / norm)
    if callable(weights):
        with torch.enable_grad():  # forward of an autograd.Function runs without grad
            x = ce.detach().requires_grad_()
            per_token = weights(x, rows)
            (weights,) = torch.autograd.grad(per_token.sum(), x)
        loss = per_token.detach().sum()
    else:
        loss = (weights * ce).sum()
    probs.mul_((weights / norm)[:, None])
    probs[torch.arange(len(targets), device=logits.device), targets] -= weights
    return loss


@contextlib.contextmanager
def head_computes_loss(
    model: Any,
    index: torch.Tensor | None,
    targets: torch.Tensor,
    weights: torch.Tensor | TokenLoss,
    chunk_tokens: int,
    entropy: torch.Tensor | None = None,
) -> Iterator[None]:
    """Inside the block the model's LM head returns ``sum(weights * cross-entropy of targets)`` instead of
    logits, through ``FusedHeadLoss``.

    It stays the model's own head, called inside the model's forward (so FSDP has its weight gathered and
    autocast applies), with its parameter untouched (tied embeddings stay tied, checkpoints unchanged).
    ``index`` picks the target rows from all positions (padded batches); packed batches pass them through
    ``logits_to_keep`` already."""
    head = model.get_output_embeddings()

    def forward(hidden: torch.Tensor) -> torch.Tensor:
        rows = hidden.flatten(0, -2)
        if index is not None:
            rows = rows[index]
        return FusedHeadLoss.apply(rows, head.weight, targets, weights, chunk_tokens, entropy)

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
