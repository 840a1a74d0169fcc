"""What a decode step could cost on this machine: its matmul rate and the model's FLOPs per token.

Generation speed is reported against a ceiling — the machine's matmul GFLOP/s in the run's dtype divided by
the model's forward GFLOP per token — so a number from a 2-core laptop and one from a Zen 5 server say the
same thing: how much of the machine decoding used. The matmul rate is measured, not looked up, with all of
torch's threads (what the engine's GEMMs get); training's MFU divides by the same measurement.
"""

from __future__ import annotations

import time
from functools import cache

import torch
from torch import nn

DTYPES = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float32": torch.float32,
}


@cache
def measured_peak_flops(device: str, dtype: str, size: int = 2048) -> float:
    """Dense matmul FLOP/s of this device in ``dtype`` (the MFU denominator when none is stated).

    Measured on ``size`` x ``size`` matrices, or on the largest smaller power of two whose matmul a 256 probe
    predicts under 1 s: a dtype the device only emulates (bf16 on a CPU without AMX or AVX512-BF16
    ran at ~1 GFLOP/s, 100x below fp32) would otherwise spend minutes here. The rate is the best of four
    0.15 s windows: on a shared 2-core VM one 0.5 s window once read 90 GFLOP/s where the machine gave
    176-189 a few minutes later, which halves every ratio built on it.
    """
    torch_dtype = DTYPES.get(dtype, torch.float32)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def rate(n: int, seconds: float) -> float:
        a = torch.randn(n, n, device=device, dtype=torch_dtype)
        b = torch.randn(n, n, device=device, dtype=torch_dtype)
        for _ in range(2):
            a @ b
        sync()
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds or reps < 3:
            a @ b
            reps += 1
        sync()
        return 2 * n**3 * reps / (time.perf_counter() - start)

    probe = rate(256, 0.05)
    while size > 256 and 2 * size**3 / probe > 1.0:
        size //= 2
    return max(rate(size, 0.15) for _ in range(4)) if size > 256 else probe


def linear_gflop_per_token(model: nn.Module) -> float:
    """Forward GFLOP of one token through every linear layer, the LM head included (2 FLOPs a weight; a
    head tied to the embeddings still runs its matmul). Attention over the cache comes on top."""
    return sum(2 * m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear)) / 1e9


@cache
def meta_model(model_spec: str) -> nn.Module:
    """The model a spec names, built on the meta device from its config: shapes and counts, no weights."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from mathsft.models import resolve_model

    config = AutoConfig.from_pretrained(resolve_model(model_spec))
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def forward_gflop_per_token(model_spec: str) -> float:
    """``linear_gflop_per_token`` of a model spec (its meta-device model)."""
    return linear_gflop_per_token(meta_model(model_spec))


def head_gflop_per_token(model_spec: str) -> float:
    """The LM head's part of ``forward_gflop_per_token``, which a prompt token skips: prefill computes logits
    only where a row's first token is sampled."""
    head = meta_model(model_spec).get_output_embeddings()
    return 2 * head.in_features * head.out_features / 1e9


def decode_ceiling(backend: object) -> dict[str, float | str] | None:
    """The decoding ceiling of an in-process backend (one with ``model_name``, ``dtype`` and ``device``):
    the machine's matmul rate over the model's GFLOP per token. None for a remote engine (its machine is
    not this one)."""
    dtype = getattr(backend, "dtype", None)
    device = getattr(backend, "device", None)
    if getattr(backend, "name", None) != "hf" or dtype not in DTYPES or device is None:
        return None
    gflops = measured_peak_flops(device, dtype) / 1e9
    per_token = forward_gflop_per_token(backend.model_name)  # type: ignore[attr-defined]
    head = head_gflop_per_token(backend.model_name)  # type: ignore[attr-defined]
    return {
        "matmul_gflops": round(gflops, 1),
        "gflop_per_token": round(per_token, 4),
        "prompt_gflop_per_token": round(per_token - head, 4),
        "ceiling_tokens_per_s": round(gflops / per_token, 1),
        "peak_measured": f"dense 2048^3 matmuls in {dtype}, best of four 0.15 s windows on {device}, "
        f"{torch.get_num_threads()} threads",
    }
