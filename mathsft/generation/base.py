"""One interface for every generation engine (hf in-process, vLLM in-process, OpenAI-compatible).

Eval, teacher traces and in-training validation all call ``Backend.generate``; nothing else
in mathsft talks to an engine directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mathsft.errors import MathsftError

Prompt = str | list[dict[str, str]]
"""Raw text (sent as is) or chat messages (rendered with the model's chat template)."""


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 512
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    stop: tuple[str, ...] = ()
    seed: int = 0
    # the calculator tool (``generation/calculator.py``): after the model writes ``<<48/2=`` the backend
    # inserts ``24>>`` and generation goes on. The hf backend runs it; the others refuse it.
    calculator: bool = False

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass
class Request:
    """One prompt to complete ``n`` times. ``key`` is the caller's id, handed back untouched."""

    prompt: Prompt
    n: int = 1
    seed: int | None = None  # overrides SamplingParams.seed for this request
    key: Any = None


@dataclass
class Completion:
    text: str
    finish_reason: str  # "stop" (EOS or stop string) or "length" (hit max_new_tokens)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning: str | None = None  # separate reasoning channel (DeepSeek's reasoning_content)
    latency_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def refuse_calculator(backend: str, params: SamplingParams) -> None:
    """Backends whose engine cannot pause a sequence for the tool say so instead of ignoring it."""
    if params.calculator:
        raise MathsftError(
            f"{backend} backend: the calculator tool runs in the hf backend only (it pauses each sequence "
            "at '<<expr=' to insert the result); use --backend hf or turn the calculator off"
        )


ResultCallback = Callable[[int, Request, list[Completion]], None]
"""Called once per request as soon as its completions are ready (index into the request list)."""


class Backend(Protocol):
    name: str
    model_name: str

    def generate(
        self,
        requests: Sequence[Request],
        params: SamplingParams,
        on_result: ResultCallback | None = None,
    ) -> list[list[Completion]]:
        """Complete every request; results are in request order, ``n`` completions each."""
        ...

    def close(self) -> None: ...
