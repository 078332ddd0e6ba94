"""The replay server measured: how faithfully it replays recorded timing, what it adds to an async speed-up, and how
much load it holds. Each ``measure_*`` coroutine returns result rows for ``bench/run.py``.

Fidelity and capacity use a raw aiohttp client (the SDK's own per-request work, about 1 ms, would swamp the
server's); the speed-up uses the SDK's ``client.aio``, as the lessons do.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import aiohttp
from common import (
    JSON_HEADERS,
    MODEL,
    RAW,
    SDK,
    Row,
    generate_exchange,
    ms,
    payload,
    percentiles_ms,
    sdk_client,
    stream_exchange,
    write,
)
from google import genai

from helpers import control
from helpers.replay.cassettes.cassette import Cassette, Exchange

RECORDINGS = 500
"""Recordings of the fidelity prompt, each with its own timing; concurrent streams cycle through them."""
CHUNKS = 10
HOLD_OFFSETS_S = (0.5, 1.0, 1.5, 2.0, 2.5)
"""The capacity stream: five chunks over 2.5 s, longer than opening thousands of connections takes."""
ONE_SECOND, ZERO = "one second", "zero"


def fidelity_offsets(rng: random.Random) -> list[float]:
    """A stream's chunk offsets like a Flash answer's: TTFT 0.2-0.5 s, then gaps of 30-120 ms."""
    offsets = [rng.uniform(0.2, 0.5)]
    for _ in range(CHUNKS - 1):
        offsets.append(offsets[-1] + rng.uniform(0.03, 0.12))
    return [round(o, 4) for o in offsets]


def write_cassettes(folder: Path) -> dict[str, list[float]]:
    """The cassettes this module replays; returns the fidelity recordings' offsets by their response id."""
    rng = random.Random(6)
    recordings = {f"take-{i}": fidelity_offsets(rng) for i in range(RECORDINGS)}
    write(folder, "fidelity", [stream_exchange("fidelity", offsets, rid) for rid, offsets in recordings.items()])
    write(folder, "speed", [generate_exchange(ONE_SECOND, 1.0), generate_exchange(ZERO, 0.0)])
    write(folder, "hold", [stream_exchange("hold", HOLD_OFFSETS_S)])
    return recordings


async def _sent(session: aiohttp.ClientSession, context: SimpleNamespace, params: object) -> None:
    # aiohttp calls this once the request's bytes are in the socket's buffer: its body, when it has one (headers
    # alone are only queued; under a burst, the client's own queueing would count as the server's).
    context.trace_request_ctx["sent"] = time.perf_counter()


def raw_session(*, traced: bool = False) -> aiohttp.ClientSession:
    """A raw client with no connection limit and a generous timeout; ``traced``: with a hook that notes when each
    request went out, its body's last chunk or else its headers (in the ``trace_request_ctx`` dict every request must
    then pass)."""
    traces = []
    if traced:
        traces.append(aiohttp.TraceConfig())
        traces[0].on_request_headers_sent.append(_sent)
        traces[0].on_request_chunk_sent.append(_sent)
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=120), trace_configs=traces
    )


@dataclass(frozen=True)
class Arrivals:
    """One streamed answer as a raw client saw it.

    Attributes:
        response_id: which recording answered (the chunks carry it).
        sent: when the request went to the socket (its body, else its headers), ``time.perf_counter()`` seconds.
        chunks_s: each chunk's arrival, seconds after ``sent``.
    """

    response_id: str
    sent: float
    chunks_s: list[float]


async def stream_arrivals(
    session: aiohttp.ClientSession, url: str, data: bytes, headers: dict[str, str] | None = None
) -> Arrivals:
    """Stream one answer through a ``traced`` :func:`raw_session`, timing its chunks from when the request was sent
    (the client's own queueing before that is not the server's doing); ``headers`` are sent too (a seat's token).

    Raises:
        RuntimeError: a status other than 200.
    """
    sent: dict[str, float] = {}
    received: list[float] = []
    first = b""
    headers = {**JSON_HEADERS, **(headers or {})}
    request = session.post(url, params={"alt": "sse"}, data=data, headers=headers, trace_request_ctx=sent)
    async with request as reply:
        if reply.status != 200:
            raise RuntimeError(f"HTTP {reply.status}: {(await reply.text())[:200]}")
        async for line in reply.content:
            if line.startswith(b"data: "):
                received.append(time.perf_counter())
                first = first or line
    return Arrivals(json.loads(first[6:])["responseId"], sent["sent"], [t - sent["sent"] for t in received])


