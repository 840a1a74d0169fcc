"""``EvalConfig``: the model, the problems, the prompt, sampling and grading of one eval run."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from mathsft.config import StrictModel
from mathsft.models import DEFAULT_MODEL


class EvalConfig(StrictModel):
    model: str = DEFAULT_MODEL
    out: str | None = None  # default runs/eval-<dataset>

    # problems (through the data layer)
    dataset: str = "gsm8k"
    data_path: str | None = None  # local file/folder; None = the hub
    split: str = "test"
    data_config: str | None = None
    limit: int | None = Field(default=None, ge=1)
    subset: Literal["first", "seeded"] = "first"  # which `limit` problems: the first N, or a seeded subset
    skip_bad: bool = False

    # generation
    backend: Literal["hf", "vllm", "openai"] = "hf"
    backend_options: dict[str, Any] = Field(default_factory=dict)  # e.g. base_url, api_key_env, dtype
    # hf: sequences decoded together. 64 keeps a 2-core CPU's matmuls busy (16: ~0.6x the rate, BENCHMARKS.md)
    batch_size: int = Field(default=64, ge=1)
    # auto: bf16 on a GPU or a CPU that computes bf16 natively (AVX512-BF16 / AMX), else fp32
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    prompt: str = "qwen-boxed"  # a template name of mathsft.evaluation.prompts, or a .yaml template file
    system: str | None = None
    chat: bool | None = None  # None: what the template says
    fewshot_path: str | None = None  # train file for k-shot exemplars (default: the built-in ones)
    samples: int = Field(default=1, ge=1)  # completions per problem (pass@k / maj@k for k <= samples)
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=0, ge=0)
    max_new_tokens: int = Field(default=512, ge=1)
    stop: list[str] = Field(default_factory=list)
    seed: int = 0
    # the calculator tool (hf backend): '<<48/2=' gets '24>>' inserted; for models trained on GSM8K's
    # annotations (train calculator=true). Recorded in summary.json: a score with the tool is not one without
    calculator: bool = False

    # grading and statistics
    grader_profile: Literal["strict", "lenient"] = "lenient"
    extract_style: str = "auto"
    bootstrap: int = Field(default=1000, ge=100)

    def out_dir(self) -> str:
        return self.out or f"runs/eval-{self.dataset}"
