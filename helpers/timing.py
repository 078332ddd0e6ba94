"""Timing: measure streams, single calls and many concurrent requests, and summarise repeated measurements.

Every time is in seconds from :func:`time.perf_counter`, and every result prints one line whose seconds read
``0.41 s`` (two decimals), so nbval's sanitizer can mask the digits. Introduced in ``01_sync`` (:class:`elapsed`),
``02_async`` (:class:`Timeline`) and ``03_streaming`` (:func:`timed`, :func:`atimed`, :func:`repeat`).

The instruments cost next to nothing beside what they measure: ``bench/timing_overhead.py`` measured 1.4-2.4 µs
per chunk for :func:`timed` and :func:`atimed` and 2.8-4.3 µs per request for :meth:`Timeline.track` (2-core
development machine, Python 3.11.7, 2026-11-22), against chunk gaps of about 100 ms: under 0.003 %.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
from google.genai import errors

T = TypeVar("T")

PERCENTILES = (50, 90, 99)
"""The percentiles :class:`Summary` reports (and :func:`helpers.plots.distribution` marks)."""


def seconds(value: float) -> str:
    """``1.2345`` -> ``"1.23 s"``: how every helper prints a time, so the sanitizer's ``\\d+\\.\\d+ s`` masks it."""
    return f"{value:.2f} s"


def _text_chars(chunk: Any) -> int:
    """Characters of answer text in a stream chunk: a ``GenerateContentResponse``'s non-thought text parts of its
    first candidate (what ``chunk.text`` joins, read directly: ``.text`` dumps every part and may log warnings),
    or the length of a ``str``/``bytes`` chunk, or an ``openai`` ``ChatCompletionChunk``'s ``delta.content``
    (``08_protocols``); 0 for anything else."""
    if isinstance(chunk, (str, bytes)):
        return len(chunk)
    choices = getattr(chunk, "choices", None)
    if isinstance(choices, list):
        delta = getattr(choices[0], "delta", None) if choices else None
        return len(getattr(delta, "content", None) or "")
    delta = getattr(chunk, "delta", None)  # an Interactions stream event: only a ``text`` step.delta carries text
    if delta is not None or getattr(chunk, "event_type", None) is not None:
        text = getattr(delta, "text", None)
        return len(text) if getattr(delta, "type", None) == "text" and isinstance(text, str) else 0
    candidates = getattr(chunk, "candidates", None)
    content = candidates[0].content if candidates else None
    parts = (content.parts if content is not None else None) or []
    return sum(len(p.text) for p in parts if isinstance(p.text, str) and not p.thought)


def _output_tokens(chunk: Any) -> int | None:
    """Output tokens a stream's last chunk reports: ``usage_metadata.candidates_token_count``, or an interaction's
    ``usage.total_output_tokens`` (its ``interaction.completed`` event)."""
    usage = getattr(chunk, "usage_metadata", None)
    if usage is not None:
        return usage.candidates_token_count
    usage = getattr(getattr(chunk, "interaction", None), "usage", None)
    return getattr(usage, "total_output_tokens", None)


class _OneLine:
    """Its ``repr`` is its one-line ``str``, so a notebook cell ending with it shows that line."""

    def __repr__(self) -> str:
        return str(self)


# --- one call -------------------------------------------------------------------------------------------------------


class elapsed(_OneLine):
    """Time a block and print ``elapsed 1.23 s`` (or ``label: elapsed 1.23 s``) when it ends, even by an exception.

    The one way notebooks print a single timing. Works around ``await`` too (a plain ``with`` in an async cell)::

        with elapsed("sequential") as seq:
            answers = [ask(p) for p in prompts]
        assert seq.s > 1

    Introduced in ``01_sync``.

    Args:
        label: printed before ``elapsed``; ``None`` prints just ``elapsed 1.23 s``.
        show: print the line when the block ends (``False`` only records it).

    Attributes:
        s: the block's duration in seconds (``nan`` until the block ends).
    """

    def __init__(self, label: str | None = None, *, show: bool = True) -> None:
        self.label = label
        self.show = show
        self.s = float("nan")
        self._start = 0.0

    def __enter__(self) -> elapsed:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.s = time.perf_counter() - self._start
        if self.show:
            print(self)

    def __str__(self) -> str:
        line = f"elapsed {seconds(self.s)}"
        return f"{self.label}: {line}" if self.label else line


