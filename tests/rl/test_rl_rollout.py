"""Rollouts: rewards from the grader, group advantages, the policy's tokens only as targets (never the
calculator's), seeded requests, and the engine in a separate process giving what it gives in process."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import save_toy_model
from rl_toy import toy_problems

from mathsft.errors import MathsftError
from mathsft.evaluation.prompts import build_prompt
from mathsft.generation import Completion
from mathsft.rl.config import RLConfig
from mathsft.rl.rollout import Engine, graded, requests_for, sampling_params, signal_free_groups


def completion(text: str, ids: list[int], tool: list[bool] | None = None) -> Completion:
    extra = {"token_ids": ids} | ({"tool_mask": tool} if tool is not None else {})
    return Completion(text=text, finish_reason="stop", completion_tokens=len(ids), extra=extra)


def test_rewards_advantages_and_format_term() -> None:
    problems = toy_problems(2)
    texts = [["The answer is \\boxed{7}.", "7", "8", "no idea"], ["9", "8", "9", "8"]]
    generated = [([1, 2], [completion(t, [5, 6]) for t in group]) for group in texts]
    samples = graded(problems, generated, RLConfig(group_size=4, format_reward=0.5))
    assert [s.correct for s in samples[:4]] == [True, True, False, False]
    assert [s.formatted for s in samples[:4]] == [True, False, False, False]  # "7" alone: a bare answer
    assert [s.reward for s in samples[:4]] == [1.5, 1.0, 0.0, 0.0]
    # group 1: mean 0.625, unbiased std of [1.5, 1, 0, 0]
    rewards = torch.tensor([1.5, 1.0, 0.0, 0.0], dtype=torch.float64)
    expected = ((rewards - rewards.mean()) / (rewards.std() + 1e-6)).tolist()
    assert [s.advantage for s in samples[:4]] == pytest.approx(expected)
    assert [s.advantage for s in samples[4:]] == [0.0] * 4  # all wrong: no signal
    assert signal_free_groups(samples, 2) == 1
    assert samples[0].log_row(3) == {
        "train_step": 3,
        "problem_id": "toy/train/0",
        "index": 0,
        "response": "The answer is \\boxed{7}.",
        "finish_reason": "stop",
        "correct": True,
        "formatted": True,
        "reward": 1.5,
        "advantage": pytest.approx(expected[0]),
        "round": 0,
        "guided": False,
        "response_tokens": 2,
        "tool_tokens": 0,
    }


def test_tool_inserted_tokens_are_not_targets() -> None:
    """The calculator's result tokens stay in the row (the model saw them) but are not the policy's."""
    generated = [([10, 11, 12], [completion("x", [20, 21, 22, 23], [False, True, True, False])] * 2)]
    sample = graded(toy_problems(1), generated, RLConfig(group_size=2))[0]
    assert sample.own == [True, False, False, True] and sample.policy_tokens == 2
    row = sample.row("0")
    assert row.input_ids.tolist() == [10, 11, 12, 20, 21, 22, 23]
    assert row.supervised.tolist() == [False, False, False, True, False, False, True]
    assert sample.log_row(1)["tool_tokens"] == 2


def test_a_backend_without_token_ids_is_refused() -> None:
    generated = [([1], [Completion(text="7", finish_reason="stop")] * 2)]
    with pytest.raises(MathsftError, match="never re-tokenizes"):
        graded(toy_problems(1), generated, RLConfig(group_size=2))


def test_requests_are_eval_prompts_seeded_by_step_and_problem() -> None:
    cfg = RLConfig(group_size=3, prompt="qwen-boxed")
    problems = toy_problems(2)
    first, again, later = (requests_for(problems, cfg, s) for s in (0, 0, 1))
    assert [r.prompt for r in first] == [build_prompt(p, "qwen-boxed") for p in problems]
    assert all(r.n == 3 for r in first)
    assert [r.seed for r in first] == [r.seed for r in again]
    assert len({r.seed for r in first + later}) == 4
    assert sampling_params(cfg.model_copy(update={"calculator": True})).calculator


def test_the_engine_in_its_own_process_generates_what_it_generates_in_process(
    smollm2_dir: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    model = save_toy_model(tmp_path / "toy", smollm2_dir)
    cfg = RLConfig(model=str(model), group_size=3, max_new_tokens=2)
    requests = requests_for(toy_problems(2), cfg, 0)
    weights = {k: v * 1.01 for k, v in load_file(model / "model.safetensors").items()}  # "trained" weights
    results = []
    for device in (None, "cpu"):
        engine = Engine(cfg.model_copy(update={"rollout_device": device}), "cpu")
        try:
            engine.load(weights)
            out = engine.generate(requests, sampling_params(cfg))
        finally:
            engine.close()
        results.append([(ids, [c.extra["token_ids"] for c in cs]) for ids, cs in out])
    assert results[0] == results[1]
    assert all(len(ids) > 5 for ids, _ in results[0])  # the rendered chat prompt's ids
