"""One small adapter per source: raw row (in the source's exact schema) -> ``Problem`` / ``SFTExample``.

Each adapter names its hub dataset (id, configs, splits) and converts one ``Record`` at a time,
raising a ``DataError`` that names the file, line and field when the row does not fit. The loader
(``mathsft.data.load``) does the reading, skipping, subsampling; the registry ``ADAPTERS`` maps the
``--dataset`` names to these classes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from mathsft.data.io import Record
from mathsft.data.schema import Problem, SFTExample
from mathsft.errors import MathsftError

PACKAGED = Path(__file__).parent / "packaged"
_LEVEL = re.compile(r"Level (\d+|\?)")
_ROLES = ("system", "user", "assistant")


def last_boxed(text: str) -> str | None:
    r"""Content of the last ``\boxed{...}`` (or ``\fbox{...}``, ``\boxed 5``), braces balanced.

    Escaped braces ``\{ \}`` are literal and do not open or close a group. ``None`` when there is
    no complete box.
    """
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = start + (len("\\boxed") if text.startswith("\\boxed", start) else len("\\fbox"))
    if i < len(text) and text[i] == " ":  # "\boxed 5": one token, up to space or $
        match = re.match(r" +([^\s$]+)", text[i:])
        return match.group(1) if match else None
    if i >= len(text) or text[i] != "{":
        return None
    depth = 0
    for j in range(i, len(text)):
        char = text[j]
        if char == "\\":
            continue
        if j > 0 and text[j - 1] == "\\" and char in "{}":
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


class Adapter:
    """Uniform interface of every source: hub coordinates plus per-row converters.

    ``configs[0]`` and ``default_split`` are what a hub load uses when none is given; ``streaming``
    sources are read as a stream (hub) or batch-wise (local Parquet) and never loaded whole.
    """

    name: ClassVar[str]
    hub_id: ClassVar[str | None] = None
    configs: ClassVar[tuple[str | None, ...]] = (None,)
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    default_split: ClassVar[str] = "test"
    streaming: ClassVar[bool] = False
    requires_limit: ClassVar[bool] = False
    gives_problems: ClassVar[bool] = True
    gives_sft: ClassVar[bool] = False
    # a copy inside the package (``mathsft/data/packaged/<name>/<split>.jsonl.gz``, with its licence), read
    # when the hub cannot be: only for ``configs[0]``
    packaged: ClassVar[bool] = False

    def packaged_file(self, config: str | None, split: str) -> Path | None:
        """The bundled copy of ``split`` (hub config ``config``), or None when there is none."""
        if not self.packaged or (config or self.configs[0]) != self.configs[0]:
            return None
        path = PACKAGED / self.name / f"{split}.jsonl.gz"
        return path if path.is_file() else None

    def problem(self, record: Record, split: str, index: int) -> Problem:
        raise MathsftError(f"{self.name} holds SFT examples, not problems: use load_sft_examples")

    def sft_examples(self, record: Record, split: str, index: int) -> list[SFTExample]:
        raise MathsftError(
            f"{self.name} is a problem dataset: training renders its problems through a prompt template "
            "(load_problems), it has no ready SFT examples"
        )


class GSM8K(Adapter):
    """``openai/gsm8k`` (configs ``main``, ``socratic``). A real row (test split, line 2)::

        {"question": "A robe takes 2 bolts of blue fiber and half that much white fiber.  How many bolts
                      in total does it take?",
         "answer": "It takes 2/2=<<2/2=1>>1 bolt of white fiber\\nSo the total amount of fabric is
                    2+1=<<2+1=3>>3 bolts of fabric\\n#### 3"}

    Gold is the text after ``####`` without commas; the solution drops the ``#### 3`` line and keeps the
    ``<<2/2=1>>`` calculator annotations: SFT with the calculator tool trains on them, everything else
    renders the solution without them (``mathsft.generation.calculator.strip_calls``).
    """

    name = "gsm8k"
    hub_id = "openai/gsm8k"
    configs = ("main", "socratic")
    packaged = True  # train + test of config "main", MIT licence (mathsft/data/packaged/gsm8k/LICENSE)

    def problem(self, record: Record, split: str, index: int) -> Problem:
        question = record.text("question")
        answer = record.text("answer")
        if "####" not in answer:
            raise record.error("answer", "has no '#### <final answer>' line")
        reasoning, _, gold = answer.rpartition("####")
        gold = gold.strip().replace(",", "")
        if not gold:
            raise record.error("answer", "the final answer after '####' is empty")
        return Problem(f"gsm8k/{split}/{index}", question, gold, reasoning.strip(), "gsm8k", {"split": split})


class MATH500(Adapter):
    """``HuggingFaceH4/MATH-500`` (test only). A real row (line 1)::

    {"problem": "Convert the point $(0,3)$ in rectangular coordinates to polar coordinates. ...",
     "solution": "We have that $r = \\sqrt{0^2 + 3^2} = 3.$ ... $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$",
     "answer": "\\left( 3, \\frac{\\pi}{2} \\right)", "subject": "Precalculus", "level": 2,
     "unique_id": "test/precalculus/807.json"}
    """

    name = "math500"
    hub_id = "HuggingFaceH4/MATH-500"
    splits = ("test",)

    def problem(self, record: Record, split: str, index: int) -> Problem:
        return Problem(
            id=record.text("unique_id"),
            problem=record.text("problem"),
            answer=record.text("answer", allow_number=True),
            solution=record.optional_text("solution"),
            source="math500",
            meta={"subject": record.text("subject"), "level": record.integer("level"), "split": split},
        )


class HendrycksMATH(Adapter):
    """Hendrycks MATH (``DigitalLearningGmbH/MATH-lighteval``; ``EleutherAI/hendrycks_math`` per subject,
    or the raw ``MATH/test/algebra/1.json`` files). A row in the source schema::

        {"problem": "How many vertical asymptotes does the graph of $y=\\frac{2}{x^2+x-6}$ have?",
         "level": "Level 3", "type": "Algebra",
         "solution": "The denominator ... factors into $x^2+x-6=(x-2)(x+3)$. ... the graph has $\\boxed{2}$
                      vertical asymptotes."}

    Gold is the last ``\\boxed{}`` of the solution; ``Level 3`` -> ``meta.level = 3`` (``Level ?`` -> None).
    """

    name = "math"
    hub_id = "DigitalLearningGmbH/MATH-lighteval"
    configs = ("default",)

    def problem(self, record: Record, split: str, index: int) -> Problem:
        solution = record.text("solution")
        gold = last_boxed(solution)
        if gold is None or not gold.strip():
            raise record.error("solution", "has no complete \\boxed{...} final answer")
        level_text = record.text("level")
        match = _LEVEL.fullmatch(level_text.strip())
        if match is None:
            raise record.error("level", f"expected 'Level N', got {level_text!r}")
        level = None if match.group(1) == "?" else int(match.group(1))
        meta = {"subject": record.text("type"), "level": level, "split": split}
        return Problem(f"math/{split}/{index}", record.text("problem"), gold.strip(), solution, "math", meta)


class OpenMathInstruct2(Adapter):
    """``nvidia/OpenMathInstruct-2``: 14M rows, so it is streamed (hub) or read batch-wise (Parquet).
    A row in the source schema::

        {"problem": "A bag contains 5 red, 6 green, 7 yellow, and 8 blue jelly beans. ... probability
                     that it is blue?",
         "generated_solution": "... The probability is $\\frac{8}{26} = \\boxed{\\frac{4}{13}}$.",
         "expected_answer": "\\frac{4}{13}", "problem_source": "augmented_math"}
    """

    name = "openmathinstruct2"
    hub_id = "nvidia/OpenMathInstruct-2"
    splits = ("train", "train_1M", "train_2M", "train_5M")
    default_split = "train"
    streaming = True
    requires_limit = True

    def problem(self, record: Record, split: str, index: int) -> Problem:
        return Problem(
            id=f"openmathinstruct2/{split}/{index}",
            problem=record.text("problem"),
            answer=record.text("expected_answer", allow_number=True),
            solution=record.optional_text("generated_solution"),
            source="openmathinstruct2",
            meta={"problem_source": record.optional_text("problem_source"), "split": split},
        )


class DeepScaleR(Adapter):
    """``agentica-org/DeepScaleR-Preview-Dataset`` (train). A row in the source schema::

    {"problem": "The operation $\\otimes$ is defined for all nonzero numbers by
                 $a \\otimes b = \\frac{a^{2}}{b}$. Determine
                 $[(1 \\otimes 2) \\otimes 3] - [1 \\otimes (2 \\otimes 3)]$.",
     "answer": "-\\frac{2}{3}", "solution": "1. **Apply the operation $\\otimes$ ..."}
    """

    name = "deepscaler"
    hub_id = "agentica-org/DeepScaleR-Preview-Dataset"
    splits = ("train",)
    default_split = "train"

    def problem(self, record: Record, split: str, index: int) -> Problem:
        return Problem(
            id=f"deepscaler/{split}/{index}",
            problem=record.text("problem"),
            answer=record.text("answer", allow_number=True),
            solution=record.optional_text("solution"),
            source="deepscaler",
            meta={"split": split},
        )


class OpenR1Math(Adapter):
    """``open-r1/OpenR1-Math-220k`` (configs ``default``, ``extended``, ``all``; train). A row, shortened::

        {"problem": "Find all real x with x^2 = 4.", "solution": "...", "answer": "\\pm 2",
         "uuid": "0f2b...", "source": "olympiads", "problem_type": "Algebra", "question_type": "math-word-problem",
         "generations": ["<think>...</think> ... $\\boxed{\\pm 2}$", "..."],
         "correctness_math_verify": [true, false], "is_reasoning_complete": [true, true],
         "finish_reasons": ["stop", "length"], "correctness_count": 1, "messages": [...]}

    As problems: one per row. As SFT candidates: each generation that math-verify judged correct and
    whose reasoning is complete, as a user (problem) / assistant (generation) pair.
    """

    name = "openr1"
    hub_id = "open-r1/OpenR1-Math-220k"
    configs = ("default", "extended", "all")
    splits = ("train",)
    default_split = "train"
    streaming = True
    gives_sft = True

    def problem(self, record: Record, split: str, index: int) -> Problem:
        meta = {
            "origin": record.optional_text("source"),
            "problem_type": record.optional_text("problem_type"),
            "question_type": record.optional_text("question_type"),
            "split": split,
        }
        if record.data.get("correctness_count") is not None:
            meta["correctness_count"] = record.integer("correctness_count")
        return Problem(
            id=record.text("uuid"),
            problem=record.text("problem"),
            answer=record.text("answer", allow_number=True),
            solution=record.optional_text("solution"),
            source="openr1",
            meta=meta,
        )

    def sft_examples(self, record: Record, split: str, index: int) -> list[SFTExample]:
        problem = self.problem(record, split, index)
        generations = record.list_of("generations", (str,))
        verified = record.list_of("correctness_math_verify", (bool,))
        complete = record.list_of("is_reasoning_complete", (bool,))
        finish = (
            record.list_of("finish_reasons", (str,)) if record.data.get("finish_reasons") is not None else []
        )
        for field, values in (("correctness_math_verify", verified), ("is_reasoning_complete", complete)):
            if len(values) != len(generations):
                raise record.error(field, f"has {len(values)} entries for {len(generations)} generations")
        examples = []
        for i, text in enumerate(generations):
            if verified[i] is True and complete[i] is True and text:
                meta = {"uuid": problem.id, "generation": i, "answer": problem.answer, "split": split}
                if i < len(finish) and finish[i] is not None:
                    meta["finish_reason"] = finish[i]
                messages = [
                    {"role": "user", "content": problem.problem},
                    {"role": "assistant", "content": text},
                ]
                examples.append(SFTExample(f"{problem.id}/{i}", messages, "openr1", meta))
        return examples


class SFTFile(Adapter):
    """Ready SFT files, one form per row:

    - CS336: ``{"prompt": "What is 2+3?", "response": "2+3=5. The final answer is $\\boxed{5}$."}``
    - TRL conversational: ``{"messages": [{"role": "user", "content": ...}, {"role": "assistant", ...}]}``
    - TRL prompt/completion: ``{"prompt": "...", "completion": "..."}`` (or both as message lists)

    ``SFTExample.to_dict()`` rows (what ``mathsft data prepare`` writes) read back through ``messages``.
    """

    name = "sft"
    gives_problems = False
    gives_sft = True

    def sft_examples(self, record: Record, split: str, index: int) -> list[SFTExample]:
        data = record.data
        if "messages" in data:
            messages = _messages(record, "messages")
        elif "completion" in data:
            if isinstance(data.get("prompt"), list):
                messages = _messages(record, "prompt", final_assistant=False) + _messages(
                    record, "completion"
                )
            else:
                messages = _pair(record.text("prompt"), record.text("completion"))
        elif "response" in data:
            messages = _pair(record.text("prompt"), record.text("response"))
        else:
            raise record.error(
                None,
                "not an SFT row: expected 'messages', 'prompt'+'completion' or 'prompt'+'response' "
                f"(row has: {', '.join(sorted(data)) or 'no fields'})",
            )
        if not any(m["role"] == "user" for m in messages):
            raise record.error("messages", "has no user turn")
        meta = record.meta()
        row_id = data.get("id")
        example_id = str(row_id) if isinstance(row_id, str | int) else f"sft/{split}/{index}"
        return [SFTExample(example_id, messages, str(data.get("source") or "sft"), meta)]


class NormalizedProblems(Adapter):
    """Problems already in mathsft's normalized form (what ``mathsft data prepare`` writes)::

    {"id": "gsm8k/test/0", "problem": "Janet’s ducks lay 16 eggs per day. ...", "answer": "18",
     "solution": "...", "source": "gsm8k", "meta": {"split": "test"}}
    """

    name = "problems"

    def problem(self, record: Record, split: str, index: int) -> Problem:
        return Problem(
            id=record.text("id", allow_number=True),
            problem=record.text("problem"),
            answer=record.text("answer", allow_number=True),
            solution=record.optional_text("solution"),
            source=record.optional_text("source"),
            meta=record.meta(),
        )


class Synthetic(NormalizedProblems):
    """The project's synthetic GSM-style set (``mathsft.data.synthetic``): generated when no path is
    given, otherwise read back from a prepared file in the normalized form."""

    name = "synthetic"


def _pair(prompt: str, response: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]


def _messages(record: Record, field: str, final_assistant: bool = True) -> list[dict[str, str]]:
    turns = record.list_of(field, (dict,))
    if not turns:
        raise record.error(field, "is empty")
    messages = []
    for i, turn in enumerate(turns):
        if turn is None or turn.get("role") not in _ROLES or not isinstance(turn.get("content"), str):
            raise record.error(field, f"turn {i} needs a role ({'/'.join(_ROLES)}) and a string content")
        messages.append({"role": turn["role"], "content": turn["content"]})
    if final_assistant and messages[-1]["role"] != "assistant":
        raise record.error(field, "the last turn must be the assistant's (the training target)")
    return messages


ADAPTERS: dict[str, type[Adapter]] = {
    cls.name: cls
    for cls in (
        GSM8K,
        MATH500,
        HendrycksMATH,
        OpenMathInstruct2,
        DeepScaleR,
        OpenR1Math,
        SFTFile,
        NormalizedProblems,
        Synthetic,
    )
}
_ALIASES = {
    "hendrycksmath": "math",
    "competitionmath": "math",
    "openr1math220k": "openr1",
    "deepscalerpreview": "deepscaler",
}


def get_adapter(name: str) -> Adapter:
    """The adapter for a ``--dataset`` name (case, ``-`` and ``_`` ignored: ``MATH-500`` is ``math500``)."""
    key = re.sub(r"[-_\s]", "", name.lower())
    key = _ALIASES.get(key, key)
    if key not in ADAPTERS:
        raise MathsftError(f"unknown dataset {name!r}; known: {', '.join(ADAPTERS)}")
    return ADAPTERS[key]()
