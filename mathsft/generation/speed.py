"""What a decode step could cost on this machine: its matmul rate and the model's FLOPs per token.

Generation speed is reported against a ceiling — the machine's matmul GFLOP/s in the run's dtype divided by
the model's forward GFLOP per token — so a number from a 2-core laptop and one from a Zen 5 server say the
same thing: how much of the machine decoding used. The matmul rate is measured, not looked up: a square
matmul of ``size``, best of a few, with all of torch's threads (what the engine's GEMMs get).
"""

from __future__ import annotations

import time
from functools import cache

import torch
from torch import nn

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@cache
def matmul_gflops(dtype: torch.dtype = torch.float32, size: int = 2048, device: str = "cpu") -> float:
    """Best-of-five GFLOP/s of a ``size``^3 matmul in ``dtype`` (~0.5 s on a 2-core CPU, once per process)."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    a @ b  # first call: allocation and kernel choice
    best = float("inf")
    for _ in range(5):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def linear_gflop_per_token(model: nn.Module) -> float:
    """Forward GFLOP of one token through every linear layer, the LM head included (2 FLOPs a weight; a
    head tied to the embeddings still runs its matmul). Attention over the cache comes on top."""
    return sum(2 * m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear)) / 1e9


@cache
def forward_gflop_per_token(model_spec: str) -> float:
    """``linear_gflop_per_token`` of a model spec, built on the meta device from its config (no weights)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from mathsft.models import resolve_model

    config = AutoConfig.from_pretrained(resolve_model(model_spec))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return linear_gflop_per_token(model)


def decode_ceiling(backend: object) -> dict[str, float | str] | None:
    """The decoding ceiling of an in-process backend (one with ``model_name``, ``dtype`` and ``device``):
    the machine's matmul rate over the model's GFLOP per token. None for a remote engine (its machine is
    not this one)."""
    dtype = getattr(backend, "dtype", None)
    device = getattr(backend, "device", None)
    if getattr(backend, "name", None) != "hf" or dtype not in DTYPES or device is None:
        return None
    gflops = matmul_gflops(DTYPES[dtype], device=device)
    per_token = forward_gflop_per_token(backend.model_name)  # type: ignore[attr-defined]
    return {
        "matmul_gflops": round(gflops, 1),
        "gflop_per_token": round(per_token, 4),
        "ceiling_tokens_per_s": round(gflops / per_token, 1),
        "peak_measured": f"best of 5 {2048}^3 matmuls in {dtype} on {device}, {torch.get_num_threads()} threads",
    }
