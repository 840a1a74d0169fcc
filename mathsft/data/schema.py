"""The two record forms every stage shares.

``Problem`` is a math problem with its gold answer (eval, traces, rendering SFT targets);
``SFTExample`` is a ready chat conversation to train on (prompt/response pairs, TRL
``messages`` rows, accepted teacher traces). Both round-trip through plain JSON dicts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Problem:
    """One normalized math problem.

    Example (GSM8K test, line 1)::

        Problem(id="gsm8k/test/0",
                problem="Janet’s ducks lay 16 eggs per day. ...",
                answer="18",
                solution="Janet sells 16 - 3 - 4 = 9 duck eggs a day.\\nShe makes 9 * 2 = $18 ...",
                source="gsm8k",
                meta={"split": "test"})
    """

    id: str
    problem: str
    answer: str
    solution: str = ""
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SFTExample:
    """One supervised example as chat turns; the last turn is the assistant's target.

    Example (CS336-style ``{"prompt", "response"}`` row)::

        SFTExample(id="sft/0",
                   messages=[{"role": "user", "content": "What is 2+3?"},
                             {"role": "assistant", "content": "2+3=5. The final answer is $\\\\boxed{5}$."}],
                   source="sft", meta={})
    """

    id: str
    messages: list[dict[str, str]]
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        """The last user turn (what a prompt/response view shows)."""
        users = [m["content"] for m in self.messages[:-1] if m["role"] == "user"]
        return users[-1] if users else ""

    @property
    def response(self) -> str:
        return self.messages[-1]["content"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "messages": self.messages,
            "prompt": self.prompt,
            "response": self.response,
            "source": self.source,
            "meta": self.meta,
        }


def content_hash(records: Sequence[Problem | SFTExample]) -> str:
    """Short hash of records' full content, in order: names a dataset in manifests and summaries."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(json.dumps(record.to_dict(), sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]