@dataclass
class Fidelity:
    """Absolute errors of replayed TTFTs and chunk gaps against the recorded ones (seconds), and over how long the
    client sent each round's requests and the server began handling them (the longest round, seconds)."""

    ttft: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    sent_over_s: float = 0.0
    handled_over_s: float = 0.0


async def fidelity(url: str, recordings: dict[str, list[float]], streams: int, rounds: int) -> Fidelity:
    """:class:`Fidelity` of ``rounds`` rounds of ``streams`` concurrent streams, after one unmeasured round that
    opens the connections."""
    endpoint = f"{url}/fidelity/v1/models/{MODEL}:streamGenerateContent"
    data = payload("fidelity")
    result = Fidelity()
    async with raw_session(traced=True) as session:
        for measured in [False] + [True] * rounds:
            await asyncio.to_thread(control.reset_stats, cassette="fidelity", server_url=url)
            streamed = await asyncio.gather(*(stream_arrivals(session, endpoint, data) for _ in range(streams)))
            if not measured:
                continue
            starts = [
                r.start_s
                for r in (await asyncio.to_thread(control.stats, cassette="fidelity", server_url=url)).requests
            ]
            result.handled_over_s = max(result.handled_over_s, max(starts) - min(starts))
            result.sent_over_s = max(result.sent_over_s, max(a.sent for a in streamed) - min(a.sent for a in streamed))
            for answer in streamed:
                recorded, got = recordings[answer.response_id], answer.chunks_s
                result.ttft.append(abs(got[0] - recorded[0]))
                result.gaps += [
                    abs((got[i] - got[i - 1]) - (recorded[i] - recorded[i - 1])) for i in range(1, len(got))
                ]
    return result


async def measure_fidelity(url: str, recordings: dict[str, list[float]], quick: bool) -> list[Row]:
    """Replay fidelity at 1, 100 and 500 concurrent streams (targets: p95 <= 5 ms for one, <= 20 ms at 500)."""
    rows = []
    for streams, rounds, target_ms in [(1, 3 if quick else 20, 5.0), (100, 1 if quick else 3, None), (500, 1, 20.0)]:
        found = await fidelity(url, recordings, streams, rounds)
        t50, t95, tmax = percentiles_ms(found.ttft)
        g50, g95, gmax = percentiles_ms(found.gaps)
        label = "1 stream" if streams == 1 else f"{streams} concurrent streams"
        runs = f", {rounds} rounds" if rounds > 1 else ""
        burst = ""
        if streams > 1:
            burst = (
                f"; the client sent them over {ms(found.sent_over_s)}, the server began handling them over "
                f"{ms(found.handled_over_s)}"
            )
        rows.append(
            Row(
                f"replay fidelity, {label}{runs} ({len(found.ttft)} TTFTs, {len(found.gaps)} gaps)",
                f"TTFT error p50/p95/max {t50:.1f}/{t95:.1f}/{tmax:.1f} ms; "
                f"gap error {g50:.1f}/{g95:.1f}/{gmax:.1f} ms{burst}",
                "-" if target_ms is None else f"p95 <= {target_ms:g} ms",
                None if target_ms is None else max(t95, g95) <= target_ms,
                RAW,
            )
        )
    return rows


