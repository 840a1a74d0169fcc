"""The grading child process (``python -m mathsft.grading.worker``): JSON lines in, JSON lines out.

Messages: ``{"op": "symbolic", "pred", "gold"}`` -> ``{"verdict", "reason"}``; ``{"op": "clear"}`` ->
``{"cleared": true}`` (its parse cache emptied); ``{"op": "grade",
"options": {...}, "tasks": [[response, gold], ...]}`` -> one ``Grade`` dict per task, in order. Its parent
(``timeout.py``) kills it when an item overruns, so everything here runs inline, without timers.
"""

from __future__ import annotations

import json
import sys

MEMORY_LIMIT_BYTES = 4 << 30  # a runaway SymPy computation dies here instead of swapping the machine


def _limit_memory() -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    except (ImportError, ValueError, OSError):  # not on this platform, or a lower hard limit: keep it
        pass


def _write(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> None:
    _limit_memory()
    from mathsft.grading import timeout
    from mathsft.grading.grade import grade
    from mathsft.grading.parse import to_sympy
    from mathsft.grading.symbolic import symbolic_equal

    timeout._inline = True
    to_sympy("x+1")  # load the parser before announcing readiness: startup is not an item's time
    _write({"ready": True})
    for line in sys.stdin:
        message = json.loads(line)
        if message["op"] == "clear":
            to_sympy.cache_clear()
            _write({"cleared": True})
        elif message["op"] == "symbolic":
            try:
                verdict, reason = symbolic_equal(message["pred"], message["gold"])
            except Exception as err:  # a SymPy failure is "no verdict", never a dead worker
                verdict, reason = None, f"symbolic-error: {type(err).__name__}"
            _write({"verdict": None if verdict is None else bool(verdict), "reason": reason})
        else:
            for response, gold in message["tasks"]:
                try:
                    _write(grade(response, gold, **message["options"]).to_dict())
                except Exception as err:  # one bad item must not take the batch down
                    _write({"error": f"{type(err).__name__}: {err}"})


if __name__ == "__main__":
    main()
