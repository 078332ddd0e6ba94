"""Rate limits, injected faults and live stats, through the real SDK over real HTTP, sync and async.

Also pins what google-genai 3.6.1 does with them: ``HttpRetryOptions`` retries injected 503s (client-level and
per-request, sync and ``aio``, streams included: python-genai issue 2044 is fixed since 3.4.0), ignores ``RetryInfo``
(issue 1875), and retries nothing once a stream has started.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import httpx2
import pytest
from google import genai
from google.genai import errors, types

from helpers import control, workbook
from helpers.models import FLASH, FLASH_LITE
from helpers.replay.cassettes.cassette import Exchange

from .conftest import Server, generate_exchange, start_server, stream_exchange, write_cassette

LIMITS_SPEED = 30
"""The limits server replays 30x faster, so its rate-limit window lasts 60 / 30 = 2 s."""
WINDOW_S = 60 / LIMITS_SPEED
SLOW_S = 0.5
"""The recorded answer time of the prompt "slow" (at speed 1), long enough for calls to overlap."""
HELD_S = 3.0
"""Latency that holds calls in the server while a test reads the live stats: far longer than sending them takes."""
LONG_S = 60.0
"""A latency no call could outlast unnoticed: one answered sooner was not delayed by it."""


def count_tokens_exchange(prompt: str) -> Exchange:
    body = {"contents": [{"parts": [{"text": prompt}], "role": "user"}]}
    return Exchange(
        {"method": "POST", "path": f"models/{FLASH}:countTokens", "query": {}, "body": body},
        {"status": 200, "offset_s": 0.0, "body": {"totalTokens": 6}},
        {"source": "synthetic", "date": "2026-11-22", "latency_model": "none, for tests", "based_on": "tests"},
    )


def with_config(exchange: Exchange) -> Exchange:
    """The exchange as a call with per-request ``http_options`` sends it: the SDK adds ``"generationConfig": {}``."""
    return Exchange(
        {**exchange.request, "body": {**exchange.request["body"], "generationConfig": {}}}, exchange.response
    )


STREAM = stream_exchange("s", [(0.05, "one "), (0.10, "two "), (0.15, "three")])
EXCHANGES = [
    generate_exchange("hi", "hello", 0.05),  # 16 recorded tokens, as every generate answer here
    generate_exchange("hi", "hello from lite", 0.05, model=FLASH_LITE),
    generate_exchange("slow", "finally", SLOW_S),
    STREAM,
    with_config(STREAM),
    count_tokens_exchange("hi"),
    *(generate_exchange("take", f"take {i}", 0.0) for i in range(2)),  # replayed in turn
]
CASSETTES = ["burst_async", "burst_sync", "tpm", "retry", "turns", "stream", "stats", "other"]


def serve(folder: Path, *args: str) -> Iterator[Server]:
    srv = start_server("--port", "0", "--cassettes", str(folder), *args)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder of identical cassettes: each test takes its own, so faults and limit windows never mix."""
    path = tmp_path_factory.mktemp("cassettes")
    for name in CASSETTES:
        write_cassette(path, name, EXCHANGES)
    return path


@pytest.fixture(scope="module")
def limited(folder: Path) -> Iterator[Server]:
    """A server as ``--rpm 10`` starts it: 10 requests per 2-s window per cassette and model."""
    yield from serve(folder, "--rpm", "10", "--speed", str(LIMITS_SPEED))


@pytest.fixture(scope="module")
def plain(folder: Path) -> Iterator[Server]:
    """A server at recorded speed with no limits."""
    yield from serve(folder)


def client(srv: Server, cassette: str, retry: types.HttpRetryOptions | None = None) -> genai.Client:
    return genai.Client(
        api_key="test-key", http_options=types.HttpOptions(base_url=f"{srv.url}/{cassette}/", retry_options=retry)
    )


