"""The replay server's control side: per-cassette faults, rate limits and live stats, steered over HTTP.

:mod:`helpers.control` is the Python client; introduced in ``02_async``. Routes, JSON in and out:

    GET  /_control/{cassette}/stats                    -> {"received", "answered", "rejected": {"429": n},
                                                           "in_flight", "peak_in_flight", "requests": [...],
                                                           "requests_dropped": n}
    POST /_control/{cassette}/stats/reset              {}
    POST /_control/{cassette}/limits                   {"rpm": int | null, "tpm": int | null}
    POST /_control/{cassette}/faults/fail_next         {"n": int, "status": int, "retry_delays_s": [float]}
    POST /_control/{cassette}/faults/cut_stream        {"after_chunks": int}
    POST /_control/{cassette}/faults/error_mid_stream  {"after_chunks": int, "status": int}
    POST /_control/{cassette}/faults/hold_stream       {"after_text_chunks": int}
    POST /_control/{cassette}/faults/release_stream    {}
    POST /_control/{cassette}/faults/latency           {"seconds": float}
    POST /_control/{cassette}/faults/clear             {}
    POST /_control/{cassette}/unmatched                {"unmatched": "improvise" | "error" | null}

Latency and ``fail_next`` hit every API request of the cassette (files and batches too, record mode included);
stream faults hit the next stream, replayed or recorded (a hold: replayed only, until ``release_stream`` or
``faults/clear``); rate limits apply to model calls, replayed or recorded (in record mode RPM only: a call's tokens
are not known before it is forwarded; see :mod:`.rate_limits`). The stats record, per request, what it received (the
prompt and system instruction's text), how many requests were in flight when it arrived, and what went out: each
chunk of a stream as it goes out, with its text and usage, or the one JSON reply once written. Exercise checks
judge by this record (``helpers.checks.record``), never by the client's clock.
A POST answers ``{}``. Bad input answers 400 (an unknown action 404) in the API's error shape, with a message that
says what to do. Times are seconds of the server's monotonic clock, reported relative to the last reset; they are
the client's wall-clock seconds too (``--speed`` scales recorded delays, not the clock).

State is bounded (``SECURITY.md``, "Limits"): the timeline keeps the last :data:`STATS_HISTORY` requests (the
counters count them all; ``requests_dropped`` says how many fell off), of which the last :data:`DETAIL_HISTORY` keep
their prompt, texts and usage (cut at :data:`PROMPT_CHARS` and :data:`TEXT_CHARS`); no state is made for a cassette
the server cannot serve (in replay, one that does not exist).

``unmatched`` chooses what replay does with the cassette's requests that no recording matches (improvise a labelled
stand-in, or the 404; ``null``: the server's ``--unmatched``). Exercise checks set ``"error"`` while they judge
(:mod:`helpers.checks`), so no check ever judges an improvised answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..cassettes.cassette import CassetteError, Exchange
from ..cassettes.store import name_problem
from ..wire.defaults import UNMATCHED_POLICIES
from ..wire.framing import STATUS_NAMES, ApiError, error_json, sse_event
from .api_request import API, CONTROL_PREFIX, Handler, error_response, json_response, parse_json
from .rate_limits import RETRY_INFO_TYPE, WINDOW_S, Limits, RateLimiter

FAULT_STATUSES = tuple(sorted(code for code in STATUS_NAMES if code in (400, 429) or (code >= 500 and code != 501)))
"""Statuses a fault can inject: 400 (a request the API refuses, which no retry mends; ``03_streaming``'s check sends
one), 429 and the 5xx ones the API sends (their names come from ``STATUS_NAMES``; 501 ``UNIMPLEMENTED`` is only the
synthetic upstream's answer to a route it does not model)."""


def chunk_text(chunk: Any) -> str:
    """The answer text a response or stream chunk carries (``""`` for none): the text parts of a
    ``GenerateContentResponse`` that are not thoughts; ``choices[0].delta.content`` of a ``chat.completion.chunk``
    (``message.content`` of a whole ``chat.completion``) of the OpenAI-compatible endpoint; the text of an
    Interactions ``step.delta`` event, or of a whole interaction's ``model_output`` steps."""
    if not isinstance(chunk, dict):
        return ""
    if "choices" in chunk:
        choice = (chunk.get("choices") or [{}])[0] or {}
        message = choice.get("delta") or choice.get("message") or {}
        content = message.get("content")
        return content if isinstance(content, str) else ""
    if "event_type" in chunk:
        delta = chunk.get("delta") or {}
        if chunk["event_type"] == "step.delta" and delta.get("type") == "text":
            return str(delta.get("text") or "")
        return ""
    if "steps" in chunk:
        steps = [step for step in chunk.get("steps") or [] if isinstance(step, dict)]
        contents = [c for step in steps if step.get("type") == "model_output" for c in step.get("content") or []]
        return "".join(str(c.get("text") or "") for c in contents if isinstance(c, dict) and c.get("type") == "text")
    candidates = chunk.get("candidates") or [{}]
    parts = ((candidates[0] or {}).get("content") or {}).get("parts") or []
    return "".join(str(p["text"]) for p in parts if isinstance(p, dict) and p.get("text") and not p.get("thought"))


def carries_text(chunk: Any) -> bool:
    """Whether a response or stream chunk carries answer text (:func:`chunk_text`)."""
    return bool(chunk_text(chunk))


def chunk_usage(chunk: Any) -> dict[str, Any] | None:
    """The usage a response or stream chunk carries, as sent, or ``None``: a ``GenerateContentResponse``'s
    ``usageMetadata``, an OpenAI-compatible chunk's ``usage``, an interaction's ``usage`` (in its
    ``interaction.completed`` event when streamed)."""
    if not isinstance(chunk, dict):
        return None
    if "choices" in chunk:
        usage = chunk.get("usage")
    elif "event_type" in chunk:
        usage = (chunk.get("interaction") or {}).get("usage")
    elif "steps" in chunk:
        usage = chunk.get("usage")
    else:
        usage = chunk.get("usageMetadata")
    return usage if isinstance(usage, dict) and usage else None


def request_texts(body: Any) -> tuple[str | None, str | None]:
    """``(prompt, system)``: the text of a model call's last user turn and of its system instruction, as received,
    or ``None`` each when the body has none. Reads a ``generateContent`` body (``contents``, ``systemInstruction``),
    an OpenAI-compatible one (``messages``), and an interaction's (``input``, ``system_instruction``)."""
    if not isinstance(body, dict):
        return None, None
    if isinstance(body.get("messages"), list):
        messages = [m for m in body["messages"] if isinstance(m, dict)]
        users = [m for m in messages if m.get("role") == "user"]
        systems = [m for m in messages if m.get("role") in ("system", "developer")]
        return (_turn_text(users[-1]) if users else None), (_turn_text(systems[0]) if systems else None)
    if "input" in body:
        return _turn_text(body["input"]), _turn_text(body.get("system_instruction", body.get("systemInstruction")))
    contents = body.get("contents")
    turns = [c for c in contents if isinstance(c, dict)] if isinstance(contents, list) else []
    users = [t for t in turns if t.get("role", "user") == "user"]
    system = body.get("systemInstruction", body.get("system_instruction"))
    return (_turn_text(users[-1]) if users else None), _turn_text(system)


def _turn_text(turn: Any) -> str | None:
    """The text of a turn in any shape a request gives it: a string; ``{"parts": [...]}`` (Gemini); ``{"content":
    str | [...]}`` (an OpenAI message, an interaction's turn); a list of text parts, or of turns (the last user
    turn's); ``None`` for none."""
    if turn is None or isinstance(turn, str):
        return turn
    if isinstance(turn, list):
        turns = [t for t in turn if isinstance(t, dict) and ("parts" in t or "role" in t)]
        if turns:
            users = [t for t in turns if t.get("role", "user") == "user"]
            return _turn_text(users[-1]) if users else None
        return "".join(str(p.get("text") or "") for p in turn if isinstance(p, dict))
    if isinstance(turn, dict):
        parts = turn.get("parts", turn.get("content"))
        return _turn_text(parts) if parts is not None else str(turn.get("text") or "")
    return None


class ControlError(ValueError):
    """A control call the server refuses; the message says what to send instead."""


PROMPT_CHARS = 2_000
"""The most characters of a request's prompt, and of its system instruction, that the stats keep."""
TEXT_CHARS = 8_000
"""The most characters of answer text the stats keep per request, over all its chunks."""
STATS_HISTORY = 10_000
"""Requests a cassette's stats timeline keeps (about 300 bytes each without their detail, so 3 MB at most); older
ones are dropped, and ``stats()`` says how many. Lessons look at a few hundred at a time."""
DETAIL_HISTORY = 500
"""Of those, how many of the latest keep their detail (prompt, system instruction, answer text, usage sent): at most
``2 * PROMPT_CHARS + TEXT_CHARS`` characters each plus a usage per chunk, so about 10 MB in all. Older requests keep
their timing only."""


@dataclass
class Sent:
    """One piece of an answer as the server sent it: a stream's chunk, or a whole JSON reply.

    Attributes:
        at: when it began to be written (a stream's chunk) or was all written (a reply), server monotonic seconds.
        text: the answer text it carried (:func:`chunk_text`), cut to what :data:`TEXT_CHARS` leaves.
        usage: the usage it carried (:func:`chunk_usage`), as sent, or ``None``.
    """

    at: float
    text: str
    usage: dict[str, Any] | None

    def to_json(self, epoch: float) -> dict[str, Any]:
        """The ``helpers.control.Sent`` fields, its time relative to ``epoch``."""
        return {"at_s": round(self.at - epoch, 6), "text": self.text, "usage": self.usage}


@dataclass
class Timing:
    """One API request's timeline, in seconds of the server's monotonic clock, and what it said and was sent."""

    path: str
    start: float
    status: int | None = None
    first_byte: float | None = None
    end: float | None = None
    in_flight: int = 1
    """Requests of the cassette in flight when it arrived, itself included."""
    prompt: str | None = None
    """The text of its last user turn (:func:`request_texts`), cut at :data:`PROMPT_CHARS`."""
    system: str | None = None
    """The text of its system instruction, cut at :data:`PROMPT_CHARS`."""
    streamed: bool = False
    """Whether the answer went out as a stream of chunks (then :attr:`sent` holds each chunk)."""
    sent: list[Sent] = field(default_factory=list)
    """What went out: each chunk of a stream as it began to be written (a client cannot have it earlier), or the
    one JSON reply once written."""
    text_kept: int = 0
    """Characters of answer text :attr:`sent` holds (at most :data:`TEXT_CHARS`)."""

    def received(self, body: Any) -> None:
        """Note the request's prompt and system instruction, from its parsed JSON ``body``."""
        prompt, system = request_texts(body)
        self.prompt = None if prompt is None else prompt[:PROMPT_CHARS]
        self.system = None if system is None else system[:PROMPT_CHARS]

    def chunk(self, data: Any) -> None:
        """Note that a stream's chunk, whose JSON is ``data``, begins to go out now."""
        self.streamed = True
        self._send(data)

    def reply(self, data: Any) -> None:
        """Note that the JSON reply ``data`` has gone out, now."""
        self._send(data)

    def _send(self, data: Any) -> None:
        text = chunk_text(data)[: max(0, TEXT_CHARS - self.text_kept)]
        self.text_kept += len(text)
        self.sent.append(Sent(time.monotonic(), text, chunk_usage(data)))

    def forget_detail(self) -> None:
        """Keep the timing only (see :data:`DETAIL_HISTORY`): drop the prompt, texts and usage."""
        self.prompt = self.system = None
        self.sent = [Sent(s.at, "", None) for s in self.sent]

    def to_json(self, epoch: float) -> dict[str, Any]:
        """The ``helpers.control.RequestTiming`` fields, times relative to ``epoch``."""

        def rel(t: float | None) -> float | None:
            return None if t is None else round(t - epoch, 6)

        return {
            "path": self.path,
            "status": self.status,
            "start_s": rel(self.start),
            "first_byte_s": rel(self.first_byte),
            "end_s": rel(self.end),
            "chunks_s": [rel(s.at) for s in self.sent] if self.streamed else [],
            "in_flight": self.in_flight,
            "prompt": self.prompt,
            "system": self.system,
            "streamed": self.streamed,
            "sent": [s.to_json(epoch) for s in self.sent],
        }


@dataclass
class Counters:
    """A cassette's counters and timeline since ``epoch`` (the last reset); the timeline holds the last ``history``."""

    epoch: float
    peak_in_flight: int = 0
    received: int = 0
    answered: int = 0
    rejected: Counter[int] = field(default_factory=Counter)
    history: int = STATS_HISTORY
    requests: deque[Timing] = field(init=False)

    def __post_init__(self) -> None:
        self.requests = deque(maxlen=self.history)

    @property
    def dropped(self) -> int:
        """Requests counted in :attr:`received` whose timing fell off the timeline."""
        return self.received - len(self.requests)


MAX_LATENCY_S = 3600.0
"""Injected latency (``faults/latency``) must be below this many seconds: an hour, far past any lesson's need."""
HOLD_MAX_S = 120.0
"""The longest a held stream waits for ``release_stream`` before it goes on by itself (so nothing waits forever)."""
GONE_POLL_S = 0.02
"""How often a held stream looks whether its client has closed the connection, seconds."""


@dataclass(frozen=True)
class StreamFault:
    """What to do to the next stream after ``after_chunks`` chunks: drop the connection, send an error event, or
    hold the rest back until released."""

    after_chunks: int
    status: int | None = None
    """``None`` cuts the connection; a status sends ``data: {"error": {...}}`` with it, then ends the stream."""
    release: asyncio.Event | None = None
    """Set for a hold: the stream waits (at most :data:`HOLD_MAX_S`) until this event is set, then goes on. A hold
    counts only the chunks that carry answer text (:func:`carries_text`) in ``after_chunks``."""

    def due(self, chunks_sent: int, text_chunks_sent: int) -> bool:
        """Whether the fault strikes before the next chunk, after these many chunks (of them, with text) were sent."""
        return (text_chunks_sent if self.release is not None else chunks_sent) == self.after_chunks

    async def strike(self, request: web.Request, stream: web.StreamResponse) -> bool:
        """Apply the fault to ``stream`` (prepared) before its chunk ``after_chunks``; ``True``: the stream goes on."""
        if self.release is not None:
            return await self._hold(request)
        await self.inflict(request, stream)
        return False

    async def _hold(self, request: web.Request) -> bool:
        """Wait until released (at most :data:`HOLD_MAX_S`): ``True``, the stream goes on; or until the client has
        closed the connection (checked every :data:`GONE_POLL_S`): ``False``, the stream ends there, so the stats
        show when a client that had what it wanted closed its stream."""
        assert self.release is not None
        released = asyncio.ensure_future(self.release.wait())
        deadline = time.monotonic() + HOLD_MAX_S
        try:
            while not released.done() and time.monotonic() < deadline:
                await asyncio.wait({released}, timeout=GONE_POLL_S)
                if request.transport is None or request.transport.is_closing():
                    return False
        finally:
            released.cancel()
        return True

    async def inflict(self, request: web.Request, stream: web.StreamResponse) -> None:
        """Break ``stream`` (already prepared) as this fault says."""
        if self.status is None:
            # Closing the socket without the chunked body's last-chunk marker: the client sees a truncated body.
            if request.transport is not None:
                request.transport.close()
            return
        await stream.write(sse_event(error_json(self.status, injected("error_mid_stream", self.status))))
        await stream.write_eof()


@dataclass
class CassetteControl:
    """The control state of one cassette: its counters, requests in flight and pending faults."""

    counters: Counters
    in_flight: int = 0
    fail_next: int = 0
    fail_status: int = 503
    fail_delays: deque[float] = field(default_factory=deque)
    """The ``retryDelay`` each of the next injected 429s carries, in turn (seconds); one without gets none."""
    stream_fault: StreamFault | None = None
    latency_s: float = 0.0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    """What a held stream of the cassette waits for; ``release_stream`` sets it."""
    unmatched: str | None = None
    """``"improvise"`` or ``"error"`` for this cassette's unmatched requests; ``None``: the server's choice."""


def injected(fault: str, status: int) -> str:
    """The message of an injected error, naming the call that injected it so nobody mistakes it for a real outage."""
    return f"Injected by helpers.control.{fault}(): {status} {STATUS_NAMES[status]}."


TIMING = web.RequestKey("workbook_timing", Timing)
Action = Callable[[str, CassetteControl, dict[str, Any]], None]


class ControlPanel:
    """Per-cassette faults, limits and stats of a replay server, with the routes and middleware that apply them.

    Args:
        speed: the server's ``--speed``; the rate-limit window lasts ``60 / speed`` seconds.
        limits: the server's ``--rpm``/``--tpm``, for cassettes without limits of their own.
        lookup: raises :class:`CassetteError` when a control call names a cassette the server cannot serve (a bad
            name among them).
        history: how many requests each cassette's stats timeline keeps (:data:`STATS_HISTORY`).
    """

    def __init__(
        self, speed: float, limits: Limits, lookup: Callable[[str], Any], history: int = STATS_HISTORY
    ) -> None:
        self.limiter = RateLimiter(WINDOW_S / speed, limits)
        self._lookup = lookup
        self.history = history
        self._cassettes: dict[str, CassetteControl] = {}
        self._actions: dict[str, Action] = {
            "stats/reset": self._reset,
            "limits": self._set_limits,
            "faults/fail_next": self._fail_next,
            "faults/cut_stream": self._cut_stream,
            "faults/error_mid_stream": self._error_mid_stream,
            "faults/hold_stream": self._hold_stream,
            "faults/release_stream": self._release_stream,
            "faults/latency": self._add_latency,
            "faults/clear": self._clear,
            "unmatched": self._set_unmatched,
        }

    def cassette(self, name: str) -> CassetteControl:
        """The control state of cassette ``name``, created on first use (only for a cassette :meth:`serves`)."""
        if name not in self._cassettes:
            self._cassettes[name] = CassetteControl(Counters(time.monotonic(), history=self.history))
        return self._cassettes[name]

    def serves(self, name: str) -> bool:
        """Whether the server can serve cassette ``name`` (its lookup raises nothing): only such a cassette gets
        control state. Any other name (in replay, a cassette that does not exist) is counted nowhere: a page cannot
        grow the server's memory by naming new cassettes, and faults and stats cannot name it either."""
        if name in self._cassettes:
            return True
        try:
            self._lookup(name)
        except CassetteError:
            return False
        return True

    def install(self, app: web.Application) -> None:
        """Add the control routes (call before any catch-all route) and first-byte timing; :meth:`middleware` is
        the app's to place."""
        app.router.add_get(f"/{CONTROL_PREFIX}/{{cassette}}/stats", self._stats)
        app.router.add_post(f"/{CONTROL_PREFIX}/{{cassette}}/{{action:.+}}", self._act)
        app.on_response_prepare.append(self._first_byte)

    def admit(self, cassette: str, path: str, exchange: Exchange | None) -> web.Response | None:
        """Count a model call against the cassette's rate limits, or return its 429 (see :mod:`.rate_limits`).

        ``exchange`` is the recording that will answer it, or ``None`` in record mode (TPM then counts no tokens).
        """
        return self.limiter.admit(cassette, path, exchange, time.monotonic())

    def unmatched(self, cassette: str, default: str) -> str:
        """What cassette ``cassette`` does with a request no recording matches: ``"improvise"`` or ``"error"``, as a
        control call set it, else ``default`` (the server's ``--unmatched``)."""
        return self.cassette(cassette).unmatched or default

    def take_stream_fault(self, cassette: str) -> StreamFault | None:
        """The stream fault pending for ``cassette``, now used up (stream faults hit the next stream only)."""
        state = self.cassette(cassette)
        fault, state.stream_fault = state.stream_fault, None
        return fault

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Count and time every API request (from its arrival, as :func:`.api_request.parse` noted it); apply injected
        latency and failures before the handler runs. Goes right after :func:`.api_request.parse`."""
        api = request.get(API)
        if api is None or not self.serves(api.cassette):  # no state for it; its service answers (or refuses) it
            return await handler(request)
        state = self.cassette(api.cassette)
        counters = state.counters
        state.in_flight += 1
        timing = Timing(api.path, api.start, in_flight=state.in_flight)
        timing.received(api.body)
        request[TIMING] = timing
        counters.received += 1
        counters.requests.append(timing)
        if len(counters.requests) > DETAIL_HISTORY:
            counters.requests[-DETAIL_HISTORY - 1].forget_detail()
        counters.peak_in_flight = max(counters.peak_in_flight, state.in_flight)
        try:
            latency_s = state.latency_s  # a call already waiting keeps its latency if the fault changes meanwhile
            if latency_s:
                await asyncio.sleep(latency_s)
                api.start += latency_s  # the recorded timing starts after the injected delay
            if state.fail_next:
                state.fail_next -= 1
                response: web.StreamResponse = _injected_failure(state)
            else:
                response = await handler(request)
            timing.status = response.status
            # Send it here rather than after return, so that the end time below is when the client had it all.
            with contextlib.suppress(ConnectionError):
                await response.prepare(request)
                await response.write_eof()
                if not timing.streamed and 200 <= response.status < 300:
                    timing.reply(_json_reply(response))
            return response
        except web.HTTPException as e:
            timing.status = e.status
            raise
        finally:
            state.in_flight -= 1
            timing.end = time.monotonic()
            if timing.status is not None and 200 <= timing.status < 300:
                counters.answered += 1
            elif timing.status is not None:
                counters.rejected[timing.status] += 1

    async def _first_byte(self, request: web.Request, response: web.StreamResponse) -> None:
        timing = request.get(TIMING)
        if timing is not None and timing.first_byte is None:
            timing.first_byte = time.monotonic()

    async def _stats(self, request: web.Request) -> web.Response:
        name = request.match_info["cassette"]
        try:
            self._check(name)
        except ControlError as e:
            return error_response(400, str(e), "INVALID_ARGUMENT")
        state = self.cassette(name)
        counters = state.counters
        return json_response(
            {
                "received": counters.received,
                "answered": counters.answered,
                "rejected": {str(status): n for status, n in sorted(counters.rejected.items())},
                "in_flight": state.in_flight,
                "peak_in_flight": counters.peak_in_flight,
                "requests": [t.to_json(counters.epoch) for t in counters.requests],
                "requests_dropped": counters.dropped,
            }
        )

    async def _act(self, request: web.Request) -> web.Response:
        name, action = request.match_info["cassette"], request.match_info["action"]
        if action not in self._actions:
            return error_response(
                404, f"'{action}' is not a control action; use one of {', '.join(sorted(self._actions))}."
            )
        try:
            self._check(name)
            try:
                body = parse_json(await request.read() or b"{}")
            except ApiError as e:
                raise ControlError(f"the body of a control call must be a JSON object ({e.message})") from None
            if not isinstance(body, dict):
                raise ControlError(f"the body of a control call must be a JSON object, got {body!r}.")
            self._actions[action](name, self.cassette(name), body)
        except ControlError as e:
            return error_response(400, str(e), "INVALID_ARGUMENT")
        return json_response({})

    def _check(self, name: str) -> None:
        problem = name_problem(name)
        if problem is not None:
            raise ControlError(f"{problem} Pass the notebook's name, e.g. '02_async'.")
        try:
            self._lookup(name)
        except CassetteError as e:
            raise ControlError(str(e)) from None

    def _reset(self, name: str, state: CassetteControl, body: dict[str, Any]) -> None:
        state.counters = Counters(time.monotonic(), peak_in_flight=state.in_flight, history=self.history)

    def _set_limits(self, name: str, state: CassetteControl, body: dict[str, Any]) -> None:
        self.limiter.set_limits(name, Limits(_limit(body, "rpm"), _limit(body, "tpm")))

    def _fail_next(self, name: str, state: CassetteControl, body: dict[str, Any]) -> None:
        n, status = _integer(body, "n", 1), _status(body)
        delays = body.get("retry_delays_s") or []
        if not isinstance(delays, list) or len(delays) > n or (delays and status != 429):
            raise ControlError(
                f'"retry_delays_s" must be a list of at most "n" ({n}) delays, and only for status 429, got {delays!r}.'
            )
        for delay in delays:
            if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay < MAX_LATENCY_S:
                raise ControlError(
                    f'each of "retry_delays_s" must be seconds from 0 to {MAX_LATENCY_S:g}, got {delay!r}.'
                )
        state.fail_next, state.fail_status, state.fail_delays = n, status, deque(float(d) for d in delays)

    def _cut_stream(self, name: str, state: CassetteControl, body: dict[str, Any]) -> None:
        state.stream_fault = StreamFault(_integer(body, "after_chunks", 0))

    def _error_mid_stream(self, name: str, state: CassetteControl, body: dict[str, Any]) -> None:
        state.stream_fault = StreamFault(_integer(body, "after_chunks", 0), _status(body))

    def _hold_stream(self, name: str, state: CassetteControl, body: dict[str, Any]) -> None:
        state.release = asyncio.Event()  # a stream still held by an earlier hold keeps its own event
        state.stream_fault = StreamFault(_integer(body, "after_text_chunks", 0), release=state.release)

    def _release_stream(self, name: str, state: CassetteControl, body: dict[str, Any]) -> None:
        state.release.set()
        if state.stream_fault is not None and state.stream_fault.release is not None:
            state.stream_fault = None  # released before any stream took it

    def _add_latency(self, name: str, state: CassetteControl, body: dict[str, Any]) -> None:
        seconds = body.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < MAX_LATENCY_S:
            raise ControlError(f'"seconds" must be a number of seconds from 0 to {MAX_LATENCY_S:g}, got {seconds!r}.')
        state.latency_s = float(seconds)

    def _set_unmatched(self, name: str, state: CassetteControl, body: dict[str, Any]) -> None:
        policy = body.get("unmatched")
        if policy is not None and policy not in UNMATCHED_POLICIES:
            choices = " or ".join(f'"{p}"' for p in UNMATCHED_POLICIES)
            raise ControlError(f'"unmatched" must be {choices}, or null for the server\'s choice; got {policy!r}.')
        state.unmatched = policy

    def _clear(self, name: str, state: CassetteControl, body: dict[str, Any]) -> None:
        state.fail_next, state.stream_fault, state.latency_s = 0, None, 0.0
        state.fail_delays.clear()
        state.release.set()


REPLY_BYTES = 1024**2
"""The largest JSON reply whose text and usage the stats note, bytes; a model's answer is far smaller."""


def _json_reply(response: web.StreamResponse) -> Any:
    """The parsed JSON body of a whole reply (``None`` for a stream, a non-JSON or unreadable body, or one over
    :data:`REPLY_BYTES`)."""
    body = response.body if isinstance(response, web.Response) else None
    if not isinstance(body, bytes) or len(body) > REPLY_BYTES or response.content_type != "application/json":
        return None
    try:
        return parse_json(body)
    except ApiError:
        return None


def _injected_failure(state: CassetteControl) -> web.Response:
    """The reply to a request ``fail_next`` fails: its status, and for a 429 the next ``retryDelay`` given, if any."""
    message = injected("fail_next", state.fail_status)
    if not state.fail_delays:
        return error_response(state.fail_status, message)
    delay_s = state.fail_delays.popleft()
    details = [{"@type": RETRY_INFO_TYPE, "retryDelay": f"{delay_s:.3f}s"}]
    return error_response(state.fail_status, f"{message} Please retry in {delay_s:.3f}s.", details=details)


def _integer(body: dict[str, Any], key: str, minimum: int) -> int:
    """``body[key]`` as an integer of at least ``minimum``."""
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ControlError(f'"{key}" must be an integer of at least {minimum}, got {value!r}.')
    return value


def _limit(body: dict[str, Any], key: str) -> int | None:
    """``body[key]`` as a positive integer limit, or ``None`` (no limit) when absent or null."""
    if body.get(key) is None:
        return None
    try:
        return _integer(body, key, 1)
    except ControlError:
        raise ControlError(f'"{key}" must be an integer of at least 1 or null (no limit), got {body[key]!r}.') from None


def _status(body: dict[str, Any]) -> int:
    """``body["status"]``, one of :data:`FAULT_STATUSES`."""
    status = body.get("status")
    if status not in FAULT_STATUSES or isinstance(status, bool):
        raise ControlError(f'"status" must be one of {", ".join(map(str, FAULT_STATUSES))}, got {status!r}.')
    return status
