"""Grader benchmark: mathsft.grading vs math-verify on long real-style responses and labelled answer forms.

    .venv/bin/python bench/grading_bench.py build   # (re)write bench/grading_long_responses.jsonl
    .venv/bin/python bench/grading_bench.py [--json bench/results/grading-run1.json] [--limit N] [--suite-only]

0. agreement with the labels, per category, of mathsft and math-verify on the labelled suite of competition
   answer forms in long responses (bench/grading_suite.jsonl, written by bench/grading_suite.py);
1. agreement with the labels, per kind, on the labelled answer-form cases
   (tests/grading/answer_form_cases.py) and on the labelled hard-equivalence suite;
2. the long-response set (bench/grading_long_responses.jsonl, built by ``build`` from MATH-500 reference
   solutions and GSM8K solutions rewritten in the styles models produce: Qwen2.5-Math-style LaTeX
   chain-of-thought ending in ``\\boxed{}``, Minerva "Final Answer: The final answer is", GSM8K ``####``,
   "The answer is", R1 ``<think>`` blocks, loops cut off; a third with a wrong final answer): agreement
   with the labels for both graders, per style, and every pair where a grader disagrees with its label;
3. throughput on that set in this one process: every input distinct, each item timed on its own with
   every cache cleared before it (mathsft's memo tables, math-verify's ``lru_cache``s), the first call
   of each grader outside the timing; responses/s for both, mathsft's time per stage (extraction,
   normalization, equivalence in this process, the symbolic worker), its calls to the worker and its
   slowest inputs; the same for the answer-form cases.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "grading"))

from answer_form_cases import ANSWER_FORM_CASES  # noqa: E402
from equivalence_cases import CASES  # noqa: E402

from mathsft.grading import grade, is_equivalent  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
LONG = ROOT / "bench" / "grading_long_responses.jsonl"
SUITE = ROOT / "bench" / "grading_suite.jsonl"
SEED = 20261204

# ---------------------------------------------------------------------------------------------------------
# The long-response set
# ---------------------------------------------------------------------------------------------------------

_BOXED = re.compile(r"\\boxed\{")
_CALC = re.compile(r"<<[^<>]*>>")
_OPENERS = [
    "To solve this problem, we need to work through it carefully, step by step.",
    "Let's break the problem down and solve it step by step.",
    "We start by restating what the problem gives us and what it asks for.",
    "To find the answer, we will set up the relevant quantities and compute them one at a time.",
]
_CHECKS = [
    "Let me double-check this computation before moving on.",
    "Wait, let me re-read the problem to make sure I have not misread any of the quantities.",
    "Hmm, that seems plausible, but let me verify it a different way.",
    "Alternatively, I could approach this from the other direction; let me see if that agrees.",
    "Okay, so far so good. Let me make sure each step follows from the previous one.",
]


def _map_boxes(solution: str, rewrite: Callable[[str], str]) -> str:
    """A reference solution with every ``\\boxed{...}`` (balanced braces) replaced by ``rewrite(content)``."""
    out, i = [], 0
    for match in _BOXED.finditer(solution):
        if match.start() < i:
            continue
        depth, j = 1, match.end()
        while j < len(solution) and depth:
            depth += {"{": 1, "}": -1}.get(solution[j], 0)
            j += 1
        out.append(solution[i : match.start()] + rewrite(solution[match.end() : j - 1]))
        i = j
    out.append(solution[i:])
    return "".join(out)


def _replace_boxes(solution: str, answer: str) -> str:
    return _map_boxes(solution, lambda _: "\\boxed{" + answer + "}")


def _unbox(solution: str) -> str:
    """Boxes opened (``\\boxed{x}`` -> ``x``), as Minerva-style text has them."""
    return _map_boxes(solution, lambda content: content)


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.strip()) > 20]


def _elaborate(rng: random.Random, solution: str, rounds: int) -> str:
    """A long chain of thought: the solution's sentences, each round re-derived with self-checks."""
    sentences = _sentences(solution) or [solution]
    parts = [rng.choice(_OPENERS)]
    for _ in range(rounds):
        parts.append(solution)
        parts.append(rng.choice(_CHECKS))
        parts.extend(rng.sample(sentences, min(len(sentences), 3)))
    return "\n\n".join(parts)