def fast_retry(attempts: int) -> types.HttpRetryOptions:
    """Retry quickly and without jitter (the SDK's default jitter adds up to 1 s a wait)."""
    return types.HttpRetryOptions(attempts=attempts, initial_delay=0.02, max_delay=0.05, jitter=0.0)


def retry_delay(error: errors.APIError) -> float:
    """The ``RetryInfo.retryDelay`` of a 429, in seconds."""
    (info,) = [d for d in error.details["error"]["details"] if d["@type"].endswith("google.rpc.RetryInfo")]
    assert info["retryDelay"].endswith("s")
    return float(info["retryDelay"][:-1])


def outcome(call) -> int | errors.APIError:
    try:
        call()
    except errors.APIError as e:
        return e
    return 200


def check_burst(outcomes: list, srv: Server, cassette: str, burst_s: float) -> list[float]:
    """Exactly 10 answers and 20 429s in the API's shape; returns the 429s' retry delays."""
    refused = [o for o in outcomes if o != 200]
    assert outcomes.count(200) == 10 and len(refused) == 20, outcomes
    for error in refused:
        assert isinstance(error, errors.ClientError) and error.code == 429 and error.status == "RESOURCE_EXHAUSTED"
    delays = [retry_delay(e) for e in refused]
    # A slot frees one window after the first admitted call, which arrived during the burst.
    assert all(WINDOW_S - burst_s - 0.05 <= d <= WINDOW_S for d in delays), (delays, burst_s)
    s = control.stats(cassette=cassette, server_url=srv.url)
    assert (s.received, s.answered, s.rejected) == (30, 10, {429: 20})
    return delays


async def test_rpm_burst_async_gets_exactly_the_limit_and_retry_delay_is_when_a_slot_frees(limited: Server) -> None:
    c = client(limited, "burst_async")
    start = time.monotonic()
    outcomes = await asyncio.gather(
        *(c.aio.models.generate_content(model=FLASH, contents="hi") for _ in range(30)), return_exceptions=True
    )
    burst_s = time.monotonic() - start
    outcomes = [200 if isinstance(o, types.GenerateContentResponse) else o for o in outcomes]
    check_burst(outcomes, limited, "burst_async", burst_s)

    # Refused calls do not count: ten more, later, change nothing. The first slot frees one window after the first
    # admitted call, as every retry delay says; not before, and not a window after the refused calls. Judged by the
    # server's record of each call, so it holds however late a busy machine sends them.
    await asyncio.sleep(0.5)
    later = []
    for _ in range(10):  # one at a time, so the server's record of each is in the order of the answers
        try:
            later.append(await c.aio.models.generate_content(model=FLASH, contents="hi"))
        except errors.ClientError as e:
            later.append(e)
    seen = (await asyncio.to_thread(control.stats, cassette="burst_async", server_url=limited.url)).requests
    first = next(r for r in seen[:30] if r.status == 200)
    # The slot frees one window after the first admitted call was admitted: between its arrival and its answer.
    frees = (first.start_s + WINDOW_S, first.first_byte_s + WINDOW_S)
    for outcome, r in zip(later, seen[30:], strict=True):
        if isinstance(outcome, errors.ClientError):
            # Refused between its arrival and its answer, its delay (rounded up to 1 ms) says when the slot frees.
            assert outcome.code == 429 and r.start_s < frees[1], (r, frees)
            delay = retry_delay(outcome)
            assert r.start_s + delay <= frees[1] + 0.001 and r.first_byte_s + delay >= frees[0], (r, delay, frees)
        else:
            assert r.first_byte_s >= frees[0], "admitted before the slot freed"
    if all(isinstance(o, errors.ClientError) for o in later):
        # Once the slot has freed by the refusals' own word, a call is admitted.
        await asyncio.sleep(max(0.0, max(retry_delay(e) for e in later) + 0.05))
        assert (await c.aio.models.generate_content(model=FLASH, contents="hi")).text == "hello"
    await c.aio.aclose()


