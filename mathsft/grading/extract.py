"""Pull the final answer out of a model response. Pure string work, linear in the response length; the
phrase and last-number searches look at the last ``TAIL_CHARS`` characters first, where the answer is.

Order of precedence inside the answer part of a response (the text after ``</think>``, or inside the last
``<answer>...</answer>``): the last ``\\boxed{}``/``\\fbox{}``, then GSM8K's ``#### N``, then an answer
phrase ("The final answer is X", Minerva's "Final Answer: The final answer is $X$. I hope it is correct.",
"Answer: X", "the answer is \\( X \\)", or display math ``\\[ X \\]``/``$$ X $$`` under a line that is only
"Answer" / "**Final Answer**" / "### Answer"), then a response that is only a math
expression (``$$(1, +\\infty)$$``, ``\\frac{10}{9}``: source ``whole``), then - only when the style asks for
it - the last number. An explicit phrase therefore beats a later number ("The answer is 12. Check: 12 + 3
= 15"), and a phrase that checks an answer states none ("Let me verify the answer: 48 + 24 = 72").
Several boxes separated only by connectors (``\\boxed{1}, \\boxed{2}``,
``\\boxed{(2,2)} \\quad\\text{and}\\quad \\boxed{(6,2)}``, ``$\\boxed{2}$ or $\\boxed{-2}$``) are one answer,
a list, also when each box is labelled (``$x=\\boxed{1}$ and $x=\\boxed{2}$``; distinct labels
``$x=\\boxed{1}$, $y=\\boxed{2}$`` keep them: a tuple); a box after words ("Correcting the sign:
\\boxed{4}") is the answer alone.

Styles: ``math`` never falls back to the last number; ``gsm8k`` takes the last number anywhere in the
answer part; ``auto`` does only when the gold answer is a plain number, and then only from the final
sentence ("... so she has 18 apples."), so a truncated MATH derivation ending in "\\sin B = 2\\sin A. We
can use the Law of Cosines" has no answer. ``grade`` knows the gold; ``extract_answer(text, "auto")``
alone has none and so behaves like ``math``. A closing remark ("I hope this helps!") is not the final
sentence. Against a plain-number gold, ``grade`` also reads an answer stated in words around one number
("The answer is: she has 18 apples.", ``\\boxed{18 \\text{ bags}}``, "Il costo è di \\$25", with a decimal
comma "\\$7,50") as that number (``stated_number``). A gold given as a whole solution (NuminaMath's boxed
solutions, "So the answer is: \\[ \\boxed{...} \\]", Minerva's final statement) stands for its final answer,
taken the same way (``gold_answer``).
"""

from __future__ import annotations

import re

from mathsft.grading.normalize import decimal_comma

STYLES = ("auto", "gsm8k", "math")
MAX_ANSWER_CHARS = 2000  # an "answer" longer than this is a runaway box, not an answer
TAIL_CHARS = 4000  # a final statement or final sentence is looked for in this many last characters

