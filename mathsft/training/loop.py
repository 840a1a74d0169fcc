"""``train``: the explicit SFT loop.

One optimizer step takes ``batch_size`` examples in a seeded per-epoch order, splits them into micro-batches
(packed by default), and weights every supervised token by ``1 / (supervised tokens of the whole step)``
before the first backward, so accumulation never changes the update. Checkpoints are plain HF directories;
rerunning the same command resumes from the newest one with the same optimizer, scheduler, RNG and data
position, and ends with the weights an uninterrupted run would have.

The RL loop (``mathsft/rl/loop.py``) is built from this module's pieces: ``build``, ``resume``,
``save_state``, ``accumulate``, ``optimizer_step``, ``progress``, ``claim_run_dir`` and ``step_indices``,
with ``training/validate.py``'s ``Validation``; one implementation of each for both loops.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import yaml

from mathsft.config import save_resolved
from mathsft.data.schema import Problem, SFTExample, content_hash
from mathsft.errors import MathsftError
from mathsft.evaluation.prompts import get_template
from mathsft.generation.speed import measured_peak_flops
from mathsft.models import auto_device, load_tokenizer, resolve_model
from mathsft.training import checkpoint as ckpt
from mathsft.training.config import HeapTrim, LoopConfig, TrainConfig
from mathsft.training.data import load_training_examples, load_val_problems, problems_to_examples
from mathsft.training.distributed import Dist
from mathsft.training.loss import can_chunk, step_loss, target_weights
from mathsft.training.memory import (
    TRIM_EVERY_STEPS,
    decoder_layers,
    release_free_memory,
    release_memory_during_backward,
)
from mathsft.training.metrics import MetricsLog, compile_seconds, cpu_bf16_warning, model_flops
from mathsft.training.packing import Batch, collate, micro_batches, register_packed_attention
from mathsft.training.preflight import write_preflight
from mathsft.training.tokenize import (
    Tokenized,
    TokenizeStats,
    chat_template_digest,
    render,
    tokenize_cached,
)
from mathsft.training.validate import Validation, validation_loss

log = logging.getLogger("mathsft.training")
T = TypeVar("T")


# ----------------------------------------------------------------------------------------------------
# Pure pieces: schedule, data order, parameter groups


def lr_lambda(schedule: str, warmup: int, total: int, min_ratio: float) -> Callable[[int], float]:
    """Multiplier of ``lr`` at (0-based) step ``s``: linear warmup from 1/(warmup+1), then the decay."""

    def f(s: int) -> float:
        if s < warmup:
            return (s + 1) / (warmup + 1)
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (s - warmup) / max(1, total - warmup))
        decay = 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1 - progress
        return min_ratio + (1 - min_ratio) * decay

    return f


def total_steps(cfg: TrainConfig, n: int) -> int:
    return cfg.max_steps or max(1, math.ceil(cfg.epochs * math.ceil(n / cfg.batch_size)))


def step_indices(step: int, n: int, batch_size: int, seed: int) -> list[int]:
    """Examples of (0-based) ``step``: a seeded permutation per epoch, so the data position is just the step."""
    per_epoch = math.ceil(n / batch_size)
    epoch, k = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    return order[k * batch_size : (k + 1) * batch_size].tolist()


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices only (not norms, biases)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def validation_steps(cfg: LoopConfig, total: int) -> list[int]:
    every = cfg.eval_every or total
    return sorted({*range(every, total + 1, every), total})


# ----------------------------------------------------------------------------------------------------
# Setup


@dataclass
class Setup:
    model: Any
    tokenizer: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    device: torch.device
    body_params: int  # trained parameters outside the embeddings and head
    frozen_body_params: int  # fixed ones (freeze_layers): forward only
    head_trains: bool
    heap_trim: HeapTrim


def pick_device(spec: str) -> torch.device:
    return torch.device(auto_device(spec))


def build(cfg: LoopConfig, total: int, dist: Dist) -> Setup:
    from transformers import AutoModelForCausalLM

    device = dist.device if dist.world > 1 else pick_device(cfg.device)
    tokenizer = load_tokenizer(cfg.model, padding_side="right")
    attn = register_packed_attention() if cfg.packing else "sdpa"
    torch.manual_seed(cfg.seed)
    model = AutoModelForCausalLM.from_pretrained(
        resolve_model(cfg.model), dtype=torch.float32, attn_implementation=attn
    )
    model.to(device)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
        if cfg.checkpoint_layers is not None:
            for layer in decoder_layers(model)[cfg.checkpoint_layers :]:
                layer.gradient_checkpointing = False
    if cfg.compile:
        if dist.world > 1:
            raise MathsftError("compile=true is single-process for now (not tested under FSDP)")
        if device.type == "cpu" and shutil.which(os.environ.get("CXX", "g++")) is None:
            raise MathsftError(
                "compile=true on CPU needs a C++ compiler (g++, or $CXX): install one or drop it"
            )
        compile_regions(model)
    if (cfg.freeze_embeddings or cfg.freeze_layers) and dist.world > 1:
        raise MathsftError(
            "freeze_embeddings / freeze_layers are single-process for now (not tested under FSDP)"
        )
    freeze(model, cfg.freeze_embeddings, cfg.freeze_layers)
    if cfg.lora is not None:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            raise MathsftError("lora needs the peft package: pip install 'mathsft[lora]'") from None
        lora = cfg.lora
        model = get_peft_model(
            model,
            LoraConfig(
                r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules
            ),
        )
    model.train()
    release_memory_during_backward(model, device, cfg.heap_trim)
    embed = {id(p) for p in model.get_input_embeddings().parameters()}
    embed |= {id(p) for p in model.get_output_embeddings().parameters()}
    body = sum(p.numel() for p in model.parameters() if id(p) not in embed and p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if id(p) not in embed and not p.requires_grad)
    head_trains = model.get_output_embeddings().weight.requires_grad
    model = dist.wrap(model)
    fused = device.type in {"cpu", "cuda"}
    optimizer = torch.optim.AdamW(
        param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=cfg.adam_betas, eps=cfg.adam_eps, fused=fused
    )
    warmup = cfg.warmup_steps or math.ceil(cfg.warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(cfg.schedule, warmup, total, cfg.min_lr_ratio)
    )
    return Setup(model, tokenizer, optimizer, scheduler, device, body, frozen, head_trains, cfg.heap_trim)


def freeze(model: torch.nn.Module, embeddings: bool, layers: int) -> None:
    """Fix the token embeddings (a tied head with them) and the lowest ``layers`` decoder layers. They still
    run forward; as no input below the first trained layer needs a gradient, autograd never goes below it."""
    decoder = decoder_layers(model)
    if layers > len(decoder):
        raise MathsftError(f"freeze_layers={layers}, but the model has {len(decoder)} decoder layers")
    modules = [*decoder[:layers], *([model.get_input_embeddings()] if embeddings else [])]
    for module in modules:
        module.requires_grad_(False)


def compile_regions(model: torch.nn.Module) -> int:
    """``torch.compile`` every norm and MLP module (dynamic lengths, so packing's new shapes do not
    recompile). Regions, not the model: the packed attention loops over examples in Python. Returns the count.
    Measured on fp32 SmolLM2-135M with gradient checkpointing: ~5% shorter steps (see BENCHMARKS.md)."""
    regions = [m for m in model.modules() if type(m).__name__.endswith(("MLP", "RMSNorm"))]
    for module in regions:
        module.compile(dynamic=True)
    return len(regions)


def autocast_for(
    cfg: LoopConfig, device: torch.device
) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    if cfg.dtype == "bf16":
        # no cache of bf16 weight copies: the same casts, up to 0.15 GB less peak memory for the 135M model
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)
    return contextlib.nullcontext


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in ("mathsft", "torch", "transformers", "peft"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[name] = md.version(name)
    return out


def claim_run_dir(cfg: LoopConfig, out: Path) -> bool:
    """A rerun resumes only the same run: a different config in ``out`` is an error, not a silent mix.
    Returns whether the run there is complete (its final checkpoint written, no validation owed)."""
    path = out / "config.yaml"
    if path.is_file():
        old = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        new = cfg.model_dump(mode="json")
        # a moved run directory is the same run; logging, where validation runs and heap trims do not change
        # the weights
        free = {"log", "out", "val_device", "val_background", "val_backend", "heap_trim"}
        changed = sorted(k for k in set(old) | set(new) if k not in free and old.get(k) != new.get(k))
        if changed:
            raise MathsftError(
                f"{out} holds a training run with a different config (changed: {', '.join(changed)}); "
                "use another --out, or delete it to start over"
            )
    folder = out / "checkpoints"
    complete = (folder / ckpt.FINAL / "config.json").is_file() and not ckpt.read_validating(folder)
    if complete:
        log.info("%s is complete (checkpoints/final exists)", out)
    return complete


def padding_fraction(items: list[Tokenized], cfg: TrainConfig, total: int) -> float:
    """Padding share of the first epoch's micro-batches (0 when packed)."""
    if cfg.packing:
        return 0.0
    real = slots = 0
    for step in range(min(total, math.ceil(len(items) / cfg.batch_size))):
        rows = [items[i] for i in step_indices(step, len(items), cfg.batch_size, cfg.seed)]
        for group in micro_batches(rows, False, cfg.micro_batch_tokens, cfg.grad_accum):
            real += sum(len(r) for r in group)
            slots += max(len(r) for r in group) * len(group)
    return 1 - real / max(slots, 1)