def test_rpm_burst_sync_threads_gets_exactly_the_limit(limited: Server) -> None:
    c = client(limited, "burst_sync")
    start = time.monotonic()
    with ThreadPoolExecutor(30) as pool:
        outcomes = list(
            pool.map(lambda _: outcome(lambda: c.models.generate_content(model=FLASH, contents="hi")), range(30))
        )
    check_burst(outcomes, limited, "burst_sync", time.monotonic() - start)


def test_limits_set_at_runtime_count_recorded_tokens_per_model(limited: Server) -> None:
    kw = {"cassette": "tpm", "server_url": limited.url}
    c = client(limited, "tpm")
    control.set_limits(rpm=3, tpm=40, **kw)  # replaces the server's --rpm 10 for this cassette
    for _ in range(2):
        c.models.generate_content(model=FLASH, contents="hi")  # 16 tokens each: 32 of 40
    with pytest.raises(errors.ClientError) as refused:
        c.models.generate_content(model=FLASH, contents="hi")
    assert refused.value.code == 429 and "40 tokens per minute" in refused.value.message
    assert 0 < retry_delay(refused.value) <= WINDOW_S
    # Other models have their own window, and countTokens is not limited at all (two more calls would pass rpm=3).
    assert c.models.generate_content(model=FLASH_LITE, contents="hi").text == "hello from lite"
    for _ in range(2):
        assert c.models.count_tokens(model=FLASH, contents="hi").total_tokens == 6

    control.set_limits(tpm=10, **kw)
    with pytest.raises(errors.ClientError, match="waiting will not help") as too_big:
        c.models.generate_content(model=FLASH, contents="hi")
    assert "details" not in too_big.value.details["error"]  # no RetryInfo: no wait makes 16 tokens fit in 10

    control.set_limits(**kw)  # no limits, not even the server's --rpm 10
    for _ in range(12):
        c.models.generate_content(model=FLASH, contents="hi")
    assert control.stats(**kw).rejected == {429: 2}


def test_sdk_retries_ignore_retry_info_and_give_up_on_a_rate_limit(limited: Server) -> None:
    kw = {"cassette": "retry", "server_url": limited.url}
    control.set_limits(rpm=1, **kw)
    c = client(limited, "retry", fast_retry(3))
    c.models.generate_content(model=FLASH, contents="hi")
    with pytest.raises(errors.ClientError) as refused:
        c.models.generate_content(model=FLASH, contents="hi")
    # Three attempts within ~0.1 s although RetryInfo said to wait ~2 s (python-genai issue 1875).
    assert retry_delay(refused.value) > 1.5
    assert control.stats(**kw).rejected == {429: 3}


def test_a_refused_call_leaves_its_recording_for_the_next_call(limited: Server) -> None:
    kw = {"cassette": "turns", "server_url": limited.url}
    c = client(limited, "turns")
    control.set_limits(rpm=1, **kw)
    assert c.models.generate_content(model=FLASH, contents="take").text == "take 0"
    with pytest.raises(errors.ClientError, match="RESOURCE_EXHAUSTED"):
        c.models.generate_content(model=FLASH, contents="take")
    control.set_limits(**kw)
    assert c.models.generate_content(model=FLASH, contents="take").text == "take 1"


def test_sync_generate_retries_through_injected_503s(plain: Server) -> None:
    kw = {"cassette": "retry", "server_url": plain.url}
    control.reset_stats(**kw)
    control.fail_next(3, 503, **kw)
    retrying = client(plain, "retry", fast_retry(4))
    assert retrying.models.generate_content(model=FLASH, contents="hi").text == "hello"
    s = control.stats(**kw)
    assert (s.received, s.answered, s.rejected) == (4, 1, {503: 3})
    assert [r.status for r in s.requests] == [503, 503, 503, 200]

    control.fail_next(1, 500, **kw)
    plain_client = client(plain, "retry")
    with pytest.raises(errors.ServerError) as failed:  # no retry options: the SDK does not retry
        plain_client.models.generate_content(model=FLASH, contents="hi")
    assert failed.value.code == 500 and failed.value.status == "INTERNAL" and "fail_next" in failed.value.message


