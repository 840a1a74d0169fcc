"""Rollouts: each step's problems sampled ``group_size`` times with the current policy, graded by
``mathsft.grading``, with group-relative advantages.

The engine is a generation backend holding the policy's weights: the ``hf`` backend in the training
process (CPU: the live weights are copied into its packed inference copy each step, no checkpoint on disk
in between), or any backend in a separate process on its own device (``rollout_device``: vLLM on a second
GPU, as the two-GPU GRPO set-ups run it), sent the new weights each step through ``load_weights``.
Prompts are the eval prompts (``build_prompt``), so RL trains on what eval asks. The loss reads the exact
generated ids (``Completion.extra["token_ids"]``, EOS included) and never re-tokenizes text; tokens the
calculator tool inserted (``extra["tool_mask"]``) are not the policy's actions.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from mathsft.data.schema import Problem
from mathsft.errors import MathsftError
from mathsft.evaluation.prompts import build_prompt, get_template
from mathsft.evaluation.run import sample_seed
from mathsft.generation import Completion, Prompt, Request, SamplingParams, make_backend
from mathsft.rl.config import RLConfig
from mathsft.rl.objective import group_advantages, zero_signal
from mathsft.training.tokenize import Tokenized
from mathsft.workers import Worker, WorkerExited


@dataclass
class Sample:
    """One graded completion of one problem of the step."""

    group: int  # the problem's index in the step (its group)
    problem_id: str
    index: int  # which of the group's samples
    prompt_ids: list[int]
    token_ids: list[int]  # exactly what was generated, EOS included
    own: list[bool]  # per generated token: chosen by the policy (False: inserted by the calculator)
    response: str
    finish_reason: str
    correct: bool
    formatted: bool
    reward: float
    advantage: float = 0.0
    round: int = 0  # the step's sampling round (dynamic sampling) that drew it
    guided: bool = False  # sampled after a reference-solution prefix (part of prompt_ids, never a target)

    @property
    def policy_tokens(self) -> int:
        return sum(self.own)

    def row(self, key: str) -> Tokenized:
        """Prompt + response as a training row whose targets are the policy's tokens."""
        ids = np.asarray(self.prompt_ids + self.token_ids, dtype=np.int64)
        supervised = np.asarray([False] * len(self.prompt_ids) + self.own, dtype=bool)
        return Tokenized(ids, supervised, key)

    def log_row(self, step: int) -> dict[str, Any]:
        """Its ``rollouts.jsonl`` row: what the policy wrote for which problem and what it earned."""
        row = asdict(self)
        for key in ("prompt_ids", "token_ids", "own", "group"):
            del row[key]
        tools = len(self.own) - self.policy_tokens
        return {"train_step": step, **row, "response_tokens": len(self.token_ids), "tool_tokens": tools}


def sampling_params(cfg: RLConfig) -> SamplingParams:
    return SamplingParams(
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=cfg.top_k,
        stop=tuple(get_template(cfg.prompt).stop),
        seed=cfg.seed,
        calculator=cfg.calculator,
    )


def requests_for(
    problems: list[Problem], cfg: RLConfig, step: int, salt: str = "", prompts: list[Prompt] | None = None
) -> list[Request]:
    """One request of ``group_size`` samples per problem, seeded by (seed, step, problem, ``salt``: the
    step's round, guidance): a rerun draws the same samples from the same weights. ``prompts``: other
    prompts than the eval's (guidance)."""
    base = cfg.seed * 1_000_003 + step
    prompts = prompts or [build_prompt(p, cfg.prompt) for p in problems]
    return [
        Request(prompt, n=cfg.group_size, seed=sample_seed(base, p.id + salt), key=i)
        for i, (p, prompt) in enumerate(zip(problems, prompts, strict=True))
    ]


def guided_prompt(tokenizer: Any, prompt: Prompt, prefix: str) -> str:
    """``prompt`` as text with ``prefix`` opening the response: chat messages rendered by the chat template
    with the assistant's turn opened (the leading BOS dropped where the tokenizer adds its own, as a
    backend does for text prompts), then the prefix, which the policy continues."""
    if isinstance(prompt, str):
        return f"{prompt} {prefix}"
    text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    bos = tokenizer.bos_token
    if bos and text.startswith(bos) and tokenizer("")["input_ids"][:1] == [tokenizer.bos_token_id]:
        text = text[len(bos) :]
    return text + prefix


