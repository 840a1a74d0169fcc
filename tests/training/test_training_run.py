"""`train` end to end on a tiny model: run directory contents, HF checkpoints, validation, best checkpoint,
and resume after SIGKILL ending bitwise equal to an uninterrupted run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mathsft.data import synthetic_problems
from mathsft.errors import MathsftError
from mathsft.training import TrainConfig, problems_to_examples, train

TRAIN_KEYS = {
    "train_step",
    "train/loss",
    "train/lr",
    "train/grad_norm",
    "train/tokens_per_s",
    "train/supervised_tokens",
    "train/supervised_tokens_per_s",
    "train/padding_fraction",
    "train/mfu",
    "train/step_s",
    "train/compile_s",
}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sft") / "sft.jsonl"
    examples = problems_to_examples(synthetic_problems("train", 24, 0))
    path.write_text(
        "".join(json.dumps({"prompt": e.prompt, "response": e.response}) + "\n" for e in examples)
    )
    return path


def _tiny_cfg(tiny_model_dir: Path, out: Path, **overrides: object) -> TrainConfig:
    """A short run of the tiny model: 4 examples a step of up to 256 tokens."""
    settings: dict = {"model": str(tiny_model_dir), "out": str(out), "batch_size": 4, "max_length": 256}
    return TrainConfig(**{**settings, **overrides})


def _validation_cfg(tiny_model_dir: Path, out: Path, **overrides: object) -> TrainConfig:
    settings: dict = {
        "model": str(tiny_model_dir),
        "out": str(out),
        "max_steps": 3,
        "batch_size": 4,
        "max_length": 256,
        "lr": 1e-3,
        "eval_every": 2,
        "val_max_new_tokens": 8,
        "val_batch_size": 4,
        "peak_tflops": 1.0,
        "keep_last": 1,
        "val_device": "cpu",
    }
    return TrainConfig(**(settings | overrides))


def _eval_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [
        {k: v for k, v in r.items() if k.startswith("eval") or k == "train_step"}
        for r in rows
        if "eval_step" in r
    ]


def test_validation_accuracy_loss_and_best_checkpoint(tiny_model_dir: Path, tmp_path: Path) -> None:
    import mathsft.generation

    if not hasattr(mathsft.generation, "make_backend"):
        pytest.skip("the generation backends (mathsft.generation.make_backend) are not in this checkout yet")
    examples = problems_to_examples(synthetic_problems("train", 16, 0))
    val = synthetic_problems("test", 4, 1)
    cfg = _validation_cfg(tiny_model_dir, tmp_path / "run")
    run = train(cfg, examples=examples, val_problems=val)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val_rows = [r for r in rows if "eval/accuracy" in r]
    assert [(r["train_step"], r["eval_step"]) for r in val_rows] == [(2, 1), (3, 2)]  # the final step always
    assert all("eval/loss" in r and len(r["eval/ci95"]) == 2 for r in val_rows)
    assert (run / "validation" / "step-000002" / "summary.json").is_file()
    best = json.loads((run / "checkpoints" / "best.json").read_text())
    assert (
        best["checkpoint"] in {"step-000002", "final"} and (run / "checkpoints" / best["checkpoint"]).is_dir()
    )


def test_background_validation_logs_what_inline_validation_logs(tiny_model_dir: Path, tmp_path: Path) -> None:
    examples = problems_to_examples(synthetic_problems("train", 16, 0))
    val = synthetic_problems("test", 4, 1)
    inline = train(_validation_cfg(tiny_model_dir, tmp_path / "inline"), examples=examples, val_problems=val)
    background = train(
        _validation_cfg(tiny_model_dir, tmp_path / "bg", val_background=True),
        examples=examples,
        val_problems=val,
    )
    assert _eval_rows(background) == _eval_rows(inline)  # one row per eval step: loss, accuracy, CI
    assert [r["eval_step"] for r in _eval_rows(background)] == [1, 2]
    for name in ("best.json",):
        assert (background / "checkpoints" / name).read_text() == (inline / "checkpoints" / name).read_text()
    assert sorted(p.name for p in (background / "checkpoints").iterdir()) == sorted(
        p.name for p in (inline / "checkpoints").iterdir()
    )
    assert not (background / "checkpoints" / "validating.json").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a device that fails: cuda on a CPU-only machine")
def test_failed_background_validation_is_an_error_and_a_rerun_redoes_it(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    examples = problems_to_examples(synthetic_problems("train", 16, 0))
    val = synthetic_problems("test", 4, 1)
    cfg = _validation_cfg(tiny_model_dir, tmp_path / "run", val_background=True, val_device="cuda:0")
    with pytest.raises(
        MathsftError, match=r"background validation of step 2 failed: .*CUDA is not available"
    ):
        train(cfg, examples=examples, val_problems=val)
    folder = tmp_path / "run" / "checkpoints"
    # training went on meanwhile: the final step was submitted too, and both are still owed
    assert json.loads((folder / "validating.json").read_text()) == [2, 3]
    assert (folder / "step-000002").is_dir() and (folder / "final").is_dir()  # kept for their validations
    run = train(_validation_cfg(tiny_model_dir, tmp_path / "run"), examples=examples, val_problems=val)
    assert [(r["train_step"], r["eval_step"]) for r in _eval_rows(run) if "eval/accuracy" in r] == [
        (2, 1),
        (3, 2),
    ]
    assert not (folder / "validating.json").exists()


def test_a_validation_cut_short_at_the_final_step_is_redone(tiny_model_dir: Path, tmp_path: Path) -> None:
    examples = problems_to_examples(synthetic_problems("train", 16, 0))
    val = synthetic_problems("test", 4, 1)
    cfg = _validation_cfg(tiny_model_dir, tmp_path / "run")
    run = train(cfg, examples=examples, val_problems=val)
    expected = (run / "metrics.jsonl").read_text()
    # the state a kill during the final validation leaves: final saved, its accuracy row not written yet
    lines = expected.splitlines(keepends=True)
    (run / "metrics.jsonl").write_text("".join(lines[:-1]))
    shutil.rmtree(run / "validation" / "step-000003")
    (run / "checkpoints" / "validating.json").write_text("[3]\n")
    train(cfg, examples=examples, val_problems=val)
    redone = (run / "metrics.jsonl").read_text().splitlines()
    assert json.loads(redone[-1])["eval/accuracy"] == json.loads(lines[-1])["eval/accuracy"]
    assert "eval/loss" not in json.loads(redone[-1])  # the loss needs the model of that step; not redone
    assert not (run / "checkpoints" / "validating.json").exists()
    assert train(cfg, examples=examples, val_problems=val) == run  # complete now


def test_train_writes_a_complete_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    examples = problems_to_examples(synthetic_problems("train", 16, 0))
    cfg = TrainConfig(
        model=str(tiny_model_dir),
        out=str(tmp_path / "run"),
        max_steps=3,
        batch_size=4,
        max_length=256,
        lr=1e-3,
        save_every=1,
        peak_tflops=1.0,
        keep_last=1,
    )
    run = train(cfg, examples=examples)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["train_step"] for r in rows] == [1, 2, 3]
    assert all(r.keys() >= TRAIN_KEYS for r in rows)
    assert all(r["train/padding_fraction"] == 0 and r["train/mfu"] > 0 for r in rows)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["final", "step-000002"]  # keep_last=1
    for name in ("config.yaml", "manifest.json", "preflight.md", "preflight.json"):
        assert (run / name).is_file(), name
    preflight = json.loads((run / "preflight.json").read_text())
    assert preflight["supervised_is_response_plus_eot"] and preflight["examples"]["kept"] == 16
    assert "⟦" in (run / "preflight.md").read_text()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    final = run / "checkpoints" / "final"
    model = AutoModelForCausalLM.from_pretrained(final)
    assert AutoTokenizer.from_pretrained(final).chat_template
    assert (final / "generation_config.json").is_file() and (final / "trainer_state.pt").is_file()
    assert model.config.num_hidden_layers == 2
    assert train(cfg, examples=examples) == run  # complete: returns at once
    with pytest.raises(MathsftError, match="changed: lr"):
        train(cfg.model_copy(update={"lr": 0.5}), examples=examples)


def test_overlong_counts_reach_the_preflight_report(tiny_model_dir: Path, tmp_path: Path) -> None:
    examples = problems_to_examples(synthetic_problems("train", 6, 0))
    examples[0].messages[-1]["content"] = "long " * 400
    cfg = TrainConfig(
        model=str(tiny_model_dir),
        out=str(tmp_path / "run"),
        max_steps=1,
        batch_size=2,
        max_length=200,
        peak_tflops=1.0,
    )
    run = train(cfg, examples=examples)
    assert json.loads((run / "preflight.json").read_text())["examples"]["dropped_overlong"] == 1
    assert "1 dropped" in (run / "preflight.md").read_text()


def test_bf16_on_a_cpu_without_native_bf16_is_flagged_before_step_one(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from mathsft.generation.speed import measured_peak_flops
    from mathsft.training.metrics import cpu_bf16_warning

    cfg = TrainConfig(
        model=str(tiny_model_dir), out=str(tmp_path / "run"), max_steps=1, batch_size=2, max_length=512,
        dtype="bf16", device="cpu", peak_tflops=1.0,
    )  # fmt: skip
    run = train(cfg, examples=problems_to_examples(synthetic_problems("train", 2, 0)))
    warnings = json.loads((run / "preflight.json").read_text())["warnings"]
    slower = measured_peak_flops("cpu", "bf16") < measured_peak_flops("cpu", "fp32")  # cached: what train saw
    assert warnings == ([cpu_bf16_warning()] if slower else [])
    if slower:  # this CPU (the 2-core AVX2 machine CI runs on has no native bf16)
        assert "dtype=fp32 is faster" in warnings[0]
        assert "**warning:** dtype=bf16 on this CPU" in (run / "preflight.md").read_text()


def command(model: Path, data: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mathsft",
        "train",
        "--model",
        str(model),
        "--data",
        str(data),
        "--out",
        str(out),
        "--max-steps",
        "8",
        "--batch-size",
        "4",
        "--max-length",
        "256",
        "--lr",
        "1e-3",
        "--seed",
        "0",
        "save_every=2",
        "peak_tflops=1",
        "weight_decay=0.1",
        "schedule=cosine",
        "warmup_steps=2",
    ]


def test_sigkill_then_rerun_ends_bitwise_equal_to_an_uninterrupted_run(
    tiny_model_dir: Path, data_file: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight = tmp_path / "straight"
    subprocess.run(command(tiny_model_dir, data_file, straight), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        command(tiny_model_dir, data_file, killed),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    metrics = killed / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "checkpoints" / "final").exists(), "the run finished before it could be killed"
    assert (killed / "checkpoints" / "step-000002").is_dir()
    subprocess.run(command(tiny_model_dir, data_file, killed), check=True, env=env, capture_output=True)

    a = (straight / "checkpoints" / "final" / "model.safetensors").read_bytes()
    b = (killed / "checkpoints" / "final" / "model.safetensors").read_bytes()
    assert a == b
    steps = [json.loads(line)["train_step"] for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))  # redone steps are not logged twice


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    from mathsft.cli import app

    result = CliRunner().invoke(app, ["train", "--out", str(tmp_path), "nonsense_key=1"])
    assert result.exit_code != 0 and "nonsense_key" in str(result.exception)


def test_frozen_embeddings_and_lowest_layers_stay_exactly_as_loaded(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    examples = problems_to_examples(synthetic_problems("train", 12, 0))
    cfg = _tiny_cfg(
        tiny_model_dir,
        tmp_path / "frozen",
        max_steps=2,
        lr=1e-2,
        peak_tflops=1.0,
        freeze_embeddings=True,
        freeze_layers=1,
    )
    run = train(cfg, examples=examples)
    base = load_file(tiny_model_dir / "model.safetensors")
    final = load_file(run / "checkpoints" / "final" / "model.safetensors")
    assert final.keys() == base.keys()
    changed = {k for k in base if not torch.equal(base[k], final[k])}
    assert changed and not any(k.startswith(("model.embed_tokens", "model.layers.0.")) for k in changed)
    assert any(k.startswith("model.layers.1.") for k in changed)
    assert all(r["train/mfu"] > 0 for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()))
    with pytest.raises(MathsftError, match="freeze_layers=3, but the model has 2 decoder layers"):
        train(
            cfg.model_copy(update={"out": str(tmp_path / "too-many"), "freeze_layers": 3}), examples=examples
        )


def test_lora_trains_adapters_only_exports_merged_weights_and_resumes(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    pytest.importorskip("peft", reason="LoRA needs the lora extra (peft)")
    import shutil

    from safetensors.torch import load_file

    from mathsft.training.config import LoraConfig

    examples = problems_to_examples(synthetic_problems("train", 12, 0))
    cfg = TrainConfig(
        model=str(tiny_model_dir),
        out=str(tmp_path / "lora"),
        max_steps=3,
        batch_size=4,
        max_length=256,
        lr=1e-2,
        save_every=1,
        keep_last=3,
        peak_tflops=1.0,
        lora=LoraConfig(r=4, alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    run = train(cfg, examples=examples)
    base = load_file(tiny_model_dir / "model.safetensors")
    final = load_file(run / "checkpoints" / "final" / "model.safetensors")
    assert final.keys() == base.keys()  # a plain HF model: adapters merged, no peft names
    assert not (run / "checkpoints" / "final" / "adapter_config.json").exists()
    changed = {k for k in base if not torch.equal(base[k], final[k])}
    assert changed and all(k.endswith(("q_proj.weight", "v_proj.weight")) for k in changed)

    # resume from step 2 (as after a crash): the same final weights
    resumed = tmp_path / "lora-resumed"
    shutil.copytree(run, resumed)
    for name in ("final", "step-000003"):
        shutil.rmtree(resumed / "checkpoints" / name, ignore_errors=True)
    train(cfg.model_copy(update={"out": str(resumed)}), examples=examples)
    again = load_file(resumed / "checkpoints" / "final" / "model.safetensors")
    assert all(torch.equal(again[k], final[k]) for k in final)


def test_tensorboard_gets_the_metrics_rows(tiny_model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="log.tensorboard needs the tensorboard package")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from mathsft.training.config import LogConfig

    cfg = TrainConfig(
        model=str(tiny_model_dir),
        out=str(tmp_path / "tb"),
        max_steps=2,
        batch_size=4,
        max_length=256,
        peak_tflops=1.0,
        log=LogConfig(tensorboard=True, progress=False),
    )
    run = train(cfg, examples=problems_to_examples(synthetic_problems("train", 8, 0)))
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert {"train/loss", "train/lr", "train/mfu"} <= set(events.Tags()["scalars"])
    logged = [json.loads(line)["train/loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx(logged, rel=1e-6)
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2]


def test_wandb_offline_run_is_continued_on_resume(tiny_model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("wandb", reason="log.wandb needs the wandb package")
    from mathsft.training.config import LogConfig

    out = tmp_path / "wb"
    cfg = TrainConfig(
        model=str(tiny_model_dir),
        out=str(out),
        max_steps=3,
        save_every=1,
        keep_last=5,
        batch_size=4,
        max_length=256,
        peak_tflops=1.0,
        log=LogConfig(wandb=True, wandb_mode="offline", progress=False),
    )
    examples = problems_to_examples(synthetic_problems("train", 8, 0))
    train(cfg, examples=examples)
    for later in ("final", "step-000003"):  # as if killed right after the step-2 checkpoint
        shutil.rmtree(out / "checkpoints" / later, ignore_errors=True)
    train(cfg, examples=examples)  # resumes at step 3
    run_id = (out / "wandb-id").read_text()
    runs = sorted((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(r.name.endswith(run_id) for r in runs)


def test_partial_checkpointing_and_compiled_regions_train_the_same_weights(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The speed options change where activations live and which kernels run, not the update."""
    from safetensors.torch import load_file

    from mathsft.training.distributed import Dist
    from mathsft.training.loop import build
    from mathsft.training.memory import decoder_layers

    examples = problems_to_examples(synthetic_problems("train", 8, 0))
    base = _tiny_cfg(tiny_model_dir, tmp_path / "plain", max_steps=2, lr=1e-3)
    fast = base.model_copy(
        update={
            "out": str(tmp_path / "fast"),
            "gradient_checkpointing": True,
            "checkpoint_layers": 1,
            "compile": True,
        }
    )
    setup = build(fast, 2, Dist())
    assert [layer.gradient_checkpointing for layer in decoder_layers(setup.model)] == [True, False]
    runs = [train(c, examples=examples) for c in (base, fast)]
    weights = [load_file(run / "checkpoints/final/model.safetensors") for run in runs]
    for name, value in weights[0].items():
        torch.testing.assert_close(weights[1][name], value, rtol=1e-4, atol=1e-5, msg=name)
    # compile time is reported apart from throughput: the first compiled step pays it, later steps do not
    compiled = [
        [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] for run in runs
    ]
    assert [r["train/compile_s"] for r in compiled[0]] == [0.0, 0.0]
    first, second = compiled[1]
    assert first["train/compile_s"] > 0.5 and second["train/compile_s"] == 0.0
    assert first["train/step_s"] > first["train/compile_s"]
    with pytest.raises(ValueError, match="checkpoint_layers needs gradient_checkpointing"):
        TrainConfig(model="x", checkpoint_layers=1)
