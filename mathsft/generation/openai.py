"""``openai`` backend: any OpenAI-compatible server (vLLM serve, SGLang, llama.cpp, DeepSeek's API).

Requests run concurrently on one asyncio loop (``concurrency`` at a time). Every HTTP attempt has a
hard ``timeout``; HTTP 429/5xx, timeouts, dropped connections and malformed bodies are retried with
exponential backoff and jitter, honouring ``Retry-After``, and counted by kind in ``stats``. A request
that fails ``max_retries + 1`` times, or ``max_consecutive_failures`` failed attempts in a row across
all requests, stops the run with a ``GenerationError`` instead of looping forever; requests already
finished have been handed to ``on_result`` by then, so a caller that persists them loses nothing.

Several endpoints (``base_url`` a list: replicas of one model behind separate servers) share the load:
each attempt goes to the healthy endpoint with the fewest requests in flight, round-robin among ties, and
a retry goes to another one. An endpoint that fails ``endpoint_max_failures`` attempts in a row (timeouts,
dropped connections, 5xx) is taken out for a cool-down that doubles while it stays down, and is probed with
``GET /models`` before it gets work again. With several endpoints, all are probed at the start (one that
answers is back, whatever an earlier run left). A request that finds every endpoint down waits at most
``max(timeout, endpoint_cooldown)`` for one to come back, then stops the run.

An HTTP 3xx/4xx (a prompt too long, a wrong model name) is not retried: it stops the run with an error
naming the request. A choice the server ended with ``finish_reason`` "abort" or "error" is no answer, so
its attempt is retried (counted as ``http_5xx``).

The API key is read from the environment variable named by ``api_key_env`` (surrounding whitespace
stripped) and sent only in the ``Authorization`` header: it is never stored on the object, and is cut out of
every failure message before that is logged or raised.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import hashlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from mathsft.errors import MathsftError
from mathsft.generation.base import Completion, Request, ResultCallback, SamplingParams, refuse_calculator

log = logging.getLogger("mathsft.generation.openai")

FAILURE_KINDS = ("http_429", "http_5xx", "timeout", "connection", "malformed")


class GenerationError(MathsftError):
    """The server kept failing (or refused the request outright); the message says how and how often."""


@dataclass
class _Failure(Exception):
    """One failed HTTP attempt: ``kind`` is one of ``FAILURE_KINDS`` (or ``fatal``)."""

    kind: str
    detail: str
    retry_after: float | None = None


@dataclass
class _Endpoint:
    """One server of the pool, its health and its share of the work."""

    url: str
    in_flight: int = 0
    failures_in_a_row: int = 0
    down_until: float = 0.0  # time.monotonic(); probed before it gets work again
    cooldown: float = 0.0
    counts: dict[str, int] = field(
        default_factory=lambda: {"requests": 0, "succeeded": 0, "failed": 0, "taken_out": 0}
    )

    @property
    def down(self) -> bool:
        return self.down_until > 0


ENDPOINT_FAILURES = (
    "timeout",
    "connection",
    "http_5xx",
    "malformed",
)  # the server's fault, not the request's


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC (RFC 5322), not the local time a naive datetime is read as
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - time.time())


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with "equal jitter": half the step fixed, half random (attempt counts from 0)."""
    step = min(cap, base * 2**attempt)
    return step / 2 + rng.uniform(0, step / 2)


