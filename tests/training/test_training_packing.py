"""Packing and accumulation are exact: a packed batch, padded batches, one-by-one examples and 4 micro-batches
all give the same loss and gradients (float tolerance)."""

from __future__ import annotations

import contextlib
from itertools import pairwise
from pathlib import Path

import pytest
import torch

from mathsft.data.schema import SFTExample
from mathsft.errors import MathsftError
from mathsft.training.distributed import Dist, balance
from mathsft.training.loop import backward_step
from mathsft.training.loss import FusedHeadLoss
from mathsft.training.packing import (
    collate,
    micro_batches,
    pack,
    packed_attention,
    register_packed_attention,
)
from mathsft.training.tokenize import tokenize_examples


@pytest.fixture(scope="module")
def setup(tiny_model_dir: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    examples = [
        SFTExample(
            f"e{i}",
            [
                {"role": "user", "content": "q " * (3 + 5 * i)},
                {"role": "assistant", "content": "a b " * (1 + 3 * i)},
            ],
        )
        for i in range(8)
    ]
    rows, _ = tokenize_examples(tokenizer, examples, max_length=512)
    model = AutoModelForCausalLM.from_pretrained(
        tiny_model_dir, attn_implementation=register_packed_attention()
    )
    return model, rows


def grads(
    model,
    rows,
    packing: bool,
    average: str = "token",
    grad_accum: int | None = None,
    tokens: int | None = None,
    chunk: int | None = None,
    autocast=contextlib.nullcontext,
):
    if not packing:
        model.set_attn_implementation("sdpa")
    model.zero_grad()
    batches = [collate(g, packing, 0) for g in micro_batches(rows, packing, tokens, grad_accum)]
    cpu = torch.device("cpu")
    counts = backward_step(model, batches, 0, average, cpu, autocast, Dist(), chunk)
    out = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.set_attn_implementation("mathsft_packed")
    return counts, out, len(batches)


def assert_same(a: dict, b: dict) -> None:
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-6, msg=name)


def assert_close_to_scale(a: dict, b: dict, tol: float) -> None:
    """bf16 rounds differently in each code path: compare against each gradient's own scale."""
    for name in a:
        diff = (a[name] - b[name]).abs()
        assert diff.max() <= tol * b[name].abs().max() and diff.mean() <= tol * b[name].abs().mean(), name


def bf16():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def test_packed_row_equals_examples_one_by_one(setup) -> None:
    model, rows = setup
    packed, packed_grads, n = grads(model, rows, packing=True)
    assert n == 1
    model.zero_grad()
    total, count = 0.0, 0
    for row in rows:
        from mathsft.training.loss import target_losses

        ce = target_losses(model, pack([row]), "cpu")
        ce.sum().backward()
        total += float(ce.detach().sum())
        count += ce.numel()
    one_by_one = {n: p.grad / count for n, p in model.named_parameters()}
    assert packed.loss == pytest.approx(total / count, rel=1e-5)
    assert packed.targets == count
    assert_same(packed_grads, one_by_one)


def test_no_attention_across_packed_examples(setup) -> None:
    """Changing one example must not change the loss of the others in the same row."""
    from mathsft.training.loss import target_losses

    model, rows = setup
    a = target_losses(model, pack(rows[:3]), "cpu").detach()
    changed = rows[0].__class__(rows[0].input_ids.copy(), rows[0].supervised, "x")
    changed.input_ids[5:] = 7
    b = target_losses(model, pack([changed, *rows[1:3]]), "cpu").detach()
    first = int(rows[0].supervised[1:].sum())
    torch.testing.assert_close(a[first:], b[first:])


def test_gradient_accumulation_of_4_micro_batches_equals_one_batch(setup) -> None:
    model, rows = setup
    one, g1, _ = grads(model, rows, packing=True)
    four, g4, n = grads(model, rows, packing=True, grad_accum=4)
    assert n == 4 and one.loss == pytest.approx(four.loss, rel=1e-5)
    assert_same(g1, g4)
    by_tokens, gt, n = grads(model, rows, packing=True, tokens=512)
    assert by_tokens.loss == pytest.approx(one.loss, rel=1e-5)
    assert n >= 2
    assert_same(g1, gt)


def test_packing_on_and_off_give_the_same_update(setup) -> None:
    model, rows = setup
    packed, gp, _ = grads(model, rows, packing=True)
    padded, gpad, _ = grads(model, rows, packing=False, grad_accum=2)
    assert packed.loss == pytest.approx(padded.loss, rel=1e-5)
    assert padded.slots > padded.tokens == packed.tokens  # padding is counted, not trained on
    assert_same(gp, gpad)


