"""`mathsft train` under torchrun (2 CPU processes, gloo, FSDP2): the same weights as one process with the
same global batch, validation loss over both ranks, and kill-and-resume ending equal to an uninterrupted run.

The data is chosen to stress the rank bookkeeping: 25 examples at batch 8 leave one example for the last
step (one rank runs a zero-weight filler), and a 256-token micro-batch budget gives the ranks different
micro-batch counts."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from mathsft.data import synthetic_problems
from mathsft.training import problems_to_examples
from mathsft.training.distributed import balance
from mathsft.training.tokenize import Tokenized

ARGS = [
    "--max-length", "256", "--batch-size", "8", "--lr", "1e-3", "--seed", "0",
    "epochs=1", "micro_batch_tokens=256", "peak_tflops=1.0", "save_every=1", "keep_last=4",
    "eval_every=2", "val_max_new_tokens=8", "val_dataset=gsm8k", "log.progress=false",
    "loss_chunk_tokens=32",  # the tied head's loss in chunks, recomputed in backward, under FSDP too
]  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("dist-data")
    train = folder / "sft.jsonl"
    examples = problems_to_examples(synthetic_problems("train", 25, 0))
    train.write_text(
        "".join(json.dumps({"prompt": e.prompt, "response": e.response}) + "\n" for e in examples)
    )
    val = folder / "val.jsonl"
    problems = synthetic_problems("test", 5, 1)
    val.write_text(
        "".join(
            json.dumps({"question": p.problem, "answer": f"{p.solution}\n#### {p.answer}"}) + "\n"
            for p in problems
        )
    )
    return train, val


def command(procs: int, model: Path, files: tuple[Path, Path], out: Path) -> list[str]:
    train, val = files
    args = ["--model", str(model), "--data", str(train), "--out", str(out), *ARGS, f"val_data={val}"]
    if procs == 1:
        return [sys.executable, "-m", "mathsft", "train", *args]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(procs)]
    return [*launcher, "--standalone", "-m", "mathsft", "train", *args]


def run(cmd: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]


def weights(run_dir: Path) -> dict:
    return load_file(run_dir / "checkpoints" / "final" / "model.safetensors")


def metric_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tiny_model_dir: Path, files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("dist-runs")
    out = {n: folder / f"procs{n}" for n in (1, 2)}
    for n, run_dir in out.items():
        run(command(n, tiny_model_dir, files, run_dir))
    return out


def test_two_processes_end_with_the_weights_of_one(runs: dict) -> None:
    one, two = weights(runs[1]), weights(runs[2])
    assert one.keys() == two.keys()
    worst = max(float((one[k] - two[k]).abs().max()) for k in one)
    assert worst < 1e-5, worst
    losses = {n: [r["train/loss"] for r in metric_rows(d) if "train/loss" in r] for n, d in runs.items()}
    assert len(losses[1]) == len(losses[2]) == 4
    assert losses[1] == pytest.approx(losses[2], rel=1e-5)
    tokens = {
        n: [r["train/supervised_tokens"] for r in metric_rows(d) if "train/loss" in r]
        for n, d in runs.items()
    }
    assert tokens[1] == tokens[2]  # the filler of the ragged last step is not counted


def test_validation_loss_covers_both_ranks(runs: dict) -> None:
    val = {n: [r for r in metric_rows(d) if "eval/loss" in r] for n, d in runs.items()}
    assert [r["train_step"] for r in val[2]] == [2, 4]
    assert [r["eval/loss"] for r in val[1]] == pytest.approx([r["eval/loss"] for r in val[2]], rel=1e-5)
    assert all("eval/accuracy" in r for r in val[2])


def test_sharded_checkpoints_and_a_plain_hf_export(runs: dict) -> None:
    from transformers import AutoModelForCausalLM

    folder = runs[2] / "checkpoints"
    step = folder / "step-000002"
    assert (step / "dcp" / ".metadata").is_file()
    assert {p.name for p in step.glob("rng-rank*.pt")} == {"rng-rank0.pt", "rng-rank1.pt"}
    final = folder / "final"
    assert not (final / "dcp").exists()  # a finished run is never resumed
    model = AutoModelForCausalLM.from_pretrained(final)
    assert sum(p.numel() for p in model.parameters()) > 0
    manifest = json.loads((runs[2] / "manifest.json").read_text())
    assert manifest["world_size"] == 2


def test_kill_and_resume_with_two_processes_ends_equal(
    runs: dict, tiny_model_dir: Path, files: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        command(2, tiny_model_dir, files, out),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not (out / "checkpoints" / "step-000002").is_dir():
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        kill_tree(proc)
    assert not (out / "checkpoints" / "final").exists()
    run(command(2, tiny_model_dir, files, out))
    resumed, straight = weights(out), weights(runs[2])
    assert all(bool((resumed[k] == straight[k]).all()) for k in straight)


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL torchrun and its ranks, as a lost machine would: the ranks run in sessions of their own, so
    killing torchrun's process group alone leaves them training (and writing) on."""
    import psutil

    ranks = psutil.Process(proc.pid).children(recursive=True)
    os.killpg(proc.pid, signal.SIGKILL)
    for rank in ranks:
        with contextlib.suppress(psutil.NoSuchProcess):
            rank.kill()
    psutil.wait_procs(ranks, timeout=30)
    proc.wait()


