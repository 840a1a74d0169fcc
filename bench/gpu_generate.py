"""Generated tokens/s of the hf backend on a GPU at batch 1, 32 and 128 (against plain ``generate`` on the
same prompts), for a randomly initialized Qwen2.5-0.5B architecture in bf16: ``generate_bench.py`` with
GPU settings, one run per batch size with max(8, batch) prompts.

    python bench/gpu_generate.py                          # H100/H200
    python bench/gpu_generate.py --arch tiny --device cpu --dtypes float32 --max-new-tokens 16  # smoke test
"""

from __future__ import annotations

import argparse

from generate_bench import main as generate_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="qwen2.5-0.5b")
    parser.add_argument("--batch-sizes", default="1,32,128")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtypes", default="bfloat16")
    parser.add_argument("--max-new-tokens", default="256")
    args = parser.parse_args()
    for batch in args.batch_sizes.split(","):
        generate_bench(
            [
                "--random-init-config", args.arch, "--device", args.device, "--dtypes", args.dtypes,
                "--batch-sizes", batch, "--n-prompts", str(max(8, int(batch))),
                "--max-new-tokens", args.max_new_tokens, "--modes", "plain,hf",
            ]
        )  # fmt: skip


if __name__ == "__main__":
    main()
