"""The request pipeline's first step and its shared types: every API call is parsed here once, into an
:class:`ApiRequest`, before any service sees it.

The pipeline layer (``docs/server.md``). :func:`parse` is the outermost middleware: it notes the arrival time
(each request's recorded timing counts from it), checks the cassette name, strips nothing from the path but reads
its version, and parses the JSON body. A request it refuses gets the API's error shape; one it accepts is in
``request[API]`` for the control middleware (:mod:`.control_panel`), the service that answers it, and the backend
(:mod:`.playback` or :mod:`.recorder`).
"""

from __future__ import annotations

import asyncio
import enum
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.web_protocol import RequestPayloadError

from ..cassettes.cassette import Reply, request_key, strip_version
from ..cassettes.store import MAX_NAME_LENGTH, name_problem
from ..wire.framing import (
    JSON_CONTENT_TYPE,
    SSE_CONTENT_TYPE,
    ApiError,
    check_request_body,
    error_json,
    json_bytes,
    sse_event,
)
from .socket_server import BODY_TIMEOUT, IDLE_TIMEOUT_S, arrival

CONTROL_PREFIX = "_control"
"""The first path segment of control routes; cassette names cannot start with ``_``, so none is shadowed."""

MAX_BODY_BYTES = 64 * 1024**2
"""The largest request body the server (and the synthetic upstream) reads, bytes: 64 MiB, eight of the SDK's 8 MiB
upload chunks; a larger one gets 413 in the API's error shape (:mod:`.error_middleware`)."""
MAX_JSON_DEPTH = 100
"""The deepest nesting of a JSON body the server reads (protobuf's default recursion limit, which bounds the real
API's requests too); deeper bodies get a 400 rather than a ``RecursionError`` somewhere below."""

OFF_LOOP_BYTES = 64 * 1024
"""A JSON body larger than this is parsed and checked in a worker thread: a 20 MB inline batch takes the CPU for a
while, and every other client's request must still be answered meanwhile."""
SURROGATE = re.compile("[\ud800-\udfff]")
"""Half of a UTF-16 surrogate pair: JSON's ``\\ud800`` escape reads as one, and UTF-8 cannot encode it."""

VERSION = re.compile(r"^(?:upload/|download/)?(v\d+(?:alpha|beta)?\d*)/")
UPLOAD_STATUS = "x-goog-upload-status"


class Mode(enum.Enum):
    """What the server does with an API call: one value, chosen at start."""

    REPLAY = "replay"
    """Answer from the cassettes."""
    RECORD = "record"
    """Forward every call upstream and record it (Files and Batch calls too)."""
    RECORD_LOCAL = "record-local"
    """Forward and record model calls; serve the Files and Batch APIs here, as replay does (``--local-files-batches``,
    for the synthetic upstream, which has neither)."""

    @property
    def records(self) -> bool:
        """True in both record modes."""
        return self is not Mode.REPLAY

    @property
    def forwards_files_batches(self) -> bool:
        """True when Files and Batch calls go upstream."""
        return self is Mode.RECORD


@dataclass
class ApiRequest:
    """An API call as the server sees it, parsed once.

    Attributes:
        cassette: the first path segment, a valid cassette name.
        method: the HTTP method.
        path: the API path with its version segment, e.g. ``v1/models/gemini-3.8-flash:generateContent``.
        version: that segment, e.g. ``v1`` (``""`` when the path has none).
        query: the query parameters (the API key among them, if the client sent it so).
        headers: the request's headers.
        raw_body: the body's bytes.
        body: the parsed JSON body; ``None`` without one, and for an upload's data.
        start: when the request arrived, seconds of the event loop's clock.
    """

    cassette: str
    method: str
    path: str
    version: str
    query: dict[str, str]
    headers: Mapping[str, str]
    raw_body: bytes
    body: Any
    start: float

    @property
    def api_path(self) -> str:
        """The path without its version segment, as cassettes store it."""
        return strip_version(self.path)

    @cached_property
    def key(self) -> str:
        """The request's :func:`helpers.replay.cassettes.cassette.request_key`."""
        return request_key(self.method, self.path, self.query, self.body)