async def recorded_exchanges(path: Path, n: int, timeout_s: float = 30.0) -> list[Exchange]:
    """The exchanges of the cassette at ``path`` once it holds ``n`` (the recorder saves a stream just after the
    client has it all), or what it holds after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    exchanges: list[Exchange] = []
    while time.monotonic() < deadline:
        if path.exists():
            exchanges = Cassette.load(path).exchanges
            if len(exchanges) >= n:
                break
        await asyncio.sleep(0.05)
    return exchanges


async def measure_record_fidelity(recorder: str, folder: Path, recordings: dict[str, list[float]], streams: int) -> Row:
    """How faithfully record mode times a stream: ``streams`` streams, one at a time, through the recorder at
    ``recorder`` (its cassettes in ``folder``), whose upstream is a replay server playing the fidelity recordings.

    A chunk's error is its recorded offset minus the upstream's (TTFT), or its recorded gap minus the upstream's.
    The recorder's clock starts before the upstream's (it forwards the request first), so TTFT errors are >= 0.
    """
    endpoint = f"{recorder}/recorded/v1/models/{MODEL}:streamGenerateContent"
    data = payload("fidelity")
    async with raw_session(traced=True) as session:
        for _ in range(streams):
            await stream_arrivals(session, endpoint, data)
    exchanges = await recorded_exchanges(folder / "recorded.json", streams)
    ttft, gaps = [], []
    for exchange in exchanges:
        chunks = exchange.response["chunks"]
        upstream_s, recorded_s = recordings[chunks[0]["data"]["responseId"]], [c["offset_s"] for c in chunks]
        ttft.append(recorded_s[0] - upstream_s[0])
        gaps += [
            abs((recorded_s[i] - recorded_s[i - 1]) - (upstream_s[i] - upstream_s[i - 1]))
            for i in range(1, len(chunks))
        ]
    t50, t95, tmax = percentiles_ms(ttft)
    g50, g95, gmax = percentiles_ms(gaps)
    return Row(
        f"record mode's timing, {len(ttft)} streams one at a time ({len(ttft)} TTFTs, {len(gaps)} gaps)",
        f"recorded minus upstream TTFT p50/p95/max {t50:.1f}/{t95:.1f}/{tmax:.1f} ms; "
        f"gap error {g50:.1f}/{g95:.1f}/{gmax:.1f} ms",
        client=RAW,
    )


async def wall(calls: Callable[[], Awaitable[object]]) -> float:
    """Seconds ``await calls()`` takes."""
    start = time.perf_counter()
    await calls()
    return time.perf_counter() - start


async def _one_by_one(aio: genai.models.AsyncModels, n: int) -> None:
    for _ in range(n):
        await aio.generate_content(model=MODEL, contents=ONE_SECOND)


async def measure_speedup(url: str, sequential_n: int, concurrent_n: int, rounds: int) -> list[Row]:
    """Sequential against concurrent requests recorded at 1.0 s, and what the server adds beyond the recorded
    latency and the client's own floor (the same requests at 0 s recorded latency), at ``concurrent_n``."""
    client: genai.Client = sdk_client(url, "speed")
    aio = client.aio.models

    async def gather(n: int, prompt: str) -> None:
        await asyncio.gather(*(aio.generate_content(model=MODEL, contents=prompt) for _ in range(n)))

    await gather(concurrent_n, ZERO)  # opens the connections
    sequential = await wall(lambda: _one_by_one(aio, sequential_n))
    concurrent = await wall(lambda: gather(sequential_n, ONE_SECOND))
    ones, zeros, server_added = [], [], []
    for _ in range(rounds):
        zeros.append(await wall(lambda: gather(concurrent_n, ZERO)))
        await asyncio.to_thread(control.reset_stats, cassette="speed", server_url=url)
        ones.append(await wall(lambda: gather(concurrent_n, ONE_SECOND)))
        stats = await asyncio.to_thread(control.stats, cassette="speed", server_url=url)
        server_added += [r.first_byte_s - r.start_s - 1.0 for r in stats.requests]
    await client.aio.aclose()
    one, zero = statistics.median(ones), statistics.median(zeros)
    added = one - 1.0 - zero
    _, server_p95, server_max = percentiles_ms(server_added)
    return [
        Row(
            f"async speed-up, {sequential_n} requests recorded at 1.0 s",
            f"sequential {sequential:.1f} s, concurrent {concurrent:.2f} s: {sequential / concurrent:.1f}x "
            f"(ideal {sequential_n}x)",
            client=SDK,
        ),
        Row(
            f"server's addition to {concurrent_n} concurrent 1.0-s requests (median of {rounds})",
            f"{ms(added)} (wall {one:.3f} s - 1.0 s recorded - {zero:.3f} s client floor at 0 s recorded); "
            f"server's own clock: +{server_p95:.1f} ms p95, +{server_max:.1f} ms max to first byte",
            "<= 10 ms",
            added <= 0.010,
            SDK,
        ),
    ]


