"""The openai backend against the fault-injecting stub server: retries, counting, giving up, secrets."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from email.utils import formatdate
from pathlib import Path

import pytest

from mathsft.errors import MathsftError
from mathsft.generation.base import Request, SamplingParams
from mathsft.generation.openai import GenerationError, OpenAIBackend, parse_retry_after

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "traces"))
from openai_stub import StubServer, StubSettings

PARAMS = SamplingParams(max_new_tokens=64, temperature=0.7, seed=3)
ANSWERS = {"What is 2+3?": "5", "What is 7*6?": "42"}


class Server(StubServer):
    """The stub with hooks: ``reply(payload, auth)`` answers each POST with ``(status, body[, headers])``
    instead of a canned solution, ``get_delay(n)`` stalls the n-th ``GET /models``, and ``dead`` drops
    every connection, probes included (a server that died)."""

    def __init__(self, reply=None, get_delay=None, settings: StubSettings | None = None) -> None:
        self.reply = reply
        self.get_delay = get_delay or (lambda n: 0.0)
        self.gets = 0
        self.dead = False
        super().__init__(settings or StubSettings(answers=ANSWERS, correct_rate=1.0))

    def ok(self, payload: dict) -> dict:
        """The stub's ordinary chat answer to ``payload``."""
        return self.body(payload, chat=True, truncate=False)

    def _handler_class(self):
        stub = self

        class Handler(super()._handler_class()):
            def do_GET(self) -> None:
                if stub.dead:
                    return self._drop()
                with stub._lock:
                    stub.gets += 1
                    n = stub.gets
                stub._stop.wait(stub.get_delay(n))
                super().do_GET()

            def do_POST(self) -> None:
                if stub.dead:
                    return self._drop()
                if stub.reply is None:
                    return super().do_POST()
                payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                auth = self.headers.get("Authorization")
                with stub._lock:
                    stub.seen.append((payload, auth))
                status, body, *headers = stub.reply(payload, auth)
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self._send(status, raw, *headers)

        return Handler


def chat_body(*choices: dict, usage: object = None) -> dict:
    return {"choices": list(choices), "usage": usage or {"prompt_tokens": 3, "completion_tokens": 4}}


def backend(url: str, **kw) -> OpenAIBackend:
    opts = {"timeout": 2.0, "max_retries": 3, "backoff_base": 0.01, "backoff_max": 0.05, "concurrency": 4}
    return OpenAIBackend(url, "stub-model", **(opts | kw))


def test_chat_returns_n_completions_in_request_order_with_usage():
    with StubServer(StubSettings(answers=ANSWERS, correct_rate=1.0)) as server:
        b = backend(server.url)
        done = []
        out = b.generate(
            [Request("What is 2+3?", n=3), Request([{"role": "user", "content": "What is 7*6?"}], n=1)],
            PARAMS,
            on_result=lambda i, req, comps: done.append((i, len(comps))),
        )
    assert [len(c) for c in out] == [3, 1]
    assert all("\\boxed{5}" in c.text for c in out[0]) and "\\boxed{42}" in out[1][0].text
    assert {c.finish_reason for cs in out for c in cs} == {"stop"}
    assert sorted(done) == [(0, 3), (1, 1)]
    assert out[1][0].prompt_tokens > 0 and out[1][0].completion_tokens > 0 and out[1][0].latency_s > 0
    payload, _ = server.seen[0]
    assert payload["messages"][0] == {"role": "user", "content": payload["messages"][0]["content"]}
    assert {p["max_tokens"] for p, _ in server.seen} == {64}
    assert b.stats["http_requests"] == 2 and b.stats["retries"] == 0


