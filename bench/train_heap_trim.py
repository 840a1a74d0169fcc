"""CPU training speed and peak memory under each ``heap_trim`` policy, on the one-hour GSM8K recipe.

The recipe of BENCHMARKS.md's one-hour arm (issue 23): the bundled SmolLM2-135M-Instruct, 2,500 GSM8K
training problems (seeded subset of ``../shared/data``), calculator annotations, bf16 autocast, packing,
batch 8, lr 2e-4; ``--steps`` optimizer steps of it per arm. Each arm is its own ``mathsft train`` process,
so its peak RSS, page faults and kernel time are its own (``os.wait4``); all arms train on the same batches,
and the final weights must be bitwise equal (trimming changes no number the model computes). Time = the sum
of steps 2..n from ``metrics.jsonl`` (step 1 is warm-up). ``auto`` resolves by this machine's
``/proc/meminfo`` (printed), so on a machine with memory to spare it behaves as ``never``.

    .venv/bin/python bench/train_heap_trim.py --steps 40 --json bench/results/train-heap-trim.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from mathsft.training.memory import meminfo_kb

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "train.jsonl"
RECIPE = [
    "dataset=gsm8k",
    "limit=2500",
    "calculator=true",
    "dtype=bf16",
    "prompt=qwen-boxed",
    "batch_size=8",
    "max_length=512",
    "lr=2e-4",
    "warmup_steps=3",
    "log.progress=false",
]


def run_arm(policy: str, steps: int, out: Path) -> dict:
    cmd = [
        sys.executable,
        "-c",
        "from mathsft.cli import main; main()",
        "train",
        "--data",
        str(DATA),
        "--out",
        str(out),
    ]
    cmd += ["--max-steps", str(steps), *RECIPE, f"heap_trim={policy}"]
    log = out.with_suffix(".log")
    with log.open("w") as stderr:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS, faults and CPU times
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{policy}: mathsft train failed:\n{log.read_text()[-2000:]}")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").open() if "train/step_s" in line]
    weights = out / "checkpoints" / "final" / "model.safetensors"
    return {
        "policy": policy,
        "steps_2_n_s": round(sum(r["train/step_s"] for r in rows[1:]), 1),
        "supervised_tokens": sum(r["train/supervised_tokens"] for r in rows[1:]),
        "peak_gb": round(usage.ru_maxrss / 1e6, 2),  # ru_maxrss is in kB on Linux
        "minor_faults": usage.ru_minflt,
        "system_s": round(usage.ru_stime, 1),
        "user_s": round(usage.ru_utime, 1),
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest()[:16],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--policies", nargs="+", default=["always", "never", "auto"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not DATA.is_file():
        raise SystemExit(f"{DATA} is missing: this benchmark trains on the real GSM8K training set")
    fields = meminfo_kb(Path("/proc/meminfo").read_text())
    memory = {k: f"{fields[k]} kB" for k in ("MemTotal", "MemAvailable")}
    print(f"MemTotal {memory['MemTotal']}, MemAvailable {memory['MemAvailable']}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for policy in args.policies:
            result = run_arm(policy, args.steps, Path(tmp) / policy)
            sup_per_s = result["supervised_tokens"] / result["steps_2_n_s"]
            print(
                f"{policy:>6}: steps 2-{args.steps} {result['steps_2_n_s']:.1f} s ({sup_per_s:.1f} sup tok/s), "
                f"peak {result['peak_gb']:.2f} GB, {result['minor_faults'] / 1e6:.1f}M page faults, "
                f"{result['system_s']:.0f} s system / {result['user_s']:.0f} s user, weights {result['weights_sha256']}"
            )
            results.append(result)
    if len({r["weights_sha256"] for r in results}) != 1:
        raise SystemExit("the policies trained different weights: heap trimming must not change the model")
    if args.json:
        report = {"steps": args.steps, "recipe": RECIPE, "meminfo": memory, "arms": results}
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
