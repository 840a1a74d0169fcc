"""Hard time limits without signals: slow work runs in child processes that are killed at a deadline.

``signal.alarm`` only works in the main thread and would cancel a caller's own alarm, so the grader
never uses signals. Instead a small persistent child (``python -m mathsft.grading.worker``, talking JSON
lines over pipes) runs the symbolic step; the parent waits on the pipe with ``select`` and kills and
replaces the child when an item overruns. This works from any thread, inside worker processes, and
under a caller's ``SIGALRM`` (an interrupted ``select`` is retried by Python, PEP 475).

``map_items`` is the same machinery with N children and per-item deadlines, for ``grade_many``.
Children start with ``sys.executable -m`` (not fork or spawn of the caller's ``__main__``), so a user's
script needs no ``if __name__ == "__main__"`` guard and a threaded parent (torch) is never forked.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

DEFAULT_TIMEOUT_S = 5.0
STARTUP_TIMEOUT_S = 120.0

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_inline = False  # True inside a worker process: it is itself under its parent's deadline


class WorkerDied(RuntimeError):
    """The child exited (crash, out of memory) instead of answering."""


class Worker:
    """One grading child process speaking JSON lines on stdin/stdout."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.owner = os.getpid()
        self._buffer = b""

    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mathsft.grading.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # the terminal's Ctrl-C goes to the parent, which cleans up
        )
        self.owner = os.getpid()
        _live.add(self)

    def wait_ready(self) -> None:
        try:
            reply = self.receive(STARTUP_TIMEOUT_S)
        except WorkerDied:
            reply = None
        if not reply or not reply.get("ready"):
            self.kill()
            raise RuntimeError(
                "the grading worker did not start; run `python -m mathsft.grading.worker` to see why"
            )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.owner == os.getpid() and self.proc.poll() is None

    def fileno(self) -> int:
        assert self.proc is not None and self.proc.stdout is not None
        return self.proc.stdout.fileno()

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as err:
            raise WorkerDied(str(err)) from err

    def read_lines(self) -> list[dict[str, Any]]:
        """Complete lines available now (call after ``select`` says readable); raises on EOF."""
        chunk = os.read(self.fileno(), 1 << 16)
        if not chunk:
            raise WorkerDied("grading worker exited")
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]

    def receive(self, timeout_s: float) -> dict[str, Any] | None:
        """The next message, or None when ``timeout_s`` passes first; raises ``WorkerDied`` on EOF."""
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([self.fileno()], [], [], remaining)
            if readable:
                chunk = os.read(self.fileno(), 1 << 16)
                if not chunk:
                    raise WorkerDied("grading worker exited")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def kill(self) -> None:
        if self.proc is not None:
            if self.owner == os.getpid():
                self.proc.kill()
                self.proc.wait()
                for stream in (self.proc.stdin, self.proc.stdout):
                    if stream is not None:
                        stream.close()
            _live.discard(self)
        self.proc = None
        self._buffer = b""


_live: set[Worker] = set()
atexit.register(lambda: [w.kill() for w in list(_live)])

_symbolic_lock = threading.Lock()
_symbolic_worker: Worker | None = None


def run_symbolic(pred: str, gold: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[bool | None, str]:
    """``symbolic_equal(pred, gold)`` under a hard deadline; ``(None, "timeout")`` when it overruns."""
    if _inline:
        from mathsft.grading.symbolic import symbolic_equal

        return symbolic_equal(pred, gold)
    global _symbolic_worker
    with _symbolic_lock:
        worker = _symbolic_worker
        if worker is None or not worker.alive:
            worker = _symbolic_worker = Worker()
            worker.start()
            worker.wait_ready()
        try:
            worker.send({"op": "symbolic", "pred": pred, "gold": gold})
            reply = worker.receive(timeout_s)
        except WorkerDied:
            reply = {"verdict": None, "reason": "worker-crashed"}
        if reply is None or reply.get("reason") == "worker-crashed":
            worker.kill()
            _symbolic_worker = None
            return None, "timeout" if reply is None else "worker-crashed"
        return reply["verdict"], reply["reason"]


def clear_worker_cache() -> None:
    """Empty the symbolic worker's parse cache (if it runs), so a benchmark's next item starts cold."""
    with _symbolic_lock:
        worker = _symbolic_worker
        if worker is None or not worker.alive:
            return
        try:
            worker.send({"op": "clear"})
            worker.receive(STARTUP_TIMEOUT_S)
        except WorkerDied:
            pass


def map_items(
    tasks: list[Any], options: dict[str, Any], workers: int, timeout_s: float, chunk: int = 16
) -> list[dict[str, Any] | None]:
    """Run ``op=grade`` tasks on ``workers`` children, order preserved; None for an item that overran
    ``timeout_s`` (its child is killed and replaced, the rest of its chunk goes on elsewhere)."""
    results: list[dict[str, Any] | None] = [None] * len(tasks)
    queue = deque(list(range(i, min(i + chunk, len(tasks)))) for i in range(0, len(tasks), chunk))
    pool = [Worker() for _ in range(max(1, min(workers, len(queue))))]
    for worker in pool:
        worker.start()
    busy: dict[Worker, tuple[deque[int], float]] = {}
    try:
        for worker in pool:
            worker.wait_ready()
        while queue or busy:
            for worker in pool:
                if worker not in busy and queue:
                    indices = queue.popleft()
                    if not worker.alive:
                        worker.start()
                        worker.wait_ready()
                    worker.send({"op": "grade", "options": options, "tasks": [tasks[i] for i in indices]})
                    busy[worker] = (deque(indices), time.monotonic())
            soonest = min(started for _, started in busy.values()) + timeout_s
            readable, _, _ = select.select(list(busy), [], [], max(0.0, soonest - time.monotonic()))
            for worker in readable:
                indices, _ = busy[worker]
                try:
                    for message in worker.read_lines():
                        results[indices.popleft()] = message
                    busy[worker] = (indices, time.monotonic())
                except WorkerDied:
                    _retire(worker, indices, queue)
                    del busy[worker]
                    continue
                if not indices:
                    del busy[worker]
            now = time.monotonic()
            for worker, (indices, started) in list(busy.items()):
                if now - started > timeout_s:
                    _retire(worker, indices, queue)
                    del busy[worker]
    finally:
        for worker in pool:
            worker.kill()
    return results


def _retire(worker: Worker, indices: deque[int], queue: deque) -> None:
    """Kill an overrunning/crashed child: its current item stays None, the rest is queued again."""
    worker.kill()
    indices.popleft()
    if indices:
        queue.appendleft(list(indices))
