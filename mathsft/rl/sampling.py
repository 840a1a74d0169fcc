"""Which problems a GRPO step samples, and what to do with groups that carry no signal.

A group whose G rewards are all equal has zero advantages and gives no gradient; at a small model's few
percent most groups are all wrong. Three remedies, each a config key, off by default:

- ``dynamic_sampling`` (DAPO, Yu et al. 2025, arXiv:2503.14476, section 3.2): sample further rounds of
  ``batch_size`` new problems until the step holds ``batch_size`` groups with signal, at most
  ``max_sampling_rounds`` rounds; groups without signal are dropped, extra signal groups of the last round
  too (verl's ``filter_groups`` with ``max_num_gen_batches``, SkyRL's ``max_sample_batches``). Where verl
  stops with an error past its limit, a step here trains on the signal groups it found (none: skipped).
- ``problem_sampler: pass_rate`` (online difficulty filtering: Bae et al. 2025, "Online Difficulty
  Filtering for Reasoning Oriented Reinforcement Learning", arXiv:2504.03380, keeps problems of intermediate
  pass rate): each problem's running pass rate (right samples / samples, over every group it had) is kept;
  when its turn comes in the seeded order, a problem whose samples so far were all right or all wrong is
  taken with probability ``settled_draw_rate`` and passed over otherwise. Bae et al. filter on the current
  batch's rollouts, which is what dynamic sampling does here; the sampler decides from each problem's past,
  so a passed-over problem costs no rollouts. A problem never sampled, or once solved and once not, is
  always taken; a settled one comes back at the given rate, so a problem the policy learns to solve is
  seen again.
- ``guidance`` (BREAD, Zhang et al. 2025, "Branched Rollouts from Expert Anchors Bridge SFT & RL for
  Reasoning", arXiv:2506.17211): a group with no right sample is sampled again with the start of the
  problem's reference solution after the prompt, in the assistant's turn; the policy continues it. The
  prefix is ``guidance_fraction`` of the solution's words at step 0, shortened linearly to none at the last
  step. Its tokens are part of the prompt ids, never the policy's tokens: no loss, no length weight.

The sampler's state (the position in the seeded order and the pass-rate counts) is saved with every
checkpoint, so a killed run continues with the draws an uninterrupted one makes. ``Collector`` runs one
step's rounds: draw, sample and grade (rank 0's engine; every rank gets the graded samples, so every rank's
sampler stays the same), guide, keep.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from mathsft.data.schema import Problem
from mathsft.errors import MathsftError
from mathsft.evaluation.prompts import build_prompt, reference_response
from mathsft.evaluation.run import sample_seed
from mathsft.generation import Request
from mathsft.rl.config import RLConfig
from mathsft.rl.rollout import Engine, Sample, graded, guided_prompt, requests_for, sampling_params
from mathsft.training.distributed import Dist
from mathsft.training.loop import step_indices


class ProblemSampler:
    """Problem indices for each sampling round of each step.

    With neither ``dynamic_sampling`` nor the pass-rate sampler a step's problems are exactly SFT's
    (``step_indices``: the data position is the step). Otherwise a cursor walks the same seeded per-epoch
    permutations one problem at a time, since a step may take several rounds of problems."""

    def __init__(self, n: int, cfg: RLConfig) -> None:
        self.n, self.seed = n, cfg.seed
        self.by_step = cfg.problem_sampler == "seeded_order" and not cfg.dynamic_sampling
        self.rate = cfg.settled_draw_rate if cfg.problem_sampler == "pass_rate" else 1.0
        self.cursor = 0  # positions of the seeded order walked so far
        self.attempts = [0] * n  # samples of each problem so far
        self.successes = [0] * n  # right ones among them
        self._epoch: tuple[int, list[int]] = (-1, [])

    def pass_rate(self, i: int) -> float | None:
        return self.successes[i] / self.attempts[i] if self.attempts[i] else None

    def settled(self, i: int) -> bool:
        """Whether every sample of problem ``i`` so far was right, or every one wrong."""
        return self.attempts[i] > 0 and self.successes[i] in (0, self.attempts[i])

    def draw(self, step: int, k: int) -> list[int]:
        """The next ``k`` problems (``step``: the 0-based step, used by the plain order)."""
        if self.by_step:
            return step_indices(step, self.n, k, self.seed)
        out: list[int] = []
        while len(out) < k:
            i = self._at(self.cursor)
            if not self.settled(i) or self._uniform(self.cursor) < self.rate:
                out.append(i)
            self.cursor += 1
        return out

    def record(self, indices: list[int], correct: list[int], group_size: int) -> None:
        """Add each drawn problem's group: ``correct[j]`` right samples of ``group_size``."""
        for i, right in zip(indices, correct, strict=True):
            self.attempts[i] += group_size
            self.successes[i] += right

    def state_dict(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "attempts": list(self.attempts), "successes": list(self.successes)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["attempts"]) != self.n:
            raise MathsftError(
                f"the checkpoint's problem sampler knows {len(state['attempts'])} problems, this run has "
                f"{self.n}: resume with the same problems"
            )
        self.cursor = int(state["cursor"])
        self.attempts = [int(a) for a in state["attempts"]]
        self.successes = [int(s) for s in state["successes"]]

    def _at(self, position: int) -> int:
        epoch, k = divmod(position, self.n)
        if self._epoch[0] != epoch:  # epoch e's order is step_indices' permutation of that epoch
            self._epoch = (epoch, step_indices(epoch, self.n, self.n, self.seed))
        return self._epoch[1][k]

    def _uniform(self, position: int) -> float:
        """A seeded draw in [0, 1) for one position of the order (the same in a rerun)."""
        return sample_seed(self.seed, f"sampler/{position}") / 2**31


