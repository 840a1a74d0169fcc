"""Named prompt templates: how a ``Problem`` becomes what the model sees, in eval, traces and SFT alike.

One function, ``build_prompt``, renders every template, so training prompts and eval prompts cannot drift
apart. A template is chat messages (rendered later with the model's chat template) or, with ``chat=False``,
one raw string. Custom templates are YAML files with the same fields as ``PromptTemplate``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from mathsft.data.schema import Problem
from mathsft.errors import MathsftError
from mathsft.generation.base import Prompt
from mathsft.generation.calculator import normalize_calls, strip_calls

QWEN_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
NEMO_INSTRUCTION = (
    "Solve the following math problem. Make sure to put the answer (and only answer) inside \\boxed{}."
)
R1_ZERO_PREAMBLE = (
    "A conversation between User and Assistant. The User asks a question, and the Assistant solves it. "
    "The Assistant first thinks about the reasoning process in the mind and then provides the User with "
    "the answer. The reasoning process is enclosed within <think> </think> and answer is enclosed within "
    "<answer> </answer> tags, respectively, i.e., <think> reasoning process here </think> "
    "<answer> answer here </answer>."
)


@dataclass(frozen=True)
class PromptTemplate:
    """``user`` holds the placeholder ``{problem}``; ``fewshot`` > 0 prepends worked exemplars. ``system``:
    None keeps the chat template's default system prompt, "" sends an empty system turn instead. ``stop``:
    strings every run with the template stops at, on top of the run's own (raw-text k-shot prompts go on
    to write the next "Question:", whose answer would be graded)."""

    name: str
    user: str
    system: str | None = None
    chat: bool = True
    fewshot: int = 0
    stop: tuple[str, ...] = ()

    def render(self, problem: str) -> str:
        # str.replace, not str.format: templates contain literal braces (\\boxed{})
        return self.user.replace("{problem}", problem)

    def digest(self) -> str:
        """Identifies the template's text, so eval can warn when it differs from what SFT trained on
        (the stop strings are not text the model sees)."""
        fields = {k: v for k, v in asdict(self).items() if k != "stop"}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


TEMPLATES: dict[str, PromptTemplate] = {
    t.name: t
    for t in (
        # Qwen2.5-Math's evaluation prompt, in the user turn (as TRL / open-r1 recipes do)
        PromptTemplate("qwen-boxed", user="{problem}\n" + QWEN_INSTRUCTION),
        # NeMo-Skills / NeMo RL's math prompt
        PromptTemplate("nemo", user=NEMO_INSTRUCTION + "\n\n{problem}"),
        # DeepSeek-R1-Zero's template, raw text (CS336's r1_zero prompt)
        PromptTemplate(
            "r1-zero", user=R1_ZERO_PREAMBLE + "\nUser: {problem}\nAssistant: <think>", chat=False
        ),
        # Wei et al. chain-of-thought for GSM8K: 8 worked exemplars, then the question
        PromptTemplate("gsm8k-8shot", user="Question: {problem}\nAnswer:", fewshot=8, stop=("Question:",)),
        PromptTemplate("plain", user="{problem}"),
        # The problem alone after an empty system turn, which overrides a chat template's default system
        # prompt (SmolLM2's adds 16 tokens): the shortest prompt, for training budgets counted in tokens
        PromptTemplate("bare", user="{problem}", system=""),
    )
}

# The eight chain-of-thought exemplars of Wei et al. (2022), used by lm-eval's gsm8k-cot. They are not
# GSM8K test problems; ``fewshot_exemplars`` draws from a train file instead when one is given.
WEI_EXEMPLARS: tuple[tuple[str, str, str], ...] = (
    (
        "There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are "
        "done, there will be 21 trees. How many trees did the grove workers plant today?",
        "There are 15 trees originally. Then there were 21 trees after some more were planted. So there "
        "must have been 21 - 15 = 6.",
        "6",
    ),
    (
        "If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?",
        "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5.",
        "5",
    ),
    (
        "Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left in "
        "total?",
        "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After "
        "eating 35, they had 74 - 35 = 39.",
        "39",
    ),
    (
        "Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many "
        "lollipops did Jason give to Denny?",
        "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny "
        "20 - 12 = 8.",
        "8",
    ),
    (
        "Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys does "
        "he have now?",
        "Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. "
        "5 + 4 = 9.",
        "9",
    ),
    (
        "There were nine computers in the server room. Five more computers were installed each day, from "
        "monday to thursday. How many computers are now in the server room?",
        "There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 "
        "computers were added. 9 + 20 is 29.",
        "29",
    ),
    (
        "Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How "
        "many golf balls did he have at the end of wednesday?",
        "Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After losing "
        "2 more, he had 35 - 2 = 33 golf balls.",
        "33",
    ),
    (
        "Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
        "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has "
        "23 - 15 dollars left. 23 - 15 is 8.",
        "8",
    ),
)


def get_template(name: str | PromptTemplate) -> PromptTemplate:
    """A built-in template by name, or a YAML file with ``PromptTemplate``'s fields."""
    if isinstance(name, PromptTemplate):
        return name
    if name in TEMPLATES:
        return TEMPLATES[name]
    path = Path(name)
    if path.suffix in {".yaml", ".yml"} and path.is_file():
        return _template_from_file(path)
    raise MathsftError(
        f"unknown prompt template {name!r}: use one of {', '.join(TEMPLATES)} or a .yaml template file"
    )


