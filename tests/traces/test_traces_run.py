"""``run_traces`` / ``mathsft traces`` end to end against the fault-injecting stub: durability and selection."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from openai_stub import StubServer, StubSettings

from mathsft.data import load_problems
from mathsft.data.schema import Problem
from mathsft.errors import MathsftError
from mathsft.generation.openai import GenerationError
from mathsft.traces import TracesConfig, run_traces
from mathsft.traces.run import sample_seed

REPO = Path(__file__).resolve().parents[2]
K = 4


def make_problems(n: int) -> list[Problem]:
    return [
        Problem(
            id=f"toy/{i}",
            problem=f"Tom has {i + 3} apples and buys {2 * i + 1} more. How many now?",
            answer=str(3 * i + 4),
            source="toy",
        )
        for i in range(n)
    ]


def write_gsm8k(path: Path, problems: list[Problem]) -> Path:
    with path.open("w") as f:
        for p in problems:
            f.write(json.dumps({"question": p.problem, "answer": f"Add them.\n#### {p.answer}"}) + "\n")
    return path


def read_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def assert_consistent(out: Path, problem_ids: set[str], k: int = K) -> list[dict]:
    """Exactly k graded samples per problem, none twice, sft == the correct untruncated ones."""
    rows = read_rows(out)
    keys = [(r["problem_id"], r["sample_index"]) for r in rows]
    assert len(keys) == len(set(keys)), "a sample was logged twice"
    per_problem = Counter(pid for pid, _ in keys)
    assert set(per_problem) == problem_ids and set(per_problem.values()) == {k}
    assert all(isinstance(r["correct"], bool) and "extracted" in r for r in rows)
    expected = {
        f"{r['problem_id']}/sample-{r['sample_index']}"
        for r in rows
        if r["correct"] and r["finish_reason"] != "length"
    }
    sft = [json.loads(line) for line in (out / "sft.jsonl").read_text().splitlines()]
    assert {e["id"] for e in sft} == expected
    assert all(e["messages"][-1]["role"] == "assistant" and e["response"] for e in sft)
    return rows


def config(url: str, out: Path, **kw) -> TracesConfig:
    opts = {"timeout": 1.0, "max_retries": 8, "concurrency": 4, "samples": K, "contamination": []}
    return TracesConfig(base_url=url, model="stub", out=str(out), **(opts | kw))


def test_faults_are_retried_counted_and_every_sample_is_graded_once(tmp_path):
    problems = make_problems(8)
    faults = {"500": 0.1, "429": 0.1, "malformed": 0.08, "drop": 0.08, "hang": 0.04, "truncate": 0.1}
    settings = StubSettings(
        answers={p.problem: p.answer for p in problems}, faults=faults, retry_after="0", hang_s=3.0, seed=1
    )
    out = tmp_path / "run"
    with StubServer(settings) as server:
        stats = run_traces(config(server.url, out, timeout=1.5, n_mode="seeds"), problems=problems)
    rows = assert_consistent(out, {p.id for p in problems})
    injected = server.injected
    failures = stats["requests"]["failures"]
    assert sum(injected[k] for k in ("500", "429", "malformed", "drop", "hang")) > 0
    # every hang times out; on a loaded machine a slow ordinary answer may time out too
    assert failures["timeout"] >= injected["hang"]
    assert {k: v for k, v in failures.items() if k != "timeout"} == {
        "http_5xx": injected["500"],
        "http_429": injected["429"],
        "malformed": injected["malformed"],
        "connection": injected["drop"],
    }
    assert stats["requests"]["retries"] == sum(failures.values())
    truncated = [r for r in rows if r["finish_reason"] == "length"]
    assert len(truncated) == injected["truncate"] and stats["acceptance"]["truncated"] == len(truncated)
    assert stats["complete"] and stats["samples"] == len(problems) * K
    assert stats["acceptance"]["accepted"] == sum(
        r["correct"] and r["finish_reason"] != "length" for r in rows
    )
    prov = stats["provenance"]
    assert prov["teacher"]["model"] == "stub" and prov["sampling"]["temperature"] == 0.7
    assert rows[0]["provenance"] == prov and len(prov["problem_set_hash"]) == 16


def test_kill_and_resume_with_the_cli(tmp_path):
    problems = make_problems(12)
    data = write_gsm8k(tmp_path / "train.jsonl", problems)
    settings = StubSettings(answers={p.problem: p.answer for p in problems}, latency_s=0.05, seed=2)
    out = tmp_path / "run"
    with StubServer(settings) as server:
        cmd = [
            sys.executable, "-m", "mathsft", "traces", "--base-url", server.url, "--model", "stub",
            "--dataset", "gsm8k", "--data-path", str(data), "--samples", str(K), "--out", str(out),
            "--concurrency", "2", "--n-mode", "seeds", "--timeout", "5", "contamination=[]",
        ]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        first = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        samples = out / "samples.jsonl"
        while time.monotonic() < deadline and (not samples.exists() or samples.read_text().count("\n") < 10):
            assert first.poll() is None, first.stdout.read().decode()
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        before = read_rows(out)
        assert 10 <= len(before) < len(problems) * K, "the run was not killed mid-way"
        with samples.open("a") as f:  # what a kill in the middle of a write leaves behind
            f.write('{"problem_id": "gsm8k/train/0", "sample_ind')
        requests_before = len(server.seen)

        second = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "dropping a partial last line" in second.stderr
        new_seeds = {p["seed"] for p, _ in server.seen[requests_before:]}

    ids = {r["problem_id"] for r in before}
    rows = assert_consistent(out, {f"gsm8k/train/{i}" for i in range(len(problems))} | ids)
    logged_before = {sample_seed(0, r["problem_id"], r["sample_index"]) for r in before}
    assert not new_seeds & logged_before, "a sample that was already logged was requested again"
    assert len(rows) == len(problems) * K
    stats = json.loads((out / "stats.json").read_text())
    assert stats["complete"] and stats["this_run"]["generated_samples"] == len(problems) * K - len(before)
    assert "accepted=" in second.stderr


def test_a_dead_server_stops_the_run_keeps_the_samples_and_resume_finishes(tmp_path):
    problems = make_problems(4)
    answers = {p.problem: p.answer for p in problems}
    out = tmp_path / "run"
    # two requests succeed, then the server only fails
    with StubServer(StubSettings(answers=answers, script=["ok", "ok"], faults={"500": 1.0})) as server:
        cfg = config(server.url, out, n_mode="seeds", concurrency=1, max_retries=2)
        with pytest.raises(GenerationError, match=r"failed 3 times|failed attempts in a row"):
            run_traces(cfg, problems=problems)
        failed = len(server.seen) - 2
    stats = json.loads((out / "stats.json").read_text())
    assert not stats["complete"] and stats["samples"] == 2
    assert stats["error"] and stats["requests"]["failures"]["http_5xx"] == failed > 0
    with StubServer(StubSettings(answers=answers)) as server:
        stats = run_traces(config(server.url, out, n_mode="seeds"), problems=problems)
        assert len(server.seen) == len(problems) * K - 2
    assert stats["complete"] and stats["requests"]["failures"]["http_5xx"] == failed  # counted across runs
    assert_consistent(out, {p.id for p in problems})


def test_reselection_needs_no_requests_and_other_settings_are_refused(tmp_path):
    problems = make_problems(5)
    out = tmp_path / "run"
    with StubServer(
        StubSettings(answers={p.problem: p.answer for p in problems}, correct_rate=0.7)
    ) as server:
        full = run_traces(config(server.url, out), problems=problems)
        served = len(server.seen)
        first = run_traces(config(server.url, out, keep="first"), problems=problems)
        assert len(server.seen) == served
        with pytest.raises(MathsftError, match=r"generated differently .*sampling"):
            run_traces(config(server.url, out, temperature=1.0), problems=problems)
    assert first["acceptance"]["accepted"] == full["acceptance"]["problems_with_accepted"]
    sft = [json.loads(line) for line in (out / "sft.jsonl").read_text().splitlines()]
    assert len({e["meta"]["problem_id"] for e in sft}) == len(sft)
    assert (out / "sft.parquet").is_file() and (out / "config.yaml").is_file()


def test_the_problems_the_pass_rate_filter_keeps_read_back_as_an_rl_problem_set(tmp_path):
    problems = make_problems(12)
    out = tmp_path / "run"
    with StubServer(StubSettings(answers={p.problem: p.answer for p in problems})) as server:
        stats = run_traces(config(server.url, out, min_pass_rate=0.25, max_pass_rate=0.75), problems=problems)
    correct = Counter(r["problem_id"] for r in read_rows(out) if r["correct"])
    expected = {pid: n / K for pid, n in correct.items() if 1 <= n <= 3}
    assert 0 < len(expected) < len(problems)  # the filter dropped some problems and kept some
    kept = load_problems("problems", out / "problems.jsonl")
    assert {p.id: p.meta["pass_rate"] for p in kept} == expected
    originals = {p.id: p for p in problems}
    assert all((p.problem, p.answer) == (originals[p.id].problem, originals[p.id].answer) for p in kept)
    assert stats["acceptance"]["problems_kept"] == len(kept)


def test_reasoning_channel_is_kept_as_think_block(tmp_path):
    problems = make_problems(2)
    settings = StubSettings(answers={p.problem: p.answer for p in problems}, reasoning=True, correct_rate=1.0)
    with StubServer(settings) as server:
        run_traces(config(server.url, tmp_path / "keep", samples=1), problems=problems)
        run_traces(config(server.url, tmp_path / "strip", samples=1, think="strip"), problems=problems)
    kept = json.loads((tmp_path / "keep" / "sft.jsonl").read_text().splitlines()[0])["response"]
    stripped = json.loads((tmp_path / "strip" / "sft.jsonl").read_text().splitlines()[0])["response"]
    assert kept.startswith("<think>\nWe read the problem") and "</think>" in kept
    assert "<think>" not in stripped and stripped.endswith("$\\boxed{4}$.")
    assert "I will put the final answer" not in kept + stripped
    row = read_rows(tmp_path / "keep")[0]
    assert row["reasoning"].startswith("We read the problem") and row["correct"]


def test_samples_graded_by_another_grader_are_regraded_without_requests(tmp_path):
    problems = make_problems(3)
    out = tmp_path / "run"
    with StubServer(StubSettings(answers={p.problem: p.answer for p in problems})) as server:
        run_traces(config(server.url, out), problems=problems)
        original = read_rows(out)
        stale = [r | {"correct": not r["correct"]} for r in original]
        for r in stale:
            r["provenance"] = r["provenance"] | {"grader": {"profile": "lenient", "version": "0.0-old"}}
        (out / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stale))
        served = len(server.seen)
        stats = run_traces(config(server.url, out), problems=problems)
        assert len(server.seen) == served
    assert stats["this_run"]["regraded_samples"] == len(original)
    assert [r["correct"] for r in read_rows(out)] == [r["correct"] for r in original]
    assert_consistent(out, {p.id for p in problems})


def test_traces_shared_over_several_endpoints_survive_a_dead_one(tmp_path):
    problems = make_problems(6)
    data = write_gsm8k(tmp_path / "train.jsonl", problems)
    answers = {p.problem: p.answer for p in problems}
    out = tmp_path / "run"
    with StubServer() as gone:
        dead = gone.url
    with (
        StubServer(StubSettings(answers=answers, seed=1)) as a,
        StubServer(StubSettings(answers=answers, seed=1)) as b,
    ):
        cmd = [
            sys.executable, "-m", "mathsft", "traces", "--base-url", a.url, "--base-url", dead,
            "--base-url", b.url, "--model", "stub", "--dataset", "gsm8k", "--data-path", str(data),
            "--samples", str(K), "--out", str(out), "--concurrency", "4", "--n-mode", "seeds", "contamination=[]",
        ]  # fmt: skip
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_consistent(out, {f"gsm8k/train/{i}" for i in range(len(problems))})
    endpoints = json.loads((out / "stats.json").read_text())["requests"]["endpoints"]
    assert endpoints[dead]["requests"] == 0 and endpoints[dead]["taken_out"] == 1
    assert endpoints[a.url]["succeeded"] > 0 and endpoints[b.url]["succeeded"] > 0
    assert endpoints[a.url]["succeeded"] + endpoints[b.url]["succeeded"] == len(problems) * K
    assert f"endpoint {dead} taken out" in done.stderr
