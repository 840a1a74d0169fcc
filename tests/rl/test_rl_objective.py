"""The GRPO objective against hand-computed values: advantages, each aggregation, the clip, the KL term,
and zero-signal groups that give no gradient."""

from __future__ import annotations

import math

import pytest
import torch

from mathsft.errors import MathsftError
from mathsft.rl.objective import (
    TokenTerms,
    clipped,
    group_advantages,
    kl_k3,
    policy_loss,
    token_objective,
    token_weights,
    zero_signal,
)

REWARDS = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])


def test_advantages_with_std_scaling_use_the_unbiased_std() -> None:
    # group 1: mean 1/4, unbiased std sqrt((9/16 + 3/16) / 3) = 1/2; group 2: mean 1/2, std sqrt(1/3)
    s = math.sqrt(3) / 2
    expected = [[1.5, -0.5, -0.5, -0.5], [s, s, -s, -s]]
    got = group_advantages(REWARDS, scale=True, eps=0.0)
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64))


def test_advantages_without_scaling_are_centered_rewards() -> None:
    got = group_advantages(REWARDS, scale=False, eps=1e-6)
    expected = [[0.75, -0.25, -0.25, -0.25], [0.5, 0.5, -0.5, -0.5]]
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64))


def test_a_group_of_equal_rewards_has_zero_advantages_and_is_counted() -> None:
    rewards = torch.tensor([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    assert zero_signal(rewards).tolist() == [True, False, True]
    advantages = group_advantages(rewards, scale=True, eps=1e-6)
    assert advantages[0].tolist() == [0.0, 0.0] and advantages[2].tolist() == [0.0, 0.0]
    with pytest.raises(MathsftError, match="G >= 2"):
        group_advantages(torch.tensor([[1.0], [0.0]]), scale=True, eps=1e-6)


@pytest.mark.parametrize(
    ("loss_type", "expected"),
    [("grpo", [1 / 4, 1 / 8]), ("dapo", [1 / 6, 1 / 6]), ("dr_grpo", [1 / 16, 1 / 16])],
)
def test_token_weights_of_each_aggregation(loss_type: str, expected: list[float]) -> None:
    # sequences of 2 and 4 policy tokens, max_new_tokens 8
    got = token_weights(loss_type, torch.tensor([2, 4]), max_new_tokens=8)
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64))


def test_an_unknown_loss_type_is_an_error() -> None:
    with pytest.raises(MathsftError, match="unknown loss_type 'ppo'; known: grpo, dapo, dr_grpo"):
        token_weights("ppo", torch.tensor([1]), 4)


def objective(loss_type: str, logp: torch.Tensor) -> tuple[float, list[float]]:
    """Loss and d loss / d logp of two on-policy sequences: A (2 tokens, advantage +1), B (1, -1)."""
    lengths, advantages = torch.tensor([2, 1]), [1.0, -1.0]
    per_seq = token_weights(loss_type, lengths, max_new_tokens=4).float()
    terms = TokenTerms(
        per_seq.repeat_interleave(lengths), torch.tensor(advantages).repeat_interleave(lengths)
    )
    logp = logp.clone().requires_grad_()
    loss = token_objective(logp, terms, 0.2, 0.2, beta=0.0).sum()
    loss.backward()
    return float(loss.detach()), logp.grad.tolist()


@pytest.mark.parametrize(
    ("loss_type", "loss", "grad"),
    [
        # per-sequence means, then the mean of sequences: A's tokens weigh 1/4, B's 1/2
        ("grpo", -0.25 - 0.25 + 0.5, [-0.25, -0.25, 0.5]),
        # one mean over the batch's 3 tokens
        ("dapo", -1 / 3, [-1 / 3, -1 / 3, 1 / 3]),
        # a constant: 2 sequences x 4 max new tokens
        ("dr_grpo", -1 / 8, [-1 / 8, -1 / 8, 1 / 8]),
    ],
)
def test_on_policy_loss_and_gradient_of_each_variant(loss_type: str, loss: float, grad: list[float]) -> None:
    """On policy the ratio is 1: each token's loss is -A, its gradient -A x weight in log p."""
    got_loss, got_grad = objective(loss_type, torch.tensor([-1.0, -2.0, -0.5]))
    assert got_loss == pytest.approx(loss)
    assert got_grad == pytest.approx(grad)


@pytest.mark.parametrize(
    ("ratio", "advantage", "eps_high", "loss", "grad", "is_clipped"),
    [
        (1.5, 1.0, 0.2, -1.2, 0.0, True),  # past 1 + eps with a positive advantage: clipped, no gradient
        (1.5, -1.0, 0.2, 1.5, 1.5, False),  # a negative advantage is not clipped above
        (0.5, -1.0, 0.2, 0.8, 0.0, True),  # below 1 - eps with a negative advantage: clipped
        (0.5, 1.0, 0.2, -0.5, -0.5, False),
        (1.25, 1.0, 0.2, -1.2, 0.0, True),
        (1.25, 1.0, 0.28, -1.25, -1.25, False),  # DAPO's clip-higher lets it through
    ],
)
def test_clipped_surrogate_off_policy(
    ratio: float, advantage: float, eps_high: float, loss: float, grad: float, is_clipped: bool
) -> None:
    old = torch.tensor([-1.0])
    logp = (old + math.log(ratio)).requires_grad_()
    adv = torch.tensor([advantage])
    value = policy_loss(logp, old, adv, 0.2, eps_high)
    value.sum().backward()
    assert float(value.detach()) == pytest.approx(loss)
    assert float(logp.grad) == pytest.approx(grad)  # d(-rho A)/d logp = -rho A where unclipped
    assert bool(clipped(logp.detach(), old, adv, 0.2, eps_high)) is is_clipped


def test_kl_k3_value_and_gradient() -> None:
    logp = torch.tensor([math.log(0.5)], requires_grad=True)
    ref = torch.tensor([math.log(0.25)])
    kl = kl_k3(logp, ref)
    kl.backward()
    assert float(kl.detach()) == pytest.approx(0.5 - math.log(0.5) - 1)  # e^d - d - 1, d = log(0.25 / 0.5)
    assert float(logp.grad) == pytest.approx(1 - 0.5)  # 1 - e^(ref - logp)
    assert float(kl_k3(ref, ref)) == 0.0


def test_kl_term_is_added_with_beta() -> None:
    logp = torch.tensor([math.log(0.5)], requires_grad=True)
    terms = TokenTerms(torch.tensor([0.5]), torch.tensor([0.0]), ref_logp=torch.tensor([math.log(0.25)]))
    loss = token_objective(logp, terms, 0.2, 0.2, beta=0.1)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(0.5 * 0.1 * (0.5 - math.log(0.5) - 1))
    assert float(logp.grad) == pytest.approx(0.5 * 0.1 * 0.5)
    with pytest.raises(MathsftError, match="reference"):
        token_objective(logp, TokenTerms(torch.tensor([1.0]), torch.tensor([1.0])), 0.2, 0.2, beta=0.1)


def test_zero_advantages_give_zero_gradient_on_and_off_policy() -> None:
    logp = torch.tensor([-1.0, -3.0, -0.1], requires_grad=True)
    for old in (None, torch.tensor([-2.0, -1.0, -0.1])):
        logp.grad = None
        terms = TokenTerms(torch.full((3,), 0.25), torch.zeros(3), old_logp=old)
        token_objective(logp, terms, 0.2, 0.28, beta=0.0).sum().backward()
        assert torch.equal(logp.grad, torch.zeros(3))