def test_completions_endpoint_sends_raw_text_and_refuses_chat_messages():
    with StubServer(StubSettings(answers=ANSWERS, correct_rate=1.0)) as server:
        b = backend(server.url, endpoint="completions")
        out = b.generate([Request("Q: What is 2+3?\nA:", n=2)], PARAMS)
        assert server.seen[0][0]["prompt"] == "Q: What is 2+3?\nA:"
        assert len(out[0]) == 2 and "\\boxed{5}" in out[0][0].text
        with pytest.raises(MathsftError, match="completions endpoint takes raw text"):
            b.generate([Request([{"role": "user", "content": "hi"}])], PARAMS)


def test_every_fault_kind_is_retried_and_counted():
    script = ["500", "429", "malformed", "drop", "hang", "ok"]
    settings = StubSettings(answers=ANSWERS, script=script, correct_rate=1.0, hang_s=3.0, retry_after="0")
    with StubServer(settings) as server:
        b = backend(server.url, timeout=0.5, max_retries=6, concurrency=1)
        out = b.generate([Request("What is 2+3?", n=2)], PARAMS)
    assert len(out[0]) == 2 and all("\\boxed{5}" in c.text for c in out[0])
    assert b.stats["failures"] == {
        "http_429": 1,
        "http_5xx": 1,
        "timeout": 1,
        "connection": 1,
        "malformed": 1,
    }
    assert b.stats["retries"] == 5 and b.stats["http_requests"] == 6 and b.stats["gave_up"] == 0


def test_retry_after_is_honoured():
    settings = StubSettings(answers=ANSWERS, script=["429"], retry_after="0.6")
    with StubServer(settings) as server:
        b = backend(server.url)
        start = time.perf_counter()
        b.generate([Request("What is 2+3?")], PARAMS)
        assert time.perf_counter() - start >= 0.6
    assert b.stats["failures"]["http_429"] == 1


def test_parse_retry_after_seconds_and_http_date():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert 8 <= parse_retry_after(formatdate(time.time() + 10, usegmt=True)) <= 10


def test_a_retry_after_date_with_minus_zero_zone_is_utc_not_local_time(monkeypatch):
    monkeypatch.setenv("TZ", "JST-9")  # 9 hours ahead of UTC
    time.tzset()
    try:
        assert 8 <= parse_retry_after(formatdate(time.time() + 10)) <= 10  # "... -0000"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_failing_server_stops_with_a_clear_error_not_a_loop():
    with StubServer(StubSettings(faults={"500": 1.0})) as server:
        b = backend(server.url, max_retries=2)
        with pytest.raises(GenerationError, match=r"failed 3 times; last error: http_5xx: HTTP 500"):
            b.generate([Request("What is 2+3?")], PARAMS)
    assert server.requests == 3 and b.stats["failures"]["http_5xx"] == 3


def test_consecutive_failures_across_requests_stop_the_whole_run():
    with StubServer(StubSettings(faults={"500": 1.0})) as server:
        b = backend(server.url, max_retries=100, max_consecutive_failures=8, concurrency=2)
        with pytest.raises(GenerationError, match="8 failed attempts in a row"):
            b.generate([Request(f"q{i}") for i in range(50)], PARAMS)
    assert server.requests < 12  # stopped after 8 (plus the ones already in flight)


def test_finished_requests_are_handed_back_before_giving_up():
    # the first request succeeds, everything after fails: on_result must have seen the first
    settings = StubSettings(answers=ANSWERS, script=["ok"], faults={"500": 1.0})
    with StubServer(settings) as server:
        b = backend(server.url, max_retries=1, concurrency=1)
        seen = []
        with pytest.raises(GenerationError):
            b.generate(
                [Request("What is 2+3?"), Request("What is 7*6?")],
                PARAMS,
                on_result=lambda i, r, c: seen.append(i),
            )
    assert seen == [0]


def test_client_errors_are_not_retried():
    with StubServer(StubSettings(models=["stub-model"])) as server:
        b = backend(server.url)
        b.model_name = "no-such-model"
        with pytest.raises(GenerationError, match=r"HTTP 404 \(not retried\): .*model does not exist"):
            b.generate([Request("hi")], PARAMS)
    assert len(server.seen) == 1


