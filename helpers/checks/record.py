"""The replay server's own record of the learner's requests, which checks judge by (never the client's clock),
holding a stream back so a check can see what the learner's code does with its first chunk, and keeping improvised
stand-ins out of what a check judges (:func:`recordings_only`, :func:`improvised`)."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .. import control
from ..replay.wire.framing import IMPROVISED_HEADER
from ..workbook import WorkbookError, current_session

HOLD_S = 5.0
"""How long a check holds a replayed stream back after its first text (:func:`holding_stream`) while it waits for
the learner's code to show it has that text: a function to return, a script to print, an endpoint to send an event.
Code that waits for the rest instead is released after this long; right code does its part within milliseconds."""


@contextlib.contextmanager
def recordings_only() -> Iterator[None]:
    """For the block, the session's replay server answers the cassette's unmatched requests with the 404 that names
    the nearest recording, never an improvised stand-in (``helpers.control.set_unmatched``); afterwards, the server's
    own choice again. A check's calls (and the learner's functions it calls, a script it runs) then meet exactly what
    they would with ``helpers.setup(..., unmatched="error")``. Does nothing live, in record mode or before
    :func:`helpers.setup`; a server it cannot reach is left to the calls to meet."""
    try:
        replay = current_session().mode == "replay"
    except WorkbookError:
        replay = False
    if replay:
        with contextlib.suppress(WorkbookError):
            control.set_unmatched("error")
    try:
        yield
    finally:
        if replay:
            with contextlib.suppress(WorkbookError):
                control.set_unmatched(None)


def improvised(value: Any) -> bool:
    """Whether ``value`` is an SDK response that an improvised stand-in answered (its HTTP response carries the
    replay server's ``x-workbook-improvised`` header): a value a check must not judge."""
    headers = getattr(getattr(value, "sdk_http_response", None), "headers", None)
    return isinstance(headers, Mapping) and any(str(name).lower() == IMPROVISED_HEADER for name in headers)


@dataclass
class StreamHold:
    """The hold of :func:`holding_stream`.

    Attributes:
        active: whether the stream is held (replay only; record mode relays streams as they come, live has no
            server to ask).
        released: whether :meth:`release` let it go before the block ended.
    """

    active: bool
    released: bool = False

    def release(self) -> None:
        """Let the held stream go on (once; nothing when not :attr:`active`)."""
        if self.active and not self.released:
            self.released = True
            control.release_stream()

    @property
    def nudge(self) -> tuple[float, Callable[[], None]] | None:
        """For :func:`run_bounded`: release the stream if the learner's code is still running after :data:`HOLD_S`."""
        return (HOLD_S, self.release) if self.active else None


@contextlib.contextmanager
def holding_stream(after_text_chunks: int = 1) -> Iterator[StreamHold]:
    """Hold the cassette's next replayed stream back after its first text (after ``after_text_chunks`` chunks with
    text: 0 holds it before any) for the block, released at the latest when it ends (``helpers.control.hold_stream``).

    While the stream is held, its last chunk does not exist yet: code that shows it has the first text meanwhile
    (returns a TTFT, prints, sends an event) cannot have waited for the whole answer, however busy the machine. That
    is causality, not a clock, so a check can judge streaming without timing it.

    Yields:
        The :class:`StreamHold`.
    """
    hold = StreamHold(active=current_session().mode == "replay")
    if hold.active:
        control.hold_stream(after_text_chunks=after_text_chunks)
    try:
        yield hold
    finally:
        if hold.active:
            control.release_stream()  # also drops a hold that no stream took


@dataclass(frozen=True)
class ServerView:
    """One streamed request as the replay server saw it, seconds from its arrival.

    Attributes:
        first_byte_s: when its status line went out (just before the first chunk).
        chunks_s: when each chunk went out.
        end_s: when it ended, or ``None`` while in flight.
    """

    first_byte_s: float
    chunks_s: tuple[float, ...]
    end_s: float | None
    first_text_s: float | None = None
    """When the first chunk with answer text went out (``None``: none did): no true TTFT is shorter."""


def call_kind(paths: list[str]) -> str | None:
    """What kind of model call ``paths`` (API paths the server saw) hold: ``"stream"``, ``"generate"``, or ``None``."""
    if any(p.endswith(":streamGenerateContent") for p in paths):
        return "stream"
    if any(p.endswith(":generateContent") for p in paths):
        return "generate"
    return None


def stream_seen() -> tuple[str | None, ServerView | None]:
    """The learner's model call since the last ``control.reset_stats()``, from the server's record: its kind
    (:func:`call_kind`) and, for a stream whose first byte went out, its timing.

    Raises:
        helpers.WorkbookError: no replay server in this session (see :func:`helpers.control.stats`).
    """
    requests = control.stats().requests
    kind = call_kind([r.path for r in requests])
    for r in requests:
        if r.path.endswith(":streamGenerateContent") and r.first_byte_s is not None:
            end = None if r.end_s is None else r.end_s - r.start_s
            text = None if r.first_text_s is None else r.first_text_s - r.start_s
            return kind, ServerView(r.first_byte_s - r.start_s, tuple(t - r.start_s for t in r.chunks_s), end, text)
    return kind, None


CLOSE_WAIT_S = 2.0
"""How long :func:`stream_ended` waits for the server to see a held stream closed, seconds: a client that closed it
did so before the check asked; the server notices within milliseconds (``GONE_POLL_S``)."""


def stream_ended(within_s: float = CLOSE_WAIT_S) -> bool:
    """Whether the learner's streamed model call (the last since ``control.reset_stats()``: ``generateContent``, an
    interaction, a chat completion) has ended by the server's record,
    waiting up to ``within_s`` seconds. While a check holds the stream back (:func:`holding_stream`), it ends only if
    the client closed it: code that returned with the stream still open (a reference kept to it) leaves it running.

    Raises:
        helpers.WorkbookError: no replay server in this session.
    """
    deadline = time.monotonic() + within_s
    while True:
        streams = [r for r in model_calls() if r.streamed]
        if streams and streams[-1].end_s is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


MODEL_CALL = re.compile(r":(?:stream)?[gG]enerateContent$|chat/completions$|(?:^|/)interactions$")
"""The API paths of a model call: ``generateContent``, ``streamGenerateContent``, the OpenAI-compatible
``chat/completions``, an interaction."""


def model_calls() -> list[control.RequestTiming]:
    """The model calls the server saw since the last ``control.reset_stats()``, in arrival order, each with what it
    received and sent (:class:`helpers.control.RequestTiming`).

    Raises:
        helpers.WorkbookError: no replay server in this session (see :func:`helpers.control.stats`).
    """
    return [r for r in control.stats().requests if MODEL_CALL.search(r.path)]


@dataclass
class Record:
    """What :func:`recording` saw: the server's record of the model calls made in its block.

    Attributes:
        calls: each model call (:func:`model_calls`), filled when the block ends; ``None`` live, where no server
            keeps a record (a check then judges by what :func:`~helpers.checks.watching` saw).
    """

    calls: list[control.RequestTiming] | None = None

    def asked(self, prompt: str) -> list[control.RequestTiming]:
        """The calls whose prompt (last user turn) was ``prompt``."""
        return [r for r in self.calls or [] if r.prompt == prompt]


@contextlib.contextmanager
def recording() -> Iterator[Record]:
    """Read the server's own record of the model calls made in the block (from a ``control.reset_stats()`` at its
    start), so a check compares the learner's result with what the server received and sent rather than accepting
    any value of the right type. In replay and record mode; live, :attr:`Record.calls` stays ``None``.

    Yields:
        The :class:`Record`, filled when the block ends without an error.
    """
    seen = Record()
    server = current_session().server_url is not None
    if server:
        control.reset_stats()
    yield seen
    if server:
        seen.calls = model_calls()
