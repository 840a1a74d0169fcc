"""TrainConfig: the keys a user sets resolve to what runs, and the resolved value is what gets saved."""

from __future__ import annotations

import pytest

from mathsft.training import TrainConfig, config


def test_auto_dtype_is_bf16_only_where_the_device_computes_it_natively(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(config, "native_bf16", lambda device: device == "cpu")
    assert TrainConfig(dtype="auto", device="cpu").dtype == "bf16"
    monkeypatch.setattr(config, "native_bf16", lambda device: False)
    resolved = TrainConfig(dtype="auto", device="cpu")
    assert resolved.dtype == "fp32"
    assert resolved.model_dump()["dtype"] == "fp32"  # the saved config says what ran
    assert TrainConfig(dtype="bf16").dtype == "bf16"  # an explicit dtype is kept


def test_loss_chunk_tokens_defaults_to_the_fused_head() -> None:
    assert TrainConfig().loss_chunk_tokens == 256
    assert TrainConfig(loss_chunk_tokens=None).loss_chunk_tokens is None


def test_freezing_with_lora_is_refused_as_redundant() -> None:
    from pydantic import ValidationError

    from mathsft.training.config import LoraConfig

    with pytest.raises(ValidationError, match="lora already trains adapters alone"):
        TrainConfig(lora=LoraConfig(), freeze_layers=2)
    assert TrainConfig(freeze_embeddings=True, freeze_layers=2).freeze_layers == 2