def test_unreachable_server_counts_connection_failures():
    with StubServer() as server:
        url = server.url
    b = backend(url, max_retries=2)
    with pytest.raises(GenerationError, match="connection"):
        b.generate([Request("hi")], PARAMS)
    assert b.stats["failures"]["connection"] == 3


def test_seeds_mode_makes_n_calls_with_distinct_seeds():
    with StubServer(StubSettings(answers=ANSWERS)) as server:
        b = backend(server.url, n_mode="seeds")
        out = b.generate([Request("What is 2+3?", n=4, seed=10)], PARAMS)
    assert len(out[0]) == 4
    seeds = [p["seed"] for p, _ in server.seen]
    assert 10 in seeds and len(set(seeds)) == 4
    assert {p["n"] for p, _ in server.seen} == {1}


def test_seeds_mode_requests_with_nearby_seeds_share_no_sample_and_repeat_exactly():
    def seeds() -> list[int]:
        with StubServer(StubSettings(answers=ANSWERS)) as server:
            b = backend(server.url, n_mode="seeds")
            b.generate([Request("What is 2+3?", n=4, seed=10), Request("What is 2+3?", n=4, seed=11)], PARAMS)
        return sorted(p["seed"] for p, _ in server.seen)

    first = seeds()
    assert len(set(first)) == 8 and first == seeds()


def test_n_mode_tops_up_when_the_server_ignores_n():
    with StubServer(StubSettings(answers=ANSWERS, ignore_n=True)) as server:
        b = backend(server.url)
        out = b.generate([Request("What is 2+3?", n=3, seed=0)], PARAMS)
    assert len(out[0]) == 3 and len(server.seen) == 3
    assert [p["n"] for p, _ in server.seen] == [3, 2, 1]
    assert b.stats["n_topped_up"] == 2


def test_reasoning_content_becomes_completion_reasoning():
    with StubServer(StubSettings(answers=ANSWERS, reasoning=True, correct_rate=1.0)) as server:
        out = backend(server.url).generate([Request("What is 2+3?")], PARAMS)
    assert out[0][0].reasoning.startswith("We read the problem")
    assert "We read" not in out[0][0].text and "\\boxed{5}" in out[0][0].text


def test_truncated_answers_report_length():
    with StubServer(StubSettings(answers=ANSWERS, faults={"truncate": 1.0})) as server:
        out = backend(server.url).generate([Request("What is 2+3?", n=2)], PARAMS)
    assert [c.finish_reason for c in out[0]] == ["length", "length"]


def test_api_key_is_sent_but_never_logged_or_shown(monkeypatch, caplog):
    secret = "sk-test-SECRET-123"
    monkeypatch.setenv("MATHSFT_TEST_KEY", secret)
    caplog.set_level(logging.DEBUG)
    with StubServer(StubSettings(answers=ANSWERS, script=["500"], faults={"500": 0.0})) as server:
        b = backend(server.url, api_key_env="MATHSFT_TEST_KEY")
        b.generate([Request("What is 2+3?")], PARAMS)
    assert {auth for _, auth in server.seen} == {f"Bearer {secret}"}
    assert secret not in caplog.text and secret not in repr(b) and secret not in str(b.stats)
    assert secret not in str(vars(b))


def test_an_api_key_with_a_trailing_newline_is_sent_stripped(monkeypatch):
    monkeypatch.setenv("MATHSFT_TEST_KEY", "sk-test-SECRET-123\n")
    with StubServer(StubSettings(answers=ANSWERS)) as server:
        backend(server.url, api_key_env="MATHSFT_TEST_KEY").generate([Request("What is 2+3?")], PARAMS)
    assert {auth for _, auth in server.seen} == {"Bearer sk-test-SECRET-123"}


