"""Throughput of ``mathsft data prepare`` on GSM8K train (7473 rows): read, validate, normalize, write.

Two numbers: the whole command in a fresh process (what a user waits for, imports included), and the
data work alone in-process (load + write), each the median of 5 runs.
Usage: python bench/data_prepare_bench.py [PATH_TO_GSM8K_TRAIN_JSONL]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mathsft.data import load_problems, write_jsonl

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gsm8k" / "train.jsonl"
RUNS = 5


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    if not source.is_file():
        sys.exit(f"{source} not found: pass the GSM8K train JSONL as the first argument")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "gsm8k_train.jsonl"
        command = [sys.executable, "-m", "mathsft", "data", "prepare", "--dataset", "gsm8k"]
        command += ["--data-path", str(source), "--out", str(out)]
        cli_s = []
        for _ in range(RUNS):
            t0 = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            cli_s.append(time.perf_counter() - t0)
        work_s = []
        for _ in range(RUNS):
            t0 = time.perf_counter()
            rows = write_jsonl(out, load_problems("gsm8k", source))
            work_s.append(time.perf_counter() - t0)
    cli, work = statistics.median(cli_s), statistics.median(work_s)
    print(f"rows: {rows}")
    print(f"`mathsft data prepare` (fresh process, median of {RUNS}): {cli:.2f} s = {rows / cli:,.0f} rows/s")
    print(f"load + write in-process (median of {RUNS}): {work:.3f} s = {rows / work:,.0f} rows/s")


if __name__ == "__main__":
    main()
