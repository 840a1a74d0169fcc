#!/usr/bin/env bash
# one short device call: does cuDNN SDPA (new graph per new length) explain mathsft's slow packed SFT on CUDA?
# (record of call 2: ran from the ignored .devcarry/probe/; committed copies: call2_sdpa_probe.py, call2_nocudnn_sitecustomize.py)
set -uo pipefail
OUT=${OUT:-out}; mkdir -p "$OUT"; S=$SECONDS
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl >"$OUT/probe.log" 2>&1
export PYTHONPATH="$PWD:/tmp/site:$PWD/.devcarry/pkgs" PYTHONUNBUFFERED=1 MATHSFT_CACHE="$PWD/.devcarry/cache"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p ../shared/data/gsm8k && cp .devcarry/gsm8k/*.jsonl ../shared/data/gsm8k/
echo "[$((SECONDS-S))s] sdpa_probe" >>"$OUT/probe.log"
timeout 60 python3 .devcarry/probe/sdpa_probe.py >>"$OUT/probe.log" 2>&1
PYTHONPATH="$PWD/.devcarry/probe/nocudnn:$PYTHONPATH" python3 -c "import torch; print('cudnn sdp enabled under sitecustomize:', torch.backends.cuda.cudnn_sdp_enabled())" >>"$OUT/probe.log" 2>&1
echo "[$((SECONDS-S))s] gpu_train mathsft + trl-packed, cuDNN SDPA disabled (sitecustomize)" >>"$OUT/probe.log"
PYTHONPATH="$PWD/.devcarry/probe/nocudnn:$PYTHONPATH" timeout 130 python3 bench/gpu_train.py --archs qwen2.5-0.5b \
  --steps 6 --batch-size 32 --runs mathsft trl-packed --json "$OUT/gpu_train_nocudnn.json" >"$OUT/gpu_train_nocudnn.log" 2>&1
echo "[$((SECONDS-S))s] done rc=$?" >>"$OUT/probe.log"
