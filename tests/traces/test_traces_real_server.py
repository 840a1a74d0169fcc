"""``mathsft traces`` against a real OpenAI-compatible server nobody here wrote: ``transformers serve``.

It serves the bundled model from its local directory on loopback, offline (``HF_HUB_OFFLINE=1``).
transformers serve ignores ``n`` (so ``--n-mode seeds``) and samples only when the generation config
says so, hence ``extra_body.generation_config`` from a ``--config`` file.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served_model(smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    exe = Path(sys.executable).parent / "transformers"
    if not exe.is_file() and shutil.which("transformers") is None:
        pytest.skip("transformers serve is not installed (pip install 'transformers[serving]')")
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [str(exe if exe.is_file() else "transformers"), "serve", str(smollm2_dir), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--device", "cpu", "--continuous-batching"]
    with log.open("w") as out:
        server = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                pytest.fail(f"transformers serve exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not come up in 180 s: {log.read_text()[-2000:]}")
            time.sleep(1)
        # the server loads the model on the first request (a minute on a busy 2-core machine): do it
        # here, so the test's own timeouts measure the traces path and not the cold start
        warm = {"model": str(smollm2_dir), "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        httpx.post(f"{url}/v1/chat/completions", json=warm, timeout=300).raise_for_status()
        yield f"{url}/v1", str(smollm2_dir)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_traces_end_to_end_against_transformers_serve(served_model, tmp_path):
    url, model = served_model
    data = tmp_path / "train.jsonl"
    rows = [("What is 12 + 30?", "42"), ("A box has 3 rows of 4 eggs. How many eggs?", "12")]
    data.write_text("".join(json.dumps({"question": q, "answer": f"#### {a}"}) + "\n" for q, a in rows))
    # transformers serve samples only when the generation config says so, and a per-request config
    # replaces the model's whole one: send the model's own (EOS and all) with do_sample on
    generation = json.loads((Path(model) / "generation_config.json").read_text())
    generation.pop("transformers_version", None)
    config = tmp_path / "traces.yaml"
    config.write_text(
        yaml.safe_dump({"extra_body": {"generation_config": json.dumps(generation | {"do_sample": True})}})
    )
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "mathsft", "traces", "--base-url", url, "--model", model,
        "--dataset", "gsm8k", "--data-path", str(data), "--samples", "2", "--out", str(out),
        "--max-tokens", "48", "--n-mode", "seeds", "--concurrency", "4", "--timeout", "120",
        "--config", str(config), "contamination=[]",
    ]  # fmt: skip
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert sorted((r["problem_id"], r["sample_index"]) for r in samples) == [
        ("gsm8k/train/0", 0), ("gsm8k/train/0", 1), ("gsm8k/train/1", 0), ("gsm8k/train/1", 1),
    ]  # fmt: skip
    assert all(r["response"] and r["finish_reason"] in ("stop", "length") for r in samples)
    assert all(r["usage"]["completion_tokens"] > 0 for r in samples)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["complete"] and stats["requests"]["http_requests"] == 4
    assert stats["provenance"]["teacher"] == {
        "backend": "openai", "model": model, "base_url": url, "endpoint": "chat",
    }  # fmt: skip
    assert (out / "sft.jsonl").is_file()
