"""Teacher-traces benchmark: the bundled model as teacher, k samples for each of N GSM8K train problems.

Three runs of ``run_traces`` on the same problems and settings:

- ``hf``: the in-process hf backend (``--backend hf --model smollm2-135m``);
- ``server``: the same model behind a real OpenAI-compatible server (``transformers serve``, continuous
  batching, loopback, offline) through the ``openai`` backend;
- ``faults``: the fault-injecting stub of the tests (canned answers, so only the plumbing is timed),
  reporting injected faults against what the backend counted, and that every sample still arrived once.

    .venv/bin/python bench/traces_bench.py --runs hf server faults --problems 64 --samples 4 --max-tokens 256

Writes ``bench/results/traces.json`` (all numbers) and prints one markdown table row per run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from mathsft.data import load_problems
from mathsft.models import resolve_model
from mathsft.traces import TracesConfig, run_traces

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "traces"))
from openai_stub import StubServer, StubSettings  # noqa: E402

FAULTS = {"500": 0.05, "429": 0.05, "malformed": 0.03, "drop": 0.03, "hang": 0.02, "truncate": 0.05}


def summarize(name: str, stats: dict, extra: dict | None = None) -> dict:
    acc = stats["acceptance"]
    run = stats["this_run"]
    req = stats.get("requests") or {}
    return {
        "run": name,
        "samples": stats["samples"],
        "complete": stats["complete"],
        "elapsed_s": run["elapsed_s"],
        "samples_per_s": run["samples_per_s"],
        "completion_tokens_per_s": run["completion_tokens_per_s"],
        "mean_completion_tokens": round(stats["tokens"]["mean_completion"], 1),
        "correct_rate": round(acc["correct_rate"], 4),
        "acceptance_rate": round(acc["acceptance_rate"], 4),
        "accepted": acc["accepted"],
        "truncated": acc["truncated"],
        "problems_with_accepted": acc["problems_with_accepted"],
        "retries": req.get("retries", 0),
        "failures": req.get("failures", {}),
        **(extra or {}),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sampling_generation_config(model_dir: Path) -> str:
    """transformers serve samples only if the generation config says so, and a per-request config
    replaces the model's whole config: send the model's own (EOS and all) with ``do_sample`` on."""
    config = json.loads((model_dir / "generation_config.json").read_text())
    config.pop("transformers_version", None)
    return json.dumps(config | {"do_sample": True})


def run_server(base: dict, problems: list, out: Path, concurrency: int) -> dict:
    model_dir = resolve_model("smollm2-135m")
    port = free_port()
    exe = Path(sys.executable).parent / "transformers"
    cmd = [str(exe), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--device", "cpu", "--continuous-batching"]
    server = subprocess.Popen(
        cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("transformers serve did not start")
            time.sleep(1)
        cfg = TracesConfig(
            **base,
            base_url=f"http://127.0.0.1:{port}/v1",
            model=str(model_dir),
            n_mode="seeds",  # transformers serve answers one choice whatever n is
            concurrency=concurrency,
            timeout=600,
            extra_body={"generation_config": sampling_generation_config(model_dir)},
            out=str(out),
        )
        return summarize("server (transformers serve, openai backend)", run_traces(cfg, problems=problems))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:  # its continuous-batching thread can ignore SIGTERM
            server.kill()
            server.wait()


def run_faults(base: dict, problems: list, out: Path, concurrency: int) -> dict:
    settings = StubSettings(
        answers={p.problem: p.answer for p in problems},
        faults=FAULTS,
        retry_after="0.2",
        hang_s=5.0,
        latency_s=0.02,
        seed=0,
    )
    with StubServer(settings) as server:
        cfg = TracesConfig(
            **base, base_url=server.url, model="stub", n_mode="seeds", concurrency=concurrency, timeout=1.0,
            max_retries=8, out=str(out),
        )  # fmt: skip
        stats = run_traces(cfg, problems=problems)
    extra = {"http_requests": server.requests, "injected": dict(sorted(server.injected.items()))}
    return summarize("faults (stub server, canned answers)", stats, extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", default=["hf", "server", "faults"])
    parser.add_argument("--data-path", default=str(ROOT.parent / "shared" / "data" / "gsm8k" / "train.jsonl"))
    parser.add_argument("--problems", type=int, default=64)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=64, help="hf backend batch size")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "traces.json"))
    parser.add_argument(
        "--work", help="Keep the runs' folders here (rerunning resumes them); default: a temp dir"
    )
    args = parser.parse_args()

    problems = load_problems("gsm8k", args.data_path, limit=args.problems, seed=0)
    base = {
        "samples": args.samples,
        "max_tokens": args.max_tokens,
        "temperature": 0.7,
        "top_p": 0.95,
        "contamination": [],
    }
    work = Path(args.work or tempfile.mkdtemp(prefix="traces-bench-"))
    results = []
    try:
        for name in args.runs:
            out = work / name
            if name == "hf":
                cfg = TracesConfig(
                    **base, backend="hf", model="smollm2-135m", out=str(out),
                    backend_options={"batch_size": args.batch_size},
                )  # fmt: skip
                results.append(summarize("hf (in-process)", run_traces(cfg, problems=problems)))
            elif name == "server":
                results.append(run_server(base, problems, out, args.concurrency))
            elif name == "faults":
                results.append(run_faults(base, problems, out, args.concurrency))
            else:
                raise SystemExit(f"unknown run {name!r}")
            print(json.dumps(results[-1]), flush=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    setup = {"problems": len(problems), **base, "cpu_count": os.cpu_count()}
    Path(args.out).write_text(json.dumps({"setup": setup, "results": results}, indent=2) + "\n")
    print("| run | samples | s | samples/s | gen tok/s | correct | accepted | retries | failures |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        failures = ", ".join(f"{k}={v}" for k, v in r["failures"].items() if v) or "0"
        print(
            f"| {r['run']} | {r['samples']} | {r['elapsed_s']} | {r['samples_per_s']} | "
            f"{r['completion_tokens_per_s']} | {r['correct_rate']:.3f} | {r['acceptance_rate']:.3f} "
            f"({r['accepted']}) | {r['retries']} | {failures} |"
        )


if __name__ == "__main__":
    main()
