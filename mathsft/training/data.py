"""What training reads: SFT examples from a file, or problems rendered through a prompt template."""

from __future__ import annotations

from mathsft.data import get_adapter, load_problems, load_sft_examples
from mathsft.data.schema import Problem, SFTExample
from mathsft.errors import MathsftError
from mathsft.evaluation.prompts import build_prompt, reference_response
from mathsft.training.config import LoopConfig, TrainConfig


def problems_to_examples(
    problems: list[Problem], template: str = "qwen-boxed", calculator: bool = False
) -> list[SFTExample]:
    """The eval prompt of each problem (``build_prompt``) + its reference solution as the assistant turn,
    so training and eval prompts cannot drift apart; with ``calculator`` the solution keeps its calls."""
    examples = []
    for p in problems:
        prompt = build_prompt(p, template)
        if isinstance(prompt, str):
            raise MathsftError(
                f"prompt template {template!r} renders raw text, not chat turns; SFT needs a chat template "
                "(e.g. qwen-boxed)"
            )
        messages = [*prompt, {"role": "assistant", "content": reference_response(p, calculator)}]
        examples.append(
            SFTExample(id=p.id, messages=messages, source=p.source, meta={"answer": p.answer, **p.meta})
        )
    return examples


def load_training_examples(cfg: TrainConfig) -> list[SFTExample]:
    if cfg.data is None:
        raise MathsftError("no training data: pass --data FILE (or data=... in the config)")
    if get_adapter(cfg.dataset).gives_sft:
        return load_sft_examples(cfg.dataset, cfg.data, limit=cfg.limit, seed=cfg.seed)
    problems = load_problems(cfg.dataset, cfg.data, split="train", limit=cfg.limit, seed=cfg.seed)
    return problems_to_examples(problems, cfg.prompt, cfg.calculator)


def load_val_problems(cfg: LoopConfig) -> list[Problem] | None:
    if cfg.val_data is None:
        return None
    return load_problems(cfg.val_dataset, cfg.val_data, limit=cfg.val_limit, seed=cfg.seed)