@pytest.mark.parametrize("per_request", [False, True], ids=["client-level", "per-request"])
async def test_async_stream_retries_through_injected_503s(plain: Server, per_request: bool) -> None:
    """python-genai issue 2044 (aio streams ignored retry options) is fixed since 3.4.0 (pinned: 3.6.1), both ways."""
    kw = {"cassette": "retry", "server_url": plain.url}
    control.reset_stats(**kw)
    control.fail_next(2, 503, **kw)
    retry = fast_retry(3)
    c = client(plain, "retry", None if per_request else retry)
    config = types.GenerateContentConfig(http_options=types.HttpOptions(retry_options=retry)) if per_request else None
    stream = await c.aio.models.generate_content_stream(model=FLASH, contents="s", config=config)
    assert [chunk.text async for chunk in stream] == ["one ", "two ", "three"]
    assert control.stats(**kw).rejected == {503: 2}
    await c.aio.aclose()


def test_sync_cut_stream_raises_after_the_chunks_sent_and_is_not_retried(plain: Server) -> None:
    kw = {"cassette": "stream", "server_url": plain.url}
    control.reset_stats(**kw)
    control.cut_stream(after_chunks=2, **kw)
    c = client(plain, "stream", fast_retry(3))
    received = []
    with pytest.raises(httpx2.RemoteProtocolError, match="incomplete chunked read"):
        for chunk in c.models.generate_content_stream(model=FLASH, contents="s"):
            received.append(chunk.text)
    assert received == ["one ", "two "]
    # Retry options do not restart a stream that has begun, and the fault hit one stream only.
    assert control.stats(**kw).received == 1
    assert [ch.text for ch in c.models.generate_content_stream(model=FLASH, contents="s")] == ["one ", "two ", "three"]


async def test_async_cut_stream_raises(plain: Server) -> None:
    control.cut_stream(after_chunks=1, cassette="stream", server_url=plain.url)
    c = client(plain, "stream")
    received = []
    with pytest.raises(aiohttp.ClientPayloadError):
        async for chunk in await c.aio.models.generate_content_stream(model=FLASH, contents="s"):
            received.append(chunk.text)
    assert received == ["one "]
    await c.aio.aclose()


def test_sync_error_event_mid_stream_raises_server_error(plain: Server) -> None:
    control.error_mid_stream(after_chunks=1, cassette="stream", server_url=plain.url)
    c = client(plain, "stream")
    received = []
    with pytest.raises(errors.ServerError) as failed:
        for chunk in c.models.generate_content_stream(model=FLASH, contents="s"):
            received.append(chunk.text)
    assert received == ["one "]
    assert failed.value.code == 503 and failed.value.status == "UNAVAILABLE"


async def test_async_error_event_mid_stream_raises(plain: Server) -> None:
    control.error_mid_stream(after_chunks=2, status=500, cassette="stream", server_url=plain.url)
    c = client(plain, "stream")
    received = []
    with pytest.raises(errors.ServerError, match="error_mid_stream") as failed:
        async for chunk in await c.aio.models.generate_content_stream(model=FLASH, contents="s"):
            received.append(chunk.text)
    assert received == ["one ", "two "] and failed.value.code == 500
    await c.aio.aclose()


