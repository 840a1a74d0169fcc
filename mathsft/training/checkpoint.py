"""Checkpoints: plain Hugging Face directories plus ``trainer_state.pt`` for exact resume.

``checkpoints/step-000012/`` holds config, safetensors, tokenizer (with its chat template) and generation
config, so ``AutoModelForCausalLM.from_pretrained`` and vLLM load it as is; ``trainer_state.pt`` adds
the optimizer, scheduler, RNG and data-order state. Each directory is written under a temporary name and
renamed into place, so a kill never leaves a half-written checkpoint that resume would pick up.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mathsft.errors import MathsftError

STATE_FILE = "trainer_state.pt"
FINAL = "final"


def step_name(step: int) -> str:
    return f"step-{step:06d}"


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def export_model(model: Any) -> Any:
    """The model to write as plain HF weights: LoRA adapters merged into a copy, else the model itself."""
    if hasattr(model, "merge_and_unload"):  # a peft model
        return copy.deepcopy(model).merge_and_unload()
    return model


def save_checkpoint(
    folder: Path, name: str, model: Any, tokenizer: Any, trainer_state: dict[str, Any] | None
) -> Path:
    """Write ``folder/name`` atomically: a temporary directory, then one rename."""
    target = folder / name
    tmp = folder / f".tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    export_model(model).save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if trainer_state is not None:
        torch.save(trainer_state, tmp / STATE_FILE)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return target


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint (``final`` first, then the highest step)."""
    if (folder / FINAL / STATE_FILE).is_file():
        return folder / FINAL
    steps = sorted(p for p in folder.glob("step-*") if (p / STATE_FILE).is_file())
    return steps[-1] if steps else None


def load_trainer_state(path: Path) -> dict[str, Any]:
    return torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)


def load_weights(model: Any, path: Path) -> None:
    """Load a checkpoint's safetensors into ``model`` (tied weights are stored once)."""
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for file in sorted(path.glob("*.safetensors")):
        state.update(load_file(file))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {"lm_head.weight"} if getattr(model.config, "tie_word_embeddings", False) else set()
    if unexpected or set(missing) - tied:
        raise MathsftError(
            f"checkpoint {path} does not match the model: missing {sorted(set(missing) - tied)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )


def prune(folder: Path, keep_last: int | None, protect: set[str]) -> None:
    """Delete all but the newest ``keep_last`` step checkpoints, never one named in ``protect``."""
    if keep_last is None:
        return
    steps = sorted(p for p in folder.glob("step-*") if p.is_dir())
    for old in steps[:-keep_last]:
        if old.name not in protect:
            shutil.rmtree(old, ignore_errors=True)


def read_best(folder: Path) -> dict[str, Any] | None:
    path = folder / "best.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _write_json(path: Path, value: Any) -> None:
    """Atomically: a kill leaves the old file or the new one, never half of it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def write_best(folder: Path, best: dict[str, Any]) -> None:
    _write_json(folder / "best.json", best)


VALIDATING = "validating.json"


def read_validating(folder: Path) -> list[int]:
    """Steps whose generation accuracy was started but not recorded (a killed run redoes them)."""
    path = folder / VALIDATING
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []


def write_validating(folder: Path, steps: set[int]) -> None:
    if steps:
        _write_json(folder / VALIDATING, sorted(steps))
    else:
        (folder / VALIDATING).unlink(missing_ok=True)
