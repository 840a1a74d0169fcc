"""Generated tokens/s of the hf backend against plain transformers ``generate``, on the same prompts, in one run.

Modes: ``single`` (``model.generate`` one prompt at a time), ``plain`` (``model.generate`` on left-padded
batches of ``--batch-sizes``, prompts in file order), ``hf`` (``HFBackend`` at each batch size) in the
precisions of ``--dtypes``. Only real generated tokens count: each row up to and including its first
EOS (a finished row that ``generate`` keeps padding does not count). Greedy outputs are compared with
``plain`` at the same precision and batch size (or the first one measured).

With ``--samples N`` (sampled at ``--temperature``, no top-k/top-p, as RL rollouts and pass@k draw) each
prompt gets N completions: ``plain`` calls ``generate`` with ``num_return_sequences=N`` on ``batch / N``
prompts at a time, ``hf`` sends one request of n=N per prompt (its samples share one prefill),
``hf-unshared`` N requests of one sample (each prefilled), ``hf-sort-sampler`` the backend with the
sampler it had before (the vocabulary sorted and one ``torch.multinomial`` call per row each step),
``hf-unchunked`` the backend with every decode row in one attention call over the batch's longest row
(as before row chunks; its outputs are compared with the first hf mode's at the same batch size).

CPU (issue 4):   python bench/generate_bench.py --dtypes float32,bfloat16 --draft-tokens 0,4
CPU, sampled:    python bench/generate_bench.py --dtypes bfloat16 --samples 8 --temperature 1.0 \
                     --batch-sizes 64 --max-new-tokens 128 --modes plain,hf,hf-unshared,hf-sort-sampler
GPU (issue 8):   python bench/generate_bench.py --device cuda --batch-sizes 1,32,128 --n-prompts 256 \\
                     --random-init-config qwen2.5-0.5b --modes plain,hf
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import platform
import time
from pathlib import Path

import torch
from random_models import RANDOM_CONFIGS, build_random_model

from mathsft.data import load_problems, synthetic_problems
from mathsft.generation import hf as hf_module
from mathsft.generation.base import Request, SamplingParams
from mathsft.generation.hf import HFBackend
from mathsft.generation.speed import forward_gflop_per_token, head_gflop_per_token, measured_peak_flops
from mathsft.models import load_model, load_tokenizer

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gsm8k" / "test.jsonl"
SAMPLE_NEXT, CHUNK_ROWS = hf_module.sample_next, hf_module.CHUNK_ROWS
SUFFIX = "\nPlease reason step by step, and put your final answer within \\boxed{}."


def real_tokens(row: list[int], eos: set[int]) -> list[int]:
    for i, token in enumerate(row):
        if token in eos:
            return row[: i + 1]
    return row


def run_generate(
    model, tokenizer, prompts: list[str], batch: int, params: SamplingParams, samples: int, eos: set[int]
) -> list[list[int]]:
    outputs: list[list[int]] = []
    sampling = {} if params.greedy else {"temperature": params.temperature, "top_k": 0, "top_p": 1.0}
    step = max(1, batch // samples)  # prompts per call: batch sequences decoded together
    for start in range(0, len(prompts), step):
        enc = tokenizer(
            prompts[start : start + step], return_tensors="pt", padding=True, add_special_tokens=False
        )
        enc = enc.to(model.device)
        with torch.inference_mode():
            out = model.generate(
                **enc,
                max_new_tokens=params.max_new_tokens,
                do_sample=not params.greedy,
                num_return_sequences=samples,
                **sampling,
            )
        outputs += [real_tokens(row.tolist(), eos) for row in out[:, enc["input_ids"].shape[1] :]]
    return outputs


def sort_sampler(logits: torch.Tensor, params: SamplingParams, generators: list) -> torch.Tensor:
    """The hf backend's sampler before 272bd88 (no top-k/top-p): the vocabulary sorted each step, then one
    ``torch.multinomial`` call per row; kept here to measure against."""
    logits, vocab_index = (logits.float() / params.temperature).sort(dim=-1, descending=True)
    probs = logits.softmax(dim=-1)
    picks = torch.cat([torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(generators)])
    return vocab_index.gather(-1, picks[:, None])[:, 0]


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def bench_dtype(
    model_spec: str,
    dtype: str,
    device: str,
    tokenizer,
    chats: list[list[dict[str, str]]],
    prompts: list[str],
    batch_sizes: list[int],
    modes: list[str],
    params: SamplingParams,
    draft_tokens: list[int],
    profile: bool = False,
    samples: int = 1,
) -> list[dict]:
    """Every requested mode at one precision; greedy outputs are compared with ``plain`` at this precision."""
    rows: list[dict] = []
    references: dict[int, list[list[int]]] = {}
    # the decoding ceiling: this machine's matmul rate in this precision over the model's GFLOP per token
    gflops, per_token = measured_peak_flops(device, dtype) / 1e9, forward_gflop_per_token(model_spec)
    ceiling = gflops / per_token
    per_prompt_token = per_token - head_gflop_per_token(model_spec)  # prefill computes no logits there
    print(f"{dtype}: ceiling {ceiling:.0f} tokens/s (matmul rate over GFLOP per token)", flush=True)

    first_hf: dict[int, list[list[int]]] = {}  # greedy outputs of the first hf mode at each batch size
    # the prompts' prefill: as much work per token as a generated one, so the share of the machine used counts it
    prompt_tokens = sum(len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"])

    def record(
        mode: str, batch: int, outputs: list[list[int]], seconds: float, ref_batch: int | None
    ) -> None:
        tokens = sum(len(o) for o in outputs)
        ref = references.get(ref_batch) if ref_batch is not None else None
        same = sum(a == b for a, b in zip(outputs, ref, strict=True)) if ref else None
        hf_ref = first_hf.setdefault(batch, outputs) if mode.startswith("hf") and params.greedy else None
        row = {
            "mode": mode,
            "dtype": dtype,
            "batch": batch,
            "tokens": tokens,
            "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1),
            "of_ceiling": round(tokens / seconds / ceiling, 3),
            "prompt_tokens": prompt_tokens,
            "of_ceiling_with_prompts": round(
                (tokens * per_token + prompt_tokens * per_prompt_token) / seconds / gflops, 3
            ),
            "same_as_plain": same,
            "same_as_first_hf": None
            if hf_ref is None
            else sum(a == b for a, b in zip(outputs, hf_ref, strict=True)),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    if "single" in modes or "plain" in modes:
        model = load_model(model_spec, dtype=dtype, device=device)
        eos_cfg = model.generation_config.eos_token_id
        eos = set(eos_cfg if isinstance(eos_cfg, list) else [eos_cfg])
        run_generate(
            model,
            tokenizer,
            prompts[:1],
            samples,
            dataclasses.replace(params, max_new_tokens=4),
            samples,
            eos,
        )
        if "single" in modes:
            outputs, seconds = timed(
                lambda: run_generate(model, tokenizer, prompts, samples, params, samples, eos)
            )
            record("single", 1, outputs, seconds, None)
        if "plain" in modes:
            for batch in batch_sizes:
                outputs, seconds = timed(
                    lambda b=batch: run_generate(model, tokenizer, prompts, b, params, samples, eos)
                )
                if params.greedy:
                    references[batch] = outputs
                record("plain", batch, outputs, seconds, None)
        del model
    for hf_mode, (batch, drafts) in itertools.product(
        [m for m in modes if m.startswith("hf")], itertools.product(batch_sizes, draft_tokens)
    ):
        backend = HFBackend(model_spec, dtype=dtype, device=device, batch_size=batch, draft_tokens=drafts)
        # rendered by the backend, as ``prompts`` were; hf-unshared: each sample its own request
        if hf_mode == "hf-unshared":
            requests = [Request(c, seed=i * samples + j) for i, c in enumerate(chats) for j in range(samples)]
        else:
            requests = [Request(c, n=samples, seed=i) for i, c in enumerate(chats)]
        if hf_mode == "hf-sort-sampler":
            hf_module.sample_next = sort_sampler
        if hf_mode == "hf-unchunked":
            hf_module.CHUNK_ROWS = batch
        try:
            backend.generate(requests[:1], dataclasses.replace(params, max_new_tokens=4))  # warm-up
            if profile:  # where the time goes: matmuls, attention, the many small element-wise ops
                from torch.profiler import ProfilerActivity
                from torch.profiler import profile as torch_profile

                with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                    results, seconds = timed(lambda b=backend, r=requests: b.generate(r, params))
                print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
            else:
                results, seconds = timed(lambda b=backend, r=requests: b.generate(r, params))
        finally:
            hf_module.sample_next, hf_module.CHUNK_ROWS = SAMPLE_NEXT, CHUNK_ROWS
        outputs = [c.extra["token_ids"] for cs in results for c in cs]
        ref_batch = (
            (batch if batch in references else next(iter(references), None)) if params.greedy else None
        )
        stats = backend.draft_stats
        mode = f"{hf_mode} (packed={backend.packed_linears > 0}, draft_tokens={drafts})"
        if drafts:
            mode += f", {stats['accepted']}/{stats['proposed']} drafts accepted"
        record(mode, batch, outputs, seconds, ref_batch)
        backend.close()
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--random-init-config", choices=sorted(RANDOM_CONFIGS))
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--n-prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--batch-sizes", default="16")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtypes", default="float32", help="comma list of float32,bfloat16,float16")
    parser.add_argument("--modes", default="single,plain,hf")
    parser.add_argument(
        "--draft-tokens", default="0", help="comma list: hf backend prompt-lookup drafts per step (0 = off)"
    )
    parser.add_argument("--samples", type=int, default=1, help="completions per prompt (sampled when > 1)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument(
        "--profile", action="store_true", help="print the hf backend's top operators (slows it down)"
    )
    args = parser.parse_args(argv)

    model_spec = args.model
    if args.random_init_config:
        out = Path("/tmp") / f"mathsft-random-{args.random_init_config}"
        model_spec = str(
            out if (out / "config.json").is_file() else build_random_model(args.random_init_config, out)
        )
    tokenizer = load_tokenizer(model_spec, padding_side="left")
    if Path(args.data).is_file():
        problems = load_problems("gsm8k", args.data, limit=None)[: args.n_prompts]
    else:  # a lent GPU machine has no ../shared/data
        print(f"{args.data} is absent: synthetic word problems instead")
        problems = synthetic_problems("test", args.n_prompts, 0)
    chats = [[{"role": "user", "content": p.problem + SUFFIX}] for p in problems]
    prompts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chats]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    modes = args.modes.split(",")
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=0)
    rows: list[dict] = []
    print(
        f"model={model_spec} device={args.device} prompts={len(prompts)} x {args.samples} samples at "
        f"temperature {args.temperature} max_new_tokens={args.max_new_tokens} "
        f"threads={torch.get_num_threads()} torch={torch.__version__} cpu={platform.processor() or platform.machine()}"
    )
    for dtype in args.dtypes.split(","):
        rows += bench_dtype(
            model_spec,
            dtype,
            args.device,
            tokenizer,
            chats,
            prompts,
            batch_sizes,
            modes,
            params,
            [int(k) for k in args.draft_tokens.split(",")],
            args.profile,
            args.samples,
        )
    print()
    print(
        "| mode | dtype | batch | generated tokens | seconds | tokens/s | of the ceiling | with the prompts "
        "| greedy same as plain | as the first hf mode |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        same = [
            f"{r[k]}/{len(prompts)}" if r[k] is not None else "-"
            for k in ("same_as_plain", "same_as_first_hf")
        ]
        print(
            f"| {r['mode']} | {r['dtype']} | {r['batch']} | {r['tokens']} | {r['seconds']} | {r['tokens_per_s']} "
            f"| {r['of_ceiling']:.0%} | {r['of_ceiling_with_prompts']:.0%} | {same[0]} | {same[1]} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
