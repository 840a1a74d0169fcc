"""Packing and accumulation are exact: a packed batch, padded batches, one-by-one examples and 4 micro-batches
all give the same loss and gradients (float tolerance)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch

from mathsft.data.schema import SFTExample
from mathsft.training.distributed import Dist, balance
from mathsft.training.loop import backward_step
from mathsft.training.packing import collate, micro_batches, pack, register_packed_attention
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
