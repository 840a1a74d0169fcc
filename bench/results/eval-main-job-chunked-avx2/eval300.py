"""Re-run the main job's base-model eval (seed 1's 300 test problems, its config) into a new folder."""
import json, sys, yaml
from mathsft.data.schema import Problem
from mathsft.evaluation import run_eval
from mathsft.evaluation.config import EvalConfig
src, out = sys.argv[1], sys.argv[2]
cfg = yaml.safe_load(open(f"{src}/baseline/config.yaml"))
cfg["out"] = out
problems = [Problem(**json.loads(l)) for l in open(f"{src}/data/test.jsonl")]
s = run_eval(EvalConfig(**cfg), problems=problems)
print(json.dumps({k: s[k] for k in ("accuracy", "correct_count", "tokens_per_s", "generated_tokens", "prompt_tokens", "generation_s", "decode_ceiling") if k in s}))
