"""Safety and bounded work: model text never runs as code, and nothing hangs or escapes."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mathsft.grading import grade, grade_many
from mathsft.grading.timeout import DEFAULT_TIMEOUT_S, map_items, run_symbolic

LIMIT_S = DEFAULT_TIMEOUT_S + 2.0  # the per-item limit plus a worker (re)start
_MATRIX_8 = r"\begin{pmatrix}" + r"\\".join(["&".join([r"x^{99}+\sqrt{y}"] * 8)] * 8) + r"\end{pmatrix}"


def _payloads(target: Path) -> list[str]:
    return [
        rf"\boxed{{__import__('os').system('touch {target}')}}",
        rf"\boxed{{eval(\"__import__('os').system('touch {target}')\")}}",
        rf"\boxed{{exec('open(\"{target}\", \"w\")')}}",
        rf"The answer is $\text{{__import__('os').system('touch {target}')}}$",
        rf"\boxed{{\operatorname{{__import__}}('os').system('touch {target}') + x}}",
        rf"<answer>lambda: open('{target}', 'w')</answer>",
    ]


def test_payloads_do_not_run(tmp_path: Path):
    target = tmp_path / "pwned"
    for payload in _payloads(target):
        for gold in ("0", "x", r"\frac{1}{2}", "x + 1"):
            assert not grade(payload, gold).correct
    assert grade_many([(p, "x") for p in _payloads(target)], workers=2)
    assert not target.exists()


@pytest.mark.parametrize(
    ("response", "gold"),
    [
        (r"\boxed{10^{10^{10^{10}}}}", "1"),
        (r"\boxed{9^9^9^9}", "2"),
        (r"\boxed{9^{9^{9^{9}}}}", r"9^{9^{9^{9}}}+1"),
        (r"\boxed{100000000!}", "3"),
        (r"\boxed{\frac{1}{10^{10^{10}}}}", "0"),
        ("1" * 100_000, "1"),
        ("x " * 50_000 + r"\boxed{3}", "3"),
        (r"\boxed{" + "{" * 500 + "1" + "}" * 500 + "}", "1"),
        ("(" * 500 + "1" + ")" * 500, "1"),
        (r"\boxed{" + "+".join(["x"] * 2000) + "}", "2000x"),
        (
            r"\boxed{" + r"\begin{pmatrix}1&2\\3&4\end{pmatrix}" * 60 + "}",
            r"\begin{pmatrix}1&2\\3&4\end{pmatrix}",
        ),
        (r"\boxed{\begin{pmatrix}1\end{pmatrix}" + " " * 1900 + r"x+\begin{pmatrix}1\end{pmatrix}}", "(2)"),
        (r"\boxed{" + _MATRIX_8 + _MATRIX_8 + _MATRIX_8 + _MATRIX_8 + "}", _MATRIX_8),
        (r"\boxed{-" + "x" * 300 + " > " + "-1" * 300 + "}", "x<1"),
        ("Answer\n" * 20_000 + "$$1$$", "1"),
        (r"\boxed{" + "1,2" * 600 + "}", "1.2"),
    ],
)
def test_pathological_inputs_finish_with_a_verdict(response: str, gold: str):
    start = time.monotonic()
    result = grade(response, gold)
    assert time.monotonic() - start < LIMIT_S
    assert isinstance(result.correct, bool) and result.reason


def test_pathological_inputs_in_batch_keep_order():
    pairs = [
        (r"\boxed{10^{10^{10^{10}}}}", "1"),
        (r"\boxed{4}", "4"),
        ("1" * 100_000, "1"),
        (r"\boxed{\frac{1}{2}}", "0.5"),
        (r"\boxed{9^9^9^9}", "2"),
        (r"\boxed{(x+1)^2}", "x^2+2x+1"),
    ]
    start = time.monotonic()
    results = grade_many(pairs, workers=2)
    assert time.monotonic() - start < 2 * LIMIT_S
    assert [r.correct for r in results] == [False, True, False, True, False, True]
    assert [r.extracted for r in results][:2] == [r"10^{10^{10^{10}}}", "4"]


def test_a_timed_out_item_is_no_verdict_and_the_worker_recovers():
    assert run_symbolic("x^2+1", "x^2+2", timeout_s=0.0) == (None, "timeout")
    assert run_symbolic("(x+1)^2", "x^2+2x+1") == (True, "symbolic:random-points")


def test_grade_many_per_item_timeout_keeps_the_rest():
    tasks = [["\\boxed{\\frac{1}{2004!}}", "\\frac{1}{2006!}"], ["\\boxed{3}", "3"]]  # the first needs SymPy
    results = map_items(tasks, {"profile": "lenient", "style": "auto"}, workers=1, timeout_s=0.0, chunk=2)
    assert results[0] is None  # killed at its deadline
    assert results[1] is None or results[1]["correct"]


def test_callers_alarm_is_not_disturbed():
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(time.monotonic()))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        start = time.monotonic()
        while time.monotonic() - start < 1.0:
            assert grade(r"\boxed{\sin^2 x + \cos^2 x}", "1").correct
        assert len(fired) == 1
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_grading_works_in_threads():
    results: list[bool] = []
    pairs = [(r"\boxed{2\sqrt{2}}", r"\sqrt{8}"), (r"\boxed{x^2}", "x^3")] * 3
    threads = [threading.Thread(target=lambda p=p: results.append(grade(*p).correct)) for p in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == [False] * 3 + [True] * 3


_TOKENS = [*"0123456789+-*/^_{}()[],.=!%$ xyi", r"\frac", r"\sqrt", r"\boxed", r"\pi", r"\infty", r"\cup"]
_TOKENS += [r"\pm", r"\text", r"\left", r"\right", "\\", "#### ", "</think>", "<answer>", r"\\", "&"]
_TOKENS += [r"\begin{pmatrix}", r"\end{pmatrix}", "10^{10^{10}}", "9^9^9", "999!", "\u2212", "\u00b2"]
_LATEXISH = st.lists(st.sampled_from(_TOKENS), max_size=30).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(response=_LATEXISH, gold=_LATEXISH)
def test_fuzz_never_raises_or_hangs(response: str, gold: str):
    start = time.monotonic()
    result = grade(rf"\boxed{{{response}}}", gold)
    grade(response, gold, style="gsm8k")
    assert isinstance(result.correct, bool)
    assert time.monotonic() - start < 2 * LIMIT_S
