"""Micro-batches: padding-free packing (the default) and plain padded batching.

A packed micro-batch is one row holding several examples back to back, ``position_ids`` restarting at
each example, and ``segments`` (cumulative lengths) that the ``mathsft_packed`` attention uses to run
causal attention within each example only. That attention runs causal flash attention per example
(memory linear in length), where a materialized block-diagonal mask (what transformers builds from packed
``position_ids`` for ``sdpa``) costs O(T^2) per layer. On CPU one autograd function
(``PackedCausalAttention``) calls the flash kernel per example with two changes: its backward runs in
float32 whatever the forward's dtype (the kernel's bf16 backward took ~1.4x its fp32 one on an AMX Xeon),
and each example is padded to a multiple of ``SEGMENT_MULTIPLE`` positions, because the CPU kernels build
and cache code per sequence length: with packing's ever-new lengths those caches grew by ~45 MB of memory
per step in bf16 (measured); padded, a handful of lengths recur. Models with attention dropout, and
GPUs, run SDPA per example instead (on GPUs never cuDNN's, which rebuilds its graph for each new length).
Either way the attention is plain causal attention: a layer that asks for a sliding window shorter than an
example, soft-capped scores or attention sinks is refused (train those with ``packing=false``).

Packed or padded, a batch carries only the supervised positions as targets (``target_index`` into the
flattened hidden states), so the LM head and the loss run on those rows alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from mathsft.errors import MathsftError
from mathsft.models import beyond_plain_attention
from mathsft.training.tokenize import Tokenized

PACKED_ATTENTION = "mathsft_packed"
SEGMENT_MULTIPLE = 32  # CPU: each example's attention runs at a length rounded up to this
# GPU: per-example SDPA without cuDNN's kernel, which PyTorch picks first on Hopper and which builds a graph
# per new sequence length (~120 ms of host time for forward + backward on an H200): with packing nearly
# every example is a new length, and SFT steps ran 11x slower (bench/results/gpu.md, second H200 session)
NOT_CUDNN = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


@dataclass
class Batch:
    input_ids: torch.Tensor  # [B, T]
    position_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor | None  # [B, T] for padded batches; None when packed
    segments: tuple[int, ...] | None  # packed: cumulative example lengths (0, l1, l1+l2, ...)
    target_index: torch.Tensor  # [N] positions in the flattened [B*T] hidden states that predict a target
    targets: torch.Tensor  # [N] the target token ids
    target_seq: torch.Tensor  # [N] which example (0..num_seqs-1) each target belongs to
    num_seqs: int
    num_tokens: int  # real (non-pad) tokens
    num_slots: int  # B * T, padding included

    @property
    def num_targets(self) -> int:
        return int(self.targets.numel())

    def model_inputs(self, device: torch.device | str) -> dict[str, Any]:
        inputs: dict[str, Any] = {
            "input_ids": self.input_ids.to(device, non_blocking=True),
            "position_ids": self.position_ids.to(device, non_blocking=True),
        }
        if self.attention_mask is not None:
            inputs["attention_mask"] = self.attention_mask.to(device, non_blocking=True)
        if self.segments is not None:
            inputs["packed_segments"] = self.segments
        return inputs


def _targets(rows: list[Tokenized], width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flattened prediction positions, target ids and example index of the supervised tokens.

    ``rows`` are laid out at offsets ``width * row`` (padded) or back to back (packed, width=0)."""
    index, targets, seqs = [], [], []
    offset = 0
    for seq, item in enumerate(rows):
        sup = torch.from_numpy(item.supervised)
        sup[0] = False  # the first token of an example has no prediction within the example
        pos = sup.nonzero().squeeze(1)
        base = seq * width if width else offset
        index.append(base + pos - 1)
        targets.append(torch.from_numpy(item.input_ids)[pos])
        seqs.append(torch.full((len(pos),), seq, dtype=torch.long))
        offset += len(item)
    return torch.cat(index), torch.cat(targets), torch.cat(seqs)


def pack(rows: list[Tokenized]) -> Batch:
    """One row of examples back to back; positions restart at 0 for each."""
    ids = torch.cat([torch.from_numpy(r.input_ids) for r in rows]).unsqueeze(0)
    positions = torch.cat([torch.arange(len(r)) for r in rows]).unsqueeze(0)
    bounds = [0]
    for r in rows:
        bounds.append(bounds[-1] + len(r))
    index, targets, seqs = _targets(rows, 0)
    n = bounds[-1]
    return Batch(ids, positions, None, tuple(bounds), index, targets, seqs, len(rows), n, n)


