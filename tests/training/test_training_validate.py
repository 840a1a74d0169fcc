"""Validation pieces that do not need a training run: what a step ends with, the vLLM engine's weight
hand-over and the config rule that keeps a vLLM engine off the training process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import save_file

from mathsft.errors import MathsftError
from mathsft.training import TrainConfig
from mathsft.training.validate import Validation, _vllm_with_weights


class RecordingEngine:
    """Stands in for ``VLLMBackend``: records what ``load_weights`` is given."""

    def __init__(self) -> None:
        self.loaded: dict[str, torch.Tensor] = {}

    def load_weights(self, items: Any) -> None:
        self.loaded = dict(items)


def test_every_safetensors_shard_reaches_the_running_engine(tmp_path: Path) -> None:
    first = {"model.embed_tokens.weight": torch.randn(4, 2)}
    second = {"model.layers.0.mlp.up_proj.weight": torch.randn(3, 2), "lm_head.weight": torch.randn(4, 2)}
    save_file(first, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_file(second, str(tmp_path / "model-00002-of-00002.safetensors"))
    engine = RecordingEngine()
    assert _vllm_with_weights(engine, tmp_path) is engine  # the same engine, not a new one
    assert engine.loaded.keys() == (first | second).keys()
    for name, tensor in (first | second).items():
        assert torch.equal(engine.loaded[name], tensor)


def test_a_checkpoint_without_weights_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MathsftError, match=r"no \*\.safetensors files"):
        _vllm_with_weights(RecordingEngine(), tmp_path)


def test_vllm_validation_must_run_in_the_background() -> None:
    with pytest.raises(ValidationError, match="val_backend=vllm needs val_background=true"):
        TrainConfig(val_backend="vllm")
    assert TrainConfig(val_backend="vllm", val_background=True, val_device="cuda:1").val_backend == "vllm"


class Rows:
    """Stands in for ``MetricsLog``: keeps the rows written."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)


def test_end_of_step_saves_where_due_and_validates_on_the_saved_checkpoint(tmp_path: Path) -> None:
    rows, events = Rows(), []
    validation = Validation(TrainConfig(save_every=3), tmp_path, [], [2, 4], rows, main=True)  # loss only

    def save(step: int, name: str) -> Path:
        events.append(("save", step, name))
        return tmp_path / "checkpoints" / name

    def loss() -> float:
        events.append(("loss",))
        return 1.5

    for done in range(1, 5):
        validation.end_of_step(done, 4, save, loss)
    assert events == [
        ("save", 2, "step-000002"),  # a validation step: its checkpoint first, then the loss on it
        ("loss",),
        ("save", 3, "step-000003"),  # save_every
        ("save", 4, "final"),
        ("loss",),
    ]
    assert rows.rows == [
        {"train_step": 2, "eval_step": 1, "eval/loss": 1.5},
        {"train_step": 4, "eval_step": 2, "eval/loss": 1.5},
    ]
