"""The GRPO objective: group-relative advantages and the clipped policy-gradient loss per token, with the
normalizations that papers and frameworks compare. Pure functions of tensors.

Advantages (``group_advantages``). GRPO (Shao et al., DeepSeekMath, arXiv:2402.03300, section 4.1.2):
``A_i = (r_i - mean(r)) / std(r)`` over the G samples of one problem, the same for every token of sample
``i``. The std is the unbiased one plus ``eps``, as in TRL's ``GRPOTrainer`` (``scale_rewards="group"``)
and verl's ``compute_grpo_outcome_advantage``. Dr. GRPO (Liu et al., "Understanding R1-Zero-Like
Training", arXiv:2503.20783) drops the std: it up-weights problems that are nearly all right or all wrong
(``scale_rewards=false``; TRL ``"none"``, verl ``norm_adv_by_std_in_grpo=False``). A group whose rewards
are all equal has zero advantages: no signal (``zero_signal``); DAPO resamples such groups ("dynamic
sampling", ``dynamic_sampling``: ``sampling.py``), otherwise they are counted and logged.

Per-token loss (``policy_loss``), PPO's clipped surrogate on the ratio to the sampling policy
``rho = exp(logp - logp_old)``: ``-min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A)``. DAPO (Yu et al.,
arXiv:2503.14476) raises ``eps_high`` (0.28, "clip-higher"). With one optimizer step per rollout batch the
ratio is 1 (``logp_old`` is ``logp`` detached, as TRL does) and the gradient is ``-A grad(logp)``;
with several (``updates_per_batch``, GRPO's mu, TRL's ``num_iterations``) clipping bounds how far the
later steps move off the sampling policy. The optional KL penalty to a frozen reference uses the k3
estimator ``exp(ref - logp) - (ref - logp) - 1`` (GRPO eq. 4; TRL ``beta``, NeMo RL's
``reference_policy_kl_penalty``); recent recipes (DAPO, Dr. GRPO) leave it out, so it is off by default.

Aggregation over the batch (``token_weights``), each token's weight in the step loss:

- ``grpo``: mean over each sequence's tokens, then over sequences: ``1 / (N |o_i|)`` (GRPO eq. 3; TRL
  ``loss_type="grpo"``, verl ``seq-mean-token-mean``). Long responses weigh less per token.
- ``dapo``: one mean over every token of the batch: ``1 / sum_j |o_j|`` (DAPO section 3.3, "token-level
  policy gradient loss"; TRL ``"dapo"``, verl ``token-mean``, NeMo RL ``token_level_loss``).
- ``dr_grpo``: a constant, ``1 / (N * max_new_tokens)``: no length normalization (Dr. GRPO;
  TRL ``"dr_grpo"`` uses this constant; verl's ``seq-mean-token-sum-norm`` divides by the horizon alone).

``|o_i|`` counts the tokens the policy chose: tokens a tool inserted (the calculator's results) are no
actions of the policy and weigh nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mathsft.errors import MathsftError

LOSS_TYPES = ("grpo", "dapo", "dr_grpo")


def group_advantages(rewards: torch.Tensor, scale: bool, eps: float) -> torch.Tensor:
    """``[groups, G]`` rewards -> advantages: minus the group mean, over (std + ``eps``) if ``scale``."""
    if rewards.ndim != 2 or rewards.shape[1] < 2:
        raise MathsftError(f"advantages need [groups, G >= 2] rewards, got shape {tuple(rewards.shape)}")
    rewards = rewards.double()
    centered = rewards - rewards.mean(1, keepdim=True)
    return centered / (rewards.std(1, keepdim=True) + eps) if scale else centered


def zero_signal(rewards: torch.Tensor) -> torch.Tensor:
    """``[groups]`` bool: groups whose rewards are all equal (zero advantages, zero gradient)."""
    return (rewards == rewards[:, :1]).all(1)


def token_weights(loss_type: str, lengths: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
    """Each sequence's per-token weight in the step loss (``[N]``, float64) from its policy-token count
    ``lengths``: the aggregation of ``loss_type`` (see the module docstring). Weights cover the whole
    rollout batch, however it is split into micro-batches and ranks."""
    n = len(lengths)
    lengths = lengths.double()
    if loss_type == "grpo":
        return 1.0 / (n * lengths.clamp(min=1))
    if loss_type == "dapo":
        return torch.full((n,), 1.0 / max(float(lengths.sum()), 1.0), dtype=torch.float64)
    if loss_type == "dr_grpo":
        return torch.full((n,), 1.0 / (n * max_new_tokens), dtype=torch.float64)
    raise MathsftError(f"unknown loss_type {loss_type!r}; known: {', '.join(LOSS_TYPES)}")


def policy_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, eps_low: float, eps_high: float
) -> torch.Tensor:
    """PPO's clipped surrogate per token: ``-min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A)``."""
    ratio = torch.exp(logp - old_logp)
    return -torch.min(ratio * advantages, ratio.clamp(1 - eps_low, 1 + eps_high) * advantages)


def clipped(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, eps_low: float, eps_high: float
) -> torch.Tensor:
    """Tokens whose gradient the clip removed (TRL's "region" clip ratio): the ratio is past ``1 + eps_high``
    with a positive advantage, or below ``1 - eps_low`` with a negative one."""
    ratio = torch.exp(logp - old_logp)
    return ((ratio > 1 + eps_high) & (advantages > 0)) | ((ratio < 1 - eps_low) & (advantages < 0))


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL(policy || reference), Schulman's k3 estimator (non-negative, unbiased)."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1


@dataclass
class TokenTerms:
    """What the loss needs per target token of one micro-batch (float32, ``[targets]``)."""

    weight: torch.Tensor  # aggregation weight (``token_weights``), 0 for a token a tool inserted
    advantage: torch.Tensor
    old_logp: torch.Tensor | None = None  # None: on-policy, the ratio is 1 (logp detached)
    ref_logp: torch.Tensor | None = None  # needed when beta > 0

    def rows(self, rows: slice) -> TokenTerms:
        def cut(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[rows]

        return TokenTerms(self.weight[rows], self.advantage[rows], cut(self.old_logp), cut(self.ref_logp))

    def to(self, device: torch.device) -> TokenTerms:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return TokenTerms(
            self.weight.to(device), self.advantage.to(device), move(self.old_logp), move(self.ref_logp)
        )


def token_objective(
    logp: torch.Tensor, terms: TokenTerms, eps_low: float, eps_high: float, beta: float
) -> torch.Tensor:
    """Each token's weighted share of the step loss: ``weight * (clipped surrogate + beta * k3 KL)``;
    its sum over the rollout batch is the GRPO loss of ``terms``' aggregation."""
    old = logp.detach() if terms.old_logp is None else terms.old_logp
    loss = policy_loss(logp, old, terms.advantage, eps_low, eps_high)
    if beta > 0:
        if terms.ref_logp is None:
            raise MathsftError("beta > 0 needs the reference model's log-probabilities")
        loss = loss + beta * kl_k3(logp, terms.ref_logp)
    return terms.weight * loss
