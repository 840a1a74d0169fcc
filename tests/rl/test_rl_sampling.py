"""Groups without signal: the problem sampler (the plain order unchanged, settled problems drawn less, its
state restored exactly), DAPO's skip-and-refill on scripted rollouts, and guidance prefixes that shrink
with training and are never the policy's tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import save_toy_model

from mathsft.data.schema import Problem
from mathsft.errors import MathsftError
from mathsft.evaluation.prompts import build_prompt, reference_response
from mathsft.generation import Completion
from mathsft.rl.config import RLConfig
from mathsft.rl.loop import UpdateStats, step_row
from mathsft.rl.rollout import Engine, guided_prompt
from mathsft.rl.sampling import Collector, ProblemSampler, Rollouts, guidance_prefix
from mathsft.training.distributed import Dist
from mathsft.training.loop import step_indices


def test_the_plain_order_is_sfts_and_the_walk_covers_each_epoch_once() -> None:
    plain = ProblemSampler(10, RLConfig(batch_size=4, seed=3))
    assert [plain.draw(s, 4) for s in range(4)] == [step_indices(s, 10, 4, 3) for s in range(4)]
    walk = ProblemSampler(10, RLConfig(batch_size=4, seed=3, dynamic_sampling=True))
    drawn = [i for s in range(5) for i in walk.draw(s, 4)]  # rounds need not fill whole steps
    assert drawn[:10] == step_indices(0, 10, 10, 3) and drawn[10:20] == step_indices(1, 10, 10, 3)
    assert walk.cursor == 20


def test_problems_always_or_never_solved_are_drawn_at_the_settled_rate() -> None:
    cfg = RLConfig(problem_sampler="pass_rate", settled_draw_rate=0.25, group_size=4)
    sampler = ProblemSampler(40, cfg)
    # 0-9 never solved, 10-19 always, 20-29 sometimes, 30-39 never sampled
    sampler.record(list(range(30)), [0] * 10 + [4] * 10 + [2] * 10, 4)
    assert sampler.pass_rate(5) == 0 and sampler.pass_rate(15) == 1 and sampler.pass_rate(25) == 0.5
    assert sampler.pass_rate(35) is None
    counts = [0] * 40
    for i in sampler.draw(0, 2000):
        counts[i] += 1
    epochs = sampler.cursor / 40
    assert all(counts[i] == pytest.approx(epochs, abs=1) for i in range(20, 40))  # every turn taken
    settled = sum(counts[:20]) / (20 * epochs)
    assert 0.2 < settled < 0.3, settled
    # one right sample of a never-solved problem: no longer settled, taken at its every turn again
    sampler.record([0], [1], 4)
    assert not sampler.settled(0) and sampler.settled(1)


def test_the_sampler_state_round_trips_and_continues_the_same_draws() -> None:
    cfg = RLConfig(problem_sampler="pass_rate", settled_draw_rate=0.5, group_size=2)
    a = ProblemSampler(12, cfg)
    for step in range(3):
        picked = a.draw(step, 4)
        a.record(picked, [(i % 3) for i in picked], 2)  # 0 and 2 of 2 right: settled; 1: not
    b = ProblemSampler(12, cfg)
    b.load_state_dict(a.state_dict())
    assert [b.draw(s, 4) for s in range(3, 8)] == [a.draw(s, 4) for s in range(3, 8)]
    with pytest.raises(MathsftError, match="knows 12 problems, this run has 13"):
        ProblemSampler(13, cfg).load_state_dict(a.state_dict())


class ScriptedEngine:
    """Stands in for the rollout engine: each problem's group of answers is fixed by its id's suffix
    ("-easy": all right, "-hard": all wrong, "-mixed": half right), so the refill logic is exact."""

    def __init__(self, problems: list[Problem]) -> None:
        self.by_text = {p.problem: p.id for p in problems}
        self.requests: list[list[str]] = []  # the problem ids of each generate call

    def generate(self, requests: list, params: object) -> list:
        ids = [self.by_text[r.prompt[-1]["content"]] for r in requests]  # the bare prompt: the problem
        self.requests.append(ids)
        out = []
        for r, pid in zip(requests, ids, strict=True):
            kind = pid.rsplit("-", 1)[1]
            answers = {"easy": ["7"] * r.n, "hard": ["8"] * r.n, "mixed": ["7", "8"] * (r.n // 2)}[kind]
            out.append(([1, 2, 3], [Completion(a, "stop", extra={"token_ids": [5, 6]}) for a in answers]))
        return out


def collect(kinds: list[str], **overrides: object) -> tuple[Rollouts, list[Problem], ScriptedEngine]:
    """One step of a Collector over problems of ``kinds``; also the seeded order they are drawn in."""
    problems = [Problem(f"p{i}-{kind}", f"What is {i} + {7 - i}?", "7") for i, kind in enumerate(kinds)]
    cfg = RLConfig(batch_size=2, group_size=2, max_steps=4, prompt="bare", **overrides)
    engine = ScriptedEngine(problems)
    rollouts = Collector(engine, problems, cfg, None, Dist()).step(0)  # type: ignore[arg-type]
    order = [problems[i] for i in step_indices(0, len(problems), len(problems), cfg.seed)]
    return rollouts, order, engine


TIMES = {"generate": 1.0, "rollout": 1.0, "update": 1.0}
NO_UPDATE = UpdateStats(0.0, 0.0, 0.0, 0, None, 0.0, None)


def test_dynamic_sampling_drops_groups_without_signal_and_refills_the_step() -> None:
    kinds = ["easy", "hard", "mixed", "hard", "mixed", "mixed", "easy", "hard"]
    rollouts, order, engine = collect(kinds, dynamic_sampling=True, max_sampling_rounds=4)
    # rounds of 2 new problems in the seeded order (seed 0) until 2 groups have signal; then no more rounds
    assert [p.id for p in order[:6]] == ["p4-mixed", "p0-easy", "p7-hard", "p3-hard", "p2-mixed", "p5-mixed"]
    assert engine.requests == [["p4-mixed", "p0-easy"], ["p7-hard", "p3-hard"], ["p2-mixed", "p5-mixed"]]
    # the step trains on the first 2 signal groups: p5's, the third, is dropped like the all-equal ones
    assert [s.problem_id for s in rollouts.trained] == ["p4-mixed"] * 2 + ["p2-mixed"] * 2
    assert [s.round for s in rollouts.drawn] == [0] * 4 + [1] * 4 + [2] * 4
    row = step_row(RLConfig(batch_size=2, group_size=2), 1, rollouts, NO_UPDATE, TIMES)
    assert (row["rl/sampled_groups"], row["rl/signal_groups"], row["rl/trained_groups"]) == (6, 3, 2)
    assert row["rl/pass_rate"] == pytest.approx(5 / 12)  # over every drawn sample, not the kept ones


def test_dynamic_sampling_stops_after_max_rounds_with_what_it_found() -> None:
    rollouts, _, engine = collect(["hard"] * 7 + ["mixed"], dynamic_sampling=True, max_sampling_rounds=2)
    assert engine.requests == [["p4-hard", "p0-hard"], ["p7-mixed", "p3-hard"]]  # never a third round
    assert [s.problem_id for s in rollouts.trained] == ["p7-mixed"] * 2  # one signal group: trained alone
    rollouts, _, engine = collect(["hard"] * 8, dynamic_sampling=True, max_sampling_rounds=3)
    assert len(engine.requests) == 3 and rollouts.trained == []  # no signal: the update skips the step


def test_without_dynamic_sampling_the_step_is_one_round_of_every_group() -> None:
    rollouts, _, engine = collect(["hard", "mixed", "easy", "hard"])
    assert len(engine.requests) == 1 and rollouts.trained == rollouts.drawn and len(rollouts.drawn) == 4


def test_guidance_prefixes_shrink_to_none_and_are_the_reference_solutions_start() -> None:
    problem = Problem(
        "p", "Tom has 3 boxes of 4 pens. How many pens?", "12", solution="3 * 4 = 12 pens in all."
    )
    cfg = RLConfig(guidance=True, guidance_fraction=0.8, max_steps=10)
    full = reference_response(problem)
    prefixes = [guidance_prefix(problem, cfg, step) for step in range(10)]
    assert all(full.startswith(p) for p in prefixes)
    words = len(full.split())  # 13: the solution, then "The final answer is $\\boxed{12}$."
    assert [len(p.split()) for p in prefixes] == [int(0.8 * (1 - step / 10) * words) for step in range(10)]
    assert len(prefixes[0].split()) == 10 and "boxed" not in prefixes[0]  # never the whole solution
    assert guidance_prefix(Problem("q", "?", "1"), cfg, 0) == ""  # no solution, no guidance


def test_guided_groups_continue_the_prefix_and_never_train_on_it(smollm2_dir: Path, tmp_path: Path) -> None:
    """All-wrong groups (the toy model never says "5") are sampled again after the prefix; the prefix is in
    the prompt ids, the row's targets are exactly the tokens the policy generated."""
    from mathsft.models import load_tokenizer

    model = save_toy_model(tmp_path / "model", smollm2_dir)
    problems = [
        Problem(
            f"p{i}", f"What is {i} + {5 - i}?", "5", solution=f"We add {i} and {5 - i} to get 5 in total."
        )
        for i in range(2)
    ]
    cfg = RLConfig(model=str(model), batch_size=2, group_size=2, max_new_tokens=2, guidance=True, max_steps=2)
    tokenizer = load_tokenizer(str(model))
    engine = Engine(cfg, "cpu")
    try:
        rollouts = Collector(engine, problems, cfg, tokenizer, Dist()).step(0)
        plain = engine.backend.encode(build_prompt(problems[0], cfg.prompt))
    finally:
        engine.close()
    assert not any(s.correct for s in rollouts.drawn)
    assert len(rollouts.guided) == 4 and rollouts.trained == rollouts.guided
    for s in rollouts.guided:
        prefix = guidance_prefix(problems[int(s.problem_id[1])], cfg, 0)
        assert s.guided and prefix
        assert tokenizer.decode(s.prompt_ids).endswith(prefix)
        row = s.row("0")
        assert row.supervised.sum() == len(s.token_ids) == s.policy_tokens
        assert not row.supervised[: len(s.prompt_ids)].any()
    guided = rollouts.guided[0].prompt_ids
    assert guided[: len(plain)] == plain and len(guided) > len(plain)  # one BOS, the prefix after the turn
    text = guided_prompt(tokenizer, build_prompt(problems[0], cfg.prompt), "We add")
    assert text.endswith("<|im_start|>assistant\nWe add")