# --- streams --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkTiming:
    """One chunk of a stream.

    Attributes:
        at_s: when it arrived, seconds after iteration began (the request is sent then: SDK streams are lazy).
        chars: characters of answer text it carried (0 for a chunk without text, e.g. ``chunk.text is None``).
    """

    at_s: float
    chars: int


@dataclass(frozen=True, repr=False)
class StreamTiming(_OneLine):
    """How one stream arrived; prints ``TTFT 0.41 s · TTLT 0.93 s · 7 chunks · 212 tokens/s``.

    When the first chunk carries no text the line starts with ``first chunk 0.30 s ·``. Introduced in
    ``03_streaming``.

    Attributes:
        chunks: every chunk received, in order.
        output_tokens: ``usage_metadata.candidates_token_count`` of the last chunk (the only one where it is
            complete), or ``None`` when the stream did not report it.
    """

    chunks: tuple[ChunkTiming, ...]
    output_tokens: int | None = None

    @property
    def first_chunk_s(self) -> float | None:
        """Seconds to the first chunk of any kind (``None``: no chunk arrived)."""
        return self.chunks[0].at_s if self.chunks else None

    @property
    def ttft_s(self) -> float | None:
        """Time to first token: seconds to the first chunk with non-empty text (``None``: no text arrived)."""
        return next((c.at_s for c in self.chunks if c.chars), None)

    @property
    def ttlt_s(self) -> float | None:
        """Time to last token: seconds to the last chunk (``None``: no chunk arrived)."""
        return self.chunks[-1].at_s if self.chunks else None

    @property
    def chars(self) -> int:
        """Characters of answer text over the whole stream."""
        return sum(c.chars for c in self.chunks)

    @property
    def tokens_per_s(self) -> float | None:
        """Output speed: ``output_tokens / (ttlt_s - ttft_s)``, tokens per second while the answer streams.

        The definition Artificial Analysis uses for "output speed" (tokens received after the first chunk, per
        second; artificialanalysis.ai/methodology, read 2026-11-21), so it compares with
        :data:`helpers.models.PROFILES`.
        ``None`` without a token count or when all the text came in one chunk.
        """
        ttft, ttlt = self.ttft_s, self.ttlt_s
        if self.output_tokens is None or ttft is None or ttlt is None or ttlt <= ttft:
            return None
        return self.output_tokens / (ttlt - ttft)

    def row(self) -> dict[str, Any]:
        """The figures as one table row.

        Returns:
            ``{first_chunk_s, ttft_s, ttlt_s, chunks, chars, output_tokens, tokens_per_s}``.
        """
        return {
            "first_chunk_s": self.first_chunk_s,
            "ttft_s": self.ttft_s,
            "ttlt_s": self.ttlt_s,
            "chunks": len(self.chunks),
            "chars": self.chars,
            "output_tokens": self.output_tokens,
            "tokens_per_s": self.tokens_per_s,
        }

    def __str__(self) -> str:
        if not self.chunks:
            return "no chunks"
        parts = []
        if self.first_chunk_s != self.ttft_s:
            parts.append(f"first chunk {seconds(self.chunks[0].at_s)}")
        ttft = self.ttft_s
        parts.append(f"TTFT {seconds(ttft)}" if ttft is not None else "no text")
        parts.append(f"TTLT {seconds(self.chunks[-1].at_s)}")
        parts.append(f"{len(self.chunks)} chunk{'s' if len(self.chunks) != 1 else ''}")
        if self.tokens_per_s is not None:
            parts.append(f"{self.tokens_per_s:.0f} tokens/s")
        return " · ".join(parts)


_current_call: contextvars.ContextVar[_OpenCall | None] = contextvars.ContextVar("_current_call", default=None)
"""The :meth:`Timeline.track` attempt this code runs inside, so a timed stream can report its first byte to it."""