_WORD = re.compile(r"\S+")


def guidance_prefix(problem: Problem, cfg: RLConfig, step: int) -> str:
    """The start of ``problem``'s reference solution (the SFT target's text) that guides step ``step``:
    ``guidance_fraction`` of its words at step 0, linearly fewer to none at ``max_steps``; "" when the
    problem has no solution or the share rounds to no word."""
    if not problem.solution.strip():
        return ""
    text = reference_response(problem, cfg.calculator)
    words = list(_WORD.finditer(text))
    keep = int(cfg.guidance_fraction * (1 - step / cfg.max_steps) * len(words))
    return text[: words[keep - 1].end()] if keep > 0 else ""


# ----------------------------------------------------------------------------------------------------
# One step's rollouts


def sample(
    engine: Engine | None,
    requests: list[Request],
    batch: list[Problem],
    cfg: RLConfig,
    params: Any,
    dist: Dist,
) -> tuple[list[Sample], float]:
    """The graded samples of ``requests`` (one per problem of ``batch``) and the generation seconds: rank 0
    (which holds the engine) generates and grades, every rank receives them."""
    samples, seconds = None, 0.0
    if engine is not None:
        start = time.perf_counter()
        generated = engine.generate(requests, params)
        seconds = time.perf_counter() - start
        samples = graded(batch, generated, cfg)
    return dist.broadcast_object((samples, seconds))


@dataclass
class Rollouts:
    """One step's samples: what the policy drew, the guided resamples, and what the update trains on."""

    drawn: list[Sample]  # every sample of every round, without guidance
    guided: list[Sample]  # all-wrong groups sampled again after a reference-solution prefix
    trained: list[Sample]
    generate_s: float


def by_group(samples: list[Sample], group_size: int) -> list[list[Sample]]:
    return [samples[i : i + group_size] for i in range(0, len(samples), group_size)]


def has_signal(group: list[Sample]) -> bool:
    return len({s.reward for s in group}) > 1


class Collector:
    """Draws each step's problems (``ProblemSampler``), samples and grades them, resamples all-wrong groups
    with guidance, and with dynamic sampling goes on with new problems until ``batch_size`` groups carry
    signal (``sampling.py`` says why and where each comes from)."""

    def __init__(
        self, engine: Engine | None, problems: list[Problem], cfg: RLConfig, tokenizer: Any, dist: Dist
    ) -> None:
        self.engine, self.problems, self.cfg, self.dist = engine, problems, cfg, dist
        self.tokenizer = tokenizer  # renders guided prompts
        self.sampler = ProblemSampler(len(problems), cfg)
        self.params = sampling_params(cfg)

    def step(self, step: int) -> Rollouts:
        cfg, size = self.cfg, self.cfg.group_size
        rounds = cfg.max_sampling_rounds if cfg.dynamic_sampling else 1
        drawn: list[Sample] = []
        guided: list[Sample] = []
        keep: list[list[Sample]] = []  # groups with signal, in the order found
        seconds = 0.0
        for r in range(rounds):
            indices = self.sampler.draw(step, cfg.batch_size)
            batch = [self.problems[i] for i in indices]
            salt = f"#round{r}" if r else ""
            samples, secs = sample(
                self.engine, requests_for(batch, cfg, step, salt), batch, cfg, self.params, self.dist
            )
            seconds += secs
            for s in samples:
                s.round = r
            groups = by_group(samples, size)
            self.sampler.record(indices, [sum(s.correct for s in g) for g in groups], size)
            drawn += samples
            if cfg.guidance:
                extra, secs = self.guide(step, r, batch, groups)
                guided += [s for g in extra.values() for s in g]
                groups = [extra.get(j, g) for j, g in enumerate(groups)]
                seconds += secs
            if not cfg.dynamic_sampling:
                return Rollouts(drawn, guided, [s for g in groups for s in g], seconds)
            keep += [g for g in groups if has_signal(g)]
            if len(keep) >= cfg.batch_size:
                break
        trained = [s for g in keep[: cfg.batch_size] for s in g]
        return Rollouts(drawn, guided, trained, seconds)

    def guide(
        self, step: int, r: int, batch: list[Problem], groups: list[list[Sample]]
    ) -> tuple[dict[int, list[Sample]], float]:
        """Each all-wrong group (by its index in ``groups``) sampled again after its guidance prefix."""
        todo = [
            (j, p, prefix)
            for j, p in enumerate(batch)
            if not any(s.correct for s in groups[j])
            if (prefix := guidance_prefix(p, self.cfg, step))
        ]
        if not todo:
            return {}, 0.0
        problems = [p for _, p, _ in todo]
        prompts = [guided_prompt(self.tokenizer, build_prompt(p, self.cfg.prompt), x) for _, p, x in todo]
        requests = requests_for(problems, self.cfg, step, f"#guided{r}", prompts)
        samples, seconds = sample(self.engine, requests, problems, self.cfg, self.params, self.dist)
        for s in samples:
            s.round, s.guided = r, True
        resampled = by_group(samples, self.cfg.group_size)
        return {j: group for (j, _, _), group in zip(todo, resampled, strict=True)}, seconds
