"""Shared fixtures: the bundled tokenizer, a tiny random llama that uses it, and the real data paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_file(relative: str) -> Path:
    """A file of ../shared/data, or skip the test saying why."""
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.skip(f"real data {path} is absent (../shared/data beside the checkout)")
    return path


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The bundled SmolLM2-135M-Instruct as a cached HF directory (converted once per cache)."""
    from mathsft.models import resolve_model

    return resolve_model("smollm2-135m")


def save_tiny_model(out: Path, tokenizer_dir: Path, config_class: type | None = None, **fields: Any) -> Path:
    """A 2-layer randomly initialized model (a llama unless ``config_class`` says otherwise, seeded) with the
    bundled tokenizer and chat template, saved in ``out``; ``fields`` go to the config."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LlamaConfig

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    special = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    config = (config_class or LlamaConfig)(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        **special,
        **fields,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config = GenerationConfig(**special)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def save_toy_model(out: Path, tokenizer_dir: Path) -> Path:
    """A tiny random llama for RL tests whose LM head puts almost all probability on four tokens ("7", "8",
    "9" and end-of-turn, 1/4 each): asked for "7", a group of samples holds right and wrong answers from
    the first step, so the policy gradient has something to work with."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    save_tiny_model(out, tokenizer_dir, max_position_embeddings=2048, tie_word_embeddings=False)
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    likely = [tokenizer.convert_tokens_to_ids(t) for t in ("7", "8", "9")] + [tokenizer.eos_token_id]
    with torch.no_grad():
        # a constant first coordinate in every token's embedding survives the final norm as a large positive
        # value; the head reads only that coordinate, and only for the four likely tokens
        model.model.embed_tokens.weight[:, 0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[likely, 0] = 20.0
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, smollm2_dir: Path) -> Path:
    """A 2-layer randomly initialized llama with the bundled tokenizer and chat template."""
    out = tmp_path_factory.mktemp("tiny-llama")
    return save_tiny_model(out, smollm2_dir, max_position_embeddings=2048, tie_word_embeddings=True)