class _TimedBase:
    def __init__(self) -> None:
        self._start: float | None = None
        self._times: list[float] = []
        self._chunks: list[Any] = []

    def _begin(self) -> float:
        if self._start is not None:
            raise RuntimeError("this timed stream was already iterated; wrap a new stream to time it again")
        self._start = time.perf_counter()
        return self._start

    def _first(self, at: float) -> None:
        call = _current_call.get()
        if call is not None and call.first_byte is None:
            call.first_byte = at

    @property
    def timing(self) -> StreamTiming:
        """The :class:`StreamTiming` of what has arrived so far (all of it once the loop ends).

        Raises:
            RuntimeError: the stream has not been iterated yet.
        """
        if self._start is None:
            raise RuntimeError("nothing to report yet: iterate the stream first (for chunk in ...)")
        arrivals = zip(self._times, self._chunks, strict=True)
        chunks = tuple(ChunkTiming(t - self._start, _text_chars(c)) for t, c in arrivals)
        return StreamTiming(chunks, _output_tokens(self._chunks[-1]) if self._chunks else None)


class TimedStream(_TimedBase, Generic[T]):
    """A sync stream that records when each chunk arrives; iterate it exactly like the stream it wraps."""

    def __init__(self, stream: Iterable[T] | Callable[[], Iterable[T]]) -> None:
        super().__init__()
        self._stream = stream

    def __iter__(self) -> Iterator[T]:
        self._begin()
        times, chunks, clock = self._times, self._chunks, time.perf_counter
        stream = self._stream
        for chunk in stream if isinstance(stream, Iterable) else stream():
            times.append(clock())
            chunks.append(chunk)
            if len(times) == 1:
                self._first(times[0])
            yield chunk

    def drain(self) -> StreamTiming:
        """Read the whole stream, discarding the chunks, and return its timing (for repeated measurements)."""
        for _ in self:
            pass
        return self.timing


class AsyncTimedStream(_TimedBase, Generic[T]):
    """An async stream that records when each chunk arrives; ``async for`` over it like the stream it wraps."""

    def __init__(self, stream: AsyncIterable[T] | Awaitable[AsyncIterable[T]]) -> None:
        super().__init__()
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[T]:
        self._begin()
        times, chunks, clock = self._times, self._chunks, time.perf_counter
        stream = self._stream
        async for chunk in stream if isinstance(stream, AsyncIterable) else await stream:
            times.append(clock())
            chunks.append(chunk)
            if len(times) == 1:
                self._first(times[0])
            yield chunk

    async def drain(self) -> StreamTiming:
        """Read the whole stream, discarding the chunks, and return its timing (for repeated measurements)."""
        async for _ in self:
            pass
        return self.timing


def timed(stream: Iterable[T] | Callable[[], Iterable[T]]) -> TimedStream[T]:
    """Wrap a sync stream so its timing is recorded while you iterate it as usual::

        stream = timed(client.models.generate_content_stream(model=MODEL, contents=prompt))
        for chunk in stream:
            print(chunk.text or "", end="")
        print(stream.timing)   # TTFT 0.41 s · TTLT 0.93 s · 7 chunks · 212 tokens/s

    The clock starts when iteration starts: the SDK sends the request then, not when the stream is created.
    An interaction stream is different: ``client.interactions.create(..., stream=True)`` sends the request and waits
    for the reply's headers (which come with the first event) before it returns, so pass a function that opens it
    and the clock starts before the request goes out (introduced in ``06_interactions``)::

        stream = timed(lambda: client.interactions.create(model=MODEL, input=prompt, stream=True))
        for event in stream:
            if event.event_type == "step.delta" and event.delta.type == "text":
                print(event.delta.text, end="")
        print(stream.timing)   # first chunk 0.30 s · TTFT 1.40 s · TTLT 1.70 s · 11 chunks · 196 tokens/s

    There each SSE event is a chunk: TTFT is the first ``text`` delta, TTLT the last event
    (``interaction.completed``), the output tokens its ``usage.total_output_tokens``.
    Inside :meth:`Timeline.track` or :meth:`Timeline.call`, the first chunk is also that request's first byte.
    Introduced in ``03_streaming``.

    Args:
        stream: any iterable, or a function of no arguments returning one (called when iteration starts); chunk
            sizes are read from ``GenerateContentResponse`` text parts, an Interactions event's ``text`` delta, or
            ``len`` of ``str``/``bytes`` chunks.

    Returns:
        A :class:`TimedStream`; after the loop, ``.timing`` is the :class:`StreamTiming`.
    """
    return TimedStream(stream)


