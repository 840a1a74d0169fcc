from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mathsft import models
from mathsft.errors import ModelError
from mathsft.models import load_tokenizer, resolve_model


def test_alias_resolves_to_plain_hf_directory(smollm2_dir: Path) -> None:
    names = {p.name for p in smollm2_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= names
    assert (
        "chat_template.jinja" in names
        or "chat_template" in (smollm2_dir / "tokenizer_config.json").read_text()
    )
    # second resolution uses the cache: same directory, no reconversion
    assert resolve_model("smollm2-135m") == smollm2_dir


def test_the_same_gguf_in_another_install_reuses_its_conversion(
    smollm2_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def convert(gguf_path: Path, out_dir: Path) -> None:
        raise AssertionError(f"converted {gguf_path.name} again")

    monkeypatch.setattr(models, "_convert_gguf", convert)
    cache = tmp_path / "cache"  # a private cache holding the existing conversion
    (cache / "models").mkdir(parents=True)
    (cache / "models" / smollm2_dir.name).symlink_to(smollm2_dir)
    monkeypatch.setenv("MATHSFT_CACHE", str(cache))
    bundled = models._alias_gguf_path("smollm2-135m")
    reinstalled = tmp_path / "fresh-venv" / bundled.name  # another path and mtime, the same bytes
    reinstalled.parent.mkdir()
    shutil.copyfile(bundled, reinstalled)
    assert resolve_model(reinstalled).resolve() == smollm2_dir.resolve()

    edited = tmp_path / bundled.name
    data = bytearray(reinstalled.read_bytes())
    data[-1] ^= 0xFF
    edited.write_bytes(data)
    with pytest.raises(AssertionError, match="converted"):
        resolve_model(edited)


def test_cached_model_loads_with_plain_transformers(smollm2_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    assert "quantization_config" not in model.config.to_dict()
    ids = torch.tensor([[1, 2, 3]])
    assert torch.isfinite(model(ids).logits).all()


def test_tokenizer_pad_is_not_eos(smollm2_dir: Path) -> None:
    tok = load_tokenizer("smollm2-135m")
    assert tok.eos_token == "<|im_end|>"
    assert tok.pad_token_id != tok.eos_token_id


def test_local_directory_and_missing_paths(tmp_path: Path, tiny_model_dir: Path) -> None:
    assert resolve_model(str(tiny_model_dir)) == tiny_model_dir
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(str(tmp_path / "nope.gguf"))
    with pytest.raises(ModelError, match=r"no config\.json"):
        resolve_model(str(tmp_path))


def test_unreachable_hub_id_gives_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as info:
        resolve_model("some-org/some-model-that-is-not-cached")
    message = str(info.value)
    assert "some-org/some-model-that-is-not-cached" in message
    assert "--model /path/to" in message