_BOX_COMMANDS = (r"\boxed", r"\fbox")
_ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL | re.IGNORECASE)
_GSM8K = re.compile(r"####\s*([^\n]+)")
# "answer is", "Final Answer:", "**Answer:**", or "answer" closing a heading line above display math; the
# pattern opens with the word itself, so the search skips ahead to it (a third of the time of a pattern
# opening with the optional "final"/"the" before it, which only the check for "verify the answer" reads).
_PHRASE = re.compile(
    r"\banswer(?:\s*\**\s*(?:is\b|:)\s*\**\s*:?|(?P<heading>[ \t]*:?[ \t]*\**[ \t]*:?[ \t]*(?=\n)))",
    re.IGNORECASE,
)
_HEADING_START = re.compile(r"[ \t]*(?:\#+[ \t]*)?\**[ \t]*(?:final[ \t]+)?", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])-?\d(?:[\d,]*\d)?(?:\.\d+)?(?:/\d+)?")
_SENTENCE_END = re.compile(r"\.(?=\s|$)|\bI hope\b|\n")
_CLOSING = re.compile(
    r"(?:^|(?<=[.!?\n]))\s*(?:I hope|Hope (?:this|that|it)|Let me know|Feel free)\b[^\n]*$", re.I
)
# An answer stated in words around one number: words, currency, \text{} and punctuation, no math.
# Words in Latin or Cyrillic script ("Il costo è di $25", "Итого 18 рублей"); a lone letter is a variable
# (x, π, α), except a, I and accented ones (è, à).
_LETTERS = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u017f\u0400-\u04ff"
_PROSE = re.compile(
    rf"(?:\s|(?<![{_LETTERS}\d])(?:[{_LETTERS}]{{2,}}|[aAI]|[\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u017f])(?![{_LETTERS}\d])"
    r"|[$,.;:?'\"()*{}]|\\[$,;! ]|\\text\b|\\mbox\b)*"
)
_MATH_SPAN = re.compile(r"^\s*(\$\$?|\\\(|\\\[)(.*?)((?<!\\)\$\$?|\\\)|\\\])", re.DOTALL)  # \$ is a dollar
_UNBRACED = re.compile(r"[^\s$]+")
_PERCENT_AFTER = re.compile(r"[ \t]*(?:\\?%|per\s?cent\b|pct\b)", re.IGNORECASE)
MAX_JOINED_BOXES = 16
_BOX_LABEL = re.compile(r"(?<![A-Za-z\\])([A-Za-z](?:_\{?\w{1,3}\}?)?)\s*=\s*$")
MAX_JOIN_GAP = 60  # characters between two boxes that together state several answers
# What may stand between boxes that together state several answers: commas, "and"/"or", spacing, math
# delimiters; never words, so "\boxed{3}, then correcting: \boxed{4}" is one answer.
_BOX_JOIN = re.compile(
    r"(?:\s|\$|\\[()\[\]]|\\\\|[,;&]|\\q?quad\b|\\[,;: !]|~|\b(?:and|or)\b|"
    r"\\(?:text|mbox|textnormal)\s*\{\s*,?\s*(?:and|or)?\s*,?\s*\})*(?:[,;&]|\band\b|\bor\b|\\q?quad\b)"
    r"(?:\s|\$|\\[()\[\]]|\\\\|[,;&]|\\q?quad\b|\\[,;: !]|~|\b(?:and|or)\b|"
    r"\\(?:text|mbox|textnormal)\s*\{\s*,?\s*(?:and|or)?\s*,?\s*\})*"
)
# "Let me verify the answer: 48 + 24 = 72" checks an answer; it does not state one.
_CHECKING = re.compile(
    r"\b(?:verify|verifying|check|checking|confirm|confirming|double[- ]check|recheck|validate|test|plug)\w*"
    r"\s+(?:the|our|my|this)?\s*(?:final\s+)?$",
    re.IGNORECASE,
)
# A response that is only an expression ("$$(1, +\infty)$$", "\frac{10}{9}"): no words outside commands.
_WHOLE_SPAN = re.compile(r"^(\$\$?|\\\[|\\\()([^$]*?)(\$\$?|\\\]|\\\))$", re.DOTALL)
_WORD = re.compile(r"[A-Za-z]{2,}")
_MATH_MARK = re.compile(r"[\d$\\]")
# a response that ends inside a computation ("3 + 5 =", "8 *", an open calculator call "= <<3+5")
_UNFINISHED = re.compile(r"(?:[-+*/×÷^=]|<<[^<>]*)\s*$")
MAX_WHOLE_CHARS = 200
_FINAL_STATEMENT = re.compile(r"\bfinal answer\b", re.IGNORECASE)


def answer_part(text: str) -> tuple[str | None, bool]:
    """The part of a response that holds the final answer (after ``</think>``, inside the last
    ``<answer>``) and whether it came from an answer tag.

    A response that opened ``<think>`` and never closed it is still thinking: it has no final answer.
    """
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    elif "<think>" in text:
        return None, False
    tags = _ANSWER_TAG.findall(text)
    if tags:
        return tags[-1], True
    return text, False


