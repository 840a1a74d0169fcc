"""Randomly initialized models of published architectures, for benchmarks on machines without internet.

The configs are those of the Qwen2.5 ``config.json`` files; the vocabulary is the bundled SmolLM2
tokenizer's (49,152 entries instead of 151,936), which shrinks only the embedding and the LM head.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mathsft.models import load_tokenizer

_QWEN = {
    "model_type": "qwen2",
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "hidden_act": "silu",
}
RANDOM_CONFIGS = {
    "qwen2.5-0.5b": _QWEN
    | {
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "tie_word_embeddings": True,
    },
    "qwen2.5-1.5b": _QWEN
    | {
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "tie_word_embeddings": True,
    },
    # a smoke-test size, so the GPU scripts can be checked on a CPU
    "tiny": _QWEN
    | {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "tie_word_embeddings": True,
    },
}


def build_random_model(name: str, out: Path) -> Path:
    """Write a randomly initialized model of a known architecture with the bundled tokenizer to ``out``."""
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    if (out / "config.json").is_file():
        return out
    tokenizer = load_tokenizer("smollm2-135m")
    spec = dict(RANDOM_CONFIGS[name])
    config = AutoConfig.for_model(
        spec.pop("model_type"),
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **spec,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