# ----------------------------------------------------------------------------------------------------
# Pieces both loops (SFT here, RL in mathsft/rl/loop.py) run


def resume(folder: Path, setup: Setup, dist: Dist) -> tuple[int, dict[str, Any]]:
    """Load the newest checkpoint's weights, optimizer, scheduler and RNG state into ``setup``; returns the
    number of steps it had done (0 when there is none) and the data-order state saved with it (``data`` of
    ``save_state``: the RL loop's problem sampler is there)."""
    latest = ckpt.latest_checkpoint(folder)
    if latest is None:
        return 0, {}
    state = dist.load(latest, setup.model, setup.optimizer)
    setup.scheduler.load_state_dict(state["scheduler"])
    ckpt.set_rng_state(state["rng"])
    return int(state["step"]), state.get("data", {})


def save_state(
    setup: Setup,
    dist: Dist,
    folder: Path,
    name: str,
    step: int,
    data: dict[str, Any],
    keep_last: int | None,
    keep: set[str],
) -> Path:
    """Write checkpoint ``folder/name`` (HF weights + resume state: optimizer, scheduler, RNG, data order),
    then prune old step checkpoints but those in ``keep``."""
    state = {"step": step, "scheduler": setup.scheduler.state_dict(), "rng": ckpt.rng_state(), "data": data}
    path = dist.save(folder, name, setup.model, setup.tokenizer, setup.optimizer, state)
    if dist.is_main:
        ckpt.prune(folder, keep_last, keep)
    return path


