r"""Turn a graded teacher completion into an SFT target.

Three configurable steps, all pure: split R1-style reasoning (``<think>…</think>`` inline, or the
separate ``reasoning_content`` channel) and keep it as ``<think>`` block or strip it; drop lines that
echo the instructions ("I will put the final answer in \boxed{}"); end the target with one normalized
final-answer line (``The final answer is $\boxed{18}$.``) carrying the answer the grader accepted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
# a last line that only announces the answer ("#### 18", "Final Answer: $18$", "The answer is 18.")
MARKER_RE = re.compile(
    r"(?i)^\W*(####|(the )?final answer( is)?|(so |thus |therefore |hence )?(the )?answer( is)?)\W*"
)


def split_think(text: str) -> tuple[str | None, str]:
    """``(reasoning, answer)`` of a completion; reasoning is None when there is no think block.

    R1 chat templates often open ``<think>`` in the prompt, so a lone ``</think>`` also splits; an
    unclosed ``<think>`` (a truncated completion) is all reasoning and no answer.
    """
    if THINK_CLOSE in text:
        head, _, tail = text.rpartition(THINK_CLOSE)
        head = head.strip()
        if head.startswith(THINK_OPEN):
            head = head[len(THINK_OPEN) :]
        return head.strip(), tail.strip()
    stripped = text.strip()
    if stripped.startswith(THINK_OPEN):
        return stripped[len(THINK_OPEN) :].strip(), ""
    return None, stripped


def drop_lines(text: str, patterns: Sequence[str | re.Pattern[str]]) -> tuple[str, int]:
    """Remove the lines matching any pattern (``re.search``); returns the text and how many were dropped."""
    compiled = [re.compile(p) if isinstance(p, str) else p for p in patterns]
    kept, dropped = [], 0
    for line in text.splitlines():
        if any(p.search(line) for p in compiled):
            dropped += 1
        else:
            kept.append(line)
    return "\n".join(kept).strip(), dropped


def unbox(text: str) -> str:
    r"""``\boxed{X}`` -> ``X`` everywhere in ``text`` (balanced braces), so only the final line is boxed."""
    out, i = [], 0
    while (start := text.find("\\boxed{", i)) >= 0:
        depth, j = 0, start + len("\\boxed")
        while j < len(text):
            if text[j] == "{" and text[j - 1] != "\\":
                depth += 1
            elif text[j] == "}" and text[j - 1] != "\\":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        if depth:  # unbalanced: leave the rest alone
            break
        out.append(text[i:start] + text[start + len("\\boxed{") : j])
        i = j + 1
    out.append(text[i:])
    return "".join(out)


def normalize_final_answer(text: str, answer: str, answer_line: str) -> str:
    """End ``text`` with ``answer_line`` (``{answer}`` filled in), replacing a last line that only announces it.

    A last line that also carries work ("so 16 - 7 = \boxed{9}") is kept, unboxed, and the normalized
    line is appended, so the target has exactly one box: the final one.
    """
    final = answer_line.replace("{answer}", answer)
    lines = text.rstrip().splitlines()
    if lines:
        last = unbox(lines[-1])
        rest = MARKER_RE.sub("", last, count=1)
        rest = rest.replace(answer, "", 1) if answer else rest
        if MARKER_RE.match(last) and not re.sub(r"[\s$.,:;()\\{}]", "", rest):
            lines.pop()
        else:
            lines[-1] = last
    body = "\n".join(unbox(line) for line in lines).rstrip()
    return f"{body}\n\n{final}" if body else final


def clean_trace(
    response: str,
    reasoning: str | None,
    answer: str | None,
    *,
    think: str = "keep",
    drop_patterns: Sequence[str] = (),
    box_answer: bool = True,
    answer_line: str = r"The final answer is $\boxed{{answer}}$.",
) -> str:
    """The assistant target for one accepted completion (``answer``: the grader's extracted answer)."""
    inline_reasoning, body = split_think(response)
    reasoning = (reasoning or "").strip() or inline_reasoning
    body, _ = drop_lines(body, drop_patterns)
    if reasoning:
        reasoning, _ = drop_lines(reasoning, drop_patterns)
    if box_answer and answer:
        body = normalize_final_answer(body, answer, answer_line)
    if think == "keep" and reasoning:
        return f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n\n{body}"
    return body