def test_an_api_key_with_inner_whitespace_is_one_clear_error_without_the_key(monkeypatch, caplog):
    monkeypatch.setenv("MATHSFT_TEST_KEY", "sk-test-SECRET\n-123")
    caplog.set_level(logging.DEBUG)
    with StubServer(StubSettings(answers=ANSWERS)) as server:
        b = backend(server.url, api_key_env="MATHSFT_TEST_KEY")
        with pytest.raises(GenerationError, match=r"MATHSFT_TEST_KEY.*whitespace") as err:
            b.generate([Request("What is 2+3?")], PARAMS)
    assert server.seen == [] and "SECRET" not in str(err.value) and "SECRET" not in caplog.text


def test_a_server_that_echoes_the_key_never_gets_it_logged_or_raised(monkeypatch, caplog):
    secret = "sk-test-SECRET-123"
    monkeypatch.setenv("MATHSFT_TEST_KEY", secret)
    caplog.set_level(logging.DEBUG)
    with Server(reply=lambda payload, auth: (500, {"error": f"bad credentials: {auth}"})) as server:
        b = backend(server.url, api_key_env="MATHSFT_TEST_KEY", max_retries=2)
        with pytest.raises(GenerationError, match="bad credentials") as err:
            b.generate([Request("What is 2+3?")], PARAMS)
    assert len(server.seen) == 3 and server.seen[0][1] == f"Bearer {secret}"
    assert secret not in str(err.value) and secret not in caplog.text


def test_a_rejected_request_is_named_in_the_error():
    def reply(payload, auth):
        if "too long" in payload["messages"][0]["content"]:
            return 400, {"error": "prompt is too long"}
        return 200, server.ok(payload)

    with Server(reply) as server:
        b = backend(server.url, concurrency=1)
        reqs = [Request("What is 2+3?", key="p-0"), Request("too long", key="p-1")]
        with pytest.raises(GenerationError, match=r"request 1 \(key 'p-1'\).*HTTP 400") as err:
            b.generate(reqs, PARAMS)
    assert server.url in str(err.value) and len(server.seen) == 2


def test_a_run_cut_short_leaves_no_attempt_counted_in_flight():
    def reply(payload, auth):
        if "too long" in payload["messages"][0]["content"]:
            return 400, {"error": "prompt is too long"}
        server._stop.wait(1.0)  # still running when the other request is refused
        return 200, server.ok(payload)

    with Server(reply) as server:
        b = backend(server.url, concurrency=2)
        with pytest.raises(GenerationError, match="HTTP 400"):
            b.generate([Request("What is 2+3?"), Request("too long")], PARAMS)
    assert [e.in_flight for e in b._pool] == [0]


def test_an_endpoint_probed_when_a_run_stops_gets_work_in_the_next_run():
    broken = {"on": True}

    def flaky(payload, auth):  # fails the first run; its second GET /models (the re-probe) stalls
        return (500, {"error": "down"}) if broken["on"] else (200, a.ok(payload))

    def reject_slowly(payload, auth):
        if "too long" in payload["messages"][0]["content"]:
            b._stop.wait(0.3)
            return 400, {"error": "prompt is too long"}
        b._stop.wait(0.05)
        return 200, b.ok(payload)

    with (
        Server(flaky, get_delay=lambda n: 1.0 if n == 2 and broken["on"] else 0.0) as a,
        Server(reject_slowly) as b,
    ):
        client = backend([a.url, b.url], concurrency=2, endpoint_max_failures=1, endpoint_cooldown=0.001)
        with pytest.raises(GenerationError, match="HTTP 400"):
            client.generate([Request("too long"), *many(6)], PARAMS)
        assert a.gets == 2  # it was being probed when the run stopped
        broken["on"] = False
        a.seen.clear()
        out = client.generate(many(10), PARAMS)
    assert all(len(cs) == 1 for cs in out) and len(a.seen) > 0