API = web.RequestKey("workbook_api_request", ApiRequest)
"""Where :func:`parse` leaves the :class:`ApiRequest`."""
UNWRAPPED = web.RequestKey("workbook_unwrapped", tuple)
"""``(headers, query)`` of a request whose key carried the server's token (``KEY.TOKEN``, :mod:`.guard`), with the
token cut off: what :func:`parse` puts in the :class:`ApiRequest`, so that only the key travels upstream."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Backend(Protocol):
    """Where API calls that no local service answers go: :class:`.playback.Replayer` or :class:`.recorder.Recorder`."""

    async def answer(self, request: web.Request, api: ApiRequest) -> web.StreamResponse:
        """Answer ``api`` on ``request``'s connection."""
        ...


async def sleep_until(deadline: float) -> None:
    """Sleep until ``time.monotonic()`` reaches ``deadline`` (seconds of that clock); return at once if it has.

    One ``asyncio.sleep`` is not enough: uvloop (libuv) schedules a timer from the loop's cached clock, which is
    as stale as the current loop iteration is long, in whole milliseconds, so on a busy machine the timer fires early.
    Sleeping again for what is left keeps every recorded delay a lower bound, which is what replay promises.
    """
    while (delay := deadline - time.monotonic()) > 0:
        await asyncio.sleep(delay)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON reply formatted as the API formats it (two-space indent)."""
    return raw_json_response(json_bytes(body), status, headers)


def raw_json_response(data: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON reply of already-encoded ``data``."""
    return web.Response(status=status, body=data, headers={"Content-Type": JSON_CONTENT_TYPE, **(headers or {})})


def error_response(
    code: int,
    message: str,
    status: str | None = None,
    details: list[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An HTTP error reply in the API's JSON shape; the SDK raises ``errors.ClientError`` (4xx) or ``ServerError``."""
    return json_response(error_json(code, message, status, details), status=code, headers=headers)


def api_error_response(error: ApiError) -> web.Response:
    """The reply for an :class:`ApiError`."""
    return json_response(error.to_json(), status=error.code, headers=error.headers)


@dataclass(frozen=True)
class Timed:
    """An answer planned ahead, to send over time: what the synthetic upstream and replay's improviser make.

    Attributes:
        reply: in the cassette's shape (:data:`helpers.replay.cassettes.cassette.Reply`): a JSON reply sent
            ``offset_s`` seconds after the request arrived, or a stream whose chunks each have their offset.
        headers: extra response headers (the provenance that labels it synthetic).
    """

    reply: Reply
    headers: dict[str, str]


async def send_timed(request: web.Request, start: float, answer: web.Response | Timed) -> web.StreamResponse:
    """Send ``answer`` on ``request``'s connection: a ready reply at once, a :class:`Timed` one each part at its
    offset after ``start`` (seconds of ``time.monotonic()``). No faults and no stats: how the synthetic upstream
    answers (replay plays its cassettes through :mod:`.playback`)."""
    if isinstance(answer, web.Response):
        return answer
    reply = answer.reply
    if "chunks" not in reply:
        await sleep_until(start + reply["offset_s"])
        return json_response(reply["body"], status=reply["status"], headers=answer.headers)
    stream = web.StreamResponse(status=reply["status"], headers={"Content-Type": SSE_CONTENT_TYPE, **answer.headers})
    for chunk in reply["chunks"]:
        await sleep_until(start + chunk["offset_s"])
        if not stream.prepared:
            await stream.prepare(request)
        await stream.write(sse_event(chunk["data"], event=chunk.get("event"), raw=chunk.get("raw", False)))
    if not stream.prepared:  # a stream of no chunks: its headers, then its end
        await stream.prepare(request)
    await stream.write_eof()
    return stream


def parse_json(raw: bytes) -> Any:
    """A request body's JSON value.

    Raises:
        ApiError: 400 for bytes that are not UTF-8 JSON, an integer too long to read (over 4300 digits), nesting
            deeper than :data:`MAX_JSON_DEPTH`, or a string or field name holding half of a surrogate pair (JSON's
            ``"\\ud800"``, which no UTF-8 text can hold); the message says which, and where.
    """
    try:
        value = json.loads(raw)
    except RecursionError:
        raise ApiError(400, f"Invalid JSON payload received. It nests deeper than {MAX_JSON_DEPTH} levels.") from None
    except (UnicodeDecodeError, ValueError) as e:  # ValueError: JSONDecodeError, or an int past the digit limit
        raise ApiError(400, f"Invalid JSON payload received. {e}.") from None
    _check_tree(value, MAX_JSON_DEPTH)
    return value


def _check_tree(value: Any, limit: int) -> None:
    """Refuse ``value`` if it nests lists and objects more than ``limit`` deep, or holds a lone surrogate in a string
    or a field name (iteratively: no recursion to exhaust; the path is built only for the error).

    Raises:
        ApiError: 400 saying which, naming the field for a surrogate.
    """
    stack: list[tuple[Any, int, tuple[str | int, ...]]] = [(value, 1, ())]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, str):
            if SURROGATE.search(item):
                raise _surrogate(where)
            continue
        if isinstance(item, dict):
            children: Any = item.items()
        elif isinstance(item, list):
            children = enumerate(item)
        else:
            continue
        if depth > limit:
            raise ApiError(400, f"Invalid JSON payload received. It nests deeper than {limit} levels.")
        for name, child in children:
            if isinstance(name, str) and SURROGATE.search(name):
                raise _surrogate((*where, "<a field name>"))
            if isinstance(child, (str, dict, list)):
                stack.append((child, depth + 1, (*where, name)))


def _surrogate(where: tuple[str | int, ...]) -> ApiError:
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in where).lstrip(".")
    at = f" at '{path}'" if path else ""
    return ApiError(
        400,
        f"Invalid value{at}: the text holds half of a UTF-16 surrogate pair (such as \\ud800), which is not a "
        "character. Send whole characters (an emoji cut in two by slicing a string leaves one).",
    )


