"""Every shipped config validates; each recipe's data adapter and prompt work on fixture rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mathsft.config import ConfigError
from mathsft.experiments.config import MAIN_JOB, load_experiment
from mathsft.experiments.run import load_source, training_examples, training_form

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "configs" / "recipes").glob("*.yaml"))
FIXTURES = ROOT / "tests" / "data" / "fixtures"

# the fixture file in each source's exact schema (written by the data layer's tests)
FIXTURE_FOR = {
    "gsm8k": "gsm8k.jsonl",
    "math500": "math500.jsonl",
    "math": "hendrycks_math.jsonl",
    "deepscaler": "deepscaler.json",
    "openr1": "openr1.jsonl",
    "sft": "sft_cs336.jsonl",
}
OPENMATHINSTRUCT2_ROWS = [  # nvidia/OpenMathInstruct-2 schema
    {
        "problem": "What is $\\frac{1}{2} + \\frac{1}{4}$?",
        "generated_solution": "$\\frac{1}{2} + \\frac{1}{4} = \\frac{3}{4}$, so the answer is $\\boxed{\\frac{3}{4}}$.",
        "expected_answer": "\\frac{3}{4}",
        "problem_source": "augmented_math",
    },
    {
        "problem": "Tom has 3 boxes of 4 pens. How many pens?",
        "generated_solution": "3 * 4 = 12, so $\\boxed{12}$.",
        "expected_answer": "12",
        "problem_source": "augmented_gsm8k",
    },
]


def fixture_path(dataset: str, tmp_path: Path) -> Path | None:
    if dataset == "synthetic":  # generated, no file
        return None
    if dataset == "openmathinstruct2":
        path = tmp_path / "openmathinstruct2.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in OPENMATHINSTRUCT2_ROWS))
        return path
    return FIXTURES / FIXTURE_FOR[dataset]


def test_there_are_thirteen_recipes() -> None:
    assert len(RECIPES) == 13, [p.name for p in RECIPES]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_validates_and_names_hardware_and_published_result(path: Path) -> None:
    cfg = load_experiment(path)
    assert cfg.recipe is not None and cfg.recipe.hardware and cfg.recipe.source
    assert cfg.recipe.published, "a recipe writes its source's published result beside it"
    assert cfg.name == path.stem
    # a recipe names a published set-up's model; its CPU-sized version ("-cpu") the bundled one, or a
    # checkpoint of it that an earlier mathsft run wrote (runs/main/..., runs/sft-1h/...)
    bundled = cfg.model == "smollm2-135m" or cfg.model.startswith("runs/")
    assert bundled == path.stem.endswith("-cpu")


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_data_and_prompt_render_on_fixture_rows(path: Path, tmp_path: Path) -> None:
    cfg = load_experiment(path)
    for source in [cfg.data.train, cfg.data.test, *([cfg.data.val] if cfg.data.val else [])]:
        fixture = fixture_path(source.dataset, tmp_path)
        local = source.model_copy(update={"path": fixture and str(fixture), "limit": None if fixture else 8})
        form = training_form(local) if source is cfg.data.train else "problems"
        items = load_source(local, seed=0, skip_bad=False, form=form)
        assert items, f"{source.dataset}: nothing loaded from its fixture"
        if form == "problems":
            from mathsft.evaluation.prompts import build_prompt

            for problem in items:
                prompt = build_prompt(problem, template=cfg.eval.prompt)
                text = prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)
                assert problem.problem in text
    if cfg.traces is None:  # the SFT examples a run would train on
        fixture = fixture_path(cfg.data.train.dataset, tmp_path)
        train = cfg.data.train.model_copy(update={"path": fixture and str(fixture)})
        form = training_form(train)
        items = load_source(train.model_copy(update={"limit": None if fixture else 8}), 0, False, form)
        from mathsft.experiments.run import Prepared

        examples = training_examples(cfg, Prepared(items, [], [], {"train": {"form": form}}), tmp_path)
        assert examples and all(ex.messages[-1]["role"] == "assistant" and ex.response for ex in examples)


def test_run_yaml_is_the_main_job() -> None:
    main_job = load_experiment(base=MAIN_JOB)
    assert load_experiment(ROOT / "configs" / "run.yaml") == main_job
    # real GSM8K, decontaminated, with the calculator: the headline is measured on a real benchmark
    assert main_job.data.train.dataset == main_job.data.test.dataset == "gsm8k"
    assert main_job.data.test.limit >= 200 and main_job.data.decontaminate and main_job.eval.calculator
    assert main_job.model == "smollm2-135m"


def test_gsm8k_hour_config_is_the_measured_one_hour_arm() -> None:
    """BENCHMARKS.md's best one-hour arm was the main job with these overrides; the named config must
    reproduce it (apart from the name and the baseline eval, which trains nothing)."""
    measured = ["train.epochs=2", "data.train.limit=4600", "data.test.limit=1319", "train.lr=4e-4"]
    measured += ["train.prompt=bare", "eval.prompt=bare"]
    measured += ["train.freeze_embeddings=true", "train.freeze_layers=6", "eval.batch_size=64"]
    measured += ["expected_effect=null"]  # the main job's measured effect is not the hour's
    measured += ["budget_minutes=null"]  # nor its time budget: the hour trains on all of its 4,600
    fixed = {key: value for key, value in MAIN_JOB.items() if key != "by_dtype"}
    arm = load_experiment(None, [*measured, "name=gsm8k-hour"], base=fixed)
    assert load_experiment(ROOT / "configs" / "gsm8k-hour.yaml") == arm


def test_equal_compute_recipe_arm_b_starts_grpo_from_the_one_hour_sft_and_arm_a_is_an_override() -> None:
    """Arm B's SFT stage is configs/gsm8k-hour.yaml's (data, training, eval); arm A, the same SFT for twice
    the epochs without RL, is the override its comment gives."""
    path = ROOT / "configs" / "recipes" / "sft-vs-grpo-gsm8k-equal-compute-cpu.yaml"
    arm_b, hour = load_experiment(path), load_experiment(ROOT / "configs" / "gsm8k-hour.yaml")
    assert (arm_b.data, arm_b.train, arm_b.eval) == (hour.data, hour.train, hour.eval)
    assert arm_b.rl is not None and arm_b.rl_from == "sft" and arm_b.rl.dynamic_sampling
    arm_a = load_experiment(path, ["name=arm-a", "rl=null", "train.epochs=4", "baseline=false"])
    assert arm_a.rl is None and arm_a.train.epochs == 2 * hour.train.epochs and arm_a.data == hour.data


def test_gsm8k_sweep_config_validates() -> None:
    cfg = load_experiment(ROOT / "configs" / "sweep-gsm8k.yaml")
    assert cfg.sweep is not None and cfg.data.has_val and cfg.data.train.dataset == "gsm8k"


def test_config_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match=r"data\.train\.datset: unknown key"):
        load_experiment(None, ["data.train.datset=gsm8k"])
    with pytest.raises(ConfigError, match="sweep validates every arm"):
        load_experiment(None, ["sweep.sizes=[8]"])
    with pytest.raises(ConfigError, match="either val_size"):
        load_experiment(None, ["data.val_size=4", "data.val.dataset=gsm8k"])


def test_source_subset_first_takes_the_first_rows_in_file_order() -> None:
    from mathsft.experiments.config import SourceConfig

    fixture = Path(__file__).parents[1] / "data" / "fixtures" / "gsm8k.jsonl"
    every = load_source(SourceConfig(dataset="gsm8k", path=str(fixture), split="train"), 0, False)
    first = SourceConfig(dataset="gsm8k", path=str(fixture), split="train", limit=3, subset="first")
    seeded = first.model_copy(update={"subset": "seeded"})
    assert [p.id for p in load_source(first, 0, False)] == [p.id for p in every[:3]]
    assert [p.id for p in load_source(seeded, 0, False)] != [p.id for p in every[:3]]


def test_by_dtype_applies_the_settings_of_the_precision_this_machine_trains_in() -> None:
    """Where one config cannot suit every CPU kind, the difference is in the config: by_dtype's keys for the
    resolved train.dtype come after the file and before the command line."""
    kinds = "by_dtype={fp32: {budget_minutes: 19, data.train.limit: 100}, bf16: {budget_minutes: 14}}"
    fp32 = load_experiment(None, [kinds, "train.dtype=fp32"])
    assert fp32.budget_minutes == 19 and fp32.data.train.limit == 100
    bf16 = load_experiment(None, [kinds, "train.dtype=bf16"])
    assert bf16.budget_minutes == 14 and bf16.data.train.limit is None
    assert load_experiment(None, [kinds, "train.dtype=fp32", "budget_minutes=5"]).budget_minutes == 5
    with pytest.raises(ConfigError, match=r"may not set train\.dtype"):
        load_experiment(None, ["by_dtype={fp32: {train.dtype: bf16}}", "train.dtype=fp32"])
    with pytest.raises(ConfigError, match=r"budget_minute: unknown key"):
        load_experiment(None, ["by_dtype={fp32: {budget_minute: 19}}", "train.dtype=fp32"])
    with pytest.raises(ConfigError, match=r"by_dtype\.fp16"):
        load_experiment(None, ["by_dtype={fp16: {budget_minutes: 19}}"])
    with pytest.raises(ConfigError, match=r"leave train\.max_steps unset"):
        load_experiment(None, ["budget_minutes=10", "train.max_steps=5"])
