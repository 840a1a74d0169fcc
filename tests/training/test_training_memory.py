"""Freed heap memory goes back to the OS between training phases (glibc), so fragmentation does not
accumulate in the process's resident memory; large tensors sit on huge pages."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

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
release_free_memory(torch.device("cpu"))
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


HUGE_PAGES_CHILD = """
import mathsft, torch
x = torch.ones(64 * 1024 * 1024 // 4)  # 64 MB, touched
print(next(int(l.split()[1]) for l in open("/proc/self/smaps_rollup") if l.startswith("AnonHugePages")))
"""


def _thp_mode() -> str:
    path = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    return path.read_text().split("[")[1].split("]")[0] if path.is_file() else "absent"


@pytest.mark.skipif(
    _thp_mode() != "madvise", reason="only where huge pages are opt-in (madvise) does the setting decide"
)
def test_importing_mathsft_first_puts_large_tensors_on_huge_pages() -> None:
    """mathsft turns on PyTorch's huge-page allocation (fewer page faults in training) when imported before
    torch; a user's explicit THP_MEM_ALLOC_ENABLE=0 wins."""
    env = {"PATH": "/usr/bin:/bin"}
    on = subprocess.run([sys.executable, "-c", HUGE_PAGES_CHILD], env=env, capture_output=True, text=True)
    off = subprocess.run(
        [sys.executable, "-c", HUGE_PAGES_CHILD],
        env={**env, "THP_MEM_ALLOC_ENABLE": "0"},
        capture_output=True,
        text=True,
    )
    assert int(on.stdout) >= 32 * 1024, on.stderr  # kB: most of the 64 MB
    assert int(off.stdout) == 0, off.stderr


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
    assert memory.release_memory_during_backward(model, cpu) == 3
    ids = torch.randint(0, 64, (1, 12))
    with torch.no_grad():
        model(input_ids=ids)
    assert calls == []
    loss = model(input_ids=ids, labels=ids).loss
    assert calls == []  # the forward alone trims nothing
    loss.backward()
    assert calls == [0, 0, 0]
    assert memory.release_memory_during_backward(model, torch.device("meta")) == 0  # not CPU: no hooks