def last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` / ``\\boxed x`` / ``\\fbox{...}`` (balanced braces),
    joined with the boxes just before it when only connectors stand between them (``\\boxed{1}, \\boxed{2}``,
    ``\\boxed{(2,2)} \\quad\\text{and}\\quad \\boxed{(6,2)}``, ``$\\boxed{2}$ or $\\boxed{-2}$``): several
    answers.
    A box after words ("then, correcting: \\boxed{4}") is the answer alone."""
    found = _box_before(text, len(text))
    if found is None:
        return None
    start, _, content = found
    contents, starts = [content], [start]
    for _ in range(MAX_JOINED_BOXES - 1):
        previous = _box_before(text, start)
        gap = text[previous[1] : start] if previous is not None else ""
        label = _BOX_LABEL.search(gap)
        gap = gap[: label.start()] if label else gap  # "$x=\boxed{1}$ and $x=\boxed{2}$": x= names the box
        if previous is None or len(gap) > MAX_JOIN_GAP or not _BOX_JOIN.fullmatch(gap):
            break
        start, _, content = previous
        contents.insert(0, content)
        starts.insert(0, start)
    if len(contents) > 1:
        labels = [_BOX_LABEL.search(text, max(0, s - 16), s) for s in starts]
        names = [label.group(1) if label else None for label in labels]
        if all(names) and len(set(names)) == len(names):  # x=\boxed{1}, y=\boxed{2}: a labelled tuple
            contents = [f"{name}={content}" for name, content in zip(names, contents, strict=True)]
    return ", ".join(dict.fromkeys(contents))


def _box_before(text: str, end: int) -> tuple[int, int, str] | None:
    """``(start, end, content)`` of the last complete, non-empty box that starts before ``end``."""
    for _ in range(64):  # bounded: skip at most this many incomplete boxes from the end
        start, command = max((text.rfind(c, 0, end), c) for c in _BOX_COMMANDS)
        if start < 0:
            return None
        found = _box_content(text, start + len(command))
        if found is not None and found[0].strip():
            return start, found[1], found[0].strip()
        end = start
    return None


def _box_content(text: str, i: int) -> tuple[str, int] | None:
    """The box's content and the index just after it."""
    if i < len(text) and text[i].isalpha():  # \boxedfoo is another command
        return None
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text):
        return None
    if text[i] != "{":  # "\boxed 5": up to the next space or math delimiter
        match = _UNBRACED.match(text, i)
        return (match.group(0), match.end()) if match else None
    depth, j = 0, i
    while j < len(text):
        char = text[j]
        if char == "\\":
            j += 2  # escaped brace or command: skip the next character
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j], j + 1
        j += 1
    return None


def _phrase_answer(text: str) -> str | None:
    # Only the last statements matter: the tail first, the whole text only when the tail has none.
    if "nswer" not in text and "NSWER" not in text:
        return None
    tail_start = max(0, len(text) - TAIL_CHARS)
    matches = list(_PHRASE.finditer(text, tail_start)) or (list(_PHRASE.finditer(text)) if tail_start else [])
    values = []
    for m in reversed(matches):
        following = text[m.end() : m.end() + MAX_ANSWER_CHARS + 10]
        if m.group("heading") is not None and not _is_heading(text, m.start(), following):
            continue
        if not _CHECKING.search(text, max(0, m.start() - 40), m.start()):
            value = _clip_value(following)
            if value:
                values.insert(0, value)
                if len(values) == 3:  # enough to recognize a loop
                    break
    if not values:
        return None
    last = values[-1]
    # A looping response cut off mid-answer ("The answer is 18. The answer is 18. The answer is 1"): the
    # unfinished last statement is a prefix of the one the loop repeats, which is the answer.
    loop = len(values) > 2 and values[-2] == values[-3] != last and values[-2].startswith(last)
    if loop and text.rstrip().endswith(last):
        return values[-2]
    return last


def _is_heading(text: str, start: int, following: str) -> bool:
    """ "Answer" alone on its line ("### Final Answer", "**Answer:**") states the display math below it."""
    line_start = text.rfind("\n", 0, start) + 1
    return bool(_HEADING_START.fullmatch(text, line_start, start)) and bool(_MATH_SPAN.match(following))


def _clip_value(value: str) -> str:
    """The answer after a phrase: a leading math span (with a percent sign or word just after it: ``$28$ %``),
    else up to the end of the sentence."""
    span = _MATH_SPAN.match(value)
    if span:
        percent = _PERCENT_AFTER.match(value, span.end())
        return span.group(2).strip() + ("%" if percent else "")
    end = _SENTENCE_END.search(value)
    value = value[: end.start()] if end else value
    return value.strip().strip("*").strip()


def _final_sentence(text: str) -> str:
    """What follows the last newline or the last period with no digit on either side (``3.5`` and ``18.``
    end no sentence), found from the end."""
    text = text.rstrip().rstrip(".").rstrip()
    start = text.rfind("\n") + 1
    dot = len(text)
    while (dot := text.rfind(".", start, dot)) >= 0:
        if not (dot > 0 and text[dot - 1].isdigit()) and not (
            dot + 1 < len(text) and text[dot + 1].isdigit()
        ):
            return text[dot + 1 :]
    return text[start:]


def _drop_closing(text: str) -> str:
    """``... 18 lollipops.\n\nI hope this helps!``: closing remarks (in the last lines) dropped."""
    for _ in range(3):
        line_start = text.rstrip().rfind("\n") + 1
        last = _CLOSING.sub("", text[line_start:])
        if last == text[line_start:]:
            break
        text = text[:line_start] + last
    return text


def _last_number(text: str, final_sentence: bool = False) -> str | None:
    text = text[-TAIL_CHARS:]  # the last number lies in the tail; so does the final sentence's
    if _UNFINISHED.search(text):  # cut off inside a computation: its numbers are operands, not a result
        return None
    if final_sentence:
        text = _final_sentence(_drop_closing(text))
    last = None
    for last in _NUMBER.finditer(text):  # noqa: B007 - we want the final match
        pass
    return last.group(0) if last else None


def extract(text: str, number_fallback: str | None) -> tuple[str | None, str | None]:
    """The final answer of ``text`` and where it came from (``boxed``, ``####``, ``phrase``, ``tag``,
    ``whole`` (the response is only an expression) or ``last-number``), or ``(None, None)``.
    ``number_fallback`` is None (off), ``"anywhere"`` or ``"final-sentence"`` (where the last number may
    be taken from). The source lets a report tell a response that stated its answer from one whose last
    number was guessed to be it."""
    part, tagged = answer_part(text)
    if part is None:
        return None, None
    for source, finder in (("boxed", last_boxed), ("####", _gsm8k_answer), ("phrase", _phrase_answer)):
        found = finder(part)
        if found:
            answer = _sized(found)
            return answer, source if answer is not None else None
    if tagged:  # "<answer> 42 </answer>": the tag's content is the answer
        answer = _sized(part)
        return answer, "tag" if answer is not None else None
    whole = _whole_expression(part)
    if whole is not None:
        return whole, "whole"
    if number_fallback is None:
        return None, None
    number = _last_number(part, final_sentence=number_fallback == "final-sentence")
    return number, "last-number" if number is not None else None


def _whole_expression(text: str) -> str | None:
    """The response itself when it is only a math expression (``$\\frac13$``, ``\\frac{10}{9}``, ``x = 5``),
    else None. It must look like mathematics - math delimiters, a LaTeX command or a digit - so a bare
    "x" is no answer; a plain number is left to the last-number fallback, whose rules it follows; so is
    a computation cut off or chained ("2+2 = 4, 4+4 = 8, 8+8 =": more than one ``=``, or a trailing
    operator)."""
    text = text.strip().rstrip(".").strip()
    if not text or len(text) > MAX_WHOLE_CHARS or not _MATH_MARK.search(text) or _NUMBER.fullmatch(text):
        return None
    span = _WHOLE_SPAN.match(text)
    if span and {span.group(1), span.group(3)} in ({"$"}, {"$$"}, {"\\[", "\\]"}, {"\\(", "\\)"}):
        text = span.group(2).strip()
    elif "$" in text or "\n" in text:
        return None
    if not text or _WORD.search(re.sub(r"\\[a-zA-Z]+", " ", text)):
        return None
    if text.count("=") > 1 or text.endswith(("=", "+", "-", "*", "/", ",", "^", "\\")):
        return None
    return text


def gold_answer(gold: str) -> str:
    """A gold given as a whole solution (with ``\\boxed{}``, ``####`` or Minerva's "Final Answer: The final
    answer is $X$") stands for its final answer, taken the same way as a response's; any other gold is the
    answer itself."""
    markers = ("\\boxed", "\\fbox", "####", "</think>")
    if any(marker in gold for marker in markers) or _FINAL_STATEMENT.search(gold):
        answer, _ = extract(gold, None)
        if answer is not None:
            return answer
    return gold


def stated_number(answer: str) -> str | None:
    """The number of an answer stated in words around it ("Janet makes $18 every day", "18 \\text{ bags}",
    "18, so she makes $18"): every number in it the same and the rest prose, else None."""
    numbers = {_number_text(m.group(0)) for m in _NUMBER.finditer(answer)}
    if len(numbers) != 1 or not _PROSE.fullmatch(_NUMBER.sub(" ", answer)):
        return None
    return numbers.pop()


def _number_text(number: str) -> str:
    """``1,000`` -> ``1000``; ``7,50`` (a decimal comma) -> ``7.50``."""
    number = decimal_comma(number)
    return number.replace(",", "")


def _gsm8k_answer(text: str) -> str | None:
    start = text.rfind("####")
    match = _GSM8K.match(text, start) if start >= 0 else None
    return match.group(1).strip() if match else None


def _sized(answer: str) -> str | None:
    answer = answer.strip()
    if not answer or len(answer) > MAX_ANSWER_CHARS:
        return None
    return answer


def check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"unknown extraction style {style!r}; choose one of {', '.join(STYLES)}")


def extract_answer(text: str, style: str = "auto") -> str | None:
    """The final answer in a model response (see the module docstring for the rules), or None."""
    check_style(style)
    return extract(text, "anywhere" if style == "gsm8k" else None)[0]
