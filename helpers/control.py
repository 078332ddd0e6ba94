"""Steer the replay server from a notebook: rate limits, injected faults, and the live stats exercise checks read
(what each request said, what was sent back and when).

Introduced in ``02_async``. Each function talks to the replay server's control endpoint,
``{server_url}/_control/{cassette}/...`` (JSON in and out), and acts on one cassette only, so notebooks sharing a
server never disturb each other. ``cassette`` and ``server_url`` default to the session :func:`helpers.setup` chose.
All durations are seconds of the client's wall clock (never divided by the server's ``--speed``).

Control routes need the server's per-server token (``SECURITY.md``). Every call here finds it by itself: a server
publishes its token, while it runs, in a private runtime file of this user (:mod:`helpers.replay.pipeline.server_token`,
mode 0600 on POSIX, in a folder only they can read), and :func:`_request` sends the token of the server at
``server_url`` in the ``x-workbook-token`` header, whoever started that server (``helpers.setup``, a test, a
terminal). Nothing needs passing.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .classroom.client import error_message
from .replay.pipeline import server_token
from .workbook import WorkbookError, current_session

CONTROL_TIMEOUT_S = 10.0
"""How long a control call may take before it is reported as failed; they answer in milliseconds."""


@dataclass(frozen=True)
class Sent:
    """One piece of an answer as the server sent it: a stream's chunk, or a whole JSON reply.

    Attributes:
        at_s: when it began to be written (a chunk; the client cannot have had it earlier) or was all written (a
            reply), seconds since the last :func:`reset_stats`.
        text: the answer text it carried (not thoughts; ``""`` for none), as far as the server keeps it
            (``helpers.replay.pipeline.control_panel.TEXT_CHARS``, 8 000 characters a request).
        usage: the usage it carried, as sent on the wire (``usageMetadata`` with camelCase keys; an OpenAI-compatible
            chunk's ``usage``; an interaction's), or ``None``.
    """

    at_s: float
    text: str
    usage: dict[str, Any] | None


@dataclass(frozen=True)
class RequestTiming:
    """One API request as the server saw it, times in seconds since the last :func:`reset_stats`: what it received
    and what it sent back, and when. Exercise checks judge by this record, never by the client's clock.

    Attributes:
        path: the API path after the cassette segment, e.g. ``v1/models/gemini-3.8-flash:generateContent``.
        status: the HTTP status sent, or ``None`` while the server has not answered yet.
        start_s: when the request arrived.
        first_byte_s: when the status line and headers went out (``None`` before that).
        end_s: when the response was complete, or the connection was dropped (``None`` while in flight).
        chunks_s: when each chunk of a streamed answer began to be written, in order (empty for other responses):
            the client cannot have received a chunk earlier, whatever its own clock says.
        in_flight: the cassette's requests in flight when it arrived, itself included.
        prompt: the text of the request's last user turn (``None``: none, or not kept), at most 2 000 characters.
        system: the text of its system instruction (``None``: none), at most 2 000 characters.
        streamed: whether the answer went out as a stream.
        sent: what went out: each chunk of a stream, or the one JSON reply of a 2xx answer (empty for an error).
            The server keeps prompts, texts and usage for its latest 500 requests (``DETAIL_HISTORY``); older ones
            keep their times only.
    """

    path: str
    status: int | None
    start_s: float
    first_byte_s: float | None
    end_s: float | None
    chunks_s: tuple[float, ...] = ()
    in_flight: int = 1
    prompt: str | None = None
    system: str | None = None
    streamed: bool = False
    sent: tuple[Sent, ...] = ()

    @property
    def text(self) -> str:
        """The answer text sent, all chunks joined."""
        return "".join(s.text for s in self.sent)

    @property
    def usage(self) -> dict[str, Any] | None:
        """The final usage sent: the last one any chunk (or the reply) carried, or ``None``."""
        return next((s.usage for s in reversed(self.sent) if s.usage is not None), None)

    @property
    def first_text_s(self) -> float | None:
        """When the first chunk carrying answer text began to be written (``None``: none did)."""
        return next((s.at_s for s in self.sent if s.text), None)


@dataclass(frozen=True)
class Stats:
    """What the server saw for one cassette since the last :func:`reset_stats`.

    Attributes:
        received: API requests that arrived.
        answered: requests answered with a 2xx status (a stream cut or failed mid-way on purpose still counts:
            its 200 status went out).
        rejected: how many requests got each non-2xx status, e.g. ``{429: 20}``.
        in_flight: requests arrived but not finished, now.
        peak_in_flight: the most requests in flight at once.
        requests: one :class:`RequestTiming` per request, in arrival order: the last
            ``helpers.replay.pipeline.control_panel.STATS_HISTORY`` (10 000) of them.
        requests_dropped: how many earlier requests fell off ``requests`` (they are still counted above).
    """

    received: int
    answered: int
    rejected: dict[int, int]
    in_flight: int
    peak_in_flight: int
    requests: list[RequestTiming]
    requests_dropped: int = 0


def _request(
    method: str, action: str, payload: dict[str, Any] | None, cassette: str | None, server_url: str | None
) -> Any:
    """Call ``{server_url}/_control/{cassette}/{action}`` and return the parsed JSON answer.

    Sends the server's token (see the module docstring) when one is published for ``server_url``; in a classroom
    room (``helpers.setup(..., room=, seat=)``) the seat's token, which the room's relay takes to the seat's own
    replay server.

    Raises:
        WorkbookError: no replay server in this session (live mode), the server is unreachable, or it refused the
            call (its message, which says what to fix, is passed on).
    """
    if cassette is None or server_url is None:
        session = current_session()
        if session.server_url is None:
            raise WorkbookError(
                "helpers.control needs the replay server, and this session is live (WORKBOOK_MODE=live): the real "
                "API's limits and faults can't be steered. Unset WORKBOOK_MODE and re-run the setup cell to replay."
            )
        cassette = cassette or session.cassette
        server_url = server_url or session.server_url
    url = f"{server_url.rstrip('/')}/_control/{cassette}/{action}"
    data = None if payload is None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    try:
        token = _seat_token(server_url) or server_token.find(server_url)
    except server_token.RuntimeDirError as e:
        raise WorkbookError(str(e)) from None
    if token is not None:
        headers[server_token.HEADER] = token
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    # A server on loopback is reached directly, whatever proxy variables are set (a proxy cannot reach it).
    direct = server_token.is_loopback(urllib.parse.urlsplit(url).hostname or "")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({})) if direct else urllib.request.build_opener()
    try:
        with opener.open(request, timeout=CONTROL_TIMEOUT_S) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        raise WorkbookError(f"the replay server refused {method} {url}: {error_message(e)}") from None
    except (urllib.error.URLError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        raise WorkbookError(
            f"could not reach the replay server at {server_url} ({reason}). Re-run the notebook's setup cell: it "
            "restarts a server that has stopped."
        ) from None


def _seat_token(server_url: str) -> str | None:
    """The seat's token when ``server_url`` is the room this session joined; ``None`` otherwise."""
    try:
        session = current_session()
    except WorkbookError:
        return None
    return session.seat if session.room is not None and session.room == server_url.rstrip("/") else None


