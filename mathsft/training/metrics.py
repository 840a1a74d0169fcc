"""Run logging: ``metrics.jsonl`` always (one flushed line per row), TensorBoard and W&B when asked; MFU."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from mathsft.errors import MathsftError
from mathsft.generation.speed import measured_peak_flops
from mathsft.training.config import LogConfig


def open_step_log(path: Path, resume_step: int, key: str = "train_step") -> Any:
    """``path`` (JSONL) opened for appending, after dropping the rows of steps past ``resume_step`` (they
    are redone) and a line cut by a kill, so the file keeps each step's rows once."""
    if path.is_file():
        kept = [
            line
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and _complete(line) and json.loads(line).get(key, 0) <= resume_step
        ]
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        tmp.replace(path)
    return path.open("a", encoding="utf-8")


class MetricsLog:
    """Appends rows to ``metrics.jsonl``; on resume, rows past the resumed step are dropped first (they are
    redone), so the file keeps one row per step."""

    def __init__(self, out: Path, log: LogConfig, resume_step: int, config: dict[str, Any]) -> None:
        self.path = out / "metrics.jsonl"
        self.file = open_step_log(self.path, resume_step)
        self.tensorboard = self.wandb = None
        if log.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise MathsftError(
                    "log.tensorboard needs the tensorboard package: pip install tensorboard"
                ) from None
            self.tensorboard = SummaryWriter(str(out / "tensorboard"))
        if log.wandb:
            try:
                import wandb
            except ImportError:
                raise MathsftError("log.wandb needs the wandb package: pip install wandb") from None
            os.environ.setdefault("WANDB_MODE", log.wandb_mode)
            # one W&B run per run directory: a resumed training continues it rather than starting another
            id_file = out / "wandb-id"
            if not id_file.is_file():
                id_file.write_text(secrets.token_hex(4), encoding="utf-8")
            self.wandb = wandb.init(
                project=log.wandb_project,
                dir=str(out),
                config=config,
                id=id_file.read_text(encoding="utf-8").strip(),
                resume="allow",
            )
            # x axes are our own step counters, so steps redone after a resume are logged again (W&B's
            # own step must only grow and would drop them)
            for axis, prefix in (("train_step", "train/*"), ("train_step", "rl/*"), ("eval_step", "eval/*")):
                self.wandb.define_metric(axis)
                self.wandb.define_metric(prefix, step_metric=axis)

    def write(self, row: dict[str, Any]) -> None:
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        step = row.get("train_step", 0)
        scalars = {k: v for k, v in row.items() if "/" in k and isinstance(v, int | float)}
        if self.tensorboard is not None:
            for key, value in scalars.items():
                self.tensorboard.add_scalar(key, value, step)
            self.tensorboard.flush()
        if self.wandb is not None:
            axes = {k: row[k] for k in ("train_step", "eval_step") if k in row}
            self.wandb.log({**scalars, **axes})

    def close(self) -> None:
        self.file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.wandb is not None:
            self.wandb.finish()


def _complete(line: str) -> bool:
    try:
        json.loads(line)
    except json.JSONDecodeError:  # a line cut by a kill
        return False
    return True


def compile_seconds() -> float:
    """Seconds ``torch.compile`` has spent in this process so far (tracing, lowering and code generation of the
    forward and backward graphs), from dynamo's own timers; 0.0 where this PyTorch does not keep them. The
    loop logs each step's share as ``train/compile_s`` so a short run's first steps are not read as its
    steady-state speed."""
    try:
        from torch._dynamo.utils import cumulative_time_spent_ns
    except ImportError:
        return 0.0
    return cumulative_time_spent_ns.get("entire_frame_compile", 0.0) / 1e9


def cpu_bf16_warning() -> str | None:
    """Why bf16 autocast would slow training on this CPU, or None where bf16 matmuls are not slower than fp32
    (CPUs with AMX or AVX512-BF16 run them several times faster; others emulate them)."""
    bf16, fp32 = measured_peak_flops("cpu", "bf16"), measured_peak_flops("cpu", "fp32")
    if bf16 >= fp32:
        return None
    return (
        f"dtype=bf16 on this CPU: bf16 matmuls ran at {bf16 / 1e9:.0f} GFLOP/s against {fp32 / 1e9:.0f} in fp32 "
        "(no native bf16 such as AMX or AVX512-BF16), so bf16 autocast slows training down here; "
        "dtype=fp32 is faster"
    )


def model_flops(
    config: Any,
    trainable_body_params: int,
    tokens: int,
    targets: int,
    seq_lens: list[int],
    frozen_body_params: int = 0,
    frozen_layers: int = 0,
    head_trains: bool = True,
) -> float:
    """Training FLOPs of one step: 6 x params x tokens for the body (2 x for the frozen lowest layers,
    which run forward only), the LM head on supervised rows only (4 x when fixed: no weight gradient), and causal
    attention scores (6 x layers x width x L^2 per example, forward + backward)."""
    hidden = config.hidden_size
    head_dim = getattr(config, "head_dim", None) or hidden // config.num_attention_heads
    width = config.num_attention_heads * head_dim
    passes = 6 * (config.num_hidden_layers - frozen_layers) + 2 * frozen_layers
    attention = passes * width * sum(n * n for n in seq_lens)
    body = (6 * trainable_body_params + 2 * frozen_body_params) * tokens
    head = (6 if head_trains else 4) * config.vocab_size * hidden * targets
    return body + head + attention
