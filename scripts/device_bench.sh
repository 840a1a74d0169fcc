#!/usr/bin/env bash
# Run on a lent GPU machine (issue 8's GPU benchmarks), one part per call so each fits the 10-minute limit:
#   run(command="bash scripts/device_bench.sh train", carry=[".whl"])      # bench/gpu_train.py
#   run(command="bash scripts/device_bench.sh generate", carry=[".whl"])   # bench/gpu_generate.py
# after scripts/device_wheels.sh here. Logs and JSON land in $OUT, which comes back.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="$PWD:/tmp/site" PYTHONUNBUFFERED=1
OUT=${OUT:-out}
mkdir -p "$OUT"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, transformers, trl; print(torch.__version__, torch.version.cuda, transformers.__version__, trl.__version__)"
} | tee "$OUT/device.txt"
case "${1:?train or generate}" in
    train) python3 bench/gpu_train.py --archs qwen2.5-0.5b qwen2.5-1.5b --json "$OUT/gpu_train.json" 2>&1 | tee "$OUT/gpu_train.log" ;;
    generate) python3 bench/gpu_generate.py 2>&1 | tee "$OUT/gpu_generate.log" ;;
    *) echo "unknown part $1: train or generate" >&2; exit 2 ;;
esac
