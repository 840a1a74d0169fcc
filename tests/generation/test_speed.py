"""The decoding ceiling: the model's linear FLOPs per token, the machine's matmul rate, the eval's fraction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from mathsft.data.schema import Problem
from mathsft.evaluation import run_eval
from mathsft.evaluation.config import EvalConfig
from mathsft.generation.hf import HFBackend
from mathsft.generation.speed import decode_ceiling, forward_gflop_per_token, linear_gflop_per_token


def test_flops_per_token_count_every_projection_and_the_head(tiny_model_dir: Path) -> None:
    config = AutoConfig.from_pretrained(tiny_model_dir)
    hidden, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    head_dim = hidden // config.num_attention_heads
    kv = config.num_key_value_heads * head_dim
    per_layer = 2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * inter  # q, o; k, v; gate, up, down
    expected = 2 * (layers * per_layer + hidden * config.vocab_size) / 1e9  # + the (tied) head
    assert forward_gflop_per_token(str(tiny_model_dir)) == expected
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert linear_gflop_per_token(model) == expected


def test_an_hf_eval_reports_its_rate_against_the_ceiling(tmp_path: Path, tiny_model_dir: Path) -> None:
    backend = HFBackend(str(tiny_model_dir), dtype="float32", batch_size=4)
    ceiling = decode_ceiling(backend)
    assert ceiling is not None and ceiling["matmul_gflops"] > 0
    rate = ceiling["matmul_gflops"] / ceiling["gflop_per_token"]  # both rounded for the summary
    assert ceiling["ceiling_tokens_per_s"] == pytest.approx(rate, rel=0.01)
    problems = [Problem(id=str(i), problem=f"What is {i} + {i}?", answer=str(2 * i)) for i in range(3)]
    cfg = EvalConfig(model=str(tiny_model_dir), out=str(tmp_path / "eval"), max_new_tokens=8, dtype="float32")
    summary = run_eval(cfg, problems=problems, backend=backend)
    reported = summary["decode_ceiling"]
    assert reported["fraction"] == round(summary["tokens_per_s"] / reported["ceiling_tokens_per_s"], 3)
    # the prompts' prefill counted too: every token the forward passes took
    rows = [json.loads(line) for line in (tmp_path / "eval" / "results.jsonl").read_text().splitlines()]
    assert summary["prompt_tokens"] == sum(len(backend.encode(r["prompt"])) for r in rows)
    head = (
        2 * backend.model.config.hidden_size * backend.model.config.vocab_size / 1e9
    )  # prompts skip the head
    assert reported["prompt_gflop_per_token"] == round(reported["gflop_per_token"] - head, 4)
    gflop = summary["generated_tokens"] * reported["gflop_per_token"]
    gflop += summary["prompt_tokens"] * reported["prompt_gflop_per_token"]
    assert reported["fraction_with_prompts"] == round(
        gflop / summary["generation_s"] / reported["matmul_gflops"], 3
    )
    assert (
        "float32" in reported["peak_measured"]
        and f"{torch.get_num_threads()} threads" in reported["peak_measured"]
    )


def test_a_remote_engine_has_no_ceiling_here() -> None:
    class Remote:
        name, model_name = "openai", "gpt"

    assert decode_ceiling(Remote()) is None