class OpenAIBackend:
    """Completions from an OpenAI-compatible HTTP server.

    ``endpoint="chat"`` posts to ``/chat/completions`` (a raw string prompt becomes one user message);
    ``"completions"`` posts raw text to ``/completions`` (chat-message prompts are refused there, since
    the chat template lives on the server). ``n_mode="n"`` asks for ``n`` choices in one call and tops
    up with further calls when a server returns fewer (``stats["n_topped_up"]``); ``"seeds"`` makes ``n``
    calls with distinct seeds, for servers that ignore ``n``.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str | Sequence[str],
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 16,
        timeout: float = 120,
        max_retries: int = 5,
        endpoint: Literal["chat", "completions"] = "chat",
        n_mode: Literal["n", "seeds"] = "n",
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        max_retry_after: float = 120.0,
        max_consecutive_failures: int | None = None,
        extra_body: dict[str, Any] | None = None,
        endpoint_max_failures: int = 3,
        endpoint_cooldown: float = 10.0,
    ) -> None:
        if endpoint not in ("chat", "completions"):
            raise MathsftError(f"openai backend: endpoint must be 'chat' or 'completions', got {endpoint!r}")
        if n_mode not in ("n", "seeds"):
            raise MathsftError(f"openai backend: n_mode must be 'n' or 'seeds', got {n_mode!r}")
        if concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise MathsftError("openai backend: needs concurrency >= 1, max_retries >= 0 and timeout > 0")
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls or not all(isinstance(u, str) and u.strip() for u in urls):
            raise MathsftError(
                f"openai backend: base_url must be one URL or a list of URLs, got {base_url!r}"
            )
        self.base_urls = [u.strip().rstrip("/") for u in urls]
        for url in self.base_urls:
            try:
                parsed = httpx.URL(url)
            except httpx.InvalidURL:
                parsed = None
            if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
                raise MathsftError(
                    f"openai backend: base_url {url!r} is not an http(s) URL like http://HOST:PORT/v1"
                )
        self.base_url = ", ".join(self.base_urls)  # for messages
        self.endpoint_max_failures = endpoint_max_failures
        self.endpoint_cooldown = endpoint_cooldown
        self.model_name = model
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.endpoint = endpoint
        self.n_mode = n_mode
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        # enough for every in-flight request to exhaust its retries once, at least 10
        self.max_consecutive_failures = max_consecutive_failures or max(10, concurrency * (max_retries + 1))
        self.extra_body = dict(extra_body or {})
        self.stats: dict[str, Any] = self._fresh_stats()
        self._rng = random.Random(0)
        self._consecutive_failures = 0
        self._pool = [_Endpoint(u) for u in self.base_urls]
        self._turn = 0

    @staticmethod
    def _fresh_stats() -> dict[str, Any]:
        return {
            "http_requests": 0,
            "succeeded": 0,
            "retries": 0,
            "failures": dict.fromkeys(FAILURE_KINDS, 0),
            "gave_up": 0,
            "n_topped_up": 0,
            "content_filtered": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "endpoints": {},
        }

    def __repr__(self) -> str:
        return f"OpenAIBackend(base_url={self.base_url!r}, model={self.model_name!r}, endpoint={self.endpoint!r})"

    # -- public interface ---------------------------------------------------------------------------

    def generate(
        self,
        requests: Sequence[Request],
        params: SamplingParams,
        on_result: ResultCallback | None = None,
    ) -> list[list[Completion]]:
        """Complete every request concurrently; ``on_result`` fires (on this thread's loop) as each finishes."""
        refuse_calculator("openai", params)
        for request in requests:
            if self.endpoint == "completions" and not isinstance(request.prompt, str):
                raise MathsftError(
                    "openai backend: the completions endpoint takes raw text prompts; use endpoint='chat' "
                    "for chat messages (the server applies the chat template)"
                )
        coroutine = self._generate_all(list(requests), params, on_result)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coroutine)
        # called from inside a running loop (a notebook): run ours on a thread of its own
        box: dict[str, Any] = {}

        def runner() -> None:
            try:
                box["result"] = asyncio.run(coroutine)
            except BaseException as err:
                box["error"] = err

        thread = threading.Thread(target=runner)
        thread.start()
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["result"]

    def close(self) -> None:
        """Nothing to release: each ``generate`` call opens and closes its own connection pool."""

    # -- internals ----------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        # a key read from a file keeps its newline; h11 would refuse the header, quoting the key in its error
        key = os.environ.get(self.api_key_env, "").strip()
        if key:
            if not key.isascii() or not key.isprintable() or any(c.isspace() for c in key):
                raise GenerationError(
                    f"openai backend: the API key in ${self.api_key_env} has whitespace or non-printable "
                    "characters inside (its value is not shown); fix the variable"
                )
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _redact(self, text: str) -> str:
        """``text`` without the API key: a server or a library may quote the header back."""
        key = os.environ.get(self.api_key_env, "").strip()
        return text.replace(key, "<api key>") if key else text

    async def _generate_all(
        self, requests: list[Request], params: SamplingParams, on_result: ResultCallback | None
    ) -> list[list[Completion]]:
        self._consecutive_failures = 0
        results: list[list[Completion]] = [[] for _ in requests]
        semaphore = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(headers=self._headers(), timeout=self.timeout, limits=limits) as client:
            if len(self._pool) > 1:
                await self._probe_all(client)

            async def one(index: int, request: Request) -> None:
                results[index] = await self._complete_request(client, semaphore, index, request, params)
                if on_result is not None:
                    on_result(index, request, results[index])

            try:
                async with asyncio.TaskGroup() as group:
                    for index, request in enumerate(requests):
                        group.create_task(one(index, request))
            except BaseExceptionGroup as group_error:
                # the first real error (the others are usually its consequences); a bug stays a bug
                first = group_error.exceptions[0]
                for err in group_error.exceptions:
                    if isinstance(err, GenerationError):
                        first = err
                        break
                raise first from None
            finally:
                self.stats["endpoints"] = {e.url: dict(e.counts) for e in self._pool}
        return results

    # -- the endpoint pool --------------------------------------------------------------------------

    async def _probe(self, client: httpx.AsyncClient, endpoint: _Endpoint) -> bool:
        """A server that answers ``GET /models`` at all is up (``transformers serve`` answers it with a 500)."""
        try:
            async with asyncio.timeout(min(self.timeout, 10.0)):
                await client.get(f"{endpoint.url}/models")
        except (TimeoutError, httpx.HTTPError):
            return False
        return True

    async def _probe_all(self, client: httpx.AsyncClient) -> None:
        """Probe every endpoint: one that answers is up, whatever state an earlier run left it in."""
        alive = await asyncio.gather(*(self._probe(client, e) for e in self._pool))
        for endpoint, ok in zip(self._pool, alive, strict=True):
            if ok:
                endpoint.down_until = endpoint.cooldown = 0.0
                endpoint.failures_in_a_row = 0
            else:
                self._take_out(endpoint, "does not answer GET /models")
        if not any(alive):
            raise GenerationError(
                f"none of the {len(self._pool)} endpoints answers GET /models: {self.base_url}"
            )

    def _take_out(self, endpoint: _Endpoint, why: str) -> None:
        endpoint.cooldown = min(300.0, endpoint.cooldown * 2 or self.endpoint_cooldown)
        endpoint.down_until = time.monotonic() + endpoint.cooldown
        endpoint.counts["taken_out"] += 1
        log.warning("endpoint %s taken out for %.0fs: %s", endpoint.url, endpoint.cooldown, why)

    async def _acquire(self, client: httpx.AsyncClient, avoid: _Endpoint | None) -> _Endpoint:
        """The endpoint for the next attempt, waiting while every one is cooling down, but not for ever:
        failed probes double the cool-downs, so a pool that died would otherwise keep the run waiting."""
        wait = max(self.timeout, self.endpoint_cooldown)
        deadline = time.monotonic() + wait
        while True:
            now = time.monotonic()
            ready = [e for e in self._pool if e.down_until <= now]  # a lone endpoint is never taken out
            if len(ready) > 1 and avoid in ready:
                ready.remove(avoid)
            if ready:
                n = len(self._pool)
                endpoint = min(ready, key=lambda e: (e.in_flight, (self._pool.index(e) - self._turn) % n))
                self._turn = (self._pool.index(endpoint) + 1) % n
                if endpoint.down:
                    endpoint.down_until = now + 1e9  # nobody else picks it while it is probed
                    try:
                        alive = await self._probe(client, endpoint)
                    except BaseException:
                        endpoint.down_until = now  # cut off (the run is stopping): still down, due a probe
                        raise
                    if not alive:
                        self._take_out(endpoint, "still does not answer GET /models")
                        continue
                    log.warning("endpoint %s is back", endpoint.url)
                    endpoint.down_until = endpoint.cooldown = 0.0
                endpoint.in_flight += 1
                return endpoint
            if now >= deadline:
                self.stats["gave_up"] += 1
                raise GenerationError(
                    f"every endpoint is down and none came back within {wait:g}s: {self.base_url} "
                    f"(failures so far: {self._failure_summary()}). Finished requests were handed back; "
                    "rerun to resume once a server is healthy."
                )
            # at most a second: an endpoint being probed by another request may be back any moment
            due = min(min(e.down_until for e in self._pool), deadline, now + 1.0)
            await asyncio.sleep(max(0.01, due - now))

    def _release(self, endpoint: _Endpoint, failure: _Failure | None) -> None:
        endpoint.in_flight -= 1
        endpoint.counts["requests"] += 1
        if failure is None:
            endpoint.counts["succeeded"] += 1
            endpoint.failures_in_a_row = 0
            return
        endpoint.counts["failed"] += 1
        if failure.kind not in ENDPOINT_FAILURES:
            return
        endpoint.failures_in_a_row += 1
        if (
            len(self._pool) > 1
            and endpoint.failures_in_a_row >= self.endpoint_max_failures
            and not endpoint.down
        ):
            self._take_out(
                endpoint, f"{endpoint.failures_in_a_row} failed attempts in a row ({failure.kind})"
            )
            endpoint.failures_in_a_row = 0

    # -- requests -----------------------------------------------------------------------------------

    async def _complete_request(
        self,
        client: httpx.AsyncClient,
        semaphore: asyncio.Semaphore,
        index: int,
        request: Request,
        params: SamplingParams,
    ) -> list[Completion]:
        seed = request.seed if request.seed is not None else params.seed
        label = f"request {index}" + (
            "" if request.key is None else f" (key {_snippet(repr(request.key), 80)})"
        )
        if self.n_mode == "seeds" and request.n > 1:
            calls = [
                self._call(client, semaphore, request.prompt, params, 1, sample_seed(seed, i), label)
                for i in range(request.n)
            ]
            return [c for batch in await asyncio.gather(*calls) for c in batch]
        completions: list[Completion] = []
        while len(completions) < request.n:
            want = request.n - len(completions)
            batch = await self._call(
                client, semaphore, request.prompt, params, want, sample_seed(seed, len(completions)), label
            )
            if len(batch) < want:
                self.stats["n_topped_up"] += 1
                if self.stats["n_topped_up"] == 1:
                    log.warning(
                        "server returned %d of %d choices; topping up with more calls "
                        "(n_mode='seeds' avoids the wasted round trips)",
                        len(batch),
                        want,
                    )
            completions.extend(batch[:want])
        return completions

    def _payload(self, prompt: Any, params: SamplingParams, n: int, seed: int) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model_name,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "n": n,
            "seed": seed,
        }
        if params.top_k > 0:
            payload["top_k"] = params.top_k  # vLLM/SGLang extension; OpenAI itself rejects it
        if params.stop:
            payload["stop"] = list(params.stop)
        if self.endpoint == "chat":
            payload["messages"] = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        else:
            payload["prompt"] = prompt
        payload.update(self.extra_body)
        return payload

    async def _call(
        self,
        client: httpx.AsyncClient,
        semaphore: asyncio.Semaphore,
        prompt: Any,
        params: SamplingParams,
        n: int,
        seed: int,
        label: str,
    ) -> list[Completion]:
        """One logical call with its retries; returns the choices of the first successful attempt."""
        payload = self._payload(prompt, params, n, seed)
        path = "/chat/completions" if self.endpoint == "chat" else "/completions"
        last: _Endpoint | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.stats["retries"] += 1
            async with semaphore:
                started = time.perf_counter()
                last = await self._acquire(client, avoid=last)
                try:
                    completions = await self._attempt(client, last.url, path, payload)
                except _Failure as failure:
                    failure.detail = self._redact(failure.detail)
                    error = failure
                    self._release(last, failure)
                except BaseException:
                    last.in_flight -= 1  # cut off (the run is stopping): neither a success nor a failure
                    raise
                else:
                    self._release(last, None)
                    latency = time.perf_counter() - started
                    for completion in completions:
                        completion.latency_s = latency
                    self._consecutive_failures = 0
                    self.stats["succeeded"] += 1
                    return completions
            self._record_failure(error, attempt, label, last.url)
            if attempt < self.max_retries:
                await asyncio.sleep(self._delay(error, attempt))
        self.stats["gave_up"] += 1
        raise GenerationError(
            f"{last.url if last else self.base_url}{path}: {label} failed {self.max_retries + 1} times; "
            f"last error: {error.kind}: {error.detail} (failures so far: {self._failure_summary()})"
        )

    def _record_failure(self, error: _Failure, attempt: int, label: str, url: str) -> None:
        if error.kind == "fatal":
            self.stats["gave_up"] += 1
            raise GenerationError(f"{label}: {error.detail}")
        self.stats["failures"][error.kind] += 1
        self._consecutive_failures += 1
        log.info("%s: attempt %d at %s failed (%s): %s", label, attempt + 1, url, error.kind, error.detail)
        if self._consecutive_failures >= self.max_consecutive_failures:
            self.stats["gave_up"] += 1
            raise GenerationError(
                f"{self.base_url}: {self._consecutive_failures} failed attempts in a row, giving up "
                f"(failures so far: {self._failure_summary()}; last: {label} at {url}: {error.kind}: "
                f"{error.detail}). Finished requests were handed back; rerun to resume once the server is healthy."
            )

    def _failure_summary(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.stats["failures"].items() if v) or "none"

    def _delay(self, error: _Failure, attempt: int) -> float:
        if error.retry_after is not None:
            return min(error.retry_after, self.max_retry_after)
        return backoff_delay(attempt, self.backoff_base, self.backoff_max, self._rng)

    async def _attempt(
        self, client: httpx.AsyncClient, url: str, path: str, payload: dict[str, Any]
    ) -> list[Completion]:
        self.stats["http_requests"] += 1
        try:
            # a hard deadline on the whole attempt: httpx's timeouts are per read, so a server that
            # trickles bytes would otherwise never time out
            async with asyncio.timeout(self.timeout):
                response = await client.post(f"{url}{path}", json=payload)
        except (TimeoutError, httpx.TimeoutException):
            raise _Failure("timeout", f"no complete response within {self.timeout:g}s") from None
        except httpx.DecodingError as err:  # a body its Content-Encoding does not decode
            raise _Failure("malformed", f"{type(err).__name__}: {err}") from None
        except httpx.HTTPError as err:
            raise _Failure("connection", f"{type(err).__name__}: {err}") from None
        status = response.status_code
        if status in (408, 429) or status >= 500:
            kind = {408: "timeout", 429: "http_429"}.get(status, "http_5xx")
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise _Failure(kind, f"HTTP {status}: {_snippet(response.text)}", retry_after)
        if status >= 300:  # 3xx too: httpx follows no redirect, so retrying gets the same one
            where = response.headers.get("location")
            why = f"redirects to {where}" if status < 400 and where else _snippet(response.text)
            raise _Failure("fatal", f"{url}{path}: HTTP {status} (not retried): {why}")
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _Failure("malformed", f"body is not JSON: {_snippet(response.text)}") from None
        return self._parse(body)

    def _parse(self, body: Any) -> list[Completion]:
        choices = body.get("choices") if isinstance(body, dict) else None
        if not isinstance(choices, list) or not choices:
            raise _Failure("malformed", f"no 'choices' list in body: {_snippet(json.dumps(body))}")
        usage = body.get("usage")
        usage = usage if isinstance(usage, dict) else {}  # token counts are a courtesy, not the answer
        prompt_tokens = _int(usage.get("prompt_tokens"))
        total_completion = _int(usage.get("completion_tokens"))
        completions: list[Completion] = []
        for choice in sorted(choices, key=lambda c: _int(c.get("index")) if isinstance(c, dict) else 0):
            if not isinstance(choice, dict):
                raise _Failure("malformed", f"choice is not an object: {_snippet(json.dumps(choice))}")
            if self.endpoint == "chat":
                message = choice.get("message")
                if not isinstance(message, dict):
                    raise _Failure("malformed", f"choice has no 'message': {_snippet(json.dumps(choice))}")
                has_text, text = "content" in message, message.get("content")  # "content": null is ""
                # DeepSeek R1 (and vLLM's reasoning parsers) put the thinking in reasoning_content
                reasoning = message.get("reasoning_content") or message.get("reasoning")
            else:
                has_text, text = "text" in choice, choice.get("text")
                reasoning = None
            if not has_text and reasoning is None:
                raise _Failure("malformed", f"choice has no text: {_snippet(json.dumps(choice))}")
            if not isinstance(text, str | None) or not isinstance(reasoning, str | None):
                raise _Failure("malformed", f"choice text is not a string: {_snippet(json.dumps(choice))}")
            raw_finish = choice.get("finish_reason")
            # Completion has only stop/length, and an aborted generation must never score as a finished one
            if raw_finish in ("abort", "error"):
                raise _Failure("http_5xx", f"the server ended a choice with finish_reason {raw_finish!r}")
            completions.append(
                Completion(
                    text=text or "",
                    finish_reason="length" if raw_finish == "length" else "stop",
                    prompt_tokens=prompt_tokens,
                    reasoning=reasoning or None,
                    extra={"finish_reason_raw": raw_finish},
                )
            )
        filtered = sum(c.extra["finish_reason_raw"] == "content_filter" for c in completions)
        if filtered and not self.stats["content_filtered"]:
            log.warning(
                "the server cut answers off with finish_reason 'content_filter'; they count as 'stop'"
            )
        self.stats["content_filtered"] += filtered
        # usage is per call: exact for one choice, an even split when the server returned several
        for completion in completions:
            completion.completion_tokens = round(total_completion / len(completions))
            if len(completions) > 1:
                completion.extra["completion_tokens_estimated"] = True
        self.stats["prompt_tokens"] += prompt_tokens
        self.stats["completion_tokens"] += total_completion
        return completions


def sample_seed(seed: int, index: int) -> int:
    """The seed of a request's ``index``-th sample: its own seed first, then a hash of both, so requests with
    nearby seeds (10 and 11) share no sample; 31 bits, which every server takes."""
    if index == 0:
        return seed
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
