"""Interoperability: lm-evaluation-harness (``--model hf``) evaluates the bundled model and a mathsft
checkpoint straight from their directories, with no conversion step.

The task is lm-eval's own ``gsm8k`` task definition (5-shot, "Question: … Answer:", strict and flexible
exact match) pointed at the local GSM8K files, since the hub is unreachable. Each model runs through the
real ``lm_eval`` command line in its own process. Needs the ``lmeval`` extra.

    .venv/bin/python bench/lm_eval_interop.py --limit 50 \\
        --models smollm2-135m runs/parity-gsm8k/train/checkpoints/final
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k"


def local_task(folder: Path) -> str:
    """Write lm-eval's gsm8k task with its dataset swapped for the local JSONL files; returns its name."""
    import lm_eval

    task = yaml.safe_load((Path(lm_eval.__file__).parent / "tasks" / "gsm8k" / "gsm8k.yaml").read_text())
    task.pop("tag", None)
    task.update(
        task="gsm8k_local",
        dataset_path="json",
        dataset_kwargs={"data_files": {"train": str(DATA / "train.jsonl"), "test": str(DATA / "test.jsonl")}},
    )
    task.pop("dataset_name", None)
    (folder / "gsm8k_local.yaml").write_text(yaml.safe_dump(task, sort_keys=False))
    return task["task"]


def run_lm_eval(model: str, task: str, include: Path, limit: int, batch_size: int, out: Path) -> dict:
    from mathsft.models import resolve_model

    pretrained = resolve_model(model)
    cmd = [
        sys.executable,
        "-m",
        "lm_eval",
        "--model",
        "hf",
        "--model_args",
        f"pretrained={pretrained},dtype=float32",
        "--tasks",
        task,
        "--include_path",
        str(include),
        "--limit",
        str(limit),
        "--batch_size",
        str(batch_size),
        "--device",
        "cpu",
        "--output_path",
        str(out),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"lm_eval failed on {pretrained}:\n{proc.stderr[-4000:]}")
    results = json.loads(max(out.rglob("results_*.json"), key=lambda p: p.stat().st_mtime).read_text())
    metrics = results["results"][task]
    return {
        "model": model,
        "directory": str(pretrained),
        "n": limit,
        "strict": metrics["exact_match,strict-match"],
        "flexible": metrics["exact_match,flexible-extract"],
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["smollm2-135m"], help="aliases or HF directories")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not (DATA / "test.jsonl").is_file():
        raise SystemExit(f"needs {DATA}/{{train,test}}.jsonl")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        include = Path(tmp) / "tasks"
        include.mkdir()
        task = local_task(include)
        for i, model in enumerate(args.models):
            rows.append(run_lm_eval(model, task, include, args.limit, args.batch_size, Path(tmp) / f"out{i}"))
            r = rows[-1]
            print(
                f"{r['model']}: lm-eval {task} 5-shot n={r['n']} strict={r['strict']:.3f} "
                f"flexible={r['flexible']:.3f} ({r['seconds']:.0f} s)",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
