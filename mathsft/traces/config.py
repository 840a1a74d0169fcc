"""``TracesConfig``: the teacher, the problems, sampling, grading, selection and cleaning of one traces run."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, model_validator

from mathsft.config import StrictModel
from mathsft.models import DEFAULT_MODEL

DEFAULT_DROP_PATTERNS = [
    # lines where the model repeats the instructions instead of solving the problem
    r"(?i)^\W*(i will|i'll|i am going to|i'm going to|let me|we will|we'll) (output|put|write|present|give|provide|box|place|enclose) (the|my|our) (final )?answer\b",
    r"(?i)^\W*(please )?reason step by step\b",
    r"(?i)put (your|the) final answer (with)?in(side)? \\boxed",
    r"(?i)^\W*(the )?(final )?answer (should|must|will|needs to) be (put|placed|written|enclosed|given)\b",
]


class TracesConfig(StrictModel):
    # teacher
    backend: Literal["auto", "openai", "hf", "vllm"] = "auto"  # auto: openai when base_url is set, else hf
    model: str = DEFAULT_MODEL  # served model name (openai) or a model spec (hf/vllm)
    # http://HOST:PORT/v1, or a list of servers of the same model that share the work (see generation/openai.py)
    base_url: str | list[str] | None = None
    api_key_env: str = "OPENAI_API_KEY"  # the key itself never enters the config
    endpoint: Literal["chat", "completions"] = "chat"
    n_mode: Literal["n", "seeds"] = "n"  # seeds: one request per sample, for servers that ignore n
    concurrency: int = Field(default=16, ge=1)
    timeout: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=5, ge=0)
    extra_body: dict[str, Any] = Field(default_factory=dict)  # extra JSON fields for every openai request
    backend_options: dict[str, Any] = Field(default_factory=dict)  # hf/vllm options (batch_size, dtype, ...)

    # problems
    dataset: str | None = None  # data-layer adapter name; None only when problems are passed in
    data_path: str | None = None
    split: str | None = None  # None: inferred from a local file name, or the adapter default on the hub
    data_config: str | None = None
    limit: int | None = Field(default=None, ge=1)
    seed: int = 0  # subset seed and base of the per-sample sampling seeds
    skip_bad: bool = False
    prompt: str = "qwen-boxed"  # a template name of mathsft.evaluation.prompts (or a template file)

    # sampling
    samples: int = Field(default=4, ge=1)  # k completions per problem
    temperature: float = Field(default=0.7, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    top_k: int = Field(default=0, ge=0)
    max_tokens: int = Field(default=1024, ge=1)
    # the calculator tool (hf backend): a student trained on the annotations writing its own traces
    # (expert iteration); the kept traces carry the calls, which SFT with calculator=true masks
    calculator: bool = False

    # grading and selection
    grader_profile: Literal["strict", "lenient"] = "lenient"
    reward_threshold: float = 1.0  # accept completions whose reward (0/1 today) reaches this
    keep: Literal["all", "first", "shortest"] = "all"  # which correct traces of a problem to keep
    max_per_problem: int | None = Field(default=None, ge=1)
    min_pass_rate: float = Field(default=0.0, ge=0, le=1)  # per-problem pass rate over its k samples
    max_pass_rate: float = Field(
        default=1.0, ge=0, le=1
    )  # e.g. 0.99 drops problems the teacher always solves
    dedupe: bool = True  # drop identical cleaned traces of the same problem

    # cleaning
    think: Literal["keep", "strip"] = (
        "keep"  # R1 reasoning: kept as <think>…</think> in the target, or dropped
    )
    drop_patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_DROP_PATTERNS))
    box_answer: bool = True  # end the target with a normalized final-answer line
    answer_line: str = r"The final answer is $\boxed{{answer}}$."  # {answer} = the graded answer

    # contamination check of the accepted problems: "dataset=path" or "dataset" entries;
    # None = math500 and gsm8k test from ../shared/data when present; [] = off
    contamination: list[str] | None = None
    contamination_n: int = Field(default=13, ge=1)

    out: str | None = None

    @model_validator(mode="after")
    def _check(self) -> TracesConfig:
        if self.min_pass_rate > self.max_pass_rate:
            raise ValueError(f"min_pass_rate {self.min_pass_rate} > max_pass_rate {self.max_pass_rate}")
        if self.resolved_backend == "openai" and not self.base_url:
            raise ValueError("backend openai needs base_url (http://HOST:PORT/v1)")
        if "{answer}" not in self.answer_line:
            raise ValueError("answer_line must contain {answer}")
        for pattern in self.drop_patterns:
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(
                    f"drop_patterns: {pattern!r} is not a valid regular expression ({err})"
                ) from None
        return self

    @property
    def resolved_backend(self) -> str:
        if self.backend == "auto":
            return "openai" if self.base_url else "hf"
        return self.backend
