"""What ``mathsft run`` is about to do and roughly how long this machine will take, said before the first stage.

The estimate is the work each stage holds — tokens to prefill and decode in an eval, tokens through the trained
and the frozen layers in SFT, both of them in each RL step (rollouts, then the update) — divided by this
machine's matmul rate, measured on the spot in the run's dtype
(``measured_peak_flops``, ~0.5 s), times the fraction of that rate each kind of work reached in measured runs
(``EFFICIENCY``). Once a stage has run, the rest is estimated again from what that stage really took, so the
forecast tightens as the job goes. A plan also says how likely the test set is to show the gain it is looking
for (``mcnemar_power``), when the config states the effect to expect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from mathsft.evaluation.metrics import mcnemar_exact

# Fraction of the measured matmul rate each kind of work reached, in this module's FLOP counts, in the main job:
# fp32 on a 2-core AVX2 EPYC (baseline eval at batch 128 with the calculator: 4.6 min; 56 SFT steps with 6 layers
# frozen: 9.5 min), bf16 on a 2-core Zen 5 (three data seeds: baseline evals of 1.2-1.4 min reached 0.22-0.30 of
# the rate, SFT of 2.5-3.0 min 0.35-0.47; 1,792 problems in 10.4 min: 0.46). bf16 matmuls run ~5x faster
# there, so the work around them (attention over the KV cache, norms, Python) takes a larger share. Other
# machines differ; the plan corrects itself after each stage. A budget (budget_minutes) is fitted from these
# before any stage ran, so they lean low: a job ends early rather than late.
EFFICIENCY = {"fp32": {"eval": 0.48, "train": 0.75}, "bf16": {"eval": 0.27, "train": 0.42}}
GENERATED_SHARE = 0.85  # of max_new_tokens, on average: the base model mostly loops to the limit
# RL samples from a trained policy that mostly stops: 115-123 of 192 tokens a sample, on average, in the
# GRPO stage of configs/recipes/sft-vs-grpo-gsm8k-equal-compute-cpu.yaml
RL_GENERATED_SHARE = 0.65


@dataclass
class StagePlan:
    name: str
    what: str
    work: dict[str, float]  # the stage's GFLOP by kind ("eval": generation, "train": fwd + bwd)
    seconds: float = 0.0  # estimated, then measured once the stage ran
    done: bool = False  # ran, or complete from an earlier run of the same command (reused)
    per_example: list[float] = field(default_factory=list)  # SFT: each example's GFLOP over all its epochs


@dataclass
class Plan:
    """The stages ahead, their estimated seconds, and the machine rate behind them."""

    device: str
    dtype: str
    gflops: float  # measured matmul rate, GFLOP/s
    stages: list[StagePlan] = field(default_factory=list)
    efficiency: dict[str, float] = field(default_factory=dict)  # default: EFFICIENCY[dtype]
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.efficiency = self.efficiency or dict(EFFICIENCY.get(self.dtype, EFFICIENCY["fp32"]))

    def estimate(self) -> None:
        for stage in self.stages:
            if not stage.done:
                stage.seconds = sum(g / (self.gflops * self.efficiency[k]) for k, g in stage.work.items())

    def remaining_s(self) -> float:
        return sum(s.seconds for s in self.stages if not s.done)

    def finished(self, name: str, seconds: float) -> None:
        """Record a stage's real time; the stages of its kind are estimated again at its rate (a stage of two
        kinds, RL, says nothing about either alone; a reused one, 0 s, nothing about this machine)."""
        stage = next(s for s in self.stages if s.name == name)
        stage.seconds, stage.done = seconds, True
        if seconds > 0 and len(stage.work) == 1:
            [(kind, gflop)] = stage.work.items()
            if gflop > 0:
                self.efficiency[kind] = gflop / seconds / self.gflops
        self.estimate()

    def print(self, console: Console) -> None:
        left = self.remaining_s()
        console.print(
            f"[bold]plan[/bold] on {self.device}, {self.dtype}: this machine's matmul rate "
            f"{self.gflops:.0f} GFLOP/s (measured now); "
            + (f"about {left / 60:.0f} min in all" if left else "every stage is done: nothing left to run")
        )
        for s in self.stages:
            took = "    done  " if s.done else f"~{s.seconds / 60:5.1f} min"
            console.print(f"  {s.name:9s}{took}  {s.what}")
        for note in self.notes:
            console.print(f"  {note}")

    def examples_within(self, seconds: float, batch_size: int) -> int:
        """How many training examples, a prefix in whole batches, SFT gets when the job has ``seconds`` in
        all: the other stages' estimates come off first, the rest buys examples at the training rate."""
        train = next(s for s in self.stages if s.name == "train")
        left = seconds - sum(s.seconds for s in self.stages if s is not train and not s.done)
        per_second = self.gflops * self.efficiency["train"]
        n, spent = 0, 0.0
        for gflop in train.per_example:
            spent += gflop / per_second
            if spent > left:
                break
            n += 1
        return n - n % batch_size if n < len(train.per_example) else n

    def print_progress(self, console: Console, name: str) -> None:
        took = next(s for s in self.stages if s.name == name).seconds
        left = self.remaining_s()
        tail = f"; the rest about {left / 60:.1f} min at this machine's measured rates" if left else ""
        console.print(f"[bold]{name}[/bold] took {took / 60:.1f} min{tail}")


