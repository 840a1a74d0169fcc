"""The vllm backend: a clear error without vLLM; data-parallel replicas (through a stand-in engine); a real
generation where vLLM and a GPU exist."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
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


# -- data-parallel replicas, driven through a stand-in ``vllm`` package --------------------------------------
# vLLM cannot be installed on the CPU machines CI runs on, so these tests put a small importable ``vllm``
# (below) first on the path of this process and of the spawned replica processes. It answers like
# ``vllm.LLM`` and writes into each completion which process and which CUDA_VISIBLE_DEVICES served it, so
# the tests check what mathsft's replica layer does: the device split, the order of results, callbacks,
# weight hand-over and failures.

STAND_IN = """
import os
from types import SimpleNamespace


class SamplingParams:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


class LLM:
    def __init__(self, model, **kwargs):
        if model.endswith("broken"):
            raise RuntimeError("CUDA out of memory")
        self.served_by = f"pid={os.getpid()}|gpus={os.environ.get('CUDA_VISIBLE_DEVICES')}"
        self.loaded = []

    def _outputs(self, prompts, sampling):
        if "boom" in prompts:
            raise RuntimeError("engine crashed")
        return [
            SimpleNamespace(
                prompt_token_ids=[1, 2, 3],
                outputs=[
                    SimpleNamespace(
                        text=f"{p if isinstance(p, str) else p[-1]['content']}|seed={s.seed}|j={j}"
                        f"|loaded={','.join(self.loaded)}|{self.served_by}",
                        token_ids=[7] * (j + 1),
                        finish_reason="stop",
                    )
                    for j in range(s.n)
                ],
            )
            for p, s in zip(prompts, sampling)
        ]

    def generate(self, prompts, sampling, use_tqdm=False):
        return self._outputs(prompts, sampling)

    def chat(self, prompts, sampling, add_generation_prompt=True, use_tqdm=False):
        return self._outputs(prompts, sampling)

    def collective_rpc(self, fn, args=()):
        model = SimpleNamespace(load_weights=lambda weights: self.loaded.extend(n for n, _ in weights))
        fn(SimpleNamespace(model_runner=SimpleNamespace(model=model)), *args)

    def reset_prefix_cache(self):
        pass
"""


@pytest.fixture
def stand_in_vllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    import os
    import sys

    folder = tmp_path / "stand-in"
    (folder / "vllm").mkdir(parents=True)
    (folder / "vllm" / "__init__.py").write_text(STAND_IN)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")  # resolve_model accepts it as an HF directory
    yield model
    sys.modules.pop("vllm", None)  # later tests see no vLLM again


def field(text: str, name: str) -> str:
    return next(part.split("=", 1)[1] for part in text.split("|") if part.startswith(f"{name}="))


def test_replicas_split_the_requests_and_return_them_in_order(stand_in_vllm: Path) -> None:
    import torch

    requests = [Request(f"q{i}", n=1 + i % 2, seed=i) for i in range(7)]
    requests[3] = Request([{"role": "user", "content": "q3"}], n=2, seed=3)
    backend = make_backend("vllm", str(stand_in_vllm), data_parallel_size=2, tensor_parallel_size=2)
    seen: list[int] = []
    try:
        results = backend.generate(requests, SamplingParams(max_new_tokens=8), lambda i, r, c: seen.append(i))
        backend.load_weights([("lm_head.weight", torch.ones(2)), ("model.norm.weight", torch.ones(2))])
        again = backend.generate(requests[-1:], SamplingParams(max_new_tokens=8))
    finally:
        backend.close()
    assert seen == list(range(7))
    assert [len(r) for r in results] == [r.n for r in requests]
    for i, completions in enumerate(results):
        assert [c.text.split("|")[0] for c in completions] == [f"q{i}"] * requests[i].n
        assert [field(c.text, "seed") for c in completions] == [str(i)] * requests[i].n
        assert [field(c.text, "j") for c in completions] == [str(j) for j in range(requests[i].n)]
        # the exact ids the engine generated and conditioned on (RL trains on them)
        assert [c.extra["token_ids"] for c in completions] == [[7] * (j + 1) for j in range(requests[i].n)]
        assert all(c.extra["prompt_token_ids"] == [1, 2, 3] for c in completions)
    served = [(field(r[0].text, "pid"), field(r[0].text, "gpus")) for r in results]
    assert {gpus for _, gpus in served} == {"4,5", "6,7"}  # two replicas, two GPUs each, no GPU shared
    assert len({pid for pid, _ in served}) == 2
    assert served == sorted(served, key=lambda s: s[1])  # contiguous shares: first half on the first replica
    assert field(again[0][0].text, "loaded") == "lm_head.weight,model.norm.weight"


def test_a_failing_replica_is_named_and_the_others_samples_are_kept(stand_in_vllm: Path) -> None:
    backend = make_backend("vllm", str(stand_in_vllm), data_parallel_size=2)
    seen: list[int] = []
    try:
        with pytest.raises(
            MathsftError, match=r"vllm replica 0 \(GPUs 4\) failed during generation of requests 0\.\.1: "
            "RuntimeError: engine crashed"
        ):  # fmt: skip
            backend.generate(
                [Request("boom"), Request("a"), Request("b"), Request("c")],
                SamplingParams(),
                lambda i, r, c: seen.append(i),
            )
        assert seen == [2, 3]  # the healthy replica's share reached the caller
        after = backend.generate([Request("d"), Request("e")], SamplingParams())  # the queues stay in step
    finally:
        backend.close()
    assert [r[0].text.split("|")[0] for r in after] == ["d", "e"]


def test_a_replica_that_cannot_start_is_a_clear_error(tmp_path: Path, stand_in_vllm: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    with pytest.raises(MathsftError, match=r"vllm replica 0 \(GPUs 4\) failed during engine start-up: "
                       "RuntimeError: CUDA out of memory"):  # fmt: skip
        make_backend("vllm", str(broken), data_parallel_size=2)


def test_more_replicas_than_gpus_is_refused(stand_in_vllm: Path) -> None:
    with pytest.raises(
        MathsftError, match="data_parallel_size=3 x tensor_parallel_size=2 needs 6 GPUs; 4 visible"
    ):
        make_backend("vllm", str(stand_in_vllm), data_parallel_size=3, tensor_parallel_size=2)


def test_shares_hold_about_equal_sample_counts() -> None:
    from mathsft.generation.vllm import split_evenly

    assert split_evenly([Request("p")] * 4, 2) == [range(0, 2), range(2, 4)]
    assert split_evenly([Request("p", n=4)] + [Request("p")] * 4, 2) == [range(0, 1), range(1, 5)]
    assert split_evenly([Request("p")] * 2, 3) == [range(0, 1), range(1, 2), range(2, 2)]
    assert split_evenly([], 2) == [range(0, 0), range(0, 0)]