def atimed(stream: AsyncIterable[T] | Awaitable[AsyncIterable[T]]) -> AsyncTimedStream[T]:
    """The async twin of :func:`timed`::

        stream = atimed(await client.aio.models.generate_content_stream(model=MODEL, contents=prompt))
        async for chunk in stream:
            print(chunk.text or "", end="")
        print(stream.timing)

    The awaited SDK call only builds the stream; the request goes out when ``async for`` starts, and so does the
    clock. Introduced in ``03_streaming``. An interaction stream's call sends the request and returns with the
    first event, so pass the call *without* ``await``; it is awaited when ``async for`` starts, clock running
    (``06_interactions``)::

        stream = atimed(client.aio.interactions.create(model=MODEL, input=prompt, stream=True))

    Returns:
        An :class:`AsyncTimedStream`; after the loop, ``.timing`` is the :class:`StreamTiming`.
    """
    return AsyncTimedStream(stream)


# --- repeated measurements ------------------------------------------------------------------------------------------


def min_samples(q: float) -> int:
    """The fewest samples whose ``q``-th percentile is more than an interpolation between the largest two: one
    sample in ``100 - q`` lies above it (p90: 10, p99: 100)."""
    return math.ceil(100 / (100 - q) - 1e-9)


def percentile_name(q: float, n: int) -> str:
    """How to label the ``q``-th percentile of ``n`` samples: ``"p90"``, or, when ``n`` is below
    :func:`min_samples`, ``"p99 (n < 100: about the max)"``, so a small sample's tail is not read as a p99."""
    return f"p{q:g}" if n >= min_samples(q) else f"p{q:g} (n < {min_samples(q)}: about the max)"