def test_null_content_is_an_empty_answer_with_the_servers_finish_reason():
    message = {"role": "assistant", "content": None}
    with Server(
        lambda p, a: (200, chat_body({"index": 0, "message": message, "finish_reason": "length"}))
    ) as s:
        out = backend(s.url).generate([Request("What is 2+3?")], PARAMS)
    assert (out[0][0].text, out[0][0].finish_reason) == ("", "length") and len(s.seen) == 1


def test_odd_usage_and_mixed_choice_indexes_do_not_crash():
    choices = [
        {"index": 1, "message": {"content": "second"}, "finish_reason": "stop"},
        {"index": None, "message": {"content": "first"}, "finish_reason": "stop"},
    ]
    with Server(lambda p, a: (200, chat_body(*choices, usage=["not", "a", "dict"]))) as s:
        out = backend(s.url).generate([Request("What is 2+3?", n=2)], PARAMS)
    assert [c.text for c in out[0]] == ["first", "second"] and out[0][0].completion_tokens == 0


def test_an_undecodable_body_is_a_retried_malformed_failure_naming_the_server():
    with Server(lambda p, a: (200, b"not gzip at all", {"Content-Encoding": "gzip"})) as s:
        b = backend(s.url, max_retries=1)
        with pytest.raises(GenerationError, match=r"failed 2 times; last error: malformed") as err:
            b.generate([Request("What is 2+3?")], PARAMS)
    assert s.url in str(err.value) and b.stats["failures"]["malformed"] == 2


def test_a_redirect_is_not_retried_and_says_where_to():
    redirect = {"Location": "https://elsewhere/v1/chat/completions"}
    with (
        Server(lambda p, a: (307, b"", redirect)) as s,
        pytest.raises(GenerationError, match=r"HTTP 307 \(not retried\).*https://elsewhere"),
    ):
        backend(s.url).generate([Request("What is 2+3?")], PARAMS)
    assert len(s.seen) == 1


@pytest.mark.parametrize("url", ["localhost:8000/v1", "http://[::1", "ftp://host/v1"])
def test_a_base_url_that_is_not_http_is_refused_up_front(url):
    with pytest.raises(MathsftError, match="not an http"):
        backend(url)


def test_aborted_choices_are_retried_not_scored_as_finished():
    replies = iter(["abort", "stop"])

    def reply(payload, auth):
        finish = next(replies)
        return 200, chat_body({"index": 0, "message": {"content": finish}, "finish_reason": finish})

    with Server(reply) as s:
        b = backend(s.url)
        out = b.generate([Request("What is 2+3?")], PARAMS)
    assert (out[0][0].text, out[0][0].finish_reason) == ("stop", "stop") and len(s.seen) == 2
    assert b.stats["failures"]["http_5xx"] == 1 and b.stats["retries"] == 1


def test_content_filter_counts_as_stop_with_one_warning(caplog):
    choice = {"index": 0, "message": {"content": "[filtered]"}, "finish_reason": "content_filter"}
    with Server(lambda p, a: (200, chat_body(choice))) as s:
        b = backend(s.url)
        out = b.generate([Request("What is 2+3?"), Request("What is 7*6?")], PARAMS)
    assert [cs[0].finish_reason for cs in out] == ["stop", "stop"]
    assert out[0][0].extra["finish_reason_raw"] == "content_filter" and b.stats["content_filtered"] == 2
    assert (
        sum("content_filter" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING) == 1
    )


def test_generate_works_inside_a_running_event_loop():
    with StubServer(StubSettings(answers=ANSWERS, correct_rate=1.0)) as server:
        b = backend(server.url)

        async def caller():
            return b.generate([Request("What is 7*6?")], PARAMS)

        out = asyncio.run(caller())
    assert "\\boxed{42}" in out[0][0].text


# -- several endpoints ---------------------------------------------------------------------------------


def many(n: int) -> list[Request]:
    return [Request("What is 2+3?" if i % 2 else "What is 7*6?", seed=i) for i in range(n)]


