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