def pad(rows: list[Tokenized], pad_id: int) -> Batch:
    """Right-padded rows with an attention mask (for comparison, and for models that cannot pack)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.from_numpy(r.input_ids)
        mask[i, : len(r)] = 1
    positions = torch.arange(width).unsqueeze(0).expand(len(rows), -1).contiguous()
    index, targets, seqs = _targets(rows, width)
    return Batch(ids, positions, mask, None, index, targets, seqs, len(rows), int(mask.sum()), ids.numel())


def micro_batches(
    rows: list[Tokenized], packing: bool, micro_batch_tokens: int | None, grad_accum: int | None
) -> list[list[Tokenized]]:
    """Split one optimizer step's examples into micro-batches.

    ``micro_batch_tokens``: greedy, in order, so each micro-batch holds at most that many tokens (padded
    batches count their padding). ``grad_accum``: that many near-equal groups of examples. Neither: one."""
    if micro_batch_tokens is not None:
        groups: list[list[Tokenized]] = [[]]
        for r in rows:
            group = groups[-1]
            if packing:
                cost = sum(len(x) for x in group) + len(r)
            else:
                cost = max([len(x) for x in group] + [len(r)]) * (len(group) + 1)
            if group and cost > micro_batch_tokens:
                groups.append([r])
            else:
                group.append(r)
        return groups
    parts = min(grad_accum or 1, len(rows))
    size, extra = divmod(len(rows), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(rows[start:end])
        start = end
    return out


def collate(rows: list[Tokenized], packing: bool, pad_id: int) -> Batch:
    return pack(rows) if packing else pad(rows, pad_id)


def packed_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    packed_segments: tuple[int, ...] | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Causal attention within each packed example (``packed_segments``); plain SDPA otherwise."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if packed_segments is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    lengths = [b - a for a, b in pairwise(packed_segments)]
    _refuse_what_it_ignores(module, lengths, kwargs)
    if query.device.type == "cpu" and not kwargs.get("dropout"):  # with attention dropout: SDPA below
        if torch.is_autocast_enabled("cpu"):  # what autocast does to SDPA's inputs
            dtype = torch.get_autocast_dtype("cpu")
            query, key, value = (t.to(dtype) for t in (query, key, value))
        return PackedCausalAttention.apply(query, key, value, packed_segments, kwargs.get("scaling")), None
    multiple = SEGMENT_MULTIPLE if query.device.type == "cpu" else 1
    outputs = []
    # split, not slices: the backward of a slice writes its gradient into a zero tensor of the whole
    # pack, one per example and layer; split's backward is one concatenation
    with sdpa_kernel(NOT_CUDNN):  # backward runs the kernel forward chose
        for q, k, v in zip(*(t.split(lengths, dim=2) for t in (query, key, value)), strict=True):
            n = q.shape[2]
            extra = -n % multiple  # zeros after the example's end, as in ``_padded``
            if extra:
                q, k, v = (F.pad(t, (0, 0, 0, extra)) for t in (q, k, v))
            outputs.append(sdpa_attention_forward(module, q, k, v, None, **kwargs)[0][:, :n])
    return torch.cat(outputs, dim=1), None


def _refuse_what_it_ignores(module: torch.nn.Module, lengths: list[int], kwargs: dict[str, Any]) -> None:
    """Packed attention is plain causal attention: a layer asking for more gets a clear error."""
    asked = beyond_plain_attention(kwargs, max(lengths))
    if asked:
        raise MathsftError(
            f"packed attention is plain causal attention, but {type(module).__name__} asks for "
            f"{' and '.join(asked)}: train this model with packing=false"
        )


def _padded(t: torch.Tensor, a: int, b: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Positions ``a:b`` of ``t`` [B, heads, T, D], zero-padded to a multiple of ``SEGMENT_MULTIPLE``:
    causal attention keeps every real query from seeing the zeros after the example's end."""
    part = t[:, :, a:b] if dtype is None else t[:, :, a:b].to(dtype)
    return F.pad(part, (0, 0, 0, -(b - a) % SEGMENT_MULTIPLE))


class PackedCausalAttention(torch.autograd.Function):
    """CPU causal flash attention within each example of a pack: query [B, H, T, D], key and value
    [B, KV, T, D] (grouped-query heads need no copies), ``segments`` the cumulative lengths from 0 to T
    -> [B, T, H, D], the layout transformers' attention functions return. Packs have B = 1."""

    @staticmethod
    def forward(
        ctx: Any,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        segments: tuple[int, ...],
        scale: float | None,
    ) -> torch.Tensor:
        batch, heads, length, dim = query.shape
        if segments[0] != 0 or segments[-1] != length:  # uncovered positions would stay uninitialized
            raise ValueError(f"segments {segments[:3]}...{segments[-1:]} do not cover 0..{length}")
        out = query.new_empty(batch, length, heads, dim)
        logsumexps = []
        for a, b in pairwise(segments):
            o, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                *(_padded(t, a, b) for t in (query, key, value)), 0.0, True, scale=scale
            )
            out[:, a:b] = o[:, :, : b - a].transpose(1, 2)
            logsumexps.append(lse)
        ctx.save_for_backward(query, key, value, out, *logsumexps)
        ctx.segments, ctx.scale = segments, scale
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        query, key, value, out, *logsumexps = ctx.saved_tensors
        grads = [torch.empty_like(t) for t in (query, key, value)]
        f32 = torch.float32
        for (a, b), lse in zip(pairwise(ctx.segments), logsumexps, strict=True):
            parts = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
                _padded(grad.transpose(1, 2), a, b, f32),
                *(_padded(t, a, b, f32) for t in (query, key, value)),
                _padded(out.transpose(1, 2), a, b, f32),
                lse,
                0.0,
                True,
                scale=ctx.scale,
            )
            for g, part in zip(grads, parts, strict=True):
                g[:, :, a:b] = part[:, :, : b - a]
        return *grads, None, None


def _packed_mask(*args: Any, **kwargs: Any) -> None:
    """Packed attention builds no mask: the segments say everything."""
    return None


def register_packed_attention() -> str:
    """Make ``attn_implementation="mathsft_packed"`` available to transformers models."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(PACKED_ATTENTION, packed_attention)
    AttentionMaskInterface.register(PACKED_ATTENTION, _packed_mask)
    return PACKED_ATTENTION
