"""Generation backends behind one interface (``base.Backend``); ``make_backend`` builds one by name."""

from __future__ import annotations

import inspect
from typing import Any

from mathsft.errors import MathsftError
from mathsft.generation.base import Backend, Completion, Prompt, Request, ResultCallback, SamplingParams

BACKENDS = ("hf", "vllm", "openai")

__all__ = [
    "BACKENDS",
    "Backend",
    "Completion",
    "Prompt",
    "Request",
    "ResultCallback",
    "SamplingParams",
    "make_backend",
]


def make_backend(name: str, model: str, **options: Any) -> Backend:
    """A backend by name: ``hf`` and ``vllm`` load ``model`` in process; ``openai`` needs ``base_url=``.

    Engines are imported lazily, so using one never imports the others (vLLM is an optional extra).
    """
    if name == "hf":
        from mathsft.generation.hf import HFBackend as cls
    elif name == "vllm":
        from mathsft.generation.vllm import VLLMBackend as cls
    elif name == "openai":
        from mathsft.generation.openai import OpenAIBackend as cls

        if "base_url" not in options:
            raise MathsftError("openai backend needs base_url= (e.g. http://localhost:8000/v1)")
    else:
        raise MathsftError(f"unknown generation backend {name!r}; known: {', '.join(BACKENDS)}")
    try:
        inspect.signature(cls).bind(model=model, **options)
    except TypeError as err:
        raise MathsftError(f"{name} backend: bad options {sorted(options)} ({err})") from None
    return cls(model=model, **options)