def stats(*, cassette: str | None = None, server_url: str | None = None) -> Stats:
    """The cassette's live :class:`Stats` since the last :func:`reset_stats`.

    Raises:
        WorkbookError: see :func:`_request`.
    """
    data = _request("GET", "stats", None, cassette, server_url)
    return Stats(
        received=data["received"],
        answered=data["answered"],
        rejected={int(status): count for status, count in data["rejected"].items()},
        in_flight=data["in_flight"],
        peak_in_flight=data["peak_in_flight"],
        requests=[_request_timing(r) for r in data["requests"]],
        requests_dropped=data["requests_dropped"],
    )


def _request_timing(data: dict[str, Any]) -> RequestTiming:
    """A :class:`RequestTiming` from its JSON in the stats."""
    sent = tuple(Sent(**piece) for piece in data.get("sent", ()))
    return RequestTiming(**{**data, "chunks_s": tuple(data["chunks_s"]), "sent": sent})


def reset_stats(*, cassette: str | None = None, server_url: str | None = None) -> None:
    """Zero the cassette's counters and timeline; times in later :func:`stats` count from now.

    Requests still in flight keep counting in ``in_flight`` but are left out of the new counters and timeline.
    """
    _request("POST", "stats/reset", {}, cassette, server_url)


def set_limits(
    rpm: int | None = None, tpm: int | None = None, *, cassette: str | None = None, server_url: str | None = None
) -> None:
    """Limit the cassette's model calls to ``rpm`` requests and ``tpm`` tokens a minute, per model (``None``: no limit).

    Overrides the server's ``--rpm``/``--tpm`` for this cassette. The minute is scaled by the server's ``--speed``;
    requests already admitted in the current window keep counting. Over a limit, calls get the API's 429
    RESOURCE_EXHAUSTED with a ``RetryInfo`` delay (see ``helpers.replay.pipeline.rate_limits``).

    Raises:
        WorkbookError: a limit that is not a positive integer, or see :func:`_request`.
    """
    _request("POST", "limits", {"rpm": rpm, "tpm": tpm}, cassette, server_url)


def fail_next(
    n: int,
    status: int = 503,
    *,
    retry_delays_s: Sequence[float] = (),
    cassette: str | None = None,
    server_url: str | None = None,
) -> None:
    """Answer the cassette's next ``n`` API requests (of any kind) with ``status`` in the API's error shape.

    ``status`` is 400, 429, 500, 502, 503 or 504; the SDK raises ``errors.ClientError`` for 400 and 429,
    ``ServerError`` for the rest. An injected 429 carries no ``RetryInfo`` unless ``retry_delays_s`` gives its
    ``retryDelay``: the first injected 429 carries the first delay, the next the second, and so on (seconds, at most
    ``n`` of them; ``02_async`` checks that a retry waits as long as each says). The 429s of :func:`set_limits` always
    carry one. An injected 400 (``INVALID_ARGUMENT``) is one no retry mends (``03_streaming``'s check).

    Raises:
        WorkbookError: ``n`` below 1, another status, delays for a status other than 429, more delays than ``n``, or
            a delay not from 0 to 3600 s; or see :func:`_request`.
    """
    payload = {"n": n, "status": status, "retry_delays_s": list(retry_delays_s)}
    _request("POST", "faults/fail_next", payload, cassette, server_url)