_SIMPLE_FRAC = re.compile(r"^(-?)\\frac\{(\d+)\}\{(\d+)\}$")
_THOUSANDS = re.compile(r"^\d{1,3}(?:,\d{3})+$")
_TWO_TERMS = re.compile(r"^([^+\-{}()]+)\+([^+\-{}()]+)$")
_VARIANTS: list[tuple[str, Callable[[str], str | None]]] = [
    ("dfrac", lambda a: a.replace("\\frac", "\\dfrac") if "\\frac" in a else None),
    (
        "short-frac",
        lambda a: (
            re.sub(r"\\frac\{(\d)\}\{(\d)\}", r"\\frac\1\2", a)
            if re.search(r"\\frac\{\d\}\{\d\}", a)
            else None
        ),
    ),
    ("slash", lambda a: f"{m[1]}{m[2]}/{m[3]}" if (m := _SIMPLE_FRAC.match(a)) else None),
    ("decimal", lambda a: _decimal(a)),
    (
        "short-sqrt",
        lambda a: re.sub(r"\\sqrt\{(\d)\}", r"\\sqrt\1", a) if re.search(r"\\sqrt\{\d\}", a) else None,
    ),
    ("swap-terms", lambda a: f"{m[2]}+{m[1]}" if (m := _TWO_TERMS.match(a.replace(" ", ""))) else None),
    (
        "left-right",
        lambda a: "\\left" + a[:-1] + "\\right)" if a.startswith("(") and a.endswith(")") else None,
    ),
    (
        "spaced",
        lambda a: a.replace(",", ", ") if "," in a and " " not in a and not _THOUSANDS.match(a) else None,
    ),
    ("label", lambda a: "x = " + a if re.fullmatch(r"-?[\d.]+", a) else None),
    ("unwrapped-text", lambda a: a[6:-1] if a.startswith("\\text{") and a.endswith("}") else None),
    ("thousands", lambda a: f"{int(a):,}" if re.fullmatch(r"\d{4,}", a) else None),
    ("dollars", lambda a: "\\$" + a if re.fullmatch(r"\d+", a) else None),
    ("cents", lambda a: a + ".00" if re.fullmatch(r"\d+", a) else None),
]


def _decimal(answer: str) -> str | None:
    """A fraction with a short terminating decimal (``\\frac{3}{4}`` -> ``0.75``)."""
    m = _SIMPLE_FRAC.match(answer)
    if not m or int(m[3]) == 0:
        return None
    value = int(m[2]) / int(m[3])
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return (m[1] + text) if abs(float(text) - value) < 1e-12 else None


def _variant(rng: random.Random, answer: str) -> str:
    """The answer as models also write it (``\\dfrac``, ``\\frac34``, ``3/4``, ``0.75``, ``\\sqrt2``, terms
    swapped, ``\\left( \\right)``, ``x = 5``, ``1,234``, ``\\$18``, ``18.00``) about half of the time, else as
    is."""
    if rng.random() < 0.5:
        return answer
    forms = [f(answer) for _, f in _VARIANTS]
    forms = [f for f in forms if f is not None and f != answer]
    return rng.choice(forms) if forms else answer


def _wrong(rng: random.Random, answer: str, others: list[str]) -> str:
    """A wrong final answer: an integer off by a little, or another problem's (different) gold."""
    if re.fullmatch(r"-?\d+(?:\.\d+)?", answer.replace(",", "")):
        return str(int(float(answer.replace(",", ""))) + rng.choice([-2, -1, 1, 2, 10]))
    while True:
        other = rng.choice(others)
        if other.replace(" ", "") != answer.replace(" ", ""):
            return other


