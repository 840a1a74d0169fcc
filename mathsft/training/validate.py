"""In-training validation: loss on held-out examples, and generation accuracy through the eval module,
in the training process or in a background process that lets training go on meanwhile. ``Validation`` is
the bookkeeping both loops (SFT and RL) share: rows, ``best.json``, and the steps still owed."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mathsft.data.schema import Problem
from mathsft.errors import MathsftError
from mathsft.training import checkpoint as ckpt
from mathsft.training.config import LoopConfig, TrainConfig
from mathsft.training.distributed import Dist
from mathsft.training.loss import target_losses
from mathsft.training.metrics import MetricsLog
from mathsft.training.packing import collate
from mathsft.training.tokenize import Tokenized
from mathsft.workers import Worker, WorkerExited

log = logging.getLogger("mathsft.training")


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
    checkpoint: Path, problems: list[Problem], cfg: LoopConfig, out: Path, backend: Any = None
) -> dict[str, Any]:
    """Greedy eval of a checkpoint directory on ``problems`` (an eval directory under ``out``); ``backend``,
    when given, already holds the checkpoint's weights."""
    from mathsft.evaluation import EvalConfig, run_eval

    eval_cfg = EvalConfig(
        model=str(checkpoint),
        out=str(out),
        dataset=cfg.val_dataset,  # what summary.json says the problems are
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

    def __init__(self, cfg: LoopConfig, problems: list[Problem]) -> None:
        self.worker = Worker(
            _validation_worker, (type(cfg), cfg.model_dump(mode="json"), problems), name="mathsft-validation"
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


def _validation_worker(
    kind: type[LoopConfig], cfg: dict[str, Any], problems: list[Problem], jobs: Any, results: Any
) -> None:
    train_cfg = kind(**cfg)
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


class Validation:
    """Generation accuracy of the validation checkpoints of a run, as both loops do it.

    Each validation step's checkpoint is evaluated now (``validation_accuracy``) or handed to a
    ``BackgroundValidator``; its row (``train_step``, ``eval_step``, ``eval/accuracy``, ``eval/ci95``, and
    the step's ``eval/loss`` when one was held for it) goes to ``metrics.jsonl``; ``best.json`` names the
    most accurate checkpoint; ``validating.json`` lists the steps started but not recorded, which the
    rerun of a killed run redoes (``redo``). Only rank 0 (``main``) validates."""

    def __init__(
        self,
        cfg: LoopConfig,
        out: Path,
        problems: list[Problem],
        steps: list[int],
        metrics: MetricsLog | None,
        main: bool,
    ) -> None:
        self.cfg, self.problems, self.steps, self.metrics = cfg, problems, steps, metrics
        self.out, self.folder = out, out / "checkpoints"
        self.wanted = bool(problems) and main  # generation accuracy is measured (rank 0 only)
        self.best = ckpt.read_best(self.folder)
        self.owed = set(ckpt.read_validating(self.folder)) if main else set()
        self.losses: dict[int, float] = {}  # validation losses waiting for their step's accuracy
        background = self.wanted and cfg.val_background and steps
        self.validator = BackgroundValidator(cfg, problems) if background else None

    def axes(self, step: int) -> dict[str, int]:
        return {"train_step": step, "eval_step": self.steps.index(step) + 1}

    def keep(self) -> set[str]:
        """Checkpoints retention must not delete: the best one and those still being validated."""
        busy = self.validator.busy_checkpoints() if self.validator else set()
        return busy | ({self.best["checkpoint"]} if self.best else set())

    def end_of_step(
        self,
        done: int,
        total: int,
        save: Callable[[int, str], Path],
        loss: Callable[[], float] | None = None,
    ) -> None:
        """What both loops do after step ``done``: its checkpoint where one is due (the last step, every
        ``save_every``, every validation step). At a validation step the
        accuracy is owed before the checkpoint is written, then ``loss`` (the validation loss, on every rank;
        SFT's) and the accuracy eval run on it. Background evals finished meanwhile are recorded."""
        name = ckpt.FINAL if done == total else ckpt.step_name(done)
        if done in self.steps:
            self.owe(done)
            path = save(done, name)  # the eval loads the checkpoint
            if loss is not None:
                value = loss()
                if self.wanted:
                    self.losses[done] = value  # the accuracy's row carries it
                elif self.metrics is not None:
                    self.metrics.write({**self.axes(done), "eval/loss": value})
            if self.wanted:
                self.start(done, path)
        elif done == total or (self.cfg.save_every and done % self.cfg.save_every == 0):
            save(done, name)
        self.collect()

    def owe(self, step: int) -> None:
        """Record that ``step``'s accuracy is owed, before its checkpoint is written: a kill in between
        leaves the rerun a checkpoint to validate and the note that it must."""
        if self.wanted:
            self.owed.add(step)
            self.folder.mkdir(parents=True, exist_ok=True)  # the run's first checkpoint may be this one
            ckpt.write_validating(self.folder, self.owed)

    def start(self, step: int, path: Path) -> None:
        """Generation accuracy of checkpoint ``path``: now, or handed to the background validator."""
        self.owed.add(step)
        ckpt.write_validating(self.folder, self.owed)
        valdir = self.out / "validation" / ckpt.step_name(step)
        if self.validator is not None:
            self.validator.submit(step, path, valdir)
            return
        self.record(step, path, validation_accuracy(path, self.problems, self.cfg, valdir))

    def record(self, step: int, path: Path, summary: dict[str, Any]) -> None:
        loss = {"eval/loss": self.losses.pop(step)} if step in self.losses else {}
        row = {**self.axes(step), **loss, "eval/accuracy": summary["accuracy"], "eval/ci95": summary["ci95"]}
        if self.metrics is not None:
            self.metrics.write(row)
        self.owed.discard(step)
        ckpt.write_validating(self.folder, self.owed)
        if self.best is None or summary["accuracy"] > self.best["accuracy"]:
            self.best = {
                "step": step,
                "checkpoint": path.name,
                "accuracy": summary["accuracy"],
                "ci95": summary["ci95"],
            }
            ckpt.write_best(path.parent, self.best)

    def redo(self, total: int) -> None:
        """The validations a killed run had started but not recorded."""
        for step in sorted(self.owed):
            path = self.folder / (ckpt.FINAL if step == total else ckpt.step_name(step))
            if self.wanted and step in self.steps and path.is_dir():
                self.start(step, path)
            elif not path.is_dir() and step in self.steps:  # killed before its checkpoint was written
                self.owed.discard(step)  # the step is trained again and validated then
                ckpt.write_validating(self.folder, self.owed)
            else:
                log.warning(
                    "the validation of step %d cannot be redone (no checkpoint or no validation set)", step
                )
                self.owed.discard(step)
                ckpt.write_validating(self.folder, self.owed)

    def collect(self) -> None:
        """Record the background validations finished since the last call."""
        for result in self.validator.collect() if self.validator else []:
            self.record(result.step, result.checkpoint, result.summary)

    def finish(self) -> None:
        """Wait for the background validations still running, then prune what only they kept."""
        if self.validator is None:
            return
        try:
            for result in self.validator.collect(wait=True):
                self.record(result.step, result.checkpoint, result.summary)
        finally:
            self.validator.close()
        ckpt.prune(self.folder, self.cfg.keep_last, self.keep())  # kept only while they were validated