def test_loss_in_chunks_gives_the_same_loss_and_update(setup) -> None:
    """The head + cross-entropy over 7 rows at a time (recomputed in backward) is the same loss and
    gradient, packed and padded; afterwards the head is the plain head again, still tied to the embeddings."""
    model, rows = setup
    whole, gw, _ = grads(model, rows, packing=True)
    chunked, gc, _ = grads(model, rows, packing=True, chunk=7)
    assert chunked.loss == pytest.approx(whole.loss, rel=1e-5) and chunked.targets == whole.targets > 7
    assert_same(gw, gc)
    padded, gp, _ = grads(model, rows, packing=False, grad_accum=2, chunk=7)
    assert padded.loss == pytest.approx(whole.loss, rel=1e-5)
    assert_same(gw, gp)
    head = model.get_output_embeddings()
    assert "forward" not in vars(head) and head.weight is model.get_input_embeddings().weight
    logits = model(**pack(rows[:2]).model_inputs("cpu")).logits
    assert logits.shape[-1] == model.config.vocab_size


def test_loss_in_chunks_with_per_sequence_weights_and_under_bf16_autocast(setup) -> None:
    """The fused head weights each target as given (per-sequence averaging: unequal weights, chunks that
    straddle examples) and runs its matmuls in the autocast dtype, as the plain head does."""
    model, rows = setup
    whole, gw, _ = grads(model, rows, packing=True, average="sequence")
    chunked, gc, _ = grads(model, rows, packing=True, average="sequence", chunk=5)
    assert chunked.loss == pytest.approx(whole.loss, rel=1e-5)
    assert_same(gw, gc)

    whole16, gw, _ = grads(model, rows, packing=True, average="sequence", autocast=bf16)
    chunked16, gc, _ = grads(model, rows, packing=True, average="sequence", chunk=5, autocast=bf16)
    assert chunked16.loss == pytest.approx(whole16.loss, rel=1e-3) and whole16.loss != whole.loss
    assert_close_to_scale(gc, gw, 1e-2)


def test_packed_attention_under_bf16_autocast_matches_padded_sdpa(setup) -> None:
    """Under autocast the packed attention runs in bf16 as transformers' SDPA does (its backward in float32):
    the same loss and update as padded batches through SDPA, to bf16's precision."""
    model, rows = setup
    packed, gp, _ = grads(model, rows, packing=True, autocast=bf16)
    padded, gpad, _ = grads(model, rows, packing=False, grad_accum=2, autocast=bf16)
    full, _, _ = grads(model, rows, packing=True)
    assert packed.loss == pytest.approx(padded.loss, rel=1e-3) and packed.loss != full.loss
    assert_close_to_scale(gp, gpad, 2e-2)


