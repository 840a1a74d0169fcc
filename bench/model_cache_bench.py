"""Load time of the bundled model: first use (GGUF dequantized and cached) vs later uses (cache).

Each measurement runs in a fresh subprocess so imports and file caches are counted the same way.
Usage: python bench/model_cache_bench.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

LOAD = """
import time, json
t0 = time.perf_counter()
from mathsft.models import load_model, load_tokenizer
model = load_model("smollm2-135m")
tok = load_tokenizer("smollm2-135m")
print(json.dumps({"load_s": time.perf_counter() - t0}))
"""


def timed_load(cache: str) -> float:
    env = dict(os.environ, MATHSFT_CACHE=cache, TRANSFORMERS_VERBOSITY="error")
    out = subprocess.run([sys.executable, "-c", LOAD], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["load_s"]


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        cold = timed_load(cache)
        warm = [timed_load(cache) for _ in range(3)]
        print(f"first load (dequantize GGUF + cache as safetensors): {cold:.1f} s")
        print(
            f"cached load (median of 3): {sorted(warm)[1]:.1f} s  (all: {', '.join(f'{w:.1f}' for w in warm)})"
        )
        print(f"total bench time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