def test_several_endpoints_share_the_work():
    settings = StubSettings(answers=ANSWERS, correct_rate=1.0, latency_s=0.02)
    with StubServer(settings) as a, StubServer(settings) as b, StubServer(settings) as c:
        client = backend([a.url, b.url, c.url], concurrency=6)
        out = client.generate(many(30), PARAMS)
    assert all(len(cs) == 1 and "\\boxed{" in cs[0].text for cs in out)
    served = [len(s.seen) for s in (a, b, c)]
    assert sum(served) == 30 and min(served) >= 6, served
    assert [client.stats["endpoints"][s.url]["succeeded"] for s in (a, b, c)] == served


def test_a_dead_endpoint_is_found_at_the_start_and_skipped():
    with StubServer() as gone:
        dead = gone.url
    with StubServer(StubSettings(answers=ANSWERS, correct_rate=1.0)) as live:
        client = backend([dead, live.url])
        out = client.generate(many(8), PARAMS)
    assert all(len(cs) == 1 for cs in out) and len(live.seen) == 8
    assert client.stats["endpoints"][dead] == {"requests": 0, "succeeded": 0, "failed": 0, "taken_out": 1}
    assert client.stats["failures"]["connection"] == 0


def test_an_endpoint_failing_mid_run_is_taken_out_and_its_requests_retried_elsewhere():
    settings = StubSettings(answers=ANSWERS, correct_rate=1.0, latency_s=0.01)
    with StubServer(StubSettings(faults={"500": 1.0})) as bad, StubServer(settings) as good:
        client = backend([bad.url, good.url], concurrency=2, endpoint_cooldown=60)
        out = client.generate(many(20), PARAMS)
    assert all(len(cs) == 1 for cs in out)
    stats = client.stats["endpoints"]
    assert stats[bad.url]["taken_out"] == 1 and stats[bad.url]["failed"] == 3
    assert stats[good.url]["succeeded"] == 20
    assert client.stats["failures"]["http_5xx"] == 3 and client.stats["retries"] == 3


def test_an_endpoint_that_recovers_gets_work_again():
    settings = StubSettings(answers=ANSWERS, correct_rate=1.0, latency_s=0.05)
    flaky = StubSettings(answers=ANSWERS, correct_rate=1.0, latency_s=0.05, script=["500", "500", "500"])
    with StubServer(flaky) as a, StubServer(settings) as b:
        client = backend([a.url, b.url], concurrency=2, endpoint_cooldown=0.2)
        out = client.generate(many(30), PARAMS)
    assert all(len(cs) == 1 for cs in out)
    stats = client.stats["endpoints"][a.url]
    assert stats["taken_out"] == 1 and stats["failed"] == 3 and stats["succeeded"] > 0


@pytest.mark.timeout(30)
def test_every_endpoint_dying_mid_run_ends_it_with_a_clear_error():
    with Server() as a, Server() as b:

        def kill(index, request, completions):
            if index == 2:
                a.dead = b.dead = True

        client = backend(
            [a.url, b.url],
            timeout=0.5,
            max_retries=100,
            max_consecutive_failures=1000,
            endpoint_cooldown=0.1,
            concurrency=2,
        )
        start = time.perf_counter()
        with pytest.raises(GenerationError, match="every endpoint is down") as err:
            client.generate(many(40), PARAMS, on_result=kill)
    assert time.perf_counter() - start < 5
    assert a.url in str(err.value) and b.url in str(err.value)


def test_no_live_endpoint_is_one_clear_error():
    with StubServer() as one, StubServer() as two:
        urls = [one.url, two.url]
    client = backend(urls)
    with pytest.raises(GenerationError, match="none of the 2 endpoints answers GET /models"):
        client.generate(many(2), PARAMS)


def test_base_url_must_name_a_server():
    with pytest.raises(MathsftError, match="base_url must be one URL or a list"):
        backend([])