def attention_one_by_one(query, key, value, segments, dropout=0.0):
    """The reference: SDPA on each example alone, grouped-query heads repeated."""
    groups = query.shape[1] // key.shape[1]
    key, value = (t.repeat_interleave(groups, dim=1) for t in (key, value))
    parts = [
        torch.nn.functional.scaled_dot_product_attention(
            *(t[:, :, a:b] for t in (query, key, value)), is_causal=True, dropout_p=dropout
        )
        for a, b in pairwise(segments)
    ]
    return torch.cat(parts, dim=2).transpose(1, 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(
    ("heads", "kv_heads", "lengths"),
    [(6, 2, [1, 32, 33, 64]), (4, 1, [65]), (3, 3, [31, 1, 96])],  # lengths at the padding's edges
)
def test_packed_attention_matches_each_example_alone(dtype, heads, kv_heads, lengths) -> None:
    torch.manual_seed(0)
    segments = (0, *torch.tensor(lengths).cumsum(0).tolist())
    shape = (1, heads, segments[-1], 16)
    # transformers hands attention [B, H, T, D] views of [B, T, H, D] tensors: not contiguous
    query, key, value = (
        torch.randn(shape[0], shape[2], h, shape[3], dtype=dtype).transpose(1, 2).requires_grad_()
        for h in (heads, kv_heads, kv_heads)
    )
    out, _ = packed_attention(torch.nn.Module(), query, key, value, None, packed_segments=segments)
    expected = attention_one_by_one(query, key, value, segments)
    upstream = torch.randn_like(out)
    got = torch.autograd.grad(out, (query, key, value), upstream)
    want = torch.autograd.grad(expected, (query, key, value), upstream)
    tol = {"rtol": 2e-2, "atol": 2e-2} if dtype == torch.bfloat16 else {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(out, expected, **tol)
    for name, g, w in zip("qkv", got, want, strict=True):
        assert g.shape == w.shape and g.dtype == dtype, name
        torch.testing.assert_close(g, w, **tol, msg=name)


def test_packed_attention_with_dropout_runs_sdpa_per_example() -> None:
    """Attention dropout takes the per-example SDPA path (the float32-backward function has none)."""
    torch.manual_seed(0)
    segments = (0, 5, 40, 41)
    query, key, value = (torch.randn(1, h, 41, 8, requires_grad=True) for h in (4, 2, 2))
    layer = torch.nn.Module()
    layer.num_key_value_groups = 2  # what transformers' SDPA reads from the attention module
    out, _ = packed_attention(layer, query, key, value, None, packed_segments=segments, dropout=0.5)
    no_dropout = attention_one_by_one(query, key, value, segments)
    assert not torch.allclose(out, no_dropout)  # dropout was applied
    tiny, _ = packed_attention(layer, query, key, value, None, packed_segments=segments, dropout=1e-9)
    torch.testing.assert_close(tiny, no_dropout, rtol=1e-5, atol=1e-5)
    (tiny * torch.randn_like(tiny)).sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (query, key, value))


def test_packed_attention_refuses_what_it_does_not_implement() -> None:
    segments = (0, 30, 64)
    query, key, value = (torch.randn(1, 2, 64, 8) for _ in range(3))
    layer = torch.nn.Module()
    args = (layer, query, key, value, None)
    packed_attention(*args, packed_segments=segments, sliding_window=34)  # no example is longer
    with pytest.raises(MathsftError, match=r"sliding window of 16 \(34 positions here\).*packing=false"):
        packed_attention(*args, packed_segments=segments, sliding_window=16)
    with pytest.raises(MathsftError, match="soft-capped attention scores"):
        packed_attention(*args, packed_segments=segments, softcap=50.0)


def test_fused_head_with_no_targets_has_zero_gradients() -> None:
    rows = torch.randn(0, 8, requires_grad=True)
    weight = torch.randn(11, 8, requires_grad=True)
    empty = torch.zeros(0, dtype=torch.long)
    loss = FusedHeadLoss.apply(rows, weight, empty, torch.zeros(0), 4)
    loss.backward()
    assert float(loss.detach()) == 0.0 and rows.grad.shape == (0, 8)
    assert torch.equal(weight.grad, torch.zeros_like(weight))


def test_fused_head_in_bf16_over_several_blocks_matches_the_plain_head() -> None:
    """Under bf16 autocast the logit gradients reach the head weight in blocks of 2 x hidden rows: more
    targets than one block must give the plain head's loss and gradients."""
    torch.manual_seed(0)
    hidden, vocab, n = 8, 50, 53  # blocks of 16 rows: four, the last one partial
    rows = torch.randn(n, hidden, requires_grad=True)
    weight = torch.randn(vocab, hidden, requires_grad=True)
    targets = torch.randint(vocab, (n,))
    weights = torch.rand(n)
    with bf16():
        fused = FusedHeadLoss.apply(rows, weight, targets, weights, 5)
    got = torch.autograd.grad(fused, (rows, weight))
    with bf16():
        logits = rows @ weight.T
    plain = (weights * torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")).sum()
    want = torch.autograd.grad(plain, (rows, weight))
    assert float(fused.detach()) == pytest.approx(float(plain.detach()), rel=1e-3)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=3e-2, atol=3e-2 * float(w.abs().max()))


@pytest.mark.parametrize("autocast", [contextlib.nullcontext, bf16])
def test_fused_head_with_a_frozen_weight_gives_the_rows_gradient_alone(autocast) -> None:
    """A fixed head (freeze_embeddings) gets no weight gradient, and the rows' gradient is unchanged."""
    torch.manual_seed(0)
    rows = torch.randn(37, 8, requires_grad=True)
    weight = torch.randn(50, 8)
    targets, weights = torch.randint(50, (37,)), torch.rand(37)
    with autocast():
        frozen = FusedHeadLoss.apply(rows, weight, targets, weights, 5)
    (got,) = torch.autograd.grad(frozen, rows)
    with autocast():
        trained = FusedHeadLoss.apply(rows, weight.clone().requires_grad_(), targets, weights, 5)
    (want,) = torch.autograd.grad(trained, rows)
    torch.testing.assert_close(frozen, trained)
    torch.testing.assert_close(got, want)
    assert weight.grad is None


def clipped_objective(n: int):
    """A per-token loss of the cross-entropy (RL's clipped surrogate on random advantages and old log-probs)."""
    advantages, old = torch.randn(n), -4 * torch.rand(n)

    def per_token(ce: torch.Tensor, rows: slice) -> torch.Tensor:
        ratio = torch.exp(-ce - old[rows])
        return -torch.min(ratio * advantages[rows], ratio.clamp(0.8, 1.2) * advantages[rows])

    return per_token


@pytest.mark.parametrize("autocast", [contextlib.nullcontext, bf16])
def test_fused_head_takes_a_per_token_loss_and_reports_entropy(autocast) -> None:
    """A ``TokenLoss`` in place of the weights: the fused head's loss and gradients equal autograd through
    whole logits (over several chunks, and bf16 blocks), and each row's entropy is the softmax's."""
    torch.manual_seed(0)
    hidden, vocab, n = 8, 50, 37
    rows = torch.randn(n, hidden, requires_grad=True)
    weight = torch.randn(vocab, hidden, requires_grad=True)
    targets = torch.randint(vocab, (n,))
    per_token = clipped_objective(n)
    entropy = torch.empty(n)
    with autocast():
        fused = FusedHeadLoss.apply(rows, weight, targets, per_token, 5, entropy)
    got = torch.autograd.grad(fused, (rows, weight))
    with autocast():
        logits = (rows @ weight.T).float()
    ce = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    plain = per_token(ce, slice(0, n)).sum()
    want = torch.autograd.grad(plain, (rows, weight))
    expected = -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1).detach()
    tol = 1e-5 if autocast is contextlib.nullcontext else 3e-2
    assert float(fused.detach()) == pytest.approx(float(plain.detach()), rel=tol, abs=tol)
    torch.testing.assert_close(entropy, expected, rtol=tol, atol=tol)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=tol, atol=tol * float(w.abs().max()))


