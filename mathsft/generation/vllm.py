"""``vllm`` backend: in-process ``vllm.LLM`` engines (optional extra ``vllm``, imported on first use).

vLLM does its own continuous batching, prefix caching and sampling; this module only maps mathsft's
requests and sampling parameters onto it. Chat messages go through ``LLM.chat`` (the model's chat
template, generation prompt added); raw strings through ``LLM.generate``.

``data_parallel_size=N`` runs N independent engines, each in its own process on its own
``tensor_parallel_size`` GPUs (what lm-evaluation-harness's vLLM ``data_parallel_size`` does for dense
models): each ``generate`` call splits the requests into N contiguous shares of about equal sample
counts. Every request carries its own seed, so which replica serves it does not change its samples.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from mathsft.errors import MathsftError
from mathsft.generation.base import Completion, Request, ResultCallback, SamplingParams, refuse_calculator
from mathsft.models import resolve_model
from mathsft.workers import Worker, WorkerExited


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


def sampling_params(vllm: Any, params: SamplingParams, n: int, seed: int) -> Any:
    return vllm.SamplingParams(
        n=n,
        seed=seed,
        max_tokens=params.max_new_tokens,
        temperature=max(params.temperature, 0.0),
        top_p=params.top_p,
        top_k=params.top_k if params.top_k > 0 else -1,
        stop=list(params.stop) or None,
    )


def complete(
    vllm: Any,
    llm: Any,
    requests: Sequence[Request],
    params: SamplingParams,
    on_result: ResultCallback | None = None,
) -> list[list[Completion]]:
    """One engine call per prompt kind (raw / chat); ``on_result`` fires as each call returns."""
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
            sampling_params(
                vllm, params, requests[i].n, requests[i].seed if requests[i].seed is not None else params.seed
            )
            for i in indices
        ]
        started = time.perf_counter()
        if kind == "chat":
            outputs = llm.chat(prompts, sampling, add_generation_prompt=True, use_tqdm=False)
        else:
            outputs = llm.generate(prompts, sampling, use_tqdm=False)
        latency = time.perf_counter() - started
        for index, output in zip(indices, outputs, strict=True):
            results[index] = [
                Completion(
                    text=choice.text,
                    finish_reason="length" if choice.finish_reason == "length" else "stop",
                    prompt_tokens=len(output.prompt_token_ids or []),
                    completion_tokens=len(choice.token_ids),
                    latency_s=latency,
                    # the exact ids, as the hf backend gives them: RL trains on them, never on re-tokenized text
                    extra={
                        "finish_reason_raw": choice.finish_reason,
                        "token_ids": list(choice.token_ids),
                        "prompt_token_ids": list(output.prompt_token_ids or []),
                    },
                )
                for choice in output.outputs
            ]
            if on_result is not None:
                on_result(index, requests[index], results[index])
    return results


def load_weights(llm: Any, weights: list[tuple[str, Any]]) -> None:
    """Load HF-named CPU tensors on every worker of ``llm``, then drop prefix-cache entries of the old
    weights."""
    llm.collective_rpc(_load_on_worker, args=(weights,))
    llm.reset_prefix_cache()


def replica_gpus(replicas: int, tensor_parallel: int, visible: str | None, count: int) -> list[list[str]]:
    """The GPUs of each data-parallel replica: consecutive groups of ``tensor_parallel`` among the visible
    ones (``CUDA_VISIBLE_DEVICES`` when set, else ``0..count-1``)."""
    devices = (
        [d.strip() for d in visible.split(",") if d.strip()] if visible else [str(i) for i in range(count)]
    )
    need = replicas * tensor_parallel
    if len(devices) < need:
        raise MathsftError(
            f"vllm backend: data_parallel_size={replicas} x tensor_parallel_size={tensor_parallel} needs "
            f"{need} GPUs; {len(devices)} visible ({', '.join(devices) or 'none'})"
        )
    return [devices[r * tensor_parallel : (r + 1) * tensor_parallel] for r in range(replicas)]


def split_evenly(requests: Sequence[Request], parts: int) -> list[range]:
    """Contiguous index ranges of ``requests`` with about equal numbers of samples (``n``) each."""
    total = sum(r.n for r in requests)
    bounds, seen = [0], 0
    for i, request in enumerate(requests):
        seen += request.n
        while len(bounds) < parts and seen >= total * len(bounds) / parts:
            bounds.append(i + 1)
    bounds += [len(requests)] * (parts + 1 - len(bounds))
    return [range(bounds[p], bounds[p + 1]) for p in range(parts)]


def _replica_main(gpus: list[str], engine: dict[str, Any], jobs: Any, results: Any) -> None:
    """A replica process: one engine on ``gpus``, serving jobs until it receives ``None``."""
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    try:
        vllm = _import_vllm()
        llm = vllm.LLM(**engine)
    except BaseException as err:  # reported to the parent, which names the replica
        results.put(("error", f"{type(err).__name__}: {err}"))
        return
    results.put(("ok", None))
    while (job := jobs.get()) is not None:
        kind, payload = job
        try:
            value = complete(vllm, llm, *payload) if kind == "generate" else load_weights(llm, payload)
        except Exception as err:
            results.put(("error", f"{type(err).__name__}: {err}"))
            continue
        results.put(("ok", value))


class _Replica:
    """One engine in its own process (see ``mathsft.workers``), on its own GPUs."""

    def __init__(self, rank: int, gpus: list[str], engine: dict[str, Any]) -> None:
        self.rank, self.gpus = rank, gpus
        self.worker = Worker(_replica_main, (gpus, engine), name=f"mathsft-vllm-{rank}")

    def __repr__(self) -> str:
        return f"vllm replica {self.rank} (GPUs {','.join(self.gpus)})"

    def send(self, kind: str, payload: Any) -> None:
        self.worker.send((kind, payload))

    def receive(self, what: str) -> Any:
        """The answer to the oldest job sent; a failure or a dead process is a clear error."""
        try:
            status, value = self.worker.receive()
        except WorkerExited as gone:
            raise MathsftError(f"{self} died during {what} ({gone})") from None
        if status == "error":
            raise MathsftError(f"{self} failed during {what}: {value}")
        return value


class VLLMBackend:
    """Generation with ``vllm.LLM``; ``model`` is anything ``resolve_model`` accepts."""

    name = "vllm"

    def __init__(
        self,
        model: str,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        data_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        enable_prefix_caching: bool = True,
        max_model_len: int | None = None,
        **llm_options: Any,
    ) -> None:
        if data_parallel_size < 1 or tensor_parallel_size < 1:
            raise MathsftError("vllm backend: data_parallel_size and tensor_parallel_size must be >= 1")
        self._vllm = _import_vllm()  # fails here, clearly, before any replica starts
        self.model_name = str(model)
        engine = {
            "model": str(resolve_model(model)),
            "dtype": dtype,
            "tensor_parallel_size": tensor_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization,
            "enable_prefix_caching": enable_prefix_caching,
            "max_model_len": max_model_len,
            **llm_options,
        }
        self.llm: Any = None
        self.replicas: list[_Replica] = []
        if data_parallel_size == 1:
            self.llm = self._vllm.LLM(**engine)
            return
        import torch

        groups = replica_gpus(
            data_parallel_size,
            tensor_parallel_size,
            os.environ.get("CUDA_VISIBLE_DEVICES"),
            torch.cuda.device_count(),
        )
        self.replicas = [_Replica(r, gpus, engine) for r, gpus in enumerate(groups)]
        try:
            for replica in self.replicas:
                replica.receive("engine start-up")
        except MathsftError:
            self.close()
            raise

    def __repr__(self) -> str:
        replicas = f", data_parallel_size={len(self.replicas)}" if self.replicas else ""
        return f"VLLMBackend(model={self.model_name!r}{replicas})"

    def generate(
        self,
        requests: Sequence[Request],
        params: SamplingParams,
        on_result: ResultCallback | None = None,
    ) -> list[list[Completion]]:
        """Results in request order; ``on_result`` fires as each engine call (or replica's share) returns."""
        refuse_calculator("vllm", params)
        if not self.replicas:
            if self.llm is None:
                raise MathsftError("vllm backend: generate() after close()")
            return complete(self._vllm, self.llm, requests, params, on_result)
        shares = split_evenly(requests, len(self.replicas))
        for replica, share in zip(self.replicas, shares, strict=True):
            replica.send("generate", ([requests[i] for i in share], params))
        results: list[list[Completion]] = [[] for _ in requests]
        for share, done in self._answers([f"generation of requests {s.start}..{s.stop - 1}" for s in shares]):
            for index, completions in zip(shares[share], done, strict=True):
                results[index] = completions
                if on_result is not None:
                    on_result(index, requests[index], completions)
        return results

    def _answers(self, whats: list[str]) -> Iterator[tuple[int, Any]]:
        """Each replica's answer to the job just sent to all, in replica order. Every answer is read before
        the first failure is raised, so one failing replica neither loses the others' results nor leaves
        the queues out of step for the next job."""
        failures: list[MathsftError] = []
        for rank, (replica, what) in enumerate(zip(self.replicas, whats, strict=True)):
            try:
                answer = replica.receive(what)
            except MathsftError as err:
                failures.append(err)
                continue
            yield rank, answer
        if failures:
            raise failures[0]

    def load_weights(self, state_dict_items: Iterable[tuple[str, Any]]) -> None:
        """Replace every engine's weights with HF-named tensors (in-training validation without a reload).

        Runs ``model.load_weights`` on every worker through ``LLM.collective_rpc`` (tensors are moved to
        CPU so they can travel to worker processes), then drops prefix-cache entries computed with the
        old weights.
        """
        weights = [(name, tensor.detach().cpu()) for name, tensor in state_dict_items]
        if not self.replicas:
            load_weights(self.llm, weights)
            return
        for replica in self.replicas:
            replica.send("load_weights", weights)
        for _ in self._answers(["weight loading"] * len(self.replicas)):
            pass

    def close(self) -> None:
        """Release the engines (and their GPU memory): drop the in-process one, stop the replicas."""
        self.llm = None
        for replica in self.replicas:
            replica.worker.stop()
        self.replicas = []
