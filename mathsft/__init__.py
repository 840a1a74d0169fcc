"""mathsft: supervised fine-tuning of language models for math, measured honestly."""

__version__ = "0.1.0"