async def hold(url: str, streams: int) -> tuple[list[str], int]:
    """Open ``streams`` concurrent capacity streams; returns what went wrong (one line each) and the server's peak
    of requests in flight."""
    endpoint = f"{url}/hold/v1/models/{MODEL}:streamGenerateContent"
    data = payload("hold")
    await asyncio.to_thread(control.reset_stats, cassette="hold", server_url=url)
    async with raw_session(traced=True) as session:
        results = await asyncio.gather(
            *(stream_arrivals(session, endpoint, data) for _ in range(streams)), return_exceptions=True
        )
    problems = [repr(r) for r in results if isinstance(r, BaseException)]
    problems += [
        f"{len(r.chunks_s)} chunks"
        for r in results
        if isinstance(r, Arrivals) and len(r.chunks_s) != len(HOLD_OFFSETS_S)
    ]
    stats = await asyncio.to_thread(control.stats, cassette="hold", server_url=url)
    if stats.rejected:
        problems.append(f"server rejected {stats.rejected}")
    return problems, stats.peak_in_flight


async def measure_capacity(url: str, steps: list[int]) -> Row:
    """The most concurrent streams held with zero errors, stepping up ``steps`` until one fails (target >= 1000)."""
    held, failure = 0, ""
    for streams in steps:
        problems, peak = await hold(url, streams)
        if problems or peak != streams:
            kinds = sorted({p.split("(")[0] for p in problems})
            failure = f"; at {streams}: {len(problems)} errors ({', '.join(kinds)}), peak in flight {peak}"
            break
        held = streams
    tried = f"stepped {', '.join(map(str, steps))}"
    largest = " (the largest step tried)" if held == steps[-1] else ""
    return Row(
        f"capacity: concurrent streams held with zero errors ({tried})",
        f"{held}{largest}{failure}; each stream 5 chunks over 2.5 s, all in flight at once (server's peak)",
        ">= 1000",
        held >= 1000,
        RAW,
    )


async def measure_requests_per_s(url: str, raw_n: int, sdk_n: int, concurrency: int) -> list[Row]:
    """Non-streaming requests per second at 0 s recorded latency, from ``concurrency`` workers sharing the work."""
    endpoint = f"{url}/speed/v1/models/{MODEL}:generateContent"
    data = payload(ZERO)

    async def raw_worker(session: aiohttp.ClientSession, jobs: Iterator[int]) -> None:
        for _ in jobs:  # the workers share one iterator: together they send each request once
            async with session.post(endpoint, data=data, headers=JSON_HEADERS) as reply:
                await reply.read()
                if reply.status != 200:
                    raise RuntimeError(f"HTTP {reply.status}")

    async def sdk_worker(client: genai.Client, jobs: Iterator[int]) -> None:
        for _ in jobs:
            await client.aio.models.generate_content(model=MODEL, contents=ZERO)

    async with raw_session() as session:
        warm = iter(range(concurrency))
        await asyncio.gather(*(raw_worker(session, warm) for _ in range(concurrency)))
        jobs = iter(range(raw_n))
        raw_s = await wall(lambda: asyncio.gather(*(raw_worker(session, jobs) for _ in range(concurrency))))
    client = sdk_client(url, "speed")
    jobs = iter(range(sdk_n))
    sdk_s = await wall(lambda: asyncio.gather(*(sdk_worker(client, jobs) for _ in range(concurrency))))
    await client.aio.aclose()
    return [
        Row(
            f"non-streaming requests at 0 s recorded latency ({n}, {concurrency} at a time)",
            f"{n / seconds:,.0f} requests/s (client and server share the 2 cores)",
            client=who,
        )
        for who, n, seconds in [(RAW, raw_n, raw_s), (SDK, sdk_n, sdk_s)]
    ]