def parse_body(path: str, raw: bytes) -> Any:
    """A model call's JSON body, parsed (:func:`parse_json`) and checked (:func:`.framing.check_request_body`)."""
    body = parse_json(raw)
    check_request_body(strip_version(path), body)
    return body


def is_upload_data(method: str, path: str, headers: Any) -> bool:
    """True for an upload's chunk of bytes (not JSON): ``POST upload/...`` without ``X-Goog-Upload-Command: start``."""
    return path.startswith("upload/") and "start" not in headers.get("X-Goog-Upload-Command", "").lower()


@web.middleware
async def parse(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn an API call into ``request[API]`` (see the module docstring); other paths pass through untouched.

    Its ``start`` is when the request's first bytes arrived (:func:`.socket_server.arrival`), or failing that now.
    """
    start = time.monotonic()
    segments = request.path.split("/", 2)
    if len(segments) < 3 or segments[1] == CONTROL_PREFIX:
        try:
            return await handler(request)
        finally:
            arrival(request)  # forgotten, so that the connection's next request gets its own
    name, path = segments[1], segments[2]
    upload = path.startswith("upload/")
    headers = {UPLOAD_STATUS: "final"} if upload else None
    limit_s = request.app.get(BODY_TIMEOUT, IDLE_TIMEOUT_S)
    try:
        async with asyncio.timeout(limit_s):
            raw = await request.read()
    except (RequestPayloadError, ContentEncodingError):
        response = error_response(
            400,
            f"Invalid value at 'Content-Encoding': the body is not {request.headers.get('Content-Encoding', '')[:40]!r}"
            " data. Send the body as it is, without Content-Encoding, as the SDK does.",
            headers=headers,
        )
        response.force_close()
        request.content.feed_eof()  # nothing more to read: aiohttp would try, fail again and log it
        return response
    except TimeoutError:
        response = error_response(
            408,
            f"the request's body did not arrive within {limit_s:g} s of its head; send the whole body at once "
            "(the server closes the connection).",
            "DEADLINE_EXCEEDED",
        )
        response.force_close()
        return response
    start = arrival(request) or start
    problem = name_problem(name)
    if problem is not None:  # an over-long name is a 400 (the SDK's base URL is wrong), a malformed one a 404
        return error_response(400 if len(name) > MAX_NAME_LENGTH else 404, problem, headers=headers)
    body = None
    version = VERSION.match(path)
    if raw and not is_upload_data(request.method, path, request.headers):
        try:
            large = len(raw) > OFF_LOOP_BYTES
            body = await asyncio.to_thread(parse_body, path, raw) if large else parse_body(path, raw)
        except ApiError as e:
            e.headers.update(headers or {})
            return api_error_response(e)
    sent: Mapping[str, str] = request.headers
    query = dict(request.query)
    unwrapped = request.get(UNWRAPPED)
    if unwrapped is not None:
        sent, query = unwrapped
    request[API] = ApiRequest(
        name,
        request.method,
        path,
        version.group(1) if version else "",
        query,
        sent,
        raw,
        body,
        start,
    )
    return await handler(request)
