"""RL after (or instead of) SFT: GRPO with the grader as reward, on the SFT loop's pieces."""

from typing import Any

from mathsft.rl.config import RLConfig


def __getattr__(name: str) -> Any:
    # the loop imports torch and transformers: only when it is used, so the CLI starts fast
    if name == "rl":
        from mathsft.rl.loop import rl

        return rl
    raise AttributeError(name)


__all__ = ["RLConfig", "rl"]