def _template_from_file(path: Path) -> PromptTemplate:
    try:
        fields = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise MathsftError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(fields, dict) or "user" not in fields:
        raise MathsftError(f"{path}: a prompt template needs a mapping with at least a 'user' field")
    known = set(PromptTemplate.__dataclass_fields__) - {"name"}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise MathsftError(f"{path}: unknown template field(s) {unknown}; known: {sorted(known)}")
    if "{problem}" not in str(fields["user"]):
        raise MathsftError(f"{path}: field 'user' must contain the placeholder {{problem}}")
    stop = fields.get("stop", [])
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise MathsftError(f"{path}: field 'stop' must be a list of non-empty strings, got {stop!r}")
    return PromptTemplate(name=str(path), **(fields | {"stop": tuple(stop)}))


def fewshot_exemplars(
    k: int, train: list[Problem] | None = None, exclude: set[str] | None = None, seed: int = 0
) -> list[tuple[str, str]]:
    """``k`` (question, worked answer) pairs: drawn by seed from ``train`` problems (never one whose text
    is in ``exclude``, i.e. the eval set), or Wei et al.'s exemplars when no train set is given."""
    if train is None:
        if k > len(WEI_EXEMPLARS):
            raise MathsftError(
                f"only {len(WEI_EXEMPLARS)} built-in exemplars; give a train file for {k}-shot"
            )
        return [(q, f"{a} The answer is {ans}.") for q, a, ans in WEI_EXEMPLARS[:k]]
    from mathsft.data.sampling import subsample

    pool = [p for p in train if p.problem not in (exclude or set()) and p.solution]
    if len(pool) < k:
        raise MathsftError(f"{k}-shot needs {k} train problems with solutions, found {len(pool)}")
    return [
        (p.problem, f"{strip_calls(p.solution).strip()}\nThe answer is {p.answer}.")
        for p in subsample(pool, k, seed)
    ]


def build_prompt(
    problem: Problem,
    template: str | PromptTemplate = "qwen-boxed",
    *,
    system: str | None = None,
    chat: bool | None = None,
    exemplars: list[tuple[str, str]] | None = None,
) -> Prompt:
    """The prompt for ``problem``: chat messages, or one string when the template (or ``chat=False``) says so."""
    tpl = get_template(template)
    use_chat = tpl.chat if chat is None else chat
    system = system if system is not None else tpl.system
    if tpl.fewshot and exemplars is None:
        exemplars = fewshot_exemplars(tpl.fewshot)
    shots = exemplars or []
    if use_chat:
        messages: list[dict[str, str]] = [] if system is None else [{"role": "system", "content": system}]
        for question, answer in shots:
            messages.append({"role": "user", "content": tpl.render(question)})
            messages.append({"role": "assistant", "content": answer})
        messages.append({"role": "user", "content": tpl.render(problem.problem)})
        return messages
    parts = [system] if system else []
    parts += [f"{tpl.render(q)} {a}" for q, a in shots]
    parts.append(tpl.render(problem.problem))
    return "\n\n".join(parts)


_BOXED = re.compile(r"\\(boxed|fbox)\s*[{ ]")


def reference_response(problem: Problem, calculator: bool = False) -> str:
    """The SFT target for a problem with a reference solution: the reasoning, ending with the answer in
    ``\\boxed{}`` (added when the solution does not box it already, e.g. GSM8K's). Calculator annotations
    (GSM8K's ``<<48/2=24>>``) stay, in the tool's own result format, only for a model trained to call it."""
    solution = (normalize_calls if calculator else strip_calls)(problem.solution).strip()
    if not solution:
        raise MathsftError(f"problem {problem.id} has no reference solution to train on")
    if _BOXED.search(solution):
        return solution
    return f"{solution}\nThe final answer is $\\boxed{{{problem.answer}}}$."
