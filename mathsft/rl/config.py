"""``RLConfig``: what ``mathsft rl`` (and the ``rl:`` section of an experiment) runs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from mathsft.training.config import LoopConfig

LossType = Literal["grpo", "dapo", "dr_grpo"]


class RLConfig(LoopConfig):
    """On-policy GRPO on a problem dataset with the grader as reward (the loop keys are ``LoopConfig``'s,
    shared with ``mathsft train``). One step: ``batch_size`` problems x ``group_size`` samples from the
    current weights, graded, group-relative advantages, then ``updates_per_batch`` optimizer steps."""

    # problems (any problem adapter: gsm8k, math500, math, synthetic, ...); their gold answers are graded
    dataset: str = "gsm8k"
    data_path: str | None = None  # local file or folder; None = the hub (or the packaged copy)
    split: str = "train"
    limit: int | None = Field(default=None, ge=1)

    # steps and rollouts
    max_steps: int = Field(default=100, ge=1)  # rollout steps
    batch_size: int = Field(default=8, ge=1)  # problems per step
    group_size: int = Field(default=8)  # samples per problem (the group the advantages are relative to)
    max_new_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=1.0, gt=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    top_k: int = Field(default=0, ge=0)
    # hf: in this process on CPU (the live weights copied in each step); with rollout_device, any backend in
    # a separate process on that device (vLLM on a second GPU), the new weights sent there each step
    rollout_backend: Literal["hf", "vllm"] = "hf"
    rollout_device: str | None = None
    # auto: the training dtype's (fp32 -> float32, bf16 -> bfloat16), so the samples come from the policy
    # being trained, not a lower-precision copy of it (the hf backend's own auto picks bf16 where native)
    rollout_dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    rollout_batch_size: int = Field(default=64, ge=1)  # hf: sequences decoded together

    # reward: 1 when the grader says correct, plus format_reward when the response states its answer
    grader_profile: Literal["strict", "lenient"] = "lenient"
    extract_style: str = "auto"
    format_reward: float = Field(default=0.0, ge=0)

    # the objective (mathsft/rl/objective.py)
    loss_type: LossType = "grpo"
    # divide advantages by their group's std; None: what loss_type's paper does (grpo, dapo: yes; dr_grpo: no)
    scale_rewards: bool | None = None
    advantage_eps: float = Field(default=1e-6, gt=0)
    clip_eps: float = Field(default=0.2, gt=0, lt=1)
    clip_eps_high: float | None = Field(default=None, gt=0)  # DAPO's clip-higher (0.28); None: clip_eps
    beta: float = Field(default=0.0, ge=0)  # KL to the frozen initial model (k3 estimator); 0: none
    updates_per_batch: int = Field(default=1, ge=1)  # optimizer steps per rollout batch (GRPO's mu)

    # groups without signal (mathsft/rl/sampling.py). DAPO's dynamic sampling (Yu et al. 2025): rounds of
    # batch_size new problems until the step holds batch_size groups with signal, at most max_sampling_rounds
    dynamic_sampling: bool = False
    max_sampling_rounds: int = Field(default=3, ge=1)
    # pass_rate (online difficulty filtering, Bae et al. 2025): in the seeded order, a problem whose samples
    # so far were all right or all wrong is taken with probability settled_draw_rate, passed over otherwise
    problem_sampler: Literal["seeded_order", "pass_rate"] = "seeded_order"
    settled_draw_rate: float = Field(default=0.25, gt=0, le=1)
    # BREAD (Zhang et al. 2025): a group with no right sample is sampled again after the start of the
    # reference solution (guidance_fraction of its words at step 0, linearly down to none at max_steps); off:
    # on GSM8K from an 11% SFT start it cost ~30% more rollouts and did not beat plain GRPO (BENCHMARKS.md)
    guidance: bool = False
    guidance_fraction: float = Field(default=0.5, gt=0, lt=1)

    # loop defaults that differ from SFT's
    lr: float = Field(default=1e-6, gt=0)
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    micro_batch_tokens: int | None = Field(default=4096, ge=1)

    @field_validator("group_size")
    @classmethod
    def _group(cls, value: int) -> int:
        if value < 2:
            raise ValueError(
                "group_size must be at least 2: GRPO's advantage is a sample's reward against the "
                "other samples of its problem"
            )
        return value

    @model_validator(mode="after")
    def _check_rl(self) -> RLConfig:
        if self.rollout_backend == "vllm" and self.rollout_device is None:
            raise ValueError(
                "rollout_backend=vllm needs rollout_device (e.g. cuda:1): its own process and GPU"
            )
        if self.calculator and self.rollout_backend != "hf":
            raise ValueError("calculator=true needs rollout_backend=hf (the tool runs in the hf backend)")
        return self

    @property
    def scaled(self) -> bool:
        """Whether advantages are divided by the group's reward std."""
        return self.scale_rewards if self.scale_rewards is not None else self.loss_type != "dr_grpo"

    @property
    def engine_dtype(self) -> str:
        """The rollout engine's dtype (``rollout_dtype``; auto: the training dtype's)."""
        if self.rollout_dtype != "auto":
            return self.rollout_dtype
        return "float32" if self.dtype == "fp32" else "bfloat16"

    def out_dir(self) -> str:
        return self.out or "runs/rl"
