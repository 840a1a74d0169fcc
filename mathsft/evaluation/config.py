"""``EvalConfig``: the model, the problems, the prompt, sampling and grading of one eval run; its
``suites`` make it several benchmarks for one model (``ProblemSuite``, ``LmEvalSuite``)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from mathsft.config import StrictModel
from mathsft.models import DEFAULT_MODEL

SUITE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


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

    # several benchmarks for one model, by name, each in OUT/<name>/ (mathsft.evaluation.suites), in this
    # order; the keys above are the settings every problem suite starts from. Empty: one eval of ``dataset``.
    # A mapping, so a dotted override reaches one suite's key: eval.suites.math500.limit=50
    suites: dict[str, Suite] = Field(default_factory=dict)

    @field_validator("suites", mode="before")
    @classmethod
    def _bare_names(cls, suites: Any) -> Any:
        """``gsm8k:`` with nothing under it is the gsm8k suite with every key inherited."""
        return {k: {} if v is None else v for k, v in suites.items()} if isinstance(suites, dict) else suites

    @model_validator(mode="after")
    def _suite_names(self) -> EvalConfig:
        for name in self.suites:
            if not SUITE_NAME.fullmatch(name):
                raise ValueError(f"suite name {name!r} names a folder: letters, digits, '_', '-', '.'")
        return self

    def out_dir(self) -> str:
        return self.out or ("runs/eval-suites" if self.suites else f"runs/eval-{self.dataset}")


class ProblemSuite(StrictModel):
    """A problem benchmark graded by mathsft: its data, and the eval settings it sets for itself (prompt,
    shots, samples, limits, ...); a key it leaves unset (None) is the enclosing eval config's."""

    dataset: str | None = None  # an adapter (gsm8k, math500, math, ...); None: the suite's name
    data_path: str | None = None  # local file/folder; None: the hub
    split: str | None = None
    data_config: str | None = None
    limit: int | None = Field(default=None, ge=1)
    subset: Literal["first", "seeded"] | None = None
    prompt: str | None = None
    system: str | None = None
    fewshot_path: str | None = None
    samples: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0)
    max_new_tokens: int | None = Field(default=None, ge=1)
    stop: list[str] | None = None
    grader_profile: Literal["strict", "lenient"] | None = None
    extract_style: str | None = None

    def resolve(self, base: EvalConfig, name: str, out: str) -> EvalConfig:
        """The one-benchmark ``EvalConfig`` suite ``name`` runs: ``base`` with the suite's own keys set."""
        own = self.model_dump(exclude_none=True)
        own["dataset"] = self.dataset or name
        own.setdefault("split", "test")
        return EvalConfig.model_validate(base.model_dump() | own | {"out": out, "suites": {}})


class LmEvalSuite(StrictModel):
    """An lm-evaluation-harness task run through ``lm_eval.simple_evaluate`` on the model's HF directory
    (the ``lmeval`` extra): a hub task (online), or a local task YAML and its data files (``include_path``)."""

    task: str  # an lm-eval task or group (hellaswag, mmlu, ...), or one defined under include_path
    include_path: str | None = None  # folder of task YAMLs (their data_files paths: relative to the cwd)
    num_fewshot: int | None = Field(default=None, ge=0)  # None: the task's own
    limit: int | None = Field(default=None, ge=1)  # None: the enclosing eval config's limit
    # the score: an lm-eval metric (acc, acc_norm, exact_match, ...), optionally ",filter"; None: the task's first
    metric: str | None = None
    batch_size: int | None = Field(default=None, ge=1)  # None: the enclosing eval config's batch_size
    apply_chat_template: bool = False


def _suite_kind(value: Any) -> str:
    """An lm-eval suite names a ``task``; a problem suite does not."""
    if isinstance(value, dict):
        return "lm_eval" if "task" in value else "problems"
    return "lm_eval" if isinstance(value, LmEvalSuite) else "problems"


Suite = Annotated[
    Annotated[ProblemSuite, Tag("problems")] | Annotated[LmEvalSuite, Tag("lm_eval")],
    Discriminator(_suite_kind),
]
EvalConfig.model_rebuild()
