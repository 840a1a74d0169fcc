"""Hand freed heap memory back to the operating system between the phases of a CPU training step.

glibc keeps freed blocks below its mmap threshold (tens of MB: activations, bf16 weight casts, gradient
temporaries) in its heap and reuses them only when a later request fits, so on CPU the resident memory of
a training process grows with fragmentation rather than with what is live (measured: up to 1 GB free but
resident in a bf16 SmolLM2-135M step). ``malloc_trim`` returns those free pages; a later allocation that
reuses them faults fresh pages in, which costs little against a multi-second step.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable

import torch


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc; absent on macOS and some other C libraries
    except (OSError, AttributeError):
        return None


def release_free_memory(device: torch.device) -> None:
    """Return free heap pages to the OS (glibc ``malloc_trim``) when training on CPU; a no-op on other
    devices (their tensors are not in this heap) and where the C library lacks it."""
    trim = _malloc_trim()
    if device.type == "cpu" and trim is not None:
        trim(0)
