#!/usr/bin/env bash
# Run here (with PyPI access): the wheels that the lent GPU machines lack for mathsft and its GPU benchmarks.
# That machine has Python 3.12 with torch, transformers, accelerate, peft, typer, rich, sympy, pyyaml, httpx,
# pandas and pyarrow, and no network; these travel in .whl (git-ignored) with run(carry=[".whl"]), and
# scripts/device_bench.sh installs them there.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl  # one version of each package: two stop the install there
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    pydantic==2.14.3 pydantic-core==2.50.4 annotated-types==0.8.0 typing-inspection==0.4.5 \
    math-verify==0.9.0 latex2sympy2_extended==1.11.0 antlr4-python3-runtime==4.13.2 \
    datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 gguf==0.19.0 trl==1.16.0
du -sh .whl