def _math_response(rng: random.Random, style: str, solution: str, value: str, answer: str) -> str:
    """A MATH-500 reference solution rewritten into ``style``: its boxes hold ``value``, its closing
    statement ``answer`` (``value`` as the model writes it)."""
    body = _replace_boxes(solution, value)
    if style == "qwen-boxed":
        closing = rng.choice(
            [
                f"\n\nTherefore, the final answer is $\\boxed{{{answer}}}$.",
                f"\n\nThus, the answer is \\(\\boxed{{{answer}}}\\).",
                f"\n\nSo the final answer is:\n\\[\n\\boxed{{{answer}}}\n\\]",
            ]
        )
        return _elaborate(rng, body, 2) + closing
    if style == "minerva":
        text = _elaborate(rng, _unbox(body), 1)
        return text + f"\nFinal Answer: The final answer is ${answer}$. I hope it is correct."
    if style == "r1-think":
        thinking = _elaborate(rng, _unbox(body), 3)
        return (
            f"<think>\nOkay, let's see. {thinking}\n\nSo the answer should be {value}.\n</think>\n\n"
            f"**Solution**\n\n{body}\n\n**Final Answer**\n\\[\n\\boxed{{{answer}}}\n\\]"
        )
    raise ValueError(style)


def _gsm8k_response(rng: random.Random, style: str, solution: str, answer: str) -> str:
    """A GSM8K reference solution (calculator annotations dropped) rewritten into ``style``."""
    body = _CALC.sub("", solution.rsplit("####", 1)[0]).strip()
    if style == "gsm8k-hashes":
        return f"{_elaborate(rng, body, 1)}\n#### {answer}"
    if style == "the-answer-is":
        return f"{_elaborate(rng, body, 1)}\nThe answer is {answer}."
    if style == "qwen-boxed":
        return f"{_elaborate(rng, body, 2)}\n\nTherefore, the final answer is $\\boxed{{{answer}}}$."
    if style == "r1-think":
        return (
            f"<think>\nOkay, let me figure this out. {_elaborate(rng, body, 3)}\n</think>\n\n{body}\n\n"
            f"**Final Answer**\n\\boxed{{{answer}}}"
        )
    raise ValueError(style)


