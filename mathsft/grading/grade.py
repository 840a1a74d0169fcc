"""``grade``: extract the final answer and compare it with the gold; ``grade_many`` for batches."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from mathsft.grading.equivalence import check_profile, compare
from mathsft.grading.extract import check_style, extract, gold_answer, stated_number
from mathsft.grading.normalize import canonical
from mathsft.grading.timeout import DEFAULT_TIMEOUT_S, map_items
from mathsft.grading.values import is_plain_number

# answer sources that are graded but are not a stated answer (no format success)
UNFORMATTED_SOURCES = (None, "last-number", "whole")


@dataclass(frozen=True)
class Grade:
    """One verdict. ``extracted`` is None when no final answer was found (a format failure);
    ``reason`` names the path that decided (``exact``, ``numeric``, ``symbolic:random-points``, ...);
    ``source`` says where the answer was found (``boxed``, ``####``, ``phrase``, ``tag``, ``whole``,
    ``last-number``): a response counts as well formatted only when it marked its answer, not when its
    last number was taken or when it is nothing but an expression (``whole``: graded, but a format reward
    must not pay for skipping the box or the answer phrase)."""

    correct: bool
    extracted: str | None
    reason: str
    profile: str
    source: str | None = None

    @property
    def formatted(self) -> bool:
        return self.source not in UNFORMATTED_SOURCES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def number_fallback(style: str, gold: str) -> str | None:
    """Where the last number may stand for the answer: anywhere (gsm8k), the final sentence (auto with a
    plain-number gold), or nowhere."""
    if style == "gsm8k":
        return "anywhere"
    if style == "auto" and is_plain_number(canonical(gold)):
        return "final-sentence"
    return None


def grade(response: str, gold: str, profile: str = "lenient", style: str = "auto") -> Grade:
    """Grade one response against its gold answer (see ``extract`` and ``equivalence`` for the rules)."""
    check_profile(profile)
    check_style(style)
    gold = gold_answer(gold)
    extracted, source = extract(response, number_fallback(style, gold))
    if extracted is None:
        return Grade(False, None, "no-answer", profile)
    correct, reason = compare(extracted, gold, profile)
    number = stated_number(extracted) if not correct and is_plain_number(canonical(gold)) else None
    if number is not None and number != extracted:  # "The answer is: she has 18 apples."
        extracted = number
        correct, reason = compare(number, gold, profile)
        reason += ":stated-in-words"
    return Grade(correct, extracted, reason, profile, source)


def grade_many(
    pairs: Iterable[tuple[str, str]],
    workers: int = 1,
    profile: str = "lenient",
    style: str = "auto",
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[Grade]:
    """Grade ``(response, gold)`` pairs, order preserved. ``workers > 1`` uses that many child processes,
    each item under a hard ``timeout_s`` (an overrun is graded incorrect with reason ``timeout``)."""
    check_profile(profile)
    check_style(style)
    pairs = [(str(response), gold_answer(str(gold))) for response, gold in pairs]
    if workers <= 1 or len(pairs) < 2:
        return [grade(response, gold, profile, style) for response, gold in pairs]
    options = {"profile": profile, "style": style}
    results = map_items(pairs, options, workers, timeout_s + 1.0)
    grades = []
    for (response, gold), result in zip(pairs, results, strict=True):
        if result is None or "error" in result:
            extracted, source = extract(response, number_fallback(style, gold))
            reason = "timeout" if result is None else result["error"]
            grades.append(Grade(False, extracted, reason, profile, source))
        else:
            grades.append(Grade(**result))
    return grades
