"""The printed plan: the power of a paired test set, stage estimates re-made from measured stages."""

from __future__ import annotations

import numpy as np
import pytest

from mathsft.evaluation.metrics import mcnemar_exact
from mathsft.experiments.plan import Plan, StagePlan, mcnemar_power, power_note, problems_for_power


def simulated_power(n: int, gain: float, loss: float, trials: int = 4000) -> float:
    rng = np.random.default_rng(0)
    draws = rng.multinomial(n, [gain, loss, 1 - gain - loss], size=trials)
    return float(np.mean([b > a and mcnemar_exact(int(a), int(b)) < 0.05 for b, a, _ in draws.tolist()]))


@pytest.mark.parametrize(("n", "gain", "loss"), [(300, 0.04, 0.01), (300, 0.03, 0.013), (1319, 0.03, 0.012)])
def test_power_agrees_with_simulated_test_sets(n: int, gain: float, loss: float) -> None:
    assert mcnemar_power(n, gain, loss) == pytest.approx(simulated_power(n, gain, loss), abs=0.03)


def test_power_grows_with_the_test_set_and_needs_a_real_gain() -> None:
    assert mcnemar_power(100, 0.03, 0.01) < mcnemar_power(300, 0.03, 0.01) < mcnemar_power(1000, 0.03, 0.01)
    assert mcnemar_power(1000, 0.02, 0.02) < 0.03  # no gain: significant gains only by chance
    n = problems_for_power(0.03, 0.01)
    assert mcnemar_power(n, 0.03, 0.01) >= 0.8 > mcnemar_power(n - 50, 0.03, 0.01)
    note = power_note(300, {"gain": 0.03, "loss": 0.01, "source": "AVX2 fp32, 1,319"})
    assert "300 test problems" in note and "AVX2 fp32, 1,319" in note and f"~{n}" in note
    priced = power_note(300, {"gain": 0.03, "loss": 0.01}, eval_s_per_problem=0.9)
    assert f"~{n} (an eval of that many ~{0.9 * n / 60:.0f} min on this machine" in priced


def test_a_measured_stage_re_estimates_the_stages_of_its_kind() -> None:
    plan = Plan("cpu", "fp32", gflops=100.0, efficiency={"eval": 0.5, "train": 0.5})
    plan.stages = [
        StagePlan("baseline", "", {"eval": 3000.0}),
        StagePlan("train", "", {"train": 6000.0}),
        StagePlan("final", "", {"eval": 3000.0}),
    ]
    plan.estimate()
    assert [s.seconds for s in plan.stages] == [60.0, 120.0, 60.0]
    plan.finished("baseline", 120.0)  # the eval ran at half the assumed rate
    assert plan.remaining_s() == 120.0 + 120.0
    plan.finished("train", 0.0)  # reused from an earlier run: says nothing about this machine
    assert plan.efficiency["train"] == 0.5 and plan.remaining_s() == 120.0


def test_an_rl_stage_is_its_rollouts_plus_its_updates_and_re_estimates_nothing() -> None:
    plan = Plan("cpu", "fp32", gflops=100.0, efficiency={"eval": 0.5, "train": 0.25})
    plan.stages = [
        StagePlan("train", "", {"train": 2500.0}),
        StagePlan("rl", "", {"eval": 3000.0, "train": 2500.0}),
        StagePlan("rl-final", "", {"eval": 1000.0}),
    ]
    plan.estimate()
    assert [s.seconds for s in plan.stages] == [100.0, 160.0, 20.0]
    plan.finished("train", 50.0)  # SFT ran twice as fast as assumed: so will RL's update
    assert plan.stages[1].seconds == 60.0 + 50.0
    plan.finished("rl", 500.0)  # two kinds of work in one time: neither rate is known from it
    assert plan.efficiency == {"eval": 0.5, "train": 0.5} and plan.remaining_s() == 20.0


def test_a_plan_starts_from_the_efficiency_measured_in_its_dtype() -> None:
    fp32, bf16 = Plan("cpu", "fp32", gflops=100.0), Plan("cpu", "bf16", gflops=100.0)
    # bf16's matmuls are so fast that the rest of a step weighs more: a smaller share of the peak
    assert (
        bf16.efficiency["eval"] < fp32.efficiency["eval"]
        and bf16.efficiency["train"] < fp32.efficiency["train"]
    )
    bf16.efficiency["eval"] = 0.1
    assert Plan("cpu", "bf16", gflops=100.0).efficiency["eval"] != 0.1  # each plan has its own copy


def test_a_budget_buys_whole_batches_of_training_examples_after_the_other_stages() -> None:
    plan = Plan("cpu", "fp32", gflops=100.0, efficiency={"eval": 0.5, "train": 0.5})
    plan.stages = [
        StagePlan("baseline", "", {"eval": 3000.0}),  # 60 s
        StagePlan("train", "", {"train": 1000.0}, per_example=[100.0] * 10),  # 2 s an example
        StagePlan("final", "", {"eval": 3000.0}),  # 60 s
    ]
    plan.estimate()
    assert plan.examples_within(120 + 8, batch_size=4) == 4
    assert plan.examples_within(120 + 15, batch_size=4) == 4  # 7 fit: whole batches only
    assert plan.examples_within(120 + 500, batch_size=4) == 10  # all of them: the last batch may be short
    assert plan.examples_within(119, batch_size=4) == 0  # the evals alone overrun