def test_a_per_token_loss_through_the_model_is_the_same_fused_or_not(setup) -> None:
    """``step_loss`` with a ``TokenLoss`` and an entropy buffer: whole logits and the fused head agree."""
    from mathsft.training.loss import step_loss

    model, rows = setup
    batch = pack(rows)
    per_token = clipped_objective(batch.num_targets)
    results = []
    for chunk in (None, 7):
        model.zero_grad()
        entropy = torch.empty(batch.num_targets)
        loss = step_loss(model, batch, "cpu", per_token, chunk, entropy)
        loss.backward()
        results.append(
            (float(loss.detach()), entropy, {n: p.grad.clone() for n, p in model.named_parameters()})
        )
    (whole, e_whole, g_whole), (fused, e_fused, g_fused) = results
    assert fused == pytest.approx(whole, rel=1e-5)
    torch.testing.assert_close(e_fused, e_whole, rtol=1e-5, atol=1e-5)
    assert_same(g_whole, g_fused)


def test_loss_is_not_chunked_where_the_logits_are_transformed_after_the_head(setup) -> None:
    from mathsft.training.loss import can_chunk

    model, _ = setup
    assert can_chunk(model)
    model.config.final_logit_softcapping = 30.0  # Gemma-style: chunks of raw head output would be wrong
    try:
        assert not can_chunk(model)
    finally:
        del model.config.final_logit_softcapping


def test_per_sequence_averaging_weights_each_example_equally(setup) -> None:
    from mathsft.training.loss import target_losses

    model, rows = setup
    seq, _, _ = grads(model, rows, packing=True, average="sequence", grad_accum=3)
    with torch.no_grad():
        means = [float(target_losses(model, pack([r]), "cpu").mean()) for r in rows]
    assert seq.loss == pytest.approx(sum(means) / len(means), rel=1e-5)


def test_token_balanced_sharding() -> None:
    class R:
        def __init__(self, n: int) -> None:
            self.n = n

        def __len__(self) -> int:
            return self.n

    parts = balance([R(n) for n in (100, 10, 90, 20, 50, 50)], 2)
    loads = [sum((100, 10, 90, 20, 50, 50)[i] for i in p) for p in parts]
    assert sorted(i for p in parts for i in p) == list(range(6)) and abs(loads[0] - loads[1]) <= 20
