"""A spawned worker process fed through a job queue, answering through a result queue.

Used where an engine must live outside the calling process: background validation during training and
vLLM data-parallel replicas. The process is spawned (a forked child would inherit the parent's threads
and CUDA state) and not daemonic, because engines such as vLLM start processes of their own, which a
daemonic process may not. So that a crash of the parent never leaves its exit waiting on the worker, the
worker is ended at interpreter exit (within a second) if ``stop`` was not called.
"""

from __future__ import annotations

import atexit
import queue
from collections.abc import Callable
from typing import Any

import torch.multiprocessing as mp

STOP = None  # the job that ends the worker's loop


class WorkerExited(Exception):
    """The worker process is gone and left no answer; ``exitcode`` says how it ended."""

    def __init__(self, exitcode: int | None) -> None:
        super().__init__(f"exit code {exitcode}")
        self.exitcode = exitcode


class Worker:
    """``target(*args, jobs, results)`` in its own process."""

    def __init__(self, target: Callable[..., None], args: tuple[Any, ...], name: str) -> None:
        context = mp.get_context("spawn")  # torch's: tensors in jobs travel through shared memory
        self.jobs: Any = context.Queue()
        self.results: Any = context.Queue()
        self.process = context.Process(
            target=target, args=(*args, self.jobs, self.results), name=name, daemon=False
        )
        self.process.start()
        # registered after multiprocessing's own exit hook, so it runs first (atexit is last-in, first-out)
        atexit.register(self._abandon)

    def send(self, job: Any) -> None:
        self.jobs.put(job)

    def receive(self, timeout: float | None = None) -> Any:
        """The next answer; None once ``timeout`` seconds pass without one (None: wait for it). Raises
        ``WorkerExited`` when the process has died with nothing left to read."""
        while True:
            try:
                return self.results.get(timeout=5.0 if timeout is None else timeout)
            except queue.Empty:
                if not self.process.is_alive():
                    try:  # an answer sent just before it exited
                        return self.results.get(timeout=0.5)
                    except queue.Empty:
                        raise WorkerExited(self.process.exitcode) from None
                if timeout is not None:
                    return None

    def _abandon(self) -> None:
        """At exit without ``stop`` (the caller failed): its answers have no reader left, so do not wait."""
        self.stop(grace_s=1.0)

    def stop(self, grace_s: float = 30.0) -> None:
        """Ask the worker to finish its current job and exit; terminate it after ``grace_s``."""
        atexit.unregister(self._abandon)
        if self.process.is_alive():
            self.jobs.put(STOP)
            self.process.join(timeout=grace_s)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