def cut_stream(after_chunks: int, *, cassette: str | None = None, server_url: str | None = None) -> None:
    """Drop the connection of the cassette's next stream after ``after_chunks`` chunks, mid-body.

    The client sees an incomplete body while iterating: ``httpx2.RemoteProtocolError`` from a sync client,
    ``aiohttp.ClientPayloadError`` from ``client.aio``. The SDK does not retry it, whatever its retry options.

    Raises:
        WorkbookError: ``after_chunks`` below 0, or see :func:`_request`.
    """
    _request("POST", "faults/cut_stream", {"after_chunks": after_chunks}, cassette, server_url)


def error_mid_stream(
    after_chunks: int, status: int = 503, *, cassette: str | None = None, server_url: str | None = None
) -> None:
    """End the cassette's next stream after ``after_chunks`` chunks with an error event (``data: {"error": ...}``).

    The SDK raises ``errors.ServerError`` for a 5xx ``status`` (``ClientError`` for 400 and 429) while iterating; retry
    options do not restart a stream that has begun.

    Raises:
        WorkbookError: ``after_chunks`` below 0 or a status other than 400, 429, 500, 502, 503 or
            504, or see :func:`_request`.
    """
    payload = {"after_chunks": after_chunks, "status": status}
    _request("POST", "faults/error_mid_stream", payload, cassette, server_url)


def hold_stream(after_text_chunks: int = 1, *, cassette: str | None = None, server_url: str | None = None) -> None:
    """Hold the cassette's next replayed stream back once ``after_text_chunks`` chunks with answer text have gone out
    (chunks of thoughts or metadata only go out but do not count), until :func:`release_stream`.

    The client has the first text and waits for the rest, as it would for a slow model: a check can then see what a
    learner's code does with the first chunk before the last one exists. A held stream goes on by itself after two
    minutes; :func:`clear_faults` releases it too. Record mode relays streams unheld.

    Raises:
        WorkbookError: ``after_text_chunks`` below 0, or see :func:`_request`.
    """
    _request("POST", "faults/hold_stream", {"after_text_chunks": after_text_chunks}, cassette, server_url)


def release_stream(*, cassette: str | None = None, server_url: str | None = None) -> None:
    """Let the cassette's held stream (:func:`hold_stream`) go on, and drop a hold no stream has taken yet."""
    _request("POST", "faults/release_stream", {}, cassette, server_url)


def add_latency(seconds: float, *, cassette: str | None = None, server_url: str | None = None) -> None:
    """Delay every API request of the cassette by ``seconds`` before its response starts (0 removes the delay).

    Raises:
        WorkbookError: ``seconds`` not from 0 to 3600, or see :func:`_request`.
    """
    _request("POST", "faults/latency", {"seconds": seconds}, cassette, server_url)


def clear_faults(*, cassette: str | None = None, server_url: str | None = None) -> None:
    """Remove every fault injected into the cassette (pending failures, stream faults, latency) and release a held
    stream; limits stay."""
    _request("POST", "faults/clear", {}, cassette, server_url)


def inject_batch_state(name: str, state: str, *, cassette: str | None = None, server_url: str | None = None) -> None:
    """End batch job ``name`` (``batches/ID``) now in ``state``: ``"FAILED"`` or ``"EXPIRED"``.

    Introduced in ``05_batch``, to show how a job that fails or expires looks. ``state`` may also be spelt
    ``BATCH_STATE_*`` or ``JOB_STATE_*`` (a ``types.JobState`` works). The job must still be pending or running;
    its ``batchStats`` stop where they are and it reports no results (see ``helpers.replay.services.batches_api``).

    Raises:
        WorkbookError: another state, an unknown or already finished job, or see :func:`_request`.
    """
    batch_id = name.removeprefix("batches/")
    _request("POST", f"batches/{batch_id}/state", {"state": state}, cassette, server_url)


def set_unmatched(policy: str | None, *, cassette: str | None = None, server_url: str | None = None) -> None:
    """Choose what replay does with the cassette's requests that no recording matches: ``"improvise"`` (a labelled
    offline stand-in), ``"error"`` (the 404 that names the nearest recording), or ``None`` (the server's choice,
    ``serve --unmatched``, which :func:`helpers.setup` sets). Exercise checks set ``"error"`` while they judge
    (:mod:`helpers.checks`); introduced in ``00_setup``.

    Raises:
        WorkbookError: another ``policy``, or see :func:`_request`.
    """
    _request("POST", "unmatched", {"unmatched": policy}, cassette, server_url)
