"""In-training validation: loss on held-out examples, and generation accuracy through the eval module,
in the training process or in a background process that lets training go on meanwhile."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mathsft.data.schema import Problem
from mathsft.errors import MathsftError
from mathsft.training.config import TrainConfig
from mathsft.training.distributed import Dist
from mathsft.training.loss import target_losses
from mathsft.training.packing import collate
from mathsft.training.tokenize import Tokenized
from mathsft.workers import Worker, WorkerExited


@torch.no_grad()
def validation_loss(
    model: Any,
    rows: list[Tokenized],
    cfg: TrainConfig,
    pad_id: int,
    device: torch.device,
    autocast: Any,
    dist: Dist,
) -> float:
    """Mean cross-entropy per supervised token over ``rows`` (split over the ranks)."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(2, dtype=torch.float64)
    for start in range(0, len(rows), cfg.batch_size):
        chunk = rows[start : start + cfg.batch_size]
        groups, fillers = dist.micro_batches(chunk, cfg.packing, cfg.micro_batch_tokens, cfg.grad_accum)
        for i, group in enumerate(groups):
            batch = collate(group, cfg.packing, pad_id)
            with autocast():
                ce = target_losses(model, batch, device)
            if i < len(groups) - fillers:
                sums += torch.tensor([float(ce.sum()), batch.num_targets], dtype=torch.float64)
    model.train(was_training)
    total, count = dist.all_reduce_sum(sums).tolist()
    return total / max(count, 1)


def validation_accuracy(
    checkpoint: Path, problems: list[Problem], cfg: TrainConfig, out: Path, backend: Any = None
) -> dict[str, Any]:
    """Greedy eval of a checkpoint directory on ``problems`` (an eval directory under ``out``); ``backend``,
    when given, already holds the checkpoint's weights."""
    from mathsft.evaluation import EvalConfig, run_eval

    eval_cfg = EvalConfig(
        model=str(checkpoint),
        out=str(out),
        prompt=cfg.prompt,
        max_new_tokens=cfg.val_max_new_tokens,
        batch_size=cfg.val_batch_size,
        seed=cfg.seed,
        calculator=cfg.calculator,
        backend=cfg.val_backend,
        backend_options={"device": cfg.val_device} if cfg.val_backend == "hf" else {},
    )
    return run_eval(eval_cfg, problems=problems, backend=backend)


@dataclass
class Validated:
    """A finished background validation: the checkpoint's step, directory and eval summary."""

    step: int
    checkpoint: Path
    summary: dict[str, Any]


class BackgroundValidator:
    """Generation accuracy of checkpoints in a separate process, so that training does not wait for it.

    The trainer submits each validation checkpoint once it is saved (atomically) and goes on; the worker
    evaluates them in order on ``val_device`` (a second GPU, typically) and the trainer collects finished
    summaries between steps and waits for the rest after the last one. A worker that fails or dies is
    reported as an error naming the step, never as a missing row.
    """

    def __init__(self, cfg: TrainConfig, problems: list[Problem]) -> None:
        self.worker = Worker(
            _validation_worker, (cfg.model_dump(mode="json"), problems), name="mathsft-validation"
        )
        self.pending: dict[int, Path] = {}

    def submit(self, step: int, checkpoint: Path, out: Path) -> None:
        self.pending[step] = checkpoint
        self.worker.send((step, str(checkpoint), str(out)))

    def busy_checkpoints(self) -> set[str]:
        """Names of checkpoints still to be evaluated (retention must not delete them)."""
        return {path.name for path in self.pending.values()}

    def collect(self, wait: bool = False) -> list[Validated]:
        """Finished validations, in submission order; with ``wait``, all of them."""
        done: list[Validated] = []
        while self.pending:
            try:
                answer = self.worker.receive(timeout=None if wait else 0.01)
            except WorkerExited as gone:
                raise MathsftError(
                    f"the background validation process exited (code {gone.exitcode}) while validating "
                    f"step {min(self.pending)}; rerun the command to resume"
                ) from None
            if answer is None:
                break
            status, step, payload = answer
            if status == "error":
                raise MathsftError(f"background validation of step {step} failed: {payload}")
            done.append(Validated(step, self.pending.pop(step), payload))
        return done

    def close(self) -> None:
        self.worker.stop()


def _validation_worker(cfg: dict[str, Any], problems: list[Problem], jobs: Any, results: Any) -> None:
    train_cfg = TrainConfig(**cfg)
    engine = None  # vLLM: one engine for the whole run, given each checkpoint's weights in place
    if train_cfg.val_backend == "vllm" and train_cfg.val_device.startswith("cuda:"):
        os.environ["CUDA_VISIBLE_DEVICES"] = train_cfg.val_device.split(":", 1)[1]  # before CUDA starts
    while (job := jobs.get()) is not None:
        step, checkpoint, out = job
        try:
            if train_cfg.val_backend == "vllm":
                engine = _vllm_with_weights(engine, Path(checkpoint))
            summary = validation_accuracy(Path(checkpoint), problems, train_cfg, Path(out), engine)
        except Exception as err:  # sent to the trainer, which raises it with the step
            results.put(("error", step, f"{type(err).__name__}: {err}"))
            return
        results.put(("ok", step, summary))


def _vllm_with_weights(engine: Any, checkpoint: Path) -> Any:
    """A vLLM engine holding ``checkpoint``'s weights: started on the first one, then ``load_weights`` from
    its safetensors (the CS336 set-up), which costs seconds where a new engine costs a minute."""
    from mathsft.generation import make_backend

    if engine is None:
        return make_backend("vllm", str(checkpoint))
    from safetensors.torch import load_file

    shards = sorted(checkpoint.glob("*.safetensors"))
    if not shards:
        raise MathsftError(f"{checkpoint}: no *.safetensors files to load into the vLLM engine")
    engine.load_weights(item for shard in shards for item in load_file(shard).items())
    return engine
