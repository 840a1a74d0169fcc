"""Evaluation: prompts, metrics and statistics, ``run_eval`` (``mathsft eval``) and ``mathsft compare``."""

from mathsft.evaluation.config import EvalConfig
from mathsft.evaluation.prompts import TEMPLATES, build_prompt, get_template, reference_response
from mathsft.evaluation.run import run_eval

__all__ = ["TEMPLATES", "EvalConfig", "build_prompt", "get_template", "reference_response", "run_eval"]
