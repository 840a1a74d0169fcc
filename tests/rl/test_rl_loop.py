"""`mathsft rl` end to end on a toy model: it learns the toy task, writes a complete run (metrics, stored
rollouts, HF checkpoints, validation), resumes after SIGKILL bitwise equal to an uninterrupted run, and
two gloo processes end with the weights of one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import save_toy_model
from rl_toy import toy_problems, write_gsm8k_file

from mathsft.errors import MathsftError
from mathsft.rl import RLConfig
from mathsft.rl.loop import rl

STEPS, GROUP, BATCH = 4, 4, 2
ARGS = [
    "--max-steps", str(STEPS), "--group-size", str(GROUP), "--batch-size", str(BATCH),
    "--max-new-tokens", "2", "--lr", "0.02", "--seed", "0", "--dataset", "gsm8k",
    "adam_eps=0.01",  # Adam would blow up the head rows of unlikely tokens, whose gradients are ~0
    "updates_per_batch=2", "beta=0.01", "loss_chunk_tokens=8", "micro_batch_tokens=64",
    "save_every=1", "keep_last=5", "eval_every=2", "val_max_new_tokens=2", "val_dataset=gsm8k",
    "log.progress=false",
]  # fmt: skip
TIMING = ("rl/rollout_s", "rl/update_s", "rl/step_s", "rl/rollout_tokens_per_s", "rl/update_tokens_per_s")


@pytest.fixture(scope="module")
def toy(smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("rl-toy")
    return {
        "model": save_toy_model(folder / "model", smollm2_dir),
        "train": write_gsm8k_file(folder / "train.jsonl", toy_problems(6)),
        "val": write_gsm8k_file(folder / "val.jsonl", toy_problems(3, "val")),
    }


# every remedy for groups without signal at once (mathsft/rl/sampling.py)
SIGNAL_ARGS = [
    "dynamic_sampling=true", "max_sampling_rounds=2", "problem_sampler=pass_rate", "settled_draw_rate=0.5",
    "guidance=true", "guidance_fraction=0.6",
]  # fmt: skip


def command(toy: dict[str, Path], out: Path, procs: int = 1, extra: list[str] | None = None) -> list[str]:
    args = ["--model", str(toy["model"]), "--data-path", str(toy["train"]), "--out", str(out), *ARGS]
    args += extra or []
    args.append(f"val_data={toy['val']}")
    if procs == 1:
        return [sys.executable, "-m", "mathsft", "rl", *args]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(procs), "--standalone"]
    return [*launcher, "-m", "mathsft", "rl", *args]


# the subprocess runs are CPU runs (gloo for two processes; bitwise resume is a CPU guarantee), also on a
# machine with one GPU, where two processes would each ask for a GPU of their own
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def straight(toy: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rl-runs") / "straight"
    run(command(toy, out))
    return out


def test_a_tiny_model_learns_to_answer_7(smollm2_dir: Path, tmp_path: Path) -> None:
    model = save_toy_model(tmp_path / "model", smollm2_dir)
    cfg = RLConfig(
        model=str(model), out=str(tmp_path / "run"), max_steps=16, batch_size=2, group_size=8,
        max_new_tokens=2, lr=0.015, adam_eps=0.01, log={"progress": False},
    )  # fmt: skip
    run_dir = rl(cfg, problems=toy_problems(4))
    rewards = [r["rl/reward_mean"] for r in rows(run_dir / "metrics.jsonl")]
    assert sum(rewards[:3]) / 3 < 0.3, rewards  # "7" then end-of-turn: 1/16 of the samples at first
    assert sum(rewards[-3:]) / 3 >= 0.8, rewards
    last = [r["response"] for r in rows(run_dir / "rollouts.jsonl")][-16:]
    assert last.count("7") >= 12, last


def test_the_run_directory_is_complete(straight: Path) -> None:
    metrics = rows(straight / "metrics.jsonl")
    train = [r for r in metrics if "rl/reward_mean" in r]
    assert [r["train_step"] for r in train] == list(range(1, STEPS + 1))
    keys = {"rl/pass_rate", "rl/zero_signal_fraction", "rl/response_tokens", "rl/clip_fraction", "rl/kl"}
    keys |= {"rl/entropy", "rl/rollout_tokens_per_s", "rl/update_tokens_per_s", "rl/calculator", "rl/lr"}
    assert all(keys <= r.keys() for r in train if r["rl/zero_signal_fraction"] < 1)
    for (
        r
    ) in train:  # the counts a run's stage table adds up: every drawn sample's tokens, every forwarded one
        drawn = r["rl/sampled_groups"] * GROUP
        assert r["rl/generated_tokens"] == pytest.approx(r["rl/response_tokens"] * drawn)
        assert r["rl/update_tokens"] > 0 or r["rl/zero_signal_fraction"] == 1
    assert max(r["rl/clip_fraction"] for r in train) > 0  # the second update of a batch is off policy
    assert all(r["rl/kl"] >= 0 for r in train if "rl/kl" in r)
    validation = [r for r in metrics if "eval/accuracy" in r]
    assert [(r["train_step"], r["eval_step"]) for r in validation] == [(2, 1), (4, 2)]
    assert all(len(r["eval/ci95"]) == 2 for r in validation)

    rollouts = rows(straight / "rollouts.jsonl")
    assert len(rollouts) == STEPS * BATCH * GROUP
    assert {"train_step", "problem_id", "response", "reward", "advantage"} <= rollouts[0].keys()
    for step in range(1, STEPS + 1):
        group = [r for r in rollouts if r["train_step"] == step][:GROUP]
        assert len({r["problem_id"] for r in group}) == 1
        assert sum(r["advantage"] for r in group) == pytest.approx(0, abs=1e-9)

    from transformers import AutoModelForCausalLM

    final = straight / "checkpoints" / "final"
    assert AutoModelForCausalLM.from_pretrained(final).config.num_hidden_layers == 2
    assert (final / "trainer_state.pt").is_file() and (straight / "config.yaml").is_file()
    manifest = json.loads((straight / "manifest.json").read_text())
    assert manifest["data"]["count"] == 6 and manifest["optimizer_steps"] == 2 * STEPS
    assert json.loads((straight / "checkpoints" / "best.json").read_text())["step"] in (2, 4)


def kill_at_step_2_and_rerun(cmd: list[str], out: Path) -> None:
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (out / "checkpoints" / "step-000002").is_dir():
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (out / "checkpoints" / "final").exists(), "the run finished before it could be killed"
    run(cmd)


def assert_same_run(a: Path, b: Path) -> None:
    """Bitwise the same final weights, the same rollouts, the same metrics but timings."""
    name = "model.safetensors"
    assert (a / "checkpoints" / "final" / name).read_bytes() == (
        b / "checkpoints" / "final" / name
    ).read_bytes()
    assert (a / "rollouts.jsonl").read_text() == (b / "rollouts.jsonl").read_text()

    def steady(run_dir: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in rows(run_dir / "metrics.jsonl")]

    assert steady(a) == steady(b)  # redone steps are not logged twice


def test_sigkill_then_rerun_ends_bitwise_equal_to_an_uninterrupted_run(
    toy: dict[str, Path], straight: Path, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    kill_at_step_2_and_rerun(command(toy, out), out)
    assert_same_run(out, straight)


@pytest.fixture(scope="module")
def straight_signal(toy: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rl-runs") / "straight-signal"
    run(command(toy, out, extra=SIGNAL_ARGS))
    return out


def test_with_dynamic_sampling_pass_rate_sampler_and_guidance_a_killed_run_resumes_exactly(
    toy: dict[str, Path], straight_signal: Path, tmp_path: Path
) -> None:
    """The sampler's position and pass-rate counts travel with each checkpoint: a killed and rerun job
    draws the problems, rounds and guided groups an uninterrupted one draws, and ends with its weights."""
    straight, killed = straight_signal, tmp_path / "killed"
    kill_at_step_2_and_rerun(command(toy, killed, extra=SIGNAL_ARGS), killed)
    assert_same_run(killed, straight)
    train = [r for r in rows(straight / "metrics.jsonl") if "rl/reward_mean" in r]
    assert all(BATCH <= r["rl/sampled_groups"] <= 2 * BATCH for r in train)
    found = [r["rl/signal_groups"] + r["rl/guided_signal_groups"] for r in train]  # no format reward
    assert [r["rl/trained_groups"] for r in train] == [min(f, BATCH) for f in found]
    state = torch.load(straight / "checkpoints" / "final" / "trainer_state.pt", weights_only=False)
    sampler = state["data"]["sampler"]
    drawn = sum(r["rl/sampled_groups"] for r in train)
    assert sum(sampler["attempts"]) == GROUP * drawn
    # what this toy run exercises (seed 0): second rounds, guided groups with signal, settled problems
    # passed over in the order
    assert any(r["rl/sampled_groups"] > BATCH for r in train)
    assert sum(r["rl/guided_signal_groups"] for r in train) > 0
    assert sampler["cursor"] > drawn
    rollouts = rows(straight / "rollouts.jsonl")
    assert len(rollouts) == GROUP * (drawn + sum(r["rl/guided_groups"] for r in train))


def test_a_step_without_signal_leaves_weights_and_optimizer_alone(smollm2_dir: Path, tmp_path: Path) -> None:
    from mathsft.rl.loop import update
    from mathsft.rl.rollout import Sample
    from mathsft.training.distributed import Dist
    from mathsft.training.loop import build

    cfg = RLConfig(model=str(save_toy_model(tmp_path / "model", smollm2_dir)), group_size=2, lr=0.1)
    setup = build(cfg, 4, Dist())
    before = {n: p.detach().clone() for n, p in setup.model.named_parameters()}
    samples = [
        Sample(0, "p", i, [1, 2], [3, 4], [True, True], "8", "stop", False, False, 0.0) for i in range(2)
    ]
    stats = update(setup, Dist(), cfg, samples, None, 0)
    assert stats.tokens == 0 and stats.entropy is None
    assert all(torch.equal(p, before[n]) for n, p in setup.model.named_parameters())
    assert not setup.optimizer.state  # Adam took no step (its momentum would have moved the weights)


def test_a_rerun_with_another_config_is_refused(toy: dict[str, Path], straight: Path) -> None:
    cfg = RLConfig(model=str(toy["model"]), out=str(straight), max_steps=STEPS, lr=0.5)
    with pytest.raises(MathsftError, match=r"changed: .*lr"):
        rl(cfg, problems=toy_problems(6))


def test_two_processes_end_with_the_weights_of_one(
    toy: dict[str, Path], straight: Path, tmp_path: Path
) -> None:
    """Under torchrun (gloo, FSDP2) rank 0 generates, every rank trains on its share: the same samples and
    the same weights as one process with the same global batch."""
    out = tmp_path / "procs2"
    run(command(toy, out, procs=2))
    assert_like_one_process(out, straight)


def test_with_dynamic_sampling_and_guidance_two_processes_end_with_the_weights_of_one(
    toy: dict[str, Path], straight_signal: Path, tmp_path: Path
) -> None:
    """Every rank runs the step's rounds on the samples rank 0 broadcasts, so their samplers agree."""
    out = tmp_path / "procs2-signal"
    # this run's step 1 has no signal, so its checkpoint holds an optimizer that has not stepped yet: the
    # sharded save must keep it so (an initialised Adam would take another first step than one process's)
    run(command(toy, out, procs=2, extra=SIGNAL_ARGS))  # ARGS save every step
    assert_like_one_process(out, straight_signal)


def assert_like_one_process(out: Path, straight: Path) -> None:
    from safetensors.torch import load_file

    assert (out / "rollouts.jsonl").read_text() == (straight / "rollouts.jsonl").read_text()
    one = load_file(straight / "checkpoints" / "final" / "model.safetensors")
    two = load_file(out / "checkpoints" / "final" / "model.safetensors")
    assert one.keys() == two.keys()
    assert max(float((one[k] - two[k]).abs().max()) for k in one) < 1e-5
    accuracy = [
        [r["eval/accuracy"] for r in rows(d / "metrics.jsonl") if "eval/accuracy" in r]
        for d in (straight, out)
    ]
    assert accuracy[0] == accuracy[1]