async def test_stats_count_concurrency_and_time_each_request(plain: Server) -> None:
    kw = {"cassette": "stats", "server_url": plain.url}
    control.reset_stats(**kw)
    control.add_latency(HELD_S, **kw)  # holds every call in the server long enough to look at the live stats
    c = client(plain, "stats")
    calls = asyncio.gather(*(c.aio.models.generate_content(model=FLASH, contents="slow") for _ in range(8)))
    during = await eventually_all_received(kw, 8)
    control.add_latency(0, **kw)  # calls already waiting keep their latency
    assert (await calls)[0].text == "finally"
    after = control.stats(**kw)
    assert (during.received, during.in_flight, during.answered) == (8, 8, 0)
    assert (after.received, after.answered, after.rejected, after.in_flight, after.peak_in_flight) == (8, 8, {}, 0, 8)
    for r in after.requests:
        # Each waited the latency, then its recorded time, by the server's own clock; no upper bounds (load).
        assert r.path == f"v1/models/{FLASH}:generateContent" and r.status == 200 and r.chunks_s == ()
        assert r.start_s >= 0 and r.first_byte_s - r.start_s >= HELD_S + SLOW_S - 0.001
        assert r.first_byte_s <= r.end_s

    control.add_latency(0.3, **kw)
    control.reset_stats(**kw)
    await c.aio.models.generate_content(model=FLASH, contents="hi")
    (timed,) = control.stats(**kw).requests
    assert timed.first_byte_s - timed.start_s >= 0.3 + 0.05 - 0.001
    await c.aio.aclose()

    # Faults are per cassette, and clear_faults removes them all.
    control.fail_next(5, **kw)
    control.cut_stream(0, **kw)
    control.add_latency(LONG_S, **kw)
    other = client(plain, "other")
    assert other.models.generate_content(model=FLASH, contents="hi").text == "hello"
    control.clear_faults(**kw)
    sync = client(plain, "stats")
    assert [ch.text for ch in sync.models.generate_content_stream(model=FLASH, contents="s")] == [
        "one ",
        "two ",
        "three",
    ]
    s = control.stats(**kw)
    assert s.received == 2 and s.rejected == {} and len(s.requests[-1].chunks_s) == 3
    assert s.requests[-1].first_byte_s - s.requests[-1].start_s < LONG_S, "the latency is gone too"
    control.reset_stats(**kw)
    assert control.stats(**kw) == control.Stats(0, 0, {}, 0, 0, [])


async def eventually_all_received(kw: dict[str, str], n: int) -> control.Stats:
    """The cassette's stats once ``n`` requests have arrived (polled; at most :data:`HELD_S`)."""
    deadline = time.monotonic() + HELD_S
    while True:
        stats = await asyncio.to_thread(control.stats, **kw)
        if stats.received >= n or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.02)


def test_control_calls_default_to_the_session_and_refuse_bad_input(
    plain: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = workbook.Session("replay", "other", f"{plain.url}/other/", plain.url, 1.0, "synthetic")
    monkeypatch.setattr(workbook, "_current", session)
    control.reset_stats()
    c = client(plain, "other")
    c.models.generate_content(model=FLASH, contents="hi")
    assert control.stats().answered == 1

    with pytest.raises(workbook.WorkbookError, match=r"no cassette named 'nope'.*cassettes here: burst_async"):
        control.fail_next(1, cassette="nope")
    with pytest.raises(workbook.WorkbookError, match=r'"status" must be one of 400, 429, 500, 502, 503, 504, got 404'):
        control.fail_next(1, status=404)
    with pytest.raises(workbook.WorkbookError, match=r'"rpm" must be an integer of at least 1 or null'):
        control.set_limits(rpm=0)
    with pytest.raises(workbook.WorkbookError, match=r'"seconds" must be a number of seconds'):
        control.add_latency(-1)
    with pytest.raises(workbook.WorkbookError, match="could not reach the replay server"):
        control.stats(server_url="http://127.0.0.1:9")

    monkeypatch.setattr(workbook, "_current", workbook.Session("live", "other", None, None, 1.0, "live"))
    with pytest.raises(workbook.WorkbookError, match="this session is live"):
        control.stats()


def test_cli_refuses_a_limit_below_one(folder: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "helpers.replay", "serve", "--rpm", "0", "--cassettes", str(folder)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "--rpm: must be a whole number of at least 1, got 0" in result.stderr