def _loop(rng: random.Random, solution: str, answer: str, states_answer: bool, limit: int = 3000) -> str:
    """A response that falls into a loop and is cut off at the token limit, mid-sentence: repeating a step
    of the solution before its answer (no answer stated), or repeating its answer statement ("The answer
    is 18. The answer is 1")."""
    box = solution.find("\\boxed")
    prefix = solution[: box if box >= 0 else len(solution)]
    prefix = prefix[: max(prefix.rfind(". "), prefix.rfind(".\n")) + 1] or prefix[: len(prefix) // 2]
    steps = [s for s in _sentences(prefix) if answer not in s] or ["Let me think about this again."]
    unit = f"The answer is {answer}.\n" if states_answer else rng.choice(steps) + "\n"
    text = prefix + "\n" + unit * (limit // max(1, len(unit)) + 2)
    cut = limit if not states_answer else text.rfind(unit, 0, limit) + len("The answer is ") + 1
    return text[:cut]


def build_long_responses(math_rows: list[dict], gsm_rows: list[dict], seed: int = SEED) -> list[dict]:
    """Every MATH-500 problem and the first 350 GSM8K test problems, each once, in one style; a third
    with a wrong final answer (``label`` false), the rest with the gold or a written variant of it."""
    rng = random.Random(seed)
    golds = [r["answer"] for r in math_rows]
    rows = []
    for i, row in enumerate(math_rows):
        style = ("qwen-boxed", "minerva", "r1-think", "qwen-boxed", "loop-cut")[i % 5]
        right = rng.random() >= 1 / 3
        gold = row["answer"]
        value = gold if right else _wrong(rng, gold, golds)
        if style == "loop-cut":
            right = False  # cut off before it states an answer
            response = _loop(rng, row["solution"], value, states_answer=False)
        else:
            response = _math_response(rng, style, row["solution"], value, _variant(rng, value))
        rows.append(
            {"id": row["unique_id"], "source": "math500", "style": style, "gold": gold, "label": right}
            | {"response": response}
        )
    for i, row in enumerate(gsm_rows[:350]):
        style = ("gsm8k-hashes", "the-answer-is", "qwen-boxed", "r1-think", "loop-cut")[i % 5]
        gold = row["answer"].rsplit("####", 1)[1].strip()
        right = rng.random() >= 1 / 3
        answer = _variant(rng, gold if right else _wrong(rng, gold, []))
        if style == "loop-cut":
            states = len(answer) >= 2 and rng.random() < 0.5
            right = right and states
            steps = _CALC.sub("", row["answer"].rsplit("####", 1)[0]).strip().split("\n")
            response = _loop(rng, "\n".join(steps[:-1]) or steps[0], answer, states_answer=states)
        else:
            response = _gsm8k_response(rng, style, row["answer"], answer)
        rows.append(
            {"id": f"gsm8k-test-{i}", "source": "gsm8k", "style": style, "gold": gold, "label": right}
            | {"response": response}
        )
    return rows


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def build() -> None:
    rows = build_long_responses(
        read_jsonl(DATA / "math500" / "test.jsonl"), read_jsonl(DATA / "gsm8k" / "test.jsonl")
    )
    assert len({(r["response"], r["gold"]) for r in rows}) == len(rows), "inputs must be distinct"
    LONG.write_text("".join(json.dumps(r) + "\n" for r in rows))
    chars = [len(r["response"]) for r in rows]
    print(
        f"wrote {len(rows)} rows to {LONG} ({LONG.stat().st_size / 1e6:.2f} MB), response chars: "
        f"median {statistics.median(chars):.0f}, max {max(chars)}; "
        f"styles {dict(Counter(r['style'] for r in rows))}"
    )


# ---------------------------------------------------------------------------------------------------------
# The two graders, caches cleared
# ---------------------------------------------------------------------------------------------------------


def math_verify_pair(response: str, gold: str) -> bool:
    """math-verify as its README shows it: ``verify(parse(gold), parse(answer))``."""
    from math_verify import parse, verify

    return bool(verify(parse(gold), parse(response)))


def math_verify_gold(gold: str) -> str:
    """A bare gold answer in math delimiters, as math-verify's parse expects; a gold solution (a box, a
    final statement) as is."""
    return gold if any(mark in gold for mark in ("\\boxed", "Final Answer")) else f"${gold}$"


def clear_math_verify_caches() -> None:
    from math_verify import parser

    for name in ("parse_latex_cached", "parse_expr_cached", "extract_latex"):
        getattr(parser, name).cache_clear()


def clear_mathsft_caches() -> None:
    from mathsft.grading import clear_caches

    clear_caches()


# ---------------------------------------------------------------------------------------------------------
# Agreement
# ---------------------------------------------------------------------------------------------------------


def answer_form_agreement() -> dict:
    """Per kind: how many labelled answer-form cases each grader gets right."""
    per_kind: dict[str, Counter] = defaultdict(Counter)
    misses = []
    for response, gold, label, kind in ANSWER_FORM_CASES:
        ours = grade(response, gold).correct
        theirs = math_verify_pair(response, math_verify_gold(gold))
        per_kind[kind].update(n=1, mathsft=ours == label, math_verify=theirs == label)
        if ours != label:
            misses.append({"kind": kind, "response": response, "gold": gold, "label": label})
    total = sum(per_kind.values(), Counter())
    return {"per_kind": {k: dict(v) for k, v in per_kind.items()}, "total": dict(total), "misses": misses}


def labelled_suite_agreement(rows: list[dict]) -> dict:
    """Per category of the labelled suite (bench/grading_suite.jsonl): how often each grader agrees with
    the label, and every pair where mathsft does not."""
    per_category: dict[str, Counter] = defaultdict(Counter)
    misses = []
    for row in rows:
        ours = grade(row["response"], row["gold"]).correct
        theirs = math_verify_pair(row["response"], math_verify_gold(row["gold"]))
        for key in (row["category"], "all"):
            per_category[key].update(n=1, mathsft=ours == row["label"], math_verify=theirs == row["label"])
        if ours != row["label"]:
            misses.append(
                {k: row[k] for k in ("category", "gold", "label")} | {"tail": row["response"][-160:]}
            )
    table = {k: dict(v) for k, v in per_category.items()}
    for counts in table.values():
        counts["mathsft_pct"] = round(100 * counts.get("mathsft", 0) / counts["n"], 1)
        counts["math_verify_pct"] = round(100 * counts.get("math_verify", 0) / counts["n"], 1)
    return {"per_category": table, "misses": misses}


def suite_agreement() -> dict:
    ours = sum(is_equivalent(pred, gold) == equal for pred, gold, equal, _ in CASES)
    theirs = sum(math_verify_pair(f"${pred}$", f"${gold}$") == equal for pred, gold, equal, _ in CASES)
    return {"n": len(CASES), "mathsft": ours, "math_verify": theirs}


# ---------------------------------------------------------------------------------------------------------
# Throughput
# ---------------------------------------------------------------------------------------------------------


def _timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def time_mathsft(rows: list[dict]) -> dict:
    """Each item graded alone, caches cleared before it; stages timed by re-running them in isolation."""
    from mathsft.grading import equivalence, extract, normalize

    grade_module = sys.modules["mathsft.grading.grade"]

    worker_s = [0.0]
    worker_calls = [0]
    real_symbolic = equivalence.run_symbolic

    def counted(pred: str, gold: str) -> tuple[bool | None, str]:
        worker_calls[0] += 1
        start = time.perf_counter()
        try:
            return real_symbolic(pred, gold)
        finally:
            worker_s[0] += time.perf_counter() - start

    equivalence.run_symbolic = counted
    grade(r"\boxed{x+1}", "x+2")  # first call (and the symbolic worker's start) outside the timing
    verdicts, per_item, outside_worker = [], [], []
    stage = Counter()
    try:
        for row in rows:
            clear_mathsft_caches()
            worker_s[0] = 0.0
            result, seconds = _timed(lambda row=row: grade(row["response"], row["gold"]))
            verdicts.append(result.correct)
            per_item.append(seconds)
            outside_worker.append(seconds - worker_s[0])
            stage["symbolic_worker"] += worker_s[0]
            clear_mathsft_caches()
            fallback = grade_module.number_fallback("auto", row["gold"])
            (extracted, _), s_extract = _timed(
                lambda row=row, f=fallback: extract.extract(row["response"], f)
            )
            stage["extraction"] += s_extract
            if extracted is not None:
                _, s_norm = _timed(
                    lambda e=extracted, g=row["gold"]: (normalize.canonical(e), normalize.canonical(g))
                )
                stage["normalization"] += s_norm
    finally:
        equivalence.run_symbolic = real_symbolic
    total = sum(per_item)
    stage["equivalence_in_process"] = max(
        0.0, total - stage["extraction"] - stage["normalization"] - stage["symbolic_worker"]
    )
    slowest = sorted(range(len(rows)), key=lambda i: -outside_worker[i])[:5]
    return {
        "verdicts": verdicts,
        "seconds": total,
        "responses_per_s": len(rows) / total,
        "stage_share": {k: v / total for k, v in stage.items()},
        "slowest_outside_worker_ms": [
            {"id": rows[i]["id"], "style": rows[i]["style"], "ms": 1000 * outside_worker[i]} for i in slowest
        ],
        "slowest_total_ms": 1000 * max(per_item),
        "symbolic_worker_calls": worker_calls[0],
    }


def time_math_verify(rows: list[dict]) -> dict:
    math_verify_pair("$1$", "$1$")  # import and first call outside the timing
    verdicts, per_item = [], []
    for row in rows:
        clear_math_verify_caches()
        verdict, seconds = _timed(
            lambda row=row: math_verify_pair(row["response"], math_verify_gold(row["gold"]))
        )
        verdicts.append(verdict)
        per_item.append(seconds)
    total = sum(per_item)
    return {
        "verdicts": verdicts,
        "seconds": total,
        "responses_per_s": len(rows) / total,
        "slowest_total_ms": 1000 * max(per_item),
    }


def timed_set(rows: list[dict]) -> tuple[dict, list[bool], list[bool]]:
    """Both graders over ``rows``, timed item by item: the summary and each grader's verdicts."""
    ours = time_mathsft(rows)
    theirs = time_math_verify(rows)
    summary = {
        "n": len(rows),
        "agreement": agreement_by_style(rows, ours["verdicts"], theirs["verdicts"]),
        "mathsft": {k: v for k, v in ours.items() if k != "verdicts"},
        "math_verify": {k: v for k, v in theirs.items() if k != "verdicts"},
        "speedup": theirs["seconds"] / ours["seconds"],
    }
    return summary, ours["verdicts"], theirs["verdicts"]


def agreement_by_style(rows: list[dict], ours: list[bool], theirs: list[bool]) -> dict:
    table: dict[str, Counter] = defaultdict(Counter)
    for row, a, b in zip(rows, ours, theirs, strict=True):
        for key in (row["style"], "all"):
            table[key].update(n=1, mathsft=a == row["label"], math_verify=b == row["label"])
    return {k: dict(v) for k, v in table.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", default="run", choices=("run", "build"))
    parser.add_argument("--limit", type=int, default=0, help="only the first N long responses (0: all)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--suite-only", action="store_true", help="only the labelled suite's agreement")
    args = parser.parse_args()
    if args.command == "build":
        build()
        return
    results: dict = {"labelled_suite": labelled_suite_agreement(read_jsonl(SUITE))}
    for category, counts in results["labelled_suite"]["per_category"].items():
        print(
            f"  {category:20s} n={counts['n']:3d} mathsft={counts['mathsft_pct']:5.1f}% "
            f"math-verify={counts['math_verify_pct']:5.1f}%"
        )
    for miss in results["labelled_suite"]["misses"]:
        print("  suite miss", json.dumps(miss))
    if args.suite_only:
        return
    results |= {"suite": suite_agreement(), "answer_forms": answer_form_agreement()}
    print("hard-equivalence suite", json.dumps(results["suite"]))
    forms = results["answer_forms"]
    print("answer forms", json.dumps(forms["total"]))
    for kind, counts in sorted(forms["per_kind"].items()):
        print(
            f"  {kind:24s} n={counts['n']:3d} mathsft={counts.get('mathsft', 0):3d} "
            f"math-verify={counts.get('math_verify', 0):3d}"
        )
    for miss in forms["misses"]:
        print("  mathsft miss", json.dumps(miss))
    rows = read_jsonl(LONG)
    rows = rows[: args.limit] if args.limit else rows
    results["long"], ours, theirs = timed_set(rows)
    for row, a, b in zip(rows, ours, theirs, strict=True):
        if a != row["label"] or b != row["label"]:
            verdicts = {"mathsft": a, "math_verify": b, "tail": row["response"][-120:]}
            print(
                "long disagree", json.dumps({k: row[k] for k in ("id", "style", "gold", "label")} | verdicts)
            )
    forms = [
        {"id": f"form-{i}", "style": kind, "response": response, "gold": gold, "label": label}
        for i, (response, gold, label, kind) in enumerate(ANSWER_FORM_CASES)
    ]
    results["forms_timing"], _, _ = timed_set(forms)
    print(
        "answer forms timing",
        json.dumps({k: v for k, v in results["forms_timing"].items() if k != "agreement"}),
    )
    print(json.dumps(results["long"], indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
