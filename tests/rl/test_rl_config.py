"""``RLConfig``: each loss type's own std scaling unless told, and set-ups that cannot work refused."""

from __future__ import annotations

import pytest

from mathsft.config import ConfigError, build_config
from mathsft.rl import RLConfig


def test_std_scaling_follows_the_loss_type_unless_told() -> None:
    assert RLConfig(loss_type="grpo").scaled and RLConfig(loss_type="dapo").scaled
    assert not RLConfig(loss_type="dr_grpo").scaled  # Dr. GRPO drops the std
    assert not RLConfig(loss_type="grpo", scale_rewards=False).scaled
    assert RLConfig(loss_type="dr_grpo", scale_rewards=True).scaled


def test_rollouts_sample_in_the_training_dtype_unless_told() -> None:
    assert RLConfig(dtype="fp32").engine_dtype == "float32"  # even where the CPU has native bf16
    assert RLConfig(dtype="bf16").engine_dtype == "bfloat16"
    assert RLConfig(dtype="fp32", rollout_dtype="bfloat16").engine_dtype == "bfloat16"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["rollout_backend=vllm"], "rollout_backend=vllm needs rollout_device"),
        (["calculator=true", "rollout_backend=vllm", "rollout_device=cuda:1"], "calculator=true needs"),
        (["clip_eps=1.5"], "clip_eps: Input should be less than 1"),
        (["micro_batch_tokens=10", "grad_accum=2"], "give micro_batch_tokens or grad_accum, not both"),
    ],
)
def test_set_ups_that_cannot_work_are_refused(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config(RLConfig, None, overrides)
