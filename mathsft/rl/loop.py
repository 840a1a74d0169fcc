"""``rl``: the explicit GRPO loop, built from the SFT loop's pieces.

Each step takes ``batch_size`` problems in a seeded per-epoch order (``step_indices``, as SFT takes
examples), has the rollout engine sample ``group_size`` completions of each with the current weights and
grades them (``rollout.py``); ``sampling.py``'s ``Collector`` adds what it offers for groups without
signal (dynamic sampling, the pass-rate sampler, guidance). Then ``updates_per_batch`` optimizer steps run
on the samples. An update is the SFT step with other weights: each sample's prompt + response is a
packed row whose targets are the policy's tokens, and ``step_loss`` (packing, the fused LM head, bf16
autocast, FSDP2 under ``torchrun``) takes the clipped policy-gradient objective of ``objective.py`` as a
per-token loss of each target's cross-entropy. The first pass records each token's log-probability,
which later passes use as ``logp_old`` (the ratio), so several optimizer steps per batch cost no extra
forward. Samples of groups without signal (all rewards equal) have zero advantage and zero gradient: they
are left out of the forward (without a KL term) but counted in the normalization (with dynamic sampling
the step holds only groups with signal).

The model, optimizer, schedule, checkpoints (HF directories + exact resume state), metrics log,
validation and progress bar are ``mathsft.training.loop``'s. Rank 0 generates; the graded samples are
broadcast to every rank, which trains on its share. ``rollouts.jsonl`` keeps every sample of every step.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mathsft.config import save_resolved
from mathsft.data import load_problems
from mathsft.data.schema import Problem, content_hash
from mathsft.errors import MathsftError
from mathsft.evaluation.prompts import get_template
from mathsft.models import resolve_model
from mathsft.rl.config import RLConfig
from mathsft.rl.objective import TokenTerms, clipped, kl_k3, token_objective, token_weights
from mathsft.rl.rollout import Engine, Sample, signal_free_groups
from mathsft.rl.sampling import Collector, Rollouts, by_group, has_signal
from mathsft.training.data import load_val_problems
from mathsft.training.distributed import Dist
from mathsft.training.loop import (
    Setup,
    accumulate,
    autocast_for,
    build,
    claim_run_dir,
    optimizer_step,
    progress,
    resume,
    save_state,
    validation_steps,
    versions,
)
from mathsft.training.loss import step_loss, target_losses
from mathsft.training.metrics import MetricsLog, open_step_log
from mathsft.training.packing import Batch, collate, register_packed_attention
from mathsft.training.tokenize import chat_template_digest
from mathsft.training.validate import Validation

log = logging.getLogger("mathsft.rl")


def load_rl_problems(cfg: RLConfig) -> list[Problem]:
    """The problems ``cfg`` names, checked: at least one, unique ids (rollouts are logged by id)."""
    problems = load_problems(cfg.dataset, cfg.data_path, split=cfg.split, limit=cfg.limit, seed=cfg.seed)
    where = cfg.data_path or f"the {cfg.dataset} {cfg.split} split"
    if not problems:
        raise MathsftError(f"no problems to train on in {where}")
    if len({p.id for p in problems}) != len(problems):
        raise MathsftError(f"{where}: problem ids are not unique; rollouts are logged by id")
    return problems


# ----------------------------------------------------------------------------------------------------
# One update: updates_per_batch optimizer steps on a step's graded samples


@dataclass
class UpdateStats:
    loss: float  # the objective of the first pass (summed over ranks)
    grad_norm: float  # of the last optimizer step
    lr: float  # of the first optimizer step
    tokens: int  # tokens forwarded, every pass and rank
    entropy: float | None  # mean over the first pass's targets (None: nothing forwarded)
    clip_fraction: float  # targets whose gradient the clip removed, over every pass
    kl: float | None  # mean k3 KL to the reference over every pass (beta > 0)


@dataclass
class Plan:
    """One micro-batch and the samples of its rows (indices into the step's samples)."""

    batch: Batch
    keys: list[int]


def per_target(plan: Plan, values: list[float]) -> torch.Tensor:
    """A per-sample value repeated over each row's targets (float32, in the batch's target order)."""
    counts = plan.batch.target_seq.bincount(minlength=plan.batch.num_seqs).tolist()
    return torch.cat([torch.full((c,), float(values[k])) for k, c in zip(plan.keys, counts, strict=True)])


def by_row(plan: Plan, values: torch.Tensor) -> dict[int, torch.Tensor]:
    """Per-target ``values`` of a micro-batch split into its rows' pieces, keyed by sample."""
    counts = plan.batch.target_seq.bincount(minlength=plan.batch.num_seqs).tolist()
    return dict(zip(plan.keys, values.split(counts), strict=True))


def reference_logps(reference: Any, plans: list[Plan], device: torch.device, autocast: Any) -> dict:
    """Each sample's per-target log-probabilities under the frozen reference model."""
    out: dict[int, torch.Tensor] = {}
    with torch.no_grad():
        for plan in plans:
            with autocast():
                out |= by_row(plan, -target_losses(reference, plan.batch, device).float().cpu())
    return out


def skip_step(setup: Setup, cfg: RLConfig) -> UpdateStats:
    """A step in which no group has signal: the optimizer does not step (Adam's momentum would move the
    weights with no data behind it); the schedule goes on."""
    lr = setup.scheduler.get_last_lr()[0]
    with warnings.catch_warnings():  # that the optimizer has not stepped is the point here
        warnings.filterwarnings("ignore", "Detected call of `lr_scheduler", UserWarning)
        for _ in range(cfg.updates_per_batch):
            setup.scheduler.step()
    return UpdateStats(0.0, 0.0, lr, 0, None, 0.0, None)


class Update:
    """``updates_per_batch`` optimizer steps on one step's samples. The first pass records each target's
    log-probability, the ``logp_old`` of the later passes; counts for the metrics add up over passes."""

    def __init__(
        self, setup: Setup, dist: Dist, cfg: RLConfig, samples: list[Sample], reference: Any
    ) -> None:
        self.setup, self.dist, self.cfg = setup, dist, cfg
        self.autocast = autocast_for(cfg, setup.device)
        lengths = torch.tensor([s.policy_tokens for s in samples])
        self.weights = token_weights(cfg.loss_type, lengths, cfg.max_new_tokens).tolist()
        self.advantages = [s.advantage for s in samples]
        self.clip = (cfg.clip_eps, cfg.clip_eps_high or cfg.clip_eps)
        pad = setup.tokenizer.pad_token_id if setup.tokenizer.pad_token_id is not None else 0
        rows = [s.row(str(k)) for k, s in enumerate(samples) if s.advantage != 0 or cfg.beta > 0]
        groups, self.fillers = dist.micro_batches(rows, cfg.packing, cfg.micro_batch_tokens, cfg.grad_accum)
        self.plans = [Plan(collate(g, cfg.packing, pad), [int(r.example_id) for r in g]) for g in groups]
        self.ref = reference_logps(reference, self.plans, setup.device, self.autocast) if cfg.beta > 0 else {}
        self.old: dict[int, torch.Tensor] = {}
        self.sums = torch.zeros(6, dtype=torch.float64)  # tokens, entropy, its targets, clipped, kl, targets

    def run(self, done: int) -> UpdateStats:
        """The optimizer steps (``done``: optimizer steps taken before these)."""
        losses, grad_norm, lrs = [], 0.0, []
        for it in range(self.cfg.updates_per_batch):
            loss_of = functools.partial(self.pass_loss, first=it == 0)
            losses.append(accumulate(self.plans, self.fillers, loss_of, self.dist))
            grad_norm, lr = optimizer_step(self.setup, self.dist, self.cfg.grad_clip, done + 1 + it)
            lrs.append(lr)
        tokens, entropy, counted, clips, kl, targets = self.dist.all_reduce_sum(self.sums).tolist()
        return UpdateStats(
            losses[0],
            grad_norm,
            lrs[0],
            int(tokens),
            entropy / counted if counted else None,
            clips / max(targets, 1),
            kl / max(targets, 1) if self.cfg.beta > 0 else None,
        )

    def terms(self, plan: Plan, first: bool) -> TokenTerms:
        return TokenTerms(
            per_target(plan, self.weights),
            per_target(plan, self.advantages),
            None if first else torch.cat([self.old[k] for k in plan.keys]),
            torch.cat([self.ref[k] for k in plan.keys]) if self.ref else None,
        )

    def pass_loss(self, plan: Plan, real: bool, first: bool) -> torch.Tensor:
        """One micro-batch's share of the step loss (zero for a filler), its backward still to run."""
        terms = self.terms(plan, first)
        logp = torch.empty(plan.batch.num_targets)
        entropy = torch.empty(plan.batch.num_targets) if first and real else None

        def token_loss(ce: torch.Tensor, rows: slice) -> torch.Tensor:
            logp[rows] = -ce.detach().cpu()
            loss = token_objective(-ce, terms.rows(rows).to(ce.device), *self.clip, self.cfg.beta)
            return loss if real else loss * 0

        with self.autocast():
            loss = step_loss(
                self.setup.model,
                plan.batch,
                self.setup.device,
                token_loss,
                self.cfg.loss_chunk_tokens,
                entropy,
            )
        if real:
            self.tally(plan, terms, logp, entropy)
            if first:
                self.old.update(by_row(plan, logp))
        return loss

    def tally(self, plan: Plan, terms: TokenTerms, logp: torch.Tensor, entropy: torch.Tensor | None) -> None:
        """Add one real micro-batch's counts: tokens, entropy, clipped targets, KL, targets."""
        old = logp if terms.old_logp is None else terms.old_logp
        self.sums[0] += plan.batch.num_tokens
        if entropy is not None:
            self.sums[1] += float(entropy.double().sum())
            self.sums[2] += len(entropy)
        self.sums[3] += int(clipped(logp, old, terms.advantage, *self.clip).sum())
        if terms.ref_logp is not None:
            self.sums[4] += float(kl_k3(logp.double(), terms.ref_logp.double()).sum())
        self.sums[5] += plan.batch.num_targets


def update(
    setup: Setup, dist: Dist, cfg: RLConfig, samples: list[Sample], reference: Any, done: int
) -> UpdateStats:
    """``updates_per_batch`` optimizer steps on ``samples`` (``done``: optimizer steps before these); a
    step where no group has signal (and no KL term), or with nothing to train on (dynamic sampling found
    no signal), changes nothing but the schedule."""
    if not samples or (cfg.beta == 0 and all(s.advantage == 0 for s in samples)):
        return skip_step(setup, cfg)
    return Update(setup, dist, cfg, samples, reference).run(done)


# ----------------------------------------------------------------------------------------------------
# The loop


def rl(
    cfg: RLConfig, problems: list[Problem] | None = None, val_problems: list[Problem] | None = None
) -> Path:
    """Train with GRPO (or resume, or return a finished run) into ``cfg.out``; returns the run directory."""
    with Dist.from_env() as dist:
        return _rl(cfg, problems, val_problems, dist)


def reference_model(cfg: RLConfig, device: torch.device) -> Any:
    """The frozen initial policy the KL term keeps close to (every rank holds it whole)."""
    from transformers import AutoModelForCausalLM

    attn = register_packed_attention() if cfg.packing else "sdpa"
    model = AutoModelForCausalLM.from_pretrained(
        resolve_model(cfg.model), dtype=torch.float32, attn_implementation=attn
    )
    return model.to(device).eval().requires_grad_(False)


def write_manifest(
    cfg: RLConfig,
    out: Path,
    source: str,
    problems: list[Problem],
    val: list[Problem],
    tokenizer: Any,
    world: int,
) -> None:
    """``manifest.json``: what the run trained on and with what (model, data hashes, versions)."""
    from mathsft.grading import GRADER_VERSION

    manifest = {
        "model": cfg.model,
        "model_dir": str(resolve_model(cfg.model)),
        "data": {
            "source": source,
            "dataset": cfg.dataset,
            "hash": content_hash(problems),
            "count": len(problems),
        },
        "val": {"count": len(val), "hash": content_hash(val) if val else None},
        "total_steps": cfg.max_steps,
        "optimizer_steps": cfg.max_steps * cfg.updates_per_batch,
        "world_size": world,
        "rollouts": {"backend": cfg.rollout_backend, "device": cfg.rollout_device or "in process"},
        "calculator": cfg.calculator,
        "grader_version": GRADER_VERSION,
        "versions": versions(),
        "chat_template_hash": chat_template_digest(tokenizer),
        "prompt_template_hash": get_template(cfg.prompt).digest(),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def step_row(cfg: RLConfig, done: int, rollouts: Rollouts, stats: UpdateStats, times: dict) -> dict:
    """The step's ``metrics.jsonl`` row: rates over what the policy drew without guidance; the group
    counts say what dynamic sampling and guidance made of it."""
    samples, size = rollouts.drawn, cfg.group_size
    n, groups = len(samples), len(samples) // size
    generated = sum(len(s.token_ids) for s in samples + rollouts.guided)
    row: dict[str, Any] = {
        "train_step": done,
        "rl/reward_mean": sum(s.reward for s in samples) / n,
        "rl/pass_rate": sum(s.correct for s in samples) / n,
        "rl/format_rate": sum(s.formatted for s in samples) / n,
        "rl/zero_signal_fraction": signal_free_groups(samples, groups) / groups,
        "rl/sampled_groups": groups,
        "rl/signal_groups": groups - signal_free_groups(samples, groups),
        "rl/trained_groups": len(rollouts.trained) // size,
        "rl/response_tokens": sum(len(s.token_ids) for s in samples) / n,
        "rl/truncation_rate": sum(s.finish_reason == "length" for s in samples) / n,
        "rl/loss": stats.loss,
        "rl/lr": stats.lr,
        "rl/grad_norm": stats.grad_norm,
        "rl/clip_fraction": stats.clip_fraction,
        "rl/generated_tokens": generated,
        "rl/update_tokens": stats.tokens,
        "rl/rollout_tokens_per_s": generated / max(times["generate"], 1e-9),
        "rl/update_tokens_per_s": stats.tokens / max(times["update"], 1e-9),
        "rl/rollout_s": times["rollout"],
        "rl/update_s": times["update"],
        "rl/step_s": times["rollout"] + times["update"],
        "rl/calculator": cfg.calculator,
    }
    if cfg.guidance:
        guided = rollouts.guided
        row["rl/guided_groups"] = len(guided) // size
        row["rl/guided_signal_groups"] = sum(has_signal(g) for g in by_group(guided, size))
        row["rl/guided_pass_rate"] = sum(s.correct for s in guided) / len(guided) if guided else 0.0
    if stats.entropy is not None:
        row["rl/entropy"] = stats.entropy
    if stats.kl is not None:
        row["rl/kl"] = stats.kl
    if cfg.calculator:
        row["rl/tool_tokens"] = sum(len(s.own) - s.policy_tokens for s in samples) / n
    return row


def _rl(
    cfg: RLConfig, problems: list[Problem] | None, val_problems: list[Problem] | None, dist: Dist
) -> Path:
    out = Path(cfg.out_dir())
    folder = out / "checkpoints"
    if claim_run_dir(cfg, out):
        return out
    source = "in-memory" if problems is not None else cfg.data_path or f"{cfg.dataset} {cfg.split} (hub)"
    problems = load_rl_problems(cfg) if problems is None else problems
    if not problems:
        raise MathsftError("no problems to train on")
    val_problems = (load_val_problems(cfg) if val_problems is None else val_problems) or []
    total = cfg.max_steps
    setup = build(cfg, total * cfg.updates_per_batch, dist)
    start, resumed = resume(folder, setup, dist)
    if start:
        log.info("resuming from step %d of %d", start, total)
    reference = reference_model(cfg, setup.device) if cfg.beta > 0 else None
    engine = Engine(cfg, str(setup.device)) if dist.is_main else None
    collector = Collector(engine, problems, cfg, setup.tokenizer, dist)
    if "sampler" in resumed:
        collector.sampler.load_state_dict(resumed["sampler"])
    metrics = rollouts = None
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_resolved(cfg, out)
        write_manifest(cfg, out, source, problems, val_problems, setup.tokenizer, dist.world)
        metrics = MetricsLog(out, cfg.log, start, cfg.model_dump(mode="json"))
        rollouts = open_step_log(out / "rollouts.jsonl", start)
    to_validate = validation_steps(cfg, total) if val_problems else []
    validation = Validation(cfg, out, val_problems, to_validate, metrics, dist.is_main)
    data = {"order": "seeded permutation per epoch", "seed": cfg.seed, "problems": len(problems)}
    synced = start == 0  # the engine starts with the initial weights

    def save(step: int, name: str) -> Path:
        state = {**data, "sampler": collector.sampler.state_dict()}
        return save_state(setup, dist, folder, name, step, state, cfg.keep_last, validation.keep())

    validation.redo(total)
    setup.model.train()
    try:
        with progress(cfg.log.progress and dist.is_main, "rl", total, start, "reward") as advance:
            for step in range(start, total):
                t0 = time.perf_counter()
                if not synced:  # the engine gets the weights the last update made
                    weights = dist.full_weights(setup.model)  # every rank: a collective under FSDP
                    if engine is not None:
                        engine.load(weights)
                    synced = True
                step_rollouts = collector.step(step)
                done = step + 1
                if rollouts is not None:
                    logged = step_rollouts.drawn + step_rollouts.guided
                    rollouts.write("".join(json.dumps(s.log_row(done)) + "\n" for s in logged))
                    rollouts.flush()
                t2 = time.perf_counter()
                stats = update(
                    setup, dist, cfg, step_rollouts.trained, reference, step * cfg.updates_per_batch
                )
                synced = synced and stats.tokens == 0  # a step without signal leaves the weights alone
                times = {
                    "generate": step_rollouts.generate_s,
                    "rollout": t2 - t0,
                    "update": time.perf_counter() - t2,
                }
                row = step_row(cfg, done, step_rollouts, stats, times)
                if metrics is not None and (done % cfg.log_every == 0 or done == total):
                    metrics.write(row)
                advance(row["rl/reward_mean"])
                validation.end_of_step(done, total, save)
        validation.finish()
    finally:
        if engine is not None:
            engine.close()
        for sink in (metrics, rollouts):
            if sink is not None:
                sink.close()
    return out
