"""The bundled synthetic set: deterministic, nested, disjoint splits, and every step's arithmetic exact."""

from __future__ import annotations

import ast
import operator
import re

import pytest

from mathsft.data import check_contamination, load_problems, synthetic_problems
from mathsft.data.synthetic import TEST_TEMPLATES, TRAIN_TEMPLATES
from mathsft.errors import MathsftError

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _value(node: ast.AST) -> float:
    """Evaluate an integer expression of + - * / only (the generator's own step text)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_value(node.left), _value(node.right))
    raise AssertionError(f"unexpected expression node {ast.dump(node)}")


def test_deterministic_and_prefix_nested():
    assert synthetic_problems("train", 50, seed=1) == synthetic_problems("train", 50, seed=1)
    assert synthetic_problems("train", 256, seed=1)[:128] == synthetic_problems("train", 128, seed=1)
    assert synthetic_problems("train", 20, seed=1) != synthetic_problems("train", 20, seed=2)


def test_test_problems_share_no_template_and_no_13_gram_with_training():
    """The quick config's gain is on problems of a kind never trained on: the check reports 0."""
    train = [p for seed in (0, 1) for p in synthetic_problems("train", 2000, seed)]
    test = [p for seed in (0, 1) for p in synthetic_problems("test", 500, seed)]
    assert {p.meta["template"] for p in train} == set(TRAIN_TEMPLATES)
    assert {p.meta["template"] for p in test} == set(TEST_TEMPLATES)
    assert set(TRAIN_TEMPLATES).isdisjoint(TEST_TEMPLATES)
    assert check_contamination(train, {"test": test}).contaminated_total == 0


def test_every_step_is_exact_and_the_solution_ends_with_the_boxed_answer():
    problems = synthetic_problems("test", 400, seed=0)
    assert {p.meta["template"] for p in problems} == set(TEST_TEMPLATES)  # all test templates in use
    for p in problems:
        value = int(p.answer)
        assert 0 <= value < 1000
        lines = p.solution.split("\n")
        assert 2 <= len(lines) - 1 <= 4 and len(p.problem.split(". ")) <= 4
        assert lines[-1] == f"The final answer is $\\boxed{{{value}}}$."
        for line in lines[:-1]:
            for expr, result in re.findall(r"((?:\d+ [-+*/] )+\d+) = \$?(\d+)", line):
                assert _value(ast.parse(expr, mode="eval").body) == int(result), (p.id, line)
        assert re.search(rf"= \$?{value}\b", lines[-2]), p.solution  # the last step computes the answer


def test_load_problems_synthetic_and_its_errors():
    problems = load_problems("synthetic", split="train", limit=64, seed=0)
    assert problems == synthetic_problems("train", 64, seed=0)
    assert [p.id for p in problems[:2]] == ["synthetic/train/0", "synthetic/train/1"]
    assert len(load_problems("synthetic", split="test")) == 500
    with pytest.raises(MathsftError, match="unknown split 'dev'"):
        load_problems("synthetic", split="dev")
