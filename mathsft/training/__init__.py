"""SFT training: chat-template masks, padding-free packing, the explicit loop, checkpoints, validation."""

from mathsft.training.config import LogConfig, LoraConfig, TrainConfig
from mathsft.training.data import problems_to_examples
from mathsft.training.loop import train

__all__ = ["LogConfig", "LoraConfig", "TrainConfig", "problems_to_examples", "train"]
