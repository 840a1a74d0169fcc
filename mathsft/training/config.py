"""``TrainConfig``: what ``mathsft train`` (and the ``train:`` section of an experiment) runs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from mathsft.config import StrictModel
from mathsft.models import DEFAULT_MODEL, auto_device, native_bf16

HeapTrim = Literal["auto", "always", "never"]


class LoraConfig(StrictModel):
    """Low-rank adapters through peft; checkpoints still hold merged, plain HF weights."""

    r: int = Field(default=16, ge=1)
    alpha: float = 32.0
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    target_modules: list[str] | str = "all-linear"


class LogConfig(StrictModel):
    """Optional trackers beside ``metrics.jsonl`` (which is always written)."""

    tensorboard: bool = False
    wandb: bool = False
    wandb_project: str = "mathsft"
    wandb_mode: Literal["offline", "online"] = "offline"
    progress: bool = True  # a rich progress bar with loss and ETA


class LoopConfig(StrictModel):
    """What every training loop (``mathsft train``, ``mathsft rl``) shares: the model, the optimizer and its
    schedule, micro-batching, numerics, checkpoints, in-training validation and logging. Both loops build,
    step, save, resume and validate through the same functions (``training/loop.py``), so a key here means
    the same thing in both."""

    model: str = DEFAULT_MODEL
    out: str | None = None

    # problems to validate on (generation accuracy; SFT also reports loss when they have solutions)
    val_data: str | None = None
    val_dataset: str = "gsm8k"
    val_limit: int | None = Field(default=None, ge=1)

    # optimization
    lr: float = Field(default=1e-5, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    schedule: Literal["constant", "linear", "cosine"] = "cosine"
    warmup_steps: int = Field(default=0, ge=0)
    warmup_ratio: float = Field(default=0.0, ge=0, le=1)
    min_lr_ratio: float = Field(
        default=0.0, ge=0, le=1
    )  # floor of the linear/cosine decay, as a fraction of lr
    grad_clip: float | None = Field(default=1.0, gt=0)

    # micro-batching of one optimizer step
    micro_batch_tokens: int | None = Field(default=None, ge=1)  # token budget per forward/backward
    grad_accum: int | None = Field(
        default=None, ge=1
    )  # or: split each step's examples into this many micro-batches
    packing: bool = True  # padding-free: one row per micro-batch, positions restart per example
    prompt: str = "qwen-boxed"  # prompt template for problems (training and validation)
    # the calculator tool (mathsft.generation.calculator): the tool's results are never the model's to
    # predict (left out of the loss), and generation (validation, RL rollouts) runs with the tool on
    calculator: bool = False

    # numerics and memory
    # bf16 = autocast (weights and optimizer state stay fp32); auto = bf16 where the device computes it
    # natively (a GPU, a CPU with AVX512-BF16 or AMX), else fp32: resolved when the config is read
    dtype: Literal["fp32", "bf16", "auto"] = "fp32"
    gradient_checkpointing: bool = False
    # with gradient_checkpointing: recompute only the first N decoder layers; the last ones, whose activations
    # backward frees first, keep theirs (faster, more memory). None: all layers
    checkpoint_layers: int | None = Field(default=None, ge=0)
    # torch.compile each layer's norms and MLP (fused elementwise kernels; attention and packing stay eager);
    # the first step pays the compile
    compile: bool = False
    # LM head + loss this many supervised rows at a time, gradient formed in forward: no whole logits, the
    # same loss and gradients (up to float rounding), faster and leaner (BENCHMARKS.md); None = whole logits
    loss_chunk_tokens: int | None = Field(default=256, ge=1)
    # CPU only: hand freed heap pages back to the OS during steps (glibc malloc_trim): less resident memory,
    # slower steps (re-faulted pages). auto: only while the machine's available memory is under a quarter
    heap_trim: HeapTrim = "auto"
    lora: LoraConfig | None = None
    # keep the token embeddings (and a head tied to them) fixed, and the lowest N decoder layers: nothing
    # below the lowest trained layer needs a gradient, so backward stops there (shorter steps, fewer passes
    # of the weights through the optimizer)
    freeze_embeddings: bool = False
    freeze_layers: int = Field(default=0, ge=0)
    device: str = "auto"  # auto: cuda when available, else cpu
    seed: int = 0

    # checkpoints and validation
    save_every: int | None = Field(default=None, ge=1)  # plus always the final step
    keep_last: int | None = Field(default=2, ge=1)  # step checkpoints kept (the best one is always kept)
    eval_every: int | None = Field(default=None, ge=1)  # validation; the final step always
    val_max_new_tokens: int = Field(default=512, ge=1)
    val_batch_size: int = Field(default=16, ge=1)
    val_device: str = "auto"  # where validation generates: e.g. cuda:1 beside training on cuda:0
    val_background: bool = False  # generation accuracy in a separate process while training goes on
    val_backend: Literal["hf", "vllm"] = (
        "hf"  # vllm: one engine, new weights loaded in place (background only)
    )

    log: LogConfig = Field(default_factory=LogConfig)
    log_every: int = Field(default=1, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _resolve_dtype(cls, data: Any) -> Any:
        """``dtype: auto`` becomes what it means on this machine, so the saved config says which ran."""
        if isinstance(data, dict) and data.get("dtype") == "auto":
            device = auto_device(str(data.get("device", "auto")))
            data = {**data, "dtype": "bf16" if native_bf16(device) else "fp32"}
        return data

    @model_validator(mode="after")
    def _check_loop(self) -> LoopConfig:
        if self.micro_batch_tokens is not None and self.grad_accum is not None:
            raise ValueError("give micro_batch_tokens or grad_accum, not both")
        if self.checkpoint_layers is not None and not self.gradient_checkpointing:
            raise ValueError("checkpoint_layers needs gradient_checkpointing=true")
        if self.val_backend == "vllm" and not self.val_background:
            raise ValueError("val_backend=vllm needs val_background=true (its own process and device)")
        if self.lora is not None and (self.freeze_embeddings or self.freeze_layers):
            raise ValueError(
                "freeze_embeddings / freeze_layers with lora: lora already trains adapters alone"
            )
        return self


class TrainConfig(LoopConfig):
    """``mathsft train``: SFT on examples (the shared loop keys are ``LoopConfig``'s)."""

    # data: an SFT file ({prompt, response} / {prompt, completion} / {messages}), or a problem dataset whose
    # reference solutions are rendered through ``prompt`` (e.g. dataset=gsm8k)
    data: str | None = None
    dataset: str = "sft"
    limit: int | None = Field(default=None, ge=1)

    epochs: float = Field(default=1.0, gt=0)
    max_steps: int | None = Field(default=None, ge=1)  # overrides epochs
    loss_average: Literal["token", "sequence"] = (
        "token"  # mean over supervised tokens of the step, or per sequence
    )
    batch_size: int = Field(default=8, ge=1)  # examples per optimizer step
    max_length: int = Field(default=2048, ge=2)
    overlong: Literal["drop", "truncate"] = "drop"
    mask: Literal["completion", "assistant_with_header", "all"] = "completion"
    peak_tflops: float | None = Field(default=None, gt=0)  # MFU denominator; None = measured matmul peak

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.micro_batch_tokens is not None and self.micro_batch_tokens < self.max_length:
            raise ValueError(
                f"micro_batch_tokens ({self.micro_batch_tokens}) must hold one example of max_length "
                f"({self.max_length})"
            )
        if self.grad_accum is not None and self.grad_accum > self.batch_size:
            raise ValueError(f"grad_accum ({self.grad_accum}) cannot exceed batch_size ({self.batch_size})")
        return self

    def out_dir(self) -> str:
        return self.out or "runs/train"
