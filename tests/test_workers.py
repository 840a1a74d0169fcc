"""The worker process behind background validation and vLLM replicas: it may start processes of its own
(vLLM does), a death is reported with its exit code, and a parent that never stops it still exits."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from mathsft.workers import Worker, WorkerExited


def _child(out: Any) -> None:
    out.put(os.getpid())


def _starts_a_process(jobs: Any, results: Any) -> None:
    """Answers each job with the pid of a process it started for it (as an engine's own workers)."""
    while (job := jobs.get()) is not None:
        context = multiprocessing.get_context("spawn")
        out = context.Queue()
        child = context.Process(target=_child, args=(out,))
        child.start()
        results.put((job, out.get(timeout=60)))
        child.join()


def _dies(jobs: Any, results: Any) -> None:
    jobs.get()
    os._exit(3)


def test_a_worker_may_start_processes_of_its_own() -> None:
    worker = Worker(_starts_a_process, (), name="test-worker")
    try:
        worker.send("first")
        job, pid = worker.receive()
        assert job == "first" and pid not in {os.getpid(), worker.process.pid}
    finally:
        worker.stop()
    assert not worker.process.is_alive() and worker.process.exitcode == 0


def test_a_dead_worker_is_reported_with_its_exit_code() -> None:
    worker = Worker(_dies, (), name="test-worker")
    worker.send("anything")
    with pytest.raises(WorkerExited, match="exit code 3"):
        worker.receive()
    worker.stop()  # a dead worker stops without waiting


def test_a_parent_that_never_stops_its_worker_still_exits() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        from test_workers import _starts_a_process
        from mathsft.workers import Worker

        if __name__ == "__main__":
            worker = Worker(_starts_a_process, (), name="forgotten")
            worker.send("job")
            print(worker.receive()[0], flush=True)
            raise SystemExit(7)  # no stop(): the exit hook must end the worker, not wait on it forever
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, os.path.dirname(__file__)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 7, done.stderr[-2000:]
    assert done.stdout.strip() == "job"