def eval_gflop(
    prompt_tokens: list[int], max_new_tokens: int, gflop_per_token: float, head_gflop: float
) -> float:
    """Prefill every prompt (no LM head but the last position's) and decode ~GENERATED_SHARE of the limit."""
    prefill = sum(prompt_tokens) * (gflop_per_token - head_gflop)
    decode = len(prompt_tokens) * GENERATED_SHARE * max_new_tokens * gflop_per_token
    return prefill + decode


def train_gflop(tokens: int, targets: int, params: dict[str, float]) -> float:
    """fwd + bwd of the trained layers (6 FLOPs a weight a token), forward only below them (2), and the LM
    head on the supervised positions (6 trained, 4 fixed). ``params`` in billions: trained, frozen, head."""
    head = (6 if params["head_trains"] else 4) * params["head"] * targets
    return (6 * params["trained"] + 2 * params["frozen"]) * tokens + head


def mcnemar_power(n: int, gain: float, loss: float, alpha: float = 0.05) -> float:
    """Probability that n paired problems show a gain with exact McNemar p < ``alpha``, when a problem is solved
    only after training with probability ``gain`` and only before with ``loss`` (independent problems)."""
    q = gain + loss
    if n < 1 or q <= 0:
        return 0.0
    share = gain / q
    top = min(n, int(n * q + 12 * math.sqrt(n * q) + 12))
    power = 0.0
    for d in range(1, top + 1):
        p_d = _binomial(n, d, q)
        if p_d < 1e-12:
            continue
        # the smallest count of gains among d discordant problems that the exact test calls significant
        crit = next((b for b in range(d // 2 + 1, d + 1) if mcnemar_exact(d - b, b) < alpha), None)
        if crit is not None:
            power += p_d * sum(_binomial(d, b, share) for b in range(crit, d + 1))
    return power


def _binomial(n: int, k: int, p: float) -> float:
    """P(k successes in n), in log space: n may be thousands."""
    if p <= 0 or p >= 1:
        return float(k == (n if p >= 1 else 0))
    log_pmf = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    return math.exp(log_pmf + k * math.log(p) + (n - k) * math.log1p(-p))


def problems_for_power(
    gain: float, loss: float, power: float = 0.8, alpha: float = 0.05, step: int = 50
) -> int:
    """The smallest multiple of ``step`` test problems with at least ``power`` (up to 5,000; more: 5,000)."""
    for n in range(step, 5001, step):
        if mcnemar_power(n, gain, loss, alpha) >= power:
            return n
    return 5000


def power_note(n: int, expected: dict[str, Any], eval_s_per_problem: float | None = None) -> str:
    """The test set's power for the expected effect, and (given this machine's eval rate) what the test set
    that reaches 80% would cost here, so a user who wants a reliable answer knows its price (``data.test.limit``)."""
    gain, loss = expected["gain"], expected["loss"]
    needed = problems_for_power(gain, loss)
    note = (
        f"{n} test problems: if training solves {100 * gain:.1f}% of them that the base model misses and loses "
        f"{100 * loss:.1f}% it solved ({expected.get('source', 'the config')}), McNemar at p < 0.05 shows the "
        f"gain with probability {mcnemar_power(n, gain, loss):.0%}; 80% needs ~{needed}"
    )
    if eval_s_per_problem is not None and needed > n:
        minutes = eval_s_per_problem * needed / 60
        note += f" (an eval of that many ~{minutes:.0f} min on this machine, where the test split has them)"
    return note


def model_params(model_spec: str, freeze_layers: int, freeze_embeddings: bool) -> dict[str, Any]:
    """Billions of weights in the trained layers, the frozen ones below them and the LM head, from the config on
    the meta device; plus the per-token forward GFLOP of eval (``forward_gflop_per_token``) and its head."""
    from mathsft.generation.speed import forward_gflop_per_token, meta_model

    model = meta_model(model_spec)
    config = model.config
    layers = model.model.layers if hasattr(model, "model") and hasattr(model.model, "layers") else []
    frozen = sum(p.numel() for layer in list(layers)[:freeze_layers] for p in layer.parameters())
    head = model.get_output_embeddings().weight.numel()
    body = sum(p.numel() for p in model.parameters()) - model.get_input_embeddings().weight.numel()
    tied = bool(getattr(config.get_text_config(), "tie_word_embeddings", False))
    body -= 0 if tied else head
    return {
        "trained": (body - frozen) / 1e9,
        "frozen": frozen / 1e9,
        "head": head / 1e9,
        "head_trains": not (freeze_embeddings and tied),
        "gflop_per_token": forward_gflop_per_token(model_spec),
        "head_gflop": 2 * head / 1e9,
    }


def build_plan(
    cfg: Any, prepared: Any, complete: frozenset[str] = frozenset(), gflops: float | None = None
) -> Plan:
    """The plan of an ``ExperimentConfig`` over its prepared data: the matmul probe runs here (~0.5 s) unless
    ``gflops`` gives its result. ``complete``: the stages an earlier run of the same command finished, reused
    rather than run."""
    from mathsft.evaluation.run import build_prompts
    from mathsft.generation.speed import measured_peak_flops
    from mathsft.models import auto_device, load_tokenizer

    device = auto_device(cfg.train.device)
    # "auto" is resolved by TrainConfig; eval's auto resolves alike (bf16 where native)
    dtype = cfg.train.dtype
    plan = Plan(device, dtype, gflops or measured_peak_flops(device, dtype) / 1e9)
    tokenizer = load_tokenizer(cfg.model)
    params = model_params(cfg.model, cfg.train.freeze_layers, cfg.train.freeze_embeddings)
    test = prepared.test
    prompts = build_prompts(cfg.eval.model_copy(update={"model": cfg.model}), test).values()
    prompt_tokens = [len(_tokens(tokenizer, p)) for p in prompts]
    work = {
        "eval": eval_gflop(
            prompt_tokens, cfg.eval.max_new_tokens, params["gflop_per_token"], params["head_gflop"]
        )
    }
    what = f"greedy eval of {len(test)} test problems, <= {cfg.eval.max_new_tokens} new tokens"
    if cfg.baseline:
        plan.stages.append(StagePlan("baseline", what + " (the base model)", work))
    if cfg.sft:
        plan.stages.append(_train_stage(cfg, prepared, tokenizer, params))
        plan.stages.append(StagePlan("final", what + " (the SFT checkpoint)", work))
    if cfg.rl is not None:
        plan.stages.append(_rl_stage(cfg, prepared, tokenizer))
        plan.stages.append(StagePlan("rl-final", what + " (the RL checkpoint)", work))
    if cfg.eval.suites:
        plan.notes.append(
            f"the eval suites ({', '.join(cfg.eval.suites)}) come on top of each eval (not estimated)"
        )
    for stage in plan.stages:
        stage.done = stage.name in complete
    plan.estimate()
    if cfg.expected_effect is not None and cfg.baseline and cfg.sft:
        per_problem = sum(work.values()) / (plan.gflops * plan.efficiency["eval"]) / max(1, len(test))
        plan.notes.append(power_note(len(test), cfg.expected_effect.model_dump(), per_problem))
    return plan


def _train_stage(cfg: Any, prepared: Any, tokenizer: Any, params: dict[str, Any]) -> StagePlan:
    from mathsft.training import problems_to_examples
    from mathsft.training.loop import total_steps

    train = cfg.train
    n = len(prepared.train)
    steps = total_steps(train, n)
    what = f"SFT: {n} examples x {train.epochs:g} epoch(s) = {steps} steps of {train.batch_size}, lr {train.lr:g}"
    if cfg.traces is not None or prepared.manifest["train"]["form"] != "problems":
        return StagePlan("train", what + " (not estimated: teacher traces or ready examples)", {"train": 0.0})
    passes = steps * train.batch_size / max(1, n)  # epochs, or fewer where max_steps stops early
    per_example = []
    for example in problems_to_examples(prepared.train, cfg.eval.prompt, cfg.eval.calculator):
        prompt = len(_tokens(tokenizer, example.messages[:-1]))
        whole = min(len(_tokens(tokenizer, example.messages, generation=False)), train.max_length)
        per_example.append(train_gflop(whole, max(0, whole - prompt), params) * passes)
    return StagePlan("train", what, {"train": sum(per_example)}, per_example=per_example)


def _rl_stage(cfg: Any, prepared: Any, tokenizer: Any) -> StagePlan:
    """GRPO's steps: each samples up to every round's groups (dynamic sampling's rounds, guidance's second try
    of all-wrong groups: an upper bound) and trains on ``batch_size`` groups ``updates_per_batch`` times."""
    from mathsft.evaluation.run import build_prompts

    rl = cfg.rl
    if prepared.manifest["train"]["form"] != "problems":  # an error when the stage starts: RL grades problems
        return StagePlan("rl", "GRPO (not estimated: the training data are SFT examples)", {"train": 0.0})
    params = model_params(cfg.model, rl.freeze_layers, rl.freeze_embeddings)
    problems = prepared.train[:256]  # the mean prompt length is all the estimate needs
    prompts = build_prompts(cfg.eval.model_copy(update={"model": cfg.model}), problems).values()
    prompt = sum(len(_tokens(tokenizer, p)) for p in prompts) / max(1, len(problems))
    response = RL_GENERATED_SHARE * rl.max_new_tokens
    rounds = (rl.max_sampling_rounds if rl.dynamic_sampling else 1) * (2 if rl.guidance else 1)
    sampled = rl.max_steps * rounds * rl.batch_size * rl.group_size
    rollouts = sampled * (
        prompt * (params["gflop_per_token"] - params["head_gflop"]) + response * params["gflop_per_token"]
    )
    trained = rl.max_steps * rl.updates_per_batch * rl.batch_size * rl.group_size
    update = train_gflop(int(trained * (prompt + response)), int(trained * response), params)
    if rl.beta > 0:  # the frozen reference model's forward over the same samples
        update += trained * (prompt + response) * params["gflop_per_token"]
    upto = "up to " if rounds > 1 else ""
    what = (
        f"GRPO: {rl.max_steps} steps of {rl.batch_size} x {rl.group_size} samples, {upto}{rounds * rl.batch_size} "
        f"groups sampled a step, <= {rl.max_new_tokens} new tokens, lr {rl.lr:g}"
    )
    return StagePlan("rl", what, {"eval": rollouts, "train": update})


def _tokens(tokenizer: Any, prompt: Any, generation: bool = True) -> list[int]:
    if isinstance(prompt, str):
        return tokenizer(prompt)["input_ids"]
    text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=generation)
    return tokenizer(text, add_special_tokens=False)["input_ids"]
