"""The vllm backend: a clear error without vLLM; a real generation where vLLM and a GPU exist."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mathsft.errors import MathsftError
from mathsft.generation import make_backend
from mathsft.generation.base import Request, SamplingParams

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed; the missing-extra error cannot be shown")
def test_missing_vllm_is_a_clear_error() -> None:
    with pytest.raises(MathsftError, match=r"pip install 'mathsft\[vllm\]'"):
        make_backend("vllm", "smollm2-135m")


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(not HAS_VLLM, reason="needs the optional vllm extra")
def test_vllm_generates_chat_and_raw_prompts(smollm2_dir: Path) -> None:
    if not has_gpu():
        pytest.skip("needs a CUDA GPU")
    backend = make_backend("vllm", str(smollm2_dir), gpu_memory_utilization=0.3)
    requests = [
        Request([{"role": "user", "content": "What is the capital of France?"}], n=2, seed=1),
        Request("The capital of France is"),
    ]
    seen: list[int] = []
    results = backend.generate(
        requests, SamplingParams(max_new_tokens=16, temperature=0.7), lambda i, r, c: seen.append(i)
    )
    assert sorted(seen) == [0, 1]
    assert [len(r) for r in results] == [2, 1]
    assert all(c.completion_tokens > 0 and c.prompt_tokens > 0 for r in results for c in r)
    again = backend.generate(requests[:1], SamplingParams(max_new_tokens=16, temperature=0.7))
    assert [c.text for c in again[0]] == [c.text for c in results[0]]
    backend.close()