def test_a_finished_runs_final_is_not_where_a_rerun_resumes(runs: dict) -> None:
    """A 2-process final holds the HF export only (no sharded optimizer or RNG state): a rerun that still owes
    its validation resumes from the newest step checkpoint instead of failing to load the final's."""
    from mathsft.training.checkpoint import latest_checkpoint

    latest = latest_checkpoint(runs[2] / "checkpoints")
    assert latest is not None and latest.name.startswith("step-") and (latest / "dcp").is_dir()
    assert latest_checkpoint(runs[1] / "checkpoints").name == "final"  # one process: the final resumes


def test_a_world_size_change_is_refused(
    runs: dict, tiny_model_dir: Path, files: tuple[Path, Path], tmp_path: Path
) -> None:
    import shutil

    out = tmp_path / "resized"
    shutil.copytree(runs[2], out)
    shutil.rmtree(out / "checkpoints" / "final")
    done = subprocess.run(command(1, tiny_model_dir, files, out), capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "saved by 2 process(es)" in done.stderr


def test_more_processes_than_gpus_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """torchrun with 2 processes on a 1-GPU machine: rank 1 is told why, not CUDA's 'invalid device ordinal'."""
    import torch

    from mathsft.errors import MathsftError
    from mathsft.training.distributed import Dist

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(MathsftError, match=r"no GPU of its own \(1 visible\).*CUDA_VISIBLE_DEVICES"):
        Dist.from_env()


def rows_of(lengths: list[int]) -> list[Tokenized]:
    return [Tokenized(np.arange(n), np.zeros(n, dtype=bool), f"r{i}") for i, n in enumerate(lengths)]


def test_balance_deals_every_row_once_and_evens_the_tokens() -> None:
    rows = rows_of([90, 10, 50, 50, 30, 70, 20, 40])
    parts = balance(rows, 2)
    assert sorted(i for p in parts for i in p) == list(range(8))
    loads = [sum(len(rows[i]) for i in p) for p in parts]
    assert abs(loads[0] - loads[1]) <= 10


LORA = ["lora.r=4", "lora.alpha=8", "lora.target_modules=all-linear"]


@pytest.fixture(scope="module")
def lora_runs(
    tiny_model_dir: Path, files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict:
    pytest.importorskip("peft", reason="LoRA needs the lora extra (peft)")
    folder = tmp_path_factory.mktemp("dist-lora")
    out = {n: folder / f"procs{n}" for n in (1, 2)}
    for n, run_dir in out.items():
        run([*command(n, tiny_model_dir, files, run_dir), *LORA])
    return out


def test_lora_with_two_processes_ends_with_the_merged_weights_of_one(
    lora_runs: dict, tiny_model_dir: Path
) -> None:
    one, two = weights(lora_runs[1]), weights(lora_runs[2])
    assert one.keys() == two.keys() == load_file(tiny_model_dir / "model.safetensors").keys()  # still tied
    assert max(float((one[k] - two[k]).abs().max()) for k in one) < 1e-5
    base = load_file(tiny_model_dir / "model.safetensors")
    moved = {k for k in one if not bool((one[k] == base[k]).all())}
    assert moved and all("proj" in k for k in moved)  # adapters merged into the linears; norms frozen


def test_lora_kill_and_resume_with_two_processes_ends_equal(
    lora_runs: dict, tiny_model_dir: Path, files: tuple[Path, Path], tmp_path: Path
) -> None:
    import shutil

    out = tmp_path / "lora-resumed"
    shutil.copytree(lora_runs[2], out)  # as if killed right after step 2's checkpoint
    for name in ("final", "step-000003", "step-000004"):
        shutil.rmtree(out / "checkpoints" / name, ignore_errors=True)
    shutil.rmtree(out / "validation" / "step-000004")
    run([*command(2, tiny_model_dir, files, out), *LORA])
    resumed, straight = weights(out), weights(lora_runs[2])
    assert all(bool((resumed[k] == straight[k]).all()) for k in straight)


SLURM_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "slurm_train.sbatch"
SHIMS = {  # SLURM's two commands the script calls, standing in for a 2-node allocation on this machine
    "scontrol": 'for i in $(seq 1 "$SLURM_NNODES"); do echo localhost; done\n',
    "srun": (
        'while [[ "$1" == --* ]]; do shift; done\n'
        "pids=()\n"
        'for node in $(seq 0 $((SLURM_NNODES - 1))); do SLURM_NODEID=$node "$@" & pids+=($!); done\n'
        'rc=0; for pid in "${pids[@]}"; do wait "$pid" || rc=$?; done; exit $rc\n'
    ),
}


def write_shims(folder: Path, bodies: dict[str, str]) -> Path:
    """Executable bash stand-ins for SLURM's commands, in ``folder`` (put it first on PATH)."""
    folder.mkdir()
    for name, body in bodies.items():
        (folder / name).write_text("#!/bin/bash\n" + body)
        (folder / name).chmod(0o755)
    return folder


def test_the_slurm_script_on_two_nodes_ends_with_the_weights_of_one_process(
    runs: dict, tiny_model_dir: Path, files: tuple[Path, Path], tmp_path: Path
) -> None:
    import socket

    shims = write_shims(tmp_path / "bin", SHIMS)
    with socket.socket() as probe:  # a free port for the c10d rendezvous
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "slurm"
    args = command(1, tiny_model_dir, files, out)[4:]  # the `mathsft train` arguments
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(shims), str(Path(sys.executable).parent), os.environ["PATH"]]),
        "SLURM_JOB_NODELIST": "node[1-2]", "SLURM_NNODES": "2", "SLURM_JOB_ID": "42",
        "GPUS_PER_NODE": "1", "PORT": str(port), "OMP_NUM_THREADS": "1",
    }  # fmt: skip
    done = subprocess.run(
        ["bash", str(SLURM_SCRIPT), *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert json.loads((out / "manifest.json").read_text())["world_size"] == 2
    one, nodes = weights(runs[1]), weights(out)
    assert max(float((one[k] - nodes[k]).abs().max()) for k in one) < 1e-5


def test_the_slurm_script_takes_the_first_host_of_a_long_node_list(tmp_path: Path) -> None:
    """A large allocation lists many hosts: reading only the first must not kill the job with SIGPIPE under
    the script's `pipefail` (it did with `head -n 1`, exit 141, no message)."""
    shims = write_shims(tmp_path / "bin", {"scontrol": "seq -f 'node%g' 1 200000\n", "srun": 'echo "$@"\n'})
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(shims), os.environ["PATH"]]),
        "SLURM_JOB_NODELIST": "node[1-200000]", "SLURM_NNODES": "200000", "SLURM_JOB_ID": "7", "PORT": "29500",
    }  # fmt: skip
    done = subprocess.run(["bash", str(SLURM_SCRIPT), "--out", "o"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "--rdzv-endpoint node1:29500" in done.stdout
