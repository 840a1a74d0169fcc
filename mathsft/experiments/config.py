"""``ExperimentConfig``: one YAML file for a whole experiment (``mathsft run`` / ``mathsft sweep``).

Sections reuse the stage configs, so a key means the same thing in ``mathsft train --config`` and in an
experiment: ``train:`` is a ``TrainConfig``, ``rl:`` an ``RLConfig``, ``eval:`` an ``EvalConfig``,
``traces:`` a ``TracesConfig``. Stages: base -> SFT (``sft``) -> RL (``rl``, from the SFT checkpoint or
from the base model: ``rl_from``), every model evaluated on the same test problems (``data.test``, with the
``eval:`` keys) and on every other suite of ``eval.suites`` (problem benchmarks, lm-eval tasks).
The experiment owns what crosses stages: the model, the data (train / held-out test / validation) and
the output folder, and fills those into the stage configs when it runs them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from mathsft.config import ConfigError, StrictModel, build_config
from mathsft.evaluation.config import EvalConfig
from mathsft.models import DEFAULT_MODEL
from mathsft.rl.config import RLConfig
from mathsft.traces.config import TracesConfig
from mathsft.training.config import TrainConfig


class SourceConfig(StrictModel):
    """One dataset through the data layer: an adapter name plus a hub split or a local file/folder."""

    dataset: str = "synthetic"
    path: str | None = None  # local .jsonl/.json/.parquet file or folder; None = the hub (or synthetic)
    split: str | None = None
    config: str | None = None  # hub config, e.g. gsm8k "main"
    limit: int | None = Field(default=None, ge=1)
    # which `limit` rows: a nested seeded subset, or the first N in file order
    subset: Literal["seeded", "first"] = "seeded"
    # what the training rows are: problems rendered through the prompt template with their reference
    # solution, or ready SFT examples (sft files, OpenR1's verified generations); auto = what the source has
    form: Literal["auto", "problems", "sft"] = "auto"


class DataConfig(StrictModel):
    train: SourceConfig = Field(default_factory=lambda: SourceConfig(split="train"))
    test: SourceConfig = Field(default_factory=lambda: SourceConfig(split="test"))
    # in-training validation problems: carved out of train (val_size), or a separate source (val)
    val_size: int = Field(default=0, ge=0)
    val: SourceConfig | None = None
    seed: int = 0
    skip_bad: bool = False
    # drop the training problems that share a 13-gram with the test set (counted in data/manifest.json);
    # off: the overlap is only reported
    decontaminate: bool = False

    @model_validator(mode="after")
    def _one_val(self) -> DataConfig:
        if self.val_size and self.val is not None:
            raise ValueError("give either val_size (carved from train) or val (a separate source), not both")
        return self

    @property
    def has_val(self) -> bool:
        return bool(self.val_size) or self.val is not None


class SweepConfig(StrictModel):
    """Dataset-size arms: nested subsets of the training data (same seed), plus an optional filtered arm."""

    sizes: list[int | Literal["full"]] = Field(default_factory=lambda: [128, 256, 512, 1024, "full"])
    # arm keeping only training examples whose reference response reaches the gold answer (mathsft.grading)
    filtered: bool = False
    filter_profile: Literal["strict", "lenient"] = "lenient"

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, sizes: list[int | str]) -> list[int | str]:
        if not sizes:
            raise ValueError("needs at least one size")
        if any(isinstance(s, int) and s < 1 for s in sizes):
            raise ValueError("sizes must be >= 1 (or 'full')")
        return sizes


class Published(StrictModel):
    """A reference result from a recipe's source, shown beside ours for comparison."""

    metric: str
    value: float | None = None  # None: the source publishes no number for exactly this set-up
    benchmark: str = ""
    note: str = ""
    url: str = ""


class RecipeInfo(StrictModel):
    title: str
    source: str  # where the recipe comes from (project and URL)
    hardware: str  # what it needs to run as written
    published: list[Published] = Field(default_factory=list)


class ExpectedEffect(StrictModel):
    """The paired effect a recipe measured, so a run can say up front how likely its test set is to show it
    (``experiments/plan.py``): shares of test problems solved only after training, and only before."""

    gain: float = Field(gt=0, lt=1)
    loss: float = Field(ge=0, lt=1)
    source: str = ""  # where it was measured (CPU kind, run, n)