def graded(
    problems: list[Problem], generated: list[tuple[list[int], list[Completion]]], cfg: RLConfig
) -> list[Sample]:
    """Grade every completion (reward 1/0, plus ``format_reward`` when the answer is stated) and give each
    its group-relative advantage."""
    from mathsft.grading import grade

    samples = []
    for group, (problem, (prompt_ids, completions)) in enumerate(zip(problems, generated, strict=True)):
        for index, c in enumerate(completions):
            if "token_ids" not in c.extra:
                raise MathsftError(
                    "the rollout backend returns no generated token ids (Completion.extra['token_ids']); "
                    "RL trains on the exact generated tokens and never re-tokenizes text"
                )
            token_ids = list(c.extra["token_ids"])
            own = [not t for t in c.extra.get("tool_mask", [False] * len(token_ids))]
            verdict = grade(c.text, problem.answer, profile=cfg.grader_profile, style=cfg.extract_style)
            reward = float(verdict.correct) + cfg.format_reward * verdict.formatted
            samples.append(
                Sample(
                    group,
                    problem.id,
                    index,
                    prompt_ids,
                    token_ids,
                    own,
                    c.text,
                    c.finish_reason,
                    verdict.correct,
                    verdict.formatted,
                    reward,
                )
            )
    rewards = torch.tensor([s.reward for s in samples], dtype=torch.float64).view(len(problems), -1)
    advantages = group_advantages(rewards, cfg.scaled, cfg.advantage_eps).flatten().tolist()
    for sample, advantage in zip(samples, advantages, strict=True):
        sample.advantage = advantage
    return samples


def signal_free_groups(samples: list[Sample], groups: int) -> int:
    """How many groups have all-equal rewards (no learning signal)."""
    rewards = torch.tensor([s.reward for s in samples]).view(groups, -1)
    return int(zero_signal(rewards).sum())


def _prompt_ids(backend: Any, prompt: Any, completion: Completion) -> list[int]:
    """The ids the engine conditioned on: its own report, else its tokenization of the prompt."""
    if "prompt_token_ids" in completion.extra:
        return list(completion.extra["prompt_token_ids"])
    if hasattr(backend, "encode"):
        return list(backend.encode(prompt))
    raise MathsftError(
        f"the {backend.name} backend reports neither its prompt token ids (Completion.extra"
        "['prompt_token_ids']) nor an encode(); RL needs the exact ids the samples were conditioned on"
    )


def _generate(backend: Any, requests: list[Request], params: SamplingParams) -> list[tuple[list[int], Any]]:
    results = backend.generate(requests, params)
    return [(_prompt_ids(backend, r.prompt, cs[0]), cs) for r, cs in zip(requests, results, strict=True)]


class Engine:
    """The rollout engine: a backend in this process, or in a ``Worker`` process on ``rollout_device``."""

    def __init__(self, cfg: RLConfig, device: str) -> None:
        options: dict[str, Any] = {}
        if cfg.rollout_backend == "hf":
            options = {"dtype": cfg.engine_dtype, "batch_size": cfg.rollout_batch_size}
        self.worker: Worker | None = None
        self.backend: Any = None
        if cfg.rollout_device is None:
            self.backend = make_backend(cfg.rollout_backend, cfg.model, device=device, **options)
        else:
            args = (cfg.rollout_backend, cfg.model, cfg.rollout_device, options)
            self.worker = Worker(_engine_main, args, name="mathsft-rollouts")
            self._ask(("ready",), "start")

    def load(self, weights: dict[str, torch.Tensor]) -> None:
        """Give the engine the policy's current weights (HF names)."""
        if self.worker is None:
            self.backend.load_weights(weights.items())
        else:
            self._ask(("load", {k: v.detach().cpu() for k, v in weights.items()}), "weight loading")

    def generate(self, requests: list[Request], params: SamplingParams) -> list[tuple[list[int], Any]]:
        """Each request's prompt ids and completions."""
        if self.worker is None:
            return _generate(self.backend, requests, params)
        return self._ask(("generate", requests, params), "generation")

    def _ask(self, job: tuple[Any, ...], what: str) -> Any:
        assert self.worker is not None
        self.worker.send(job)
        try:
            status, payload = self.worker.receive()
        except WorkerExited as gone:
            raise MathsftError(f"the rollout process exited (code {gone.exitcode}) during {what}") from None
        if status == "error":
            raise MathsftError(f"rollout process, {what}: {payload}")
        return payload

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        elif self.backend is not None:
            self.backend.close()


def _engine_main(
    name: str, model: str, device: str, options: dict[str, Any], jobs: Any, results: Any
) -> None:
    """The rollout process: one backend on ``device``, serving jobs until it receives ``None``."""
    if device.startswith("cuda:"):  # before CUDA starts: the engine sees its GPU as the only one
        os.environ["CUDA_VISIBLE_DEVICES"] = device.split(":", 1)[1]
        device = "cuda"
    backend = None
    while (job := jobs.get()) is not None:
        try:
            if backend is None:
                extra = {"device": device} if name == "hf" else {}
                backend = make_backend(name, model, **extra, **options)
            if job[0] == "load":
                backend.load_weights(job[1].items())
                answer = None
            elif job[0] == "generate":
                answer = _generate(backend, job[1], job[2])
            else:
                answer = None
        except Exception as err:  # sent to the trainer, which raises it
            results.put(("error", f"{type(err).__name__}: {err}"))
            return
        results.put(("ok", answer))
