"""SFT training: chat-template masks, padding-free packing, the explicit loop, checkpoints, validation."""

from typing import Any

from mathsft.training.config import LogConfig, LoraConfig, TrainConfig
from mathsft.training.data import problems_to_examples


def __getattr__(name: str) -> Any:
    # the loop imports torch and transformers: only when it is used, so the CLI starts fast
    if name == "train":
        from mathsft.training.loop import train

        return train
    raise AttributeError(name)


__all__ = ["LogConfig", "LoraConfig", "TrainConfig", "problems_to_examples", "train"]
