"""Freed heap memory goes back to the OS between training phases (glibc), so fragmentation does not
accumulate in the process's resident memory."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# Runs in a child whose mmap threshold is raised, so every 1 MB block lives in glibc's heap, as a
# training step's activations and gradients do once glibc's dynamic threshold has grown.
CHILD = """
import gc, torch
from mathsft.training.memory import release_free_memory

def anon_mb():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon"):
            return int(line.split()[1]) / 1024

blocks = [torch.ones(256 * 1024) for _ in range(400)]  # 400 x 1 MB, touched
del blocks[::2]  # 200 MB of holes between live blocks: free() cannot give them back
gc.collect()
held = anon_mb()
release_free_memory(torch.device("cpu"), "always")
print(held, anon_mb())
"""


@pytest.mark.skipif(platform.system() != "Linux", reason="malloc_trim is glibc's (Linux)")
def test_release_free_memory_returns_freed_heap_pages() -> None:
    env = {"MALLOC_MMAP_THRESHOLD_": str(64 * 1024 * 1024), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True
    ).stdout
    held, released = (float(x) for x in out.split())
    assert held - released > 150, (held, released)  # most of the 200 MB of holes left RSS


def test_backward_trims_every_few_layers_and_inference_never(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hooks fire inside backward (once per hooked layer), not in a no-grad forward such as validation."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from mathsft.training import memory

    calls: list[int] = []
    monkeypatch.setattr(memory, "_malloc_trim", lambda: calls.append)
    layers = 2 * memory.TRIM_EVERY_LAYERS + 1  # hooked: layers 0, TRIM_EVERY_LAYERS, 2 * TRIM_EVERY_LAYERS
    config = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=2
    )
    model = LlamaForCausalLM(config)
    cpu = torch.device("cpu")
    assert memory.release_memory_during_backward(model, cpu, "always") == 3
    ids = torch.randint(0, 64, (1, 12))
    with torch.no_grad():
        model(input_ids=ids)
    assert calls == []
    loss = model(input_ids=ids, labels=ids).loss
    assert calls == []  # the forward alone trims nothing
    loss.backward()
    assert calls == [0, 0, 0]
    assert memory.release_memory_during_backward(model, torch.device("meta"), "always") == 0  # not CPU
    assert memory.release_memory_during_backward(model, cpu, "never") == 0


MEMINFO = "MemTotal:       24000000 kB\nMemFree:         1000000 kB\nMemAvailable:    {} kB\n"


def test_memory_is_short_reads_available_against_total() -> None:
    from mathsft.training.memory import memory_is_short

    assert not memory_is_short(MEMINFO.format(20_000_000))
    assert memory_is_short(MEMINFO.format(5_000_000))  # under a quarter of 24 GB
    assert memory_is_short("MemTotal: 100 kB\n")  # no MemAvailable (old kernels): keep saving memory


@pytest.mark.parametrize(
    ("policy", "short", "trims"),
    [("auto", False, 0), ("auto", True, 1), ("always", False, 1), ("never", True, 0)],
)
def test_heap_trim_policy_decides_each_trim(
    monkeypatch: pytest.MonkeyPatch, policy: str, short: bool, trims: int
) -> None:
    """auto trims only while the machine is short of memory; always and never ignore it."""
    import torch

    from mathsft.training import memory

    calls: list[int] = []
    monkeypatch.setattr(memory, "_malloc_trim", lambda: calls.append)
    monkeypatch.setattr(memory, "memory_is_short", lambda text: short)
    memory.release_free_memory(torch.device("cpu"), policy)  # type: ignore[arg-type]
    assert len(calls) == trims
    memory.release_free_memory(torch.device("meta"), "always")
    assert len(calls) == trims  # other devices: never
