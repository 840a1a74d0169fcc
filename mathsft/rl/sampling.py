"""Which problems a GRPO step samples, and what to do with groups that carry no signal.

A group whose G rewards are all equal has zero advantages and gives no gradient; at a small model's few
percent most groups are all wrong. Three remedies, each a config key, off by default:

- ``dynamic_sampling`` (DAPO, Yu et al. 2025, arXiv:2503.14476, section 3.2): sample further rounds of
  ``batch_size`` new problems until the step holds ``batch_size`` groups with signal, at most
  ``max_sampling_rounds`` rounds; groups without signal are dropped, extra signal groups of the last round
  too (verl's ``filter_groups`` with ``max_num_gen_batches``, NeMo RL's and SkyRL's dynamic sampling).
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
checkpoint, so a killed run continues with the draws an uninterrupted one makes.
"""

from __future__ import annotations

import re
from typing import Any

from mathsft.data.schema import Problem
from mathsft.errors import MathsftError
from mathsft.evaluation.prompts import reference_response
from mathsft.evaluation.run import sample_seed
from mathsft.rl.config import RLConfig
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