@dataclass(frozen=True, repr=False)
class Summary(_OneLine):
    """A repeated measurement; prints one line::

        TTFT over 30 runs: min 0.31 s · p50 0.40 s · p90 0.52 s · p99 0.60 s · max 0.61 s

    Percentiles are numpy's default (linear interpolation); one the sample is too small for (:func:`min_samples`: p99
    needs 100 runs) is labelled ``p99 (n < 100: about the max)``. Introduced in ``03_streaming``.

    Attributes:
        name: what was measured, e.g. ``"TTFT"``.
        samples_s: every sample, seconds, in the order measured.
        results: what each run returned (for :func:`repeat`), e.g. the :class:`StreamTiming` of each run.
    """

    name: str
    samples_s: tuple[float, ...]
    results: tuple[Any, ...] = field(default=(), repr=False, compare=False)

    @property
    def n(self) -> int:
        """How many samples."""
        return len(self.samples_s)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100) of the samples, seconds."""
        return float(np.percentile(self.samples_s, q))

    def row(self) -> dict[str, Any]:
        """The summary as one table row: ``name, n, min_s, p50_s, p90_s, p99_s, max_s``."""
        return {
            "name": self.name,
            "n": self.n,
            "min_s": min(self.samples_s),
            **{f"p{q}_s": self.percentile(q) for q in PERCENTILES},
            "max_s": max(self.samples_s),
        }

    def __str__(self) -> str:
        row = self.row()
        names = ["min", *(percentile_name(q, self.n) for q in PERCENTILES), "max"]
        figures = " · ".join(f"{name} {seconds(row[k])}" for name, k in zip(names, list(row)[2:], strict=True))
        return f"{self.name} over {self.n} run{'s' if self.n != 1 else ''}: {figures}"


def summarize(samples_s: Iterable[float | None], name: str = "elapsed", results: Iterable[Any] = ()) -> Summary:
    """Summarise measurements (seconds) as a :class:`Summary`.

    Raises:
        ValueError: no samples, or a sample that is ``None`` (e.g. the TTFT of a stream that sent no text).
    """
    samples = tuple(samples_s)
    if not samples:
        raise ValueError(f"no {name} samples to summarise")
    missing = [i for i, s in enumerate(samples) if s is None]
    if missing:
        raise ValueError(f"{name} is missing (None) in run {missing[0]}: that run had nothing to measure")
    return Summary(name, tuple(float(s) for s in samples if s is not None), tuple(results))


def _check_runs(n: int) -> None:
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")


def _sample(result: Any, started: float, metric: Callable[[Any], float | None] | None) -> float | None:
    return time.perf_counter() - started if metric is None else metric(result)


def repeat(
    measure: Callable[[], Any], n: int, *, name: str = "elapsed", metric: Callable[[Any], float | None] | None = None
) -> Summary:
    """Run ``measure()`` ``n`` times, one after another, and summarise.

    Without ``metric`` each sample is the call's wall time; with it, ``metric(result)``::

        ttft = repeat(lambda: timed(client.models.generate_content_stream(model=MODEL, contents=p)).drain(),
                      30, name="TTFT", metric=lambda t: t.ttft_s)
        ttlt = summarize([t.ttlt_s for t in ttft.results], "TTLT")

    Introduced in ``03_streaming``.

    Raises:
        ValueError: ``n`` < 1, or a ``metric`` that returned ``None``.
    """
    _check_runs(n)
    results, samples = [], []
    for _ in range(n):
        started = time.perf_counter()
        result = measure()
        samples.append(_sample(result, started, metric))
        results.append(result)
    return summarize(samples, name, results)


async def arepeat(
    measure: Callable[[], Awaitable[Any]],
    n: int,
    *,
    name: str = "elapsed",
    metric: Callable[[Any], float | None] | None = None,
) -> Summary:
    """:func:`repeat` for an async ``measure``: awaits it ``n`` times, one after another (never concurrently, which
    would measure contention instead). Introduced in ``03_streaming``.

    Raises:
        ValueError: as :func:`repeat`.
    """
    _check_runs(n)
    results, samples = [], []
    for _ in range(n):
        started = time.perf_counter()
        result = await measure()
        samples.append(_sample(result, started, metric))
        results.append(result)
    return summarize(samples, name, results)


# --- many requests at once ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallTiming:
    """One attempt at one request, as :class:`Timeline` saw it from the client.

    Field names match the replay server's per-request stats, so :func:`helpers.plots.timeline` draws either.

    Attributes:
        key: the request this attempt belongs to (attempts with the same key are retries of one request).
        attempt: 0 for the first try, 1 for the first retry, ...
        start_s: when it started, seconds after the timeline's first start.
        first_byte_s: when its first stream chunk arrived (``None``: not a timed stream, or nothing arrived).
        end_s: when it returned or raised.
        status: 200 for success, the HTTP status of a ``google.genai.errors.APIError`` (429, 503, ...), or
            ``None`` for any other exception (a timeout, a cancellation).
        error: the exception's class name, or ``None`` on success.
    """

    key: str
    attempt: int
    start_s: float
    first_byte_s: float | None
    end_s: float
    status: int | None
    error: str | None = None

    def row(self) -> dict[str, Any]:
        """The attempt as one table row (its fields)."""
        return {
            "key": self.key,
            "attempt": self.attempt,
            "start_s": self.start_s,
            "first_byte_s": self.first_byte_s,
            "end_s": self.end_s,
            "status": self.status,
            "error": self.error,
        }


def in_flight(calls: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
    """How many requests were in flight over time: a step function, for peak concurrency and timeline plots.

    Args:
        calls: anything with ``start_s`` and ``end_s`` (seconds): :class:`CallTiming` or the server's stats.

    Returns:
        ``(times_s, counts)``, equal-length arrays: from ``times_s[i]`` on, ``counts[i]`` requests were in flight.
        A request ending at the instant another starts is not counted as overlapping it. Empty input gives empty
        arrays.
    """
    spans = [(c.start_s, c.end_s) for c in calls]
    if not spans:
        return np.empty(0), np.empty(0, dtype=int)
    starts, ends = np.array(spans, dtype=float).T
    times = np.concatenate([starts, ends])
    steps = np.concatenate([np.ones(len(starts), dtype=int), -np.ones(len(ends), dtype=int)])
    order = np.lexsort((steps, times))  # by time; at a tie, ends (-1) before starts (+1)
    return times[order], np.cumsum(steps[order])


@dataclass(frozen=True, repr=False)
class ConcurrencyTiming(_OneLine):
    """Many requests run at once; prints ``20 requests · wall 1.23 s · 16.3 requests/s · peak 20 in flight``.

    With retries or failures it adds `` · 3 retries · status 200 ×20, 429 ×3``. Introduced in ``02_async``.

    Attributes:
        calls: every attempt, in the order they started; times relative to the first start.
    """

    calls: tuple[CallTiming, ...]

    @property
    def requests(self) -> int:
        """Distinct requests (keys)."""
        return len({c.key for c in self.calls})

    @property
    def retries(self) -> int:
        """Attempts beyond the first of each request."""
        return len(self.calls) - self.requests

    @property
    def succeeded(self) -> int:
        """Requests with an attempt that succeeded."""
        return len({c.key for c in self.calls if c.status == 200})

    @property
    def statuses(self) -> dict[int | None, int]:
        """Attempts per status, e.g. ``{200: 20, 429: 3}`` (``None``: failed without an HTTP status)."""
        counts: dict[int | None, int] = {}
        for c in self.calls:
            counts[c.status] = counts.get(c.status, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)))

    @property
    def wall_s(self) -> float:
        """Seconds from the first start to the last end (0 with no calls)."""
        if not self.calls:
            return 0.0
        return max(c.end_s for c in self.calls) - min(c.start_s for c in self.calls)

    @property
    def requests_per_s(self) -> float:
        """Achieved throughput: succeeded requests per second of wall time (0 when nothing took time)."""
        return self.succeeded / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def peak(self) -> int:
        """The most attempts in flight at once."""
        _, counts = in_flight(self.calls)
        return int(counts.max()) if len(counts) else 0

    def row(self) -> dict[str, Any]:
        """The whole run as one table row: ``requests, retries, succeeded, wall_s, requests_per_s, peak``."""
        return {
            "requests": self.requests,
            "retries": self.retries,
            "succeeded": self.succeeded,
            "wall_s": self.wall_s,
            "requests_per_s": self.requests_per_s,
            "peak": self.peak,
        }

    def rows(self) -> list[dict[str, Any]]:
        """One table row per attempt (see :meth:`CallTiming.row`)."""
        return [c.row() for c in self.calls]

    def __str__(self) -> str:
        line = (
            f"{self.requests} request{'s' if self.requests != 1 else ''} · wall {seconds(self.wall_s)} · "
            f"{self.requests_per_s:.1f} requests/s · peak {self.peak} in flight"
        )
        statuses = self.statuses
        if self.retries or set(statuses) != {200}:
            shown = ", ".join(f"{'no status' if s is None else s} ×{k}" for s, k in statuses.items())
            line += f" · {self.retries} retr{'y' if self.retries == 1 else 'ies'} · status {shown}"
        return line


@dataclass
class _OpenCall:
    key: str
    attempt: int
    start: float
    first_byte: float | None = None
    end: float = 0.0
    status: int | None = None
    error: str | None = None


class Timeline:
    """Record many requests as they run concurrently: start, first byte, end, status and retries of each.

    Wrap each request where it is actually sent (inside a semaphore, not around it), so the timeline shows what
    the server saw::

        timeline = Timeline()

        async def ask(prompt):
            async with semaphore:
                response = await timeline.track(client.aio.models.generate_content(model=MODEL, contents=prompt))
            return response.text

        answers = await asyncio.gather(*(ask(p) for p in prompts))
        print(timeline.timing)   # 20 requests · wall 1.23 s · 16.3 requests/s · peak 5 in flight

    Retries: track each attempt with the same ``key`` and they show as one request's attempts. The SDK's own
    retries (``HttpRetryOptions``) happen inside one tracked call; the replay server's stats count those.
    Introduced in ``02_async``.
    """

    def __init__(self) -> None:
        self._calls: list[_OpenCall] = []
        self._attempts: dict[str, int] = {}

    @contextlib.contextmanager
    def _attempt(self, key: str | None) -> Iterator[None]:
        name = key if key is not None else f"#{len(self._calls)}"
        attempt = self._attempts.get(name, 0)
        self._attempts[name] = attempt + 1
        call = _OpenCall(name, attempt, time.perf_counter())
        self._calls.append(call)
        token = _current_call.set(call)
        try:
            yield
        except BaseException as e:
            call.status = e.code if isinstance(e, errors.APIError) else None
            call.error = type(e).__name__
            raise
        else:
            call.status = 200
        finally:
            call.end = time.perf_counter()
            _current_call.reset(token)

    async def track(self, awaitable: Awaitable[T], *, key: str | None = None) -> T:
        """Await ``awaitable`` (e.g. an SDK call), recording it as one attempt; returns its result.

        The clock starts when ``track`` starts running, which for ``asyncio.gather(...)`` is at once. A stream
        read with :func:`atimed` inside ``awaitable`` marks this attempt's first byte.

        Args:
            awaitable: the request.
            key: the request this attempt belongs to; attempts sharing a key are retries. ``None``: a new request.

        Raises:
            Whatever ``awaitable`` raises, unchanged, after recording it (status from ``APIError.code``).
        """
        with self._attempt(key):
            return await awaitable

    def call(self, fn: Callable[..., T], *args: Any, key: str | None = None, **kwargs: Any) -> T:
        """:meth:`track` for a sync call, e.g. from a thread pool: runs ``fn(*args, **kwargs)`` as one attempt.

        A stream read with :func:`timed` inside ``fn`` marks this attempt's first byte.

        Raises:
            Whatever ``fn`` raises, unchanged, after recording it.
        """
        with self._attempt(key):
            return fn(*args, **kwargs)

    @property
    def timing(self) -> ConcurrencyTiming:
        """A snapshot of the finished attempts as a :class:`ConcurrencyTiming` (attempts still running are left out)."""
        done = sorted((c for c in self._calls if c.end), key=lambda c: c.start)  # end is 0.0 while running
        if not done:
            return ConcurrencyTiming(())
        origin = done[0].start
        return ConcurrencyTiming(
            tuple(
                CallTiming(
                    c.key,
                    c.attempt,
                    c.start - origin,
                    None if c.first_byte is None else c.first_byte - origin,
                    c.end - origin,
                    c.status,
                    c.error,
                )
                for c in done
            )
        )


# --- tables ---------------------------------------------------------------------------------------------------------


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and key.endswith("_per_s"):
        return f"{value:.1f} {key.removesuffix('_per_s')}/s"
    if isinstance(value, float) and key.endswith("_s"):
        return seconds(value)
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def table(rows: Iterable[Mapping[str, Any] | Any]) -> str:
    """A plain-text table, one line per row, columns aligned; print it.

    Args:
        rows: dicts with the same keys, or objects with a ``row()`` method (:class:`StreamTiming`,
            :class:`Summary`, :class:`ConcurrencyTiming`, :class:`CallTiming`). Keys ending ``_s`` print as
            seconds (``0.41 s``), ``X_per_s`` as rates (``16.3 X/s``), ``None`` as ``-``: what the nbval
            sanitizer masks.

    Returns:
        The table as a string (header, rule, rows); ``""`` for no rows. Introduced in ``02_async``.
    """
    dicts = [r if isinstance(r, Mapping) else r.row() for r in rows]
    if not dicts:
        return ""
    keys = list(dicts[0])
    cells = [keys] + [[_cell(k, d.get(k)) for k in keys] for d in dicts]
    widths = [max(len(line[i]) for line in cells) for i in range(len(keys))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
