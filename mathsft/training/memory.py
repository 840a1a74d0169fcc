"""Hand freed heap memory back to the operating system between the phases of a CPU training step.

glibc keeps freed blocks below its mmap threshold (tens of MB: activations, bf16 weight casts, gradient
temporaries) in its heap and reuses them only when a later request fits, so on CPU the resident memory of
a training process grows with fragmentation rather than with what is live (measured: up to 1 GB free but
resident in a bf16 SmolLM2-135M step). ``malloc_trim`` returns those free pages, but a later allocation
that reuses them faults fresh pages in again; so trim inside backward (where the step's peak is) and only
every few steps between them, where each trim would make the next step fault its whole working set in.

Trimming is not free even so: the re-faulting costs kernel time (``bench/train_heap_trim.py``, 40 steps of
the one-hour GSM8K recipe: 40M page faults and 74 s of system time, steps 1.18x slower than without trims,
for 0.6 GB less peak). So by default (``heap_trim: auto``) a process trims only while memory is short.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mathsft.training.config import HeapTrim

# During backward, trim once per this many decoder layers. Measured on fp32 SmolLM2-135M (30 layers, gradient
# checkpointing): peak RSS 3.45 GB without, 2.96 GB every 5 layers at no measurable cost, 2.83 GB every layer
# but ~10% slower steps (each trim makes the next layer fault its temporaries' pages in again).
TRIM_EVERY_LAYERS = 4

# Between steps, trim once per this many optimizer steps. Measured on the bf16 parity recipe (packing, no
# checkpointing, 64 steps): trimming after every forward and every step made steps ~25% slower than never
# trimming, but never trimming let fragmentation lift the peak from 5.2 to 7.0 GB by step 64; every 8 steps
# (with the trims inside backward) peaked at 5.4 GB at a few percent of the speed.
TRIM_EVERY_STEPS = 8

# ``heap_trim: auto`` trims while the machine's available memory is below this share of its total.
TRIM_BELOW_AVAILABLE = 0.25


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc; absent on macOS and some other C libraries
    except (OSError, AttributeError):
        return None


def meminfo_kb(meminfo: str) -> dict[str, int]:
    """``/proc/meminfo``'s text as {field: kB} (lines without a number left out)."""
    fields = {}
    for line in meminfo.splitlines():
        key, _, value = line.partition(":")
        number = value.split()[:1]
        if number and number[0].isdigit():
            fields[key] = int(number[0])
    return fields


def memory_is_short(meminfo: str, below: float = TRIM_BELOW_AVAILABLE) -> bool:
    """Whether ``/proc/meminfo``'s text says available memory is under ``below`` of the total (True when it
    does not say, so an unknown machine keeps the memory-saving behaviour)."""
    fields = meminfo_kb(meminfo)
    if "MemTotal" not in fields or "MemAvailable" not in fields:
        return True
    return fields["MemAvailable"] < below * fields["MemTotal"]


def _wants_trim(policy: HeapTrim) -> bool:
    if policy != "auto":
        return policy == "always"
    try:
        return memory_is_short(Path("/proc/meminfo").read_text(encoding="ascii"))
    except OSError:
        return True


def release_free_memory(device: torch.device, policy: HeapTrim) -> None:
    """Return free heap pages to the OS (glibc ``malloc_trim``) when training on CPU and ``policy`` asks for
    it now; a no-op on other devices (their tensors are not in this heap) and where the C library lacks it."""
    trim = _malloc_trim()
    if device.type == "cpu" and trim is not None and _wants_trim(policy):
        trim(0)


def release_memory_during_backward(model: torch.nn.Module, device: torch.device, policy: HeapTrim) -> int:
    """Also trim inside backward, every ``TRIM_EVERY_LAYERS`` decoder layers (CPU with glibc only, and
    never with ``policy`` never; ``auto`` decides at each trim).

    Backward frees each layer's activations while it allocates long-lived gradients between them, so the
    free but resident heap grows layer by layer to the step's peak; one trim after the step comes too late.
    A hook on a layer's output fires when backward reaches that layer. Returns the number of hooked layers."""
    if device.type != "cpu" or _malloc_trim() is None or policy == "never":
        return 0
    layers = decoder_layers(model)
    hook = functools.partial(_trim_when_backward_arrives, policy)
    for layer in layers[::TRIM_EVERY_LAYERS]:
        layer.register_forward_hook(hook)
    return len(layers[::TRIM_EVERY_LAYERS])


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's decoder layers in order (transformers' checkpointable layer class)."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    return [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]


def _trim_when_backward_arrives(policy: HeapTrim, module: torch.nn.Module, args: Any, output: Any) -> None:
    hidden = output[0] if isinstance(output, tuple) else output
    if torch.is_grad_enabled() and isinstance(hidden, torch.Tensor) and hidden.requires_grad:
        hidden.register_hook(functools.partial(_trim_hook, policy))


def _trim_hook(policy: HeapTrim, grad: torch.Tensor) -> None:
    release_free_memory(grad.device, policy)