def accumulate(
    batches: Sequence[T], fillers: int, loss_of: Callable[[T, bool], torch.Tensor], dist: Dist
) -> float:
    """Backward over one optimizer step's micro-batches (``Batch``es, or whatever ``loss_of`` takes).
    ``loss_of(batch, real)`` returns the micro-batch's share of the step loss; the last ``fillers`` batches
    only keep the ranks in step (``real`` False: their loss must weigh zero). Returns the step loss summed
    over ranks."""
    total = torch.zeros(1, dtype=torch.float64)
    for i, batch in enumerate(batches):
        loss = loss_of(batch, i < len(batches) - fillers)
        (loss * dist.world).backward()  # FSDP averages gradients over ranks: undo the 1/world
        total += loss.detach().double().cpu()
    return float(dist.all_reduce_sum(total)[0])


def optimizer_step(setup: Setup, dist: Dist, grad_clip: float | None, done: int) -> tuple[float, float]:
    """Clip, step the optimizer and the schedule, clear the gradients; returns (grad norm, lr used).
    ``done`` counts optimizer steps: every few, freed heap memory may go back to the system (``heap_trim``)."""
    grad_norm = dist.clip_grad_norm(setup.model, grad_clip)
    lr = setup.scheduler.get_last_lr()[0]
    setup.optimizer.step()
    setup.scheduler.step()
    setup.optimizer.zero_grad(set_to_none=True)
    if done % TRIM_EVERY_STEPS == 0:
        # the fragmentation the last steps left in the heap
        release_free_memory(setup.device, setup.heap_trim)
    return grad_norm, lr


