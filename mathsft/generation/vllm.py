"""``vllm`` backend: an in-process ``vllm.LLM`` (optional extra ``vllm``, imported on first use).

vLLM does its own continuous batching, prefix caching and sampling; this module only maps mathsft's
requests and sampling parameters onto it. Chat messages go through ``LLM.chat`` (the model's chat
template, generation prompt added); raw strings through ``LLM.generate``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from mathsft.errors import MathsftError
from mathsft.generation.base import Completion, Request, ResultCallback, SamplingParams
from mathsft.models import resolve_model


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as err:
        raise MathsftError(
            f"the vllm backend needs the optional extra: pip install 'mathsft[vllm]' ({err}). "
            "Use --backend hf to generate without it."
        ) from None
    return vllm


def _load_on_worker(worker: Any, weights: list[tuple[str, Any]]) -> None:
    """Runs inside each vLLM worker (via ``collective_rpc``): load HF-named tensors into its model."""
    worker.model_runner.model.load_weights(weights=weights)


class VLLMBackend:
    """Generation with ``vllm.LLM``; ``model`` is anything ``resolve_model`` accepts."""

    name = "vllm"

    def __init__(
        self,
        model: str,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        enable_prefix_caching: bool = True,
        max_model_len: int | None = None,
        **llm_options: Any,
    ) -> None:
        vllm = _import_vllm()
        self.model_name = str(model)
        self._vllm = vllm
        self.llm = vllm.LLM(
            model=str(resolve_model(model)),
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            enable_prefix_caching=enable_prefix_caching,
            max_model_len=max_model_len,
            **llm_options,
        )

    def __repr__(self) -> str:
        return f"VLLMBackend(model={self.model_name!r})"

    def sampling_params(self, params: SamplingParams, n: int, seed: int) -> Any:
        return self._vllm.SamplingParams(
            n=n,
            seed=seed,
            max_tokens=params.max_new_tokens,
            temperature=max(params.temperature, 0.0),
            top_p=params.top_p,
            top_k=params.top_k if params.top_k > 0 else -1,
            stop=list(params.stop) or None,
        )

    def generate(
        self,
        requests: Sequence[Request],
        params: SamplingParams,
        on_result: ResultCallback | None = None,
    ) -> list[list[Completion]]:
        """One vLLM call per prompt kind (raw / chat); ``on_result`` fires once the call returns."""
        results: list[list[Completion]] = [[] for _ in requests]
        groups = {
            "raw": [i for i, r in enumerate(requests) if isinstance(r.prompt, str)],
            "chat": [i for i, r in enumerate(requests) if not isinstance(r.prompt, str)],
        }
        for kind, indices in groups.items():
            if not indices:
                continue
            prompts = [requests[i].prompt for i in indices]
            sampling = [
                self.sampling_params(
                    params, requests[i].n, requests[i].seed if requests[i].seed is not None else params.seed
                )
                for i in indices
            ]
            started = time.perf_counter()
            if kind == "chat":
                outputs = self.llm.chat(prompts, sampling, add_generation_prompt=True, use_tqdm=False)
            else:
                outputs = self.llm.generate(prompts, sampling, use_tqdm=False)
            latency = time.perf_counter() - started
            for index, output in zip(indices, outputs, strict=True):
                results[index] = [
                    Completion(
                        text=choice.text,
                        finish_reason="length" if choice.finish_reason == "length" else "stop",
                        prompt_tokens=len(output.prompt_token_ids or []),
                        completion_tokens=len(choice.token_ids),
                        latency_s=latency,
                        extra={"finish_reason_raw": choice.finish_reason},
                    )
                    for choice in output.outputs
                ]
                if on_result is not None:
                    on_result(index, requests[index], results[index])
        return results

    def load_weights(self, state_dict_items: Iterable[tuple[str, Any]]) -> None:
        """Replace the engine's weights with HF-named tensors (in-training validation without a reload).

        Runs ``model.load_weights`` on every worker through ``LLM.collective_rpc`` (tensors are moved to
        CPU so they can travel to worker processes), then drops prefix-cache entries computed with the
        old weights.
        """
        weights = [(name, tensor.detach().cpu()) for name, tensor in state_dict_items]
        self.llm.collective_rpc(_load_on_worker, args=(weights,))
        self.llm.reset_prefix_cache()

    def close(self) -> None:
        """Release the engine (and its GPU memory) by dropping the reference."""
        self.llm = None