class ExperimentConfig(StrictModel):
    name: str = "main"
    out: str | None = None  # default runs/<name>
    model: str = DEFAULT_MODEL
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    sft: bool = True  # run the SFT stage (train:); false: base -> RL only
    rl: RLConfig | None = None  # an RL stage (GRPO) on the training problems, after SFT or instead of it
    rl_from: Literal["sft", "base"] = "sft"  # what RL starts from: the SFT checkpoint, or the base model
    eval: EvalConfig = Field(default_factory=EvalConfig)
    traces: TracesConfig | None = None  # teacher traces on the training problems, used as SFT data
    sweep: SweepConfig | None = None
    baseline: bool = True  # evaluate the untrained model for the before/after comparison
    recipe: RecipeInfo | None = None
    expected_effect: ExpectedEffect | None = None  # for the printed plan's power statement
    # the whole job's minutes on this machine: SFT trains on the longest prefix of data.train's seeded subset
    # (at most its limit) that the plan, from this machine's measured rate, fits in them (experiments/plan.py)
    budget_minutes: float | None = Field(default=None, gt=0)
    # settings by the precision this machine trains in (``train.dtype``, ``auto`` resolved), as dotted keys;
    # applied after the file, before the command line: where one config cannot suit every CPU kind, the
    # difference stays in the config (``by_dtype: {fp32: {budget_minutes: 19}}``)
    by_dtype: dict[Literal["fp32", "bf16"], dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _traces_need_problems(self) -> ExperimentConfig:
        if self.traces is not None and self.data.train.form == "sft":
            raise ValueError("traces are generated from problems: data.train.form must not be 'sft'")
        if self.sweep is not None and not self.data.has_val:
            raise ValueError("a sweep validates every arm during training: set data.val_size or data.val")
        return self

    @model_validator(mode="after")
    def _stages(self) -> ExperimentConfig:
        if not self.sft and self.rl is None:
            raise ValueError("nothing to train: sft is false and there is no rl: section")
        if self.rl is not None and self.rl_from == "sft" and not self.sft:
            raise ValueError("rl_from: sft needs the SFT stage (sft: true); or start RL from the base model")
        if self.rl is not None and self.sweep is not None:
            raise ValueError("a sweep trains SFT arms only: drop the rl: section or the sweep: section")
        if self.rl is not None and self.data.train.form == "sft":
            raise ValueError("RL samples and grades the training problems: data.train.form must not be 'sft'")
        return self

    @model_validator(mode="after")
    def _budget(self) -> ExperimentConfig:
        if self.budget_minutes is None:
            return self
        if not self.sft or self.traces is not None or self.sweep is not None or self.data.train.form == "sft":
            raise ValueError(
                "budget_minutes sizes SFT on problems' reference solutions: it needs sft: true and no traces:, "
                "sweep: or data.train.form: sft"
            )
        if self.train.max_steps is not None:
            raise ValueError(
                "budget_minutes picks how many problems SFT sees: leave train.max_steps unset, or train "
                "without a budget (budget_minutes=null)"
            )
        return self

    @model_validator(mode="after")
    def _one_calculator(self) -> ExperimentConfig:
        if self.rl is not None and self.rl.calculator and not self.eval.calculator:
            raise ValueError(
                "the experiment's calculator switch is eval.calculator (RL then samples with the tool): "
                "set eval.calculator=true, not rl.calculator"
            )
        if self.train.calculator and not self.eval.calculator:
            raise ValueError(
                "the experiment's calculator switch is eval.calculator (SFT then trains on the annotated "
                "solutions, and every eval uses the tool): set eval.calculator=true, not train.calculator"
            )
        return self

    @model_validator(mode="after")
    def _heldout_suite_name(self) -> ExperimentConfig:
        if self.data.test.dataset in self.eval.suites:
            raise ValueError(
                f"eval.suites: {self.data.test.dataset!r} names the held-out test set's suite (data.test, "
                "evaluated with the eval: keys); give the other suite another name"
            )
        return self

    @property
    def out_dir(self) -> Path:
        return Path(self.out or Path("runs") / self.name)


# The main job: what `mathsft run` runs with no --config (spelled out, with the evidence for each key, in
# configs/run.yaml). The bundled model on real GSM8K, offline (the copy bundled with mathsft when the hub is
# unreachable): greedy eval of GSM8K test problems with the calculator tool, SFT on as many training problems'
# annotated solutions (decontaminated against the test set) as the machine fits in the job's minutes, in the
# `bare` prompt with the embeddings and lowest 6 layers frozen, the same eval again, the paired comparison. bf16
# where the CPU computes it natively; the settings that differ by precision are under by_dtype.
MAIN_JOB: dict[str, Any] = {
    "name": "main",
    "data": {
        "train": {"dataset": "gsm8k", "split": "train", "limit": 3000},
        "test": {"dataset": "gsm8k", "split": "test", "limit": 300},
        "decontaminate": True,
    },
    "train": {
        "lr": 4e-4,
        "warmup_steps": 3,
        "max_length": 512,
        "dtype": "auto",
        "prompt": "bare",
        "freeze_embeddings": True,
        "freeze_layers": 6,
    },
    "eval": {"prompt": "bare", "max_new_tokens": 192, "batch_size": 128, "calculator": True},
    "by_dtype": {
        "bf16": {
            "budget_minutes": 14,
            "data.test.limit": 500,
            "expected_effect": {
                "gain": 0.042,
                "loss": 0.012,
                "source": "measured on a 2-core Zen 5 in bf16, 3 data seeds (1,408-1,656 training problems): "
                "63 gained, 18 lost of 1,500",
            },
        },
        "fp32": {
            "budget_minutes": 18,
            "expected_effect": {
                "gain": 0.019,
                "loss": 0.011,
                "source": "measured on a 2-core AVX2 EPYC in fp32, 448 training problems, 3 data seeds: "
                "17 gained, 10 lost of 900",
            },
        },
    },
}


def load_experiment(
    path: str | Path | None = None, overrides: list[str] | None = None, base: dict[str, Any] | None = None
) -> ExperimentConfig:
    """Defaults < ``base`` < file < ``by_dtype`` of this machine's training precision < dotted overrides
    (``train.lr=2e-5``)."""
    cfg = build_config(ExperimentConfig, path, overrides, base=base)
    by_dtype = cfg.by_dtype.get(cfg.train.dtype)  # type: ignore[call-overload]  # auto is resolved by now
    if not by_dtype:
        return cfg
    if any(key == "train.dtype" or key.startswith("by_dtype") for key in by_dtype):
        raise ConfigError(f"by_dtype.{cfg.train.dtype}: may not set train.dtype or by_dtype, which pick it")
    extra = [f"{key}={json.dumps(value)}" for key, value in by_dtype.items()]
    return build_config(ExperimentConfig, path, [*extra, *(overrides or [])], base=base)