@contextlib.contextmanager
def progress(
    enabled: bool, label: str, total: int, start: int, field: str
) -> Iterator[Callable[[float], None]]:
    """A rich progress bar with one metric (``field``) and the ETA on an interactive terminal; silent
    otherwise. Yields ``advance(value)``, called once per step."""
    if not (enabled and sys.stderr.isatty()):
        yield lambda value: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(
        TextColumn(label),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn(field + " {task.fields[value]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ) as bar:
        task = bar.add_task(label, total=total, completed=start, value="-")
        yield lambda value: bar.update(task, advance=1, value=f"{value:.4f}")


# ----------------------------------------------------------------------------------------------------
# The SFT loop


@dataclass
class StepCounts:
    loss: float  # the optimized objective of the step (mean CE per supervised token, or per sequence)
    targets: int  # supervised tokens, all ranks
    tokens: int  # real tokens, all ranks
    slots: int  # tokens + padding, all ranks
    local_targets: int


def backward_step(
    model: Any,
    batches: list[Batch],
    fillers: int,
    average: str,
    device: torch.device,
    autocast: Any,
    dist: Dist,
    chunk_tokens: int | None = None,
) -> StepCounts:
    """Accumulate the gradient of one optimizer step over its micro-batches (and ranks).

    The step's supervised-token (and sequence) totals are summed over ranks before the first backward,
    so every token weighs the same however the step is split. The last ``fillers`` batches only keep the
    ranks in step (see ``Dist.micro_batches``) and weigh zero."""
    real = batches[: len(batches) - fillers]
    local = torch.tensor(
        [
            sum(b.num_targets for b in real),
            sum(int((b.target_seq.bincount() > 0).sum()) for b in real),
            sum(b.num_tokens for b in real),
            sum(b.num_slots for b in real),
        ],
        dtype=torch.float64,
    )
    targets, seqs, tokens, slots = (int(x) for x in dist.all_reduce_sum(local).tolist())

    def loss_of(batch: Batch, counted: bool) -> torch.Tensor:
        weights = target_weights(batch, average, targets, seqs).to(device)
        if not counted:
            weights = weights * 0
        with autocast():
            return step_loss(model, batch, device, weights, chunk_tokens)

    total_loss = accumulate(batches, fillers, loss_of, dist)
    return StepCounts(total_loss, targets, tokens, slots, int(local[0]))


def train(
    cfg: TrainConfig, examples: list[SFTExample] | None = None, val_problems: list[Problem] | None = None
) -> Path:
    """Train (or resume, or return a finished run) into ``cfg.out``; returns the run directory."""
    with Dist.from_env() as dist:
        return _train(cfg, examples, val_problems, dist)


def _train(
    cfg: TrainConfig, examples: list[SFTExample] | None, val_problems: list[Problem] | None, dist: Dist
) -> Path:
    out = Path(cfg.out_dir())
    folder = out / "checkpoints"
    if claim_run_dir(cfg, out):
        return out
    examples = load_training_examples(cfg) if examples is None else examples
    val_problems = load_val_problems(cfg) if val_problems is None else val_problems
    if not examples:
        raise MathsftError("no training examples")

    tokenizer = load_tokenizer(cfg.model, padding_side="right")
    items, stats, cache_key = _train_rows(cfg, tokenizer, examples)
    val_rows = _val_rows(cfg, tokenizer, val_problems)
    total = total_steps(cfg, len(items))
    setup = build(cfg, total, dist)
    model, device = setup.model, setup.device
    autocast = autocast_for(cfg, device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    start_step, _ = resume(folder, setup, dist)
    if start_step:
        log.info("resuming from step %d of %d", start_step, total)

    peak = 0.0
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_resolved(cfg, out)
        hashes = {
            "chat_template_hash": chat_template_digest(tokenizer),
            "prompt_template_hash": get_template(cfg.prompt).digest(),
        }
        _write_manifest(cfg, out, examples, val_problems, (stats, cache_key), total, dist.world, hashes)
        peak = _write_preflight(cfg, out, tokenizer, setup, examples, items, stats, total, hashes)
    peak = dist.broadcast_float(peak if dist.is_main else 0.0)

    metrics = MetricsLog(out, cfg.log, start_step, cfg.model_dump(mode="json")) if dist.is_main else None
    to_validate = validation_steps(cfg, total) if (val_rows or val_problems) else []
    validation = Validation(cfg, out, val_problems or [], to_validate, metrics, dist.is_main)
    data = {"order": "seeded permutation per epoch", "seed": cfg.seed, "examples": len(items)}

    def save(step: int, name: str) -> Path:
        return save_state(setup, dist, folder, name, step, data, cfg.keep_last, validation.keep())

    def val_loss() -> float:
        return validation_loss(model, val_rows, cfg, pad_id, device, autocast, dist)

    validation.redo(total)
    model.train()
    pace: list[float] = []  # supervised tokens/s of each step, compile time excluded
    compiled = 0.0
    with progress(cfg.log.progress and dist.is_main, "train", total, start_step, "loss") as advance:
        for step in range(start_step, total):
            rows = [items[i] for i in step_indices(step, len(items), cfg.batch_size, cfg.seed)]
            t0, compiled_before = time.perf_counter(), compile_seconds()
            groups, fillers = dist.micro_batches(rows, cfg.packing, cfg.micro_batch_tokens, cfg.grad_accum)
            rows = [r for g in groups[: len(groups) - fillers] for r in g]
            batches = [collate(g, cfg.packing, pad_id) for g in groups]
            counts = backward_step(
                model, batches, fillers, cfg.loss_average, device, autocast, dist, cfg.loss_chunk_tokens
            )
            done = step + 1
            grad_norm, lr = optimizer_step(setup, dist, cfg.grad_clip, done)
            elapsed = time.perf_counter() - t0
            compiling = compile_seconds() - compiled_before
            flops = _step_flops(cfg, setup, dist, [len(r) for r in rows], counts.local_targets)
            row = {
                "train_step": done,
                "train/loss": counts.loss,
                "train/lr": lr,
                "train/grad_norm": grad_norm,
                **_throughput(counts, elapsed, compiling, flops / (peak * dist.world)),
                "train/epoch": done * cfg.batch_size / len(items),
            }
            if metrics is not None and (done % cfg.log_every == 0 or done == total):
                metrics.write(row)
            advance(counts.loss)
            pace.append(row["train/supervised_tokens_per_s"])
            compiled += compiling
            validation.end_of_step(done, total, save, val_loss if val_rows else None)
    validation.finish()
    if metrics is not None:
        metrics.close()
    if pace and dist.is_main:
        log.info(
            "%d steps: median %.1f supervised tokens/s per step (compile excluded; first step %.1f), "
            "%.1f s compiling",
            len(pace),
            statistics.median(pace),
            pace[0],
            compiled,
        )
    return out


def _train_rows(
    cfg: TrainConfig, tokenizer: Any, examples: list[SFTExample]
) -> tuple[list[Tokenized], TokenizeStats, str]:
    """The examples tokenized (cached on disk), their statistics and cache key; an error if none fits."""
    items, stats, cache_key = tokenize_cached(
        tokenizer, examples, cfg.max_length, cfg.mask, cfg.overlong, cfg.calculator
    )
    if not items:
        raise MathsftError(
            f"every example is longer than max_length={cfg.max_length} ({stats.dropped_overlong} dropped, "
            f"{stats.truncated} truncated): raise max_length or use overlong=truncate"
        )
    return items, stats, cache_key


def _val_rows(cfg: TrainConfig, tokenizer: Any, val_problems: list[Problem] | None) -> list[Tokenized]:
    """The validation problems that have a reference solution, tokenized as training rows (for eval/loss)."""
    if not val_problems:
        return []
    with_solution = [p for p in val_problems if p.solution.strip()]
    val_examples = problems_to_examples(with_solution, cfg.prompt, cfg.calculator)
    rows, _, _ = tokenize_cached(
        tokenizer, val_examples, cfg.max_length, cfg.mask, "truncate", cfg.calculator
    )
    return rows


def _write_manifest(
    cfg: TrainConfig,
    out: Path,
    examples: list[SFTExample],
    val_problems: list[Problem] | None,
    tokenization: tuple[TokenizeStats, str],
    total: int,
    world: int,
    hashes: dict[str, str],
) -> None:
    """``manifest.json``: what this run trained on (content hashes), with which code, so runs can be told apart."""
    stats, cache_key = tokenization
    manifest = {
        "model": cfg.model,
        "model_dir": str(resolve_model(cfg.model)),
        "data": {
            "source": cfg.data or "in-memory",
            "dataset": cfg.dataset,
            "hash": content_hash(examples),
            "count": len(examples),
        },
        "val": {
            "count": len(val_problems or []),
            "hash": content_hash(val_problems) if val_problems else None,
        },
        "tokenization": {"cache_key": cache_key, **stats.to_dict()},
        "total_steps": total,
        "world_size": world,
        "versions": versions(),
        **hashes,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _write_preflight(
    cfg: TrainConfig,
    out: Path,
    tokenizer: Any,
    setup: Setup,
    examples: list[SFTExample],
    items: list[Tokenized],
    stats: TokenizeStats,
    total: int,
    hashes: dict[str, str],
) -> float:
    """Write ``preflight.md`` (what the loss will see, and warnings) and return the peak FLOP/s for MFU."""
    first = next(e for e in examples if e.id == items[0].example_id)
    parts = render(tokenizer, first)
    device = setup.device
    peak = cfg.peak_tflops * 1e12 if cfg.peak_tflops else measured_peak_flops(device.type, cfg.dtype)
    slow_bf16 = cpu_bf16_warning() if device.type == "cpu" and cfg.dtype == "bf16" else None
    warnings = [slow_bf16] if slow_bf16 else []
    if "loss_chunk_tokens" in cfg.model_fields_set and cfg.loss_chunk_tokens and not can_chunk(setup.model):
        warnings.append(
            "loss_chunk_tokens has no effect here: this model's head has a bias or its logits are "
            "transformed after the head (soft-capping, scaling), so the loss runs on whole logits"
        )
    for warning in warnings:
        log.warning("warning: %s", warning)
    report = write_preflight(
        out,
        tokenizer,
        items,
        stats,
        parts.response,
        parts.end_of_turn,
        padding_fraction(items, cfg, total),
        hashes,
        {
            "max_length": cfg.max_length,
            "mask": cfg.mask,
            "calculator": cfg.calculator,
            "packing": cfg.packing,
            "prompt": cfg.prompt,
            "total_steps": total,
            "peak_flops": peak,
            "peak_source": "stated" if cfg.peak_tflops else "measured matmul",
            "warnings": warnings,
        },
    )
    log.info(
        "preflight: %d examples kept of %d, %.1f%% supervised tokens, %d steps (%s)",
        stats.kept,
        stats.examples,
        100 * report["supervised_fraction"],
        total,
        out / "preflight.md",
    )
    return peak


def _step_flops(cfg: TrainConfig, setup: Setup, dist: Dist, lens: list[int], local_targets: int) -> float:
    """The step's model FLOPs summed over ranks (frozen layers cost no weight gradients)."""
    local = model_flops(
        _config(setup.model),
        setup.body_params,
        sum(lens),
        local_targets,
        lens,
        frozen_body_params=setup.frozen_body_params,
        frozen_layers=cfg.freeze_layers,
        head_trains=setup.head_trains,
    )
    return float(dist.all_reduce_sum(torch.tensor([local], dtype=torch.float64))[0])


def _throughput(
    counts: StepCounts, elapsed: float, compiling: float, peak_seconds: float
) -> dict[str, float]:
    """A step's token, speed and MFU keys; compile time is its own key and is left out of the rates.

    ``peak_seconds`` is the step's FLOPs over the hardware's peak FLOP/s: the time a perfect step would take.
    """
    computing = max(elapsed - compiling, 1e-9)
    return {
        "train/tokens": counts.tokens,
        "train/tokens_per_s": counts.tokens / computing,
        "train/supervised_tokens": counts.targets,
        "train/supervised_tokens_per_s": counts.targets / computing,
        "train/padding_fraction": 1 - counts.tokens / max(counts.slots, 1),
        "train/mfu": peak_seconds / computing,
        "train/step_s": elapsed,
        "train/compile_s": compiling,
    }


def _config(model: Any) -> Any:
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.config
