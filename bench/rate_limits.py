"""Throughput under a rate limit: the patterns lesson 02 (``02_async``) teaches, against a replay server started with
``--rpm R --speed S`` (so its minute lasts ``60 / S`` s), written here in their plain form rather than imported.

1. A semaphore only: caps how many requests are in flight, not how many a minute; nothing retries a 429.
2. The SDK's retries: pattern 1 with ``HttpRetryOptions`` at its defaults (5 attempts, 1 s doubling up to 60 s,
   1 s jitter), every delay divided by ``S``. It retries 429s but ignores ``RetryInfo`` (python-genai issue 1875).
3. ``aiolimiter.AsyncLimiter(R, 60 / S)``, as it is usually written, with retries that wait the ``retryDelay`` of
   the 429 body's ``google.rpc.RetryInfo``. A leaky bucket allows a burst of ``R`` and then ``R`` a minute, so up
   to ``2R`` in the first minute: the excess is refused and retried.
4. What lesson 02 recommends: pace evenly with ``AsyncLimiter(1, 1.1 * 60 / S / R)`` (one request every
   ``60 / R`` s of replay time, with 10 % headroom for the two clocks), and the same ``RetryInfo`` retries.

The achieved rate is the steady one: successes after the ``R``-th, divided by the time from the ``R``-th success to
the last, per minute of replay time, as a fraction of ``R``. An empty window admits ``R`` requests at once, a burst
no long job can repeat, so the first ``R`` are left out; a pattern with ``R`` successes or fewer scores 0.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiolimiter import AsyncLimiter
from common import SDK, Row, generate_exchange, sdk_client, write
from google import genai
from google.genai import errors, types

from helpers.models import FLASH

PROMPT = "rate limited"
RECORDED_S = 0.5
"""The recorded answer time of each request (divided by the server's speed)."""
CONCURRENCY = 10
"""The semaphore of patterns 1 and 2."""
ATTEMPTS = 5
"""Attempts per request in patterns 2 to 4 (the SDK's default)."""
HEADROOM = 1.1
"""Pattern 4 paces at one request every ``HEADROOM * minute / R``, as lesson 02 does."""
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


@dataclass(frozen=True)
class Pattern:
    """One way to send requests under a rate limit; ``recommended`` marks the one lesson 02 recommends."""

    name: str
    cassette: str
    recommended: bool = False


SEMAPHORE = Pattern("semaphore only", "rl-semaphore")
SDK_RETRIES = Pattern("SDK HttpRetryOptions (defaults / speed)", "rl-sdk")
BURSTING = Pattern("AsyncLimiter(R, minute) + RetryInfo", "rl-bursting")
PACED = Pattern("AsyncLimiter(1, 1.1 minute / R) + RetryInfo", "rl-paced", recommended=True)
PATTERNS = (SEMAPHORE, SDK_RETRIES, BURSTING, PACED)


def write_cassettes(folder: Path) -> None:
    """One cassette per pattern, each one recorded answer of :data:`RECORDED_S`: every pattern starts with an empty
    rate-limit window of its own."""
    for pattern in PATTERNS:
        write(folder, pattern.cassette, [generate_exchange(PROMPT, RECORDED_S)])


def retry_delay_s(error: errors.APIError) -> float | None:
    """The ``retryDelay`` of a 429's ``RetryInfo`` detail, in seconds (``"1.234s"`` -> 1.234), if it has one."""
    for detail in (error.details or {}).get("error", {}).get("details", []):
        if detail.get("@type") == RETRY_INFO and str(detail.get("retryDelay", "")).endswith("s"):
            return float(detail["retryDelay"][:-1])
    return None


@dataclass(frozen=True)
class Outcome:
    """How one pattern did: when each success completed (seconds from the start, sorted), how many requests failed,
    and when the last request succeeded or gave up."""

    successes_s: list[float]
    failed: int
    elapsed_s: float

    def steady_fraction(self, rpm: int, window_s: float) -> tuple[float, float]:
        """``(fraction of rpm, requests per window)``: the rate of the successes after the ``rpm``-th."""
        later = self.successes_s[rpm - 1 :]
        if len(later) < 2:
            return 0.0, 0.0
        per_window = (len(later) - 1) / (later[-1] - later[0]) * window_s
        return per_window / rpm, per_window


async def run(requests: int, call: Callable[[], Awaitable[object]]) -> Outcome:
    """Send ``requests`` calls at once, each through ``call``; note when each success completes.

    Raises:
        Exception: the first error that is not an API error (a bug here, not a refusal).
    """
    start = time.perf_counter()
    successes: list[float] = []

    async def timed() -> None:
        await call()
        successes.append(time.perf_counter() - start)

    results = await asyncio.gather(*(timed() for _ in range(requests)), return_exceptions=True)
    elapsed = time.perf_counter() - start
    unexpected = [r for r in results if isinstance(r, BaseException) and not isinstance(r, errors.APIError)]
    if unexpected:
        raise unexpected[0]
    return Outcome(sorted(successes), sum(isinstance(r, errors.APIError) for r in results), elapsed)


async def with_semaphore(client: genai.Client, requests: int) -> Outcome:
    """Patterns 1 and 2: at most :data:`CONCURRENCY` in flight; retries only if the client has retry options."""
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def call() -> object:
        async with semaphore:
            return await client.aio.models.generate_content(model=FLASH, contents=PROMPT)

    return await run(requests, call)


async def with_limiter(client: genai.Client, requests: int, limiter: AsyncLimiter, window_s: float) -> Outcome:
    """Patterns 3 and 4: wait for the limiter before each attempt; on a 429, sleep its ``retryDelay`` (a window if
    it gives none) plus up to 1 % of a window of jitter, and try again."""
    rng = random.Random(0)

    async def call() -> object:
        for attempt in range(1, ATTEMPTS + 1):
            async with limiter:
                try:
                    return await client.aio.models.generate_content(model=FLASH, contents=PROMPT)
                except errors.ClientError as e:
                    if e.code != 429 or attempt == ATTEMPTS:
                        raise
                    delay = retry_delay_s(e)
            await asyncio.sleep((window_s if delay is None else delay) + rng.uniform(0, window_s / 100))
        raise AssertionError("unreachable: the last attempt returns or raises")

    return await run(requests, call)


async def measure_rate_limits(url: str, requests: int, rpm: int, speed: float) -> list[Row]:
    """Each pattern's steady rate as a fraction of ``rpm`` and its failed requests (target for the pattern lesson 02
    recommends: >= 90 % of the limit, none failed)."""
    window_s = 60 / speed
    rows = []
    for pattern in PATTERNS:
        retry = None
        if pattern is SDK_RETRIES:
            retry = types.HttpRetryOptions(
                attempts=ATTEMPTS, initial_delay=1 / speed, max_delay=60 / speed, jitter=1 / speed
            )
        client = sdk_client(url, pattern.cassette, retry)
        if pattern is BURSTING:
            outcome = await with_limiter(client, requests, AsyncLimiter(rpm, window_s), window_s)
        elif pattern is PACED:
            outcome = await with_limiter(client, requests, AsyncLimiter(1, HEADROOM * window_s / rpm), window_s)
        else:
            outcome = await with_semaphore(client, requests)
        await client.aio.aclose()
        fraction, per_window = outcome.steady_fraction(rpm, window_s)
        rows.append(
            Row(
                f"rate limit, {requests} requests at --rpm {rpm} --speed {speed:g}: {pattern.name}",
                f"{fraction:.0%} of the limit ({per_window:.1f} a replayed minute after the first {rpm}); "
                f"{outcome.failed} failed; {outcome.elapsed_s:.1f} s in all",
                ">= 90 %, none failed" if pattern.recommended else "-",
                (fraction >= 0.9 and outcome.failed == 0) if pattern.recommended else None,
                SDK,
            )
        )
    return rows
