"""Record mode: forward each call to an upstream Gemini endpoint, stream the answer back, write it to the cassette.

The backend layer (``docs/server.md``), one of its two backends (the other is :mod:`.playback`). The cassette
in memory is the truth; :meth:`.store.CassetteStore.record` writes each exchange off the event loop. A reply is
finished only once its exchange is on disk: a JSON reply waits for the write, a stream's end-of-body waits for it
(while its client still listens). A write that fails answers with the API's 500 error (an error event on a stream)
saying why; the exchange is not kept, and later ones record as usual.

The client's API key is passed upstream and never stored: a ``?key=`` travels upstream as the ``x-goog-api-key``
header (as the SDK sends it), the key is dropped from the recorded query, never copied from headers into the cassette,
and any exchange that still contains a key the server was sent (an upstream echoing it, a key in upload metadata) is
refused by the cassette writer (:data:`.api_keys.SEEN`) and answered with a 500 saying so, never written.

Streams are always recorded whole. A client that leaves one early (it closed the stream, cancelled the task reading
it, timed out, or was cut off by an injected fault: ``helpers.control.cut_stream``, ``error_mid_stream`` strike
recorded streams as they strike replayed ones) is let go at once, and the recorder reads the rest in the background
before it saves the exchange. Replay then plays the same cell the same way: the server goes on sending until the
client leaves, and an injected fault breaks the stream at the same moment. Recording live, that costs the tokens of
the whole answer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import sys
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp import web

from ..cassettes.cassette import (
    Chunk,
    Exchange,
    JsonReply,
    RecordedRequest,
    Reply,
    StreamReply,
    canonical_query,
    strip_version,
)
from ..cassettes.store import CassetteStore, FolderLock, SaveError
from ..pipeline.api_request import ApiRequest, error_response, json_response
from ..pipeline.control_panel import TIMING, ControlPanel, StreamFault
from ..pipeline.server_token import HEADER, is_loopback
from ..wire.api_keys import KEY_SHAPE, REDACTED, SEEN
from ..wire.defaults import FINISH_TIMEOUT_S
from ..wire.framing import (
    FILE_NOT_ACTIVE,
    SSE_CONTENT_TYPE,
    SYNTHETIC_HEADER,
    UNSCRIPTED_HEADER,
    error_json,
    parse_sse_event,
    sse_event,
)

FORWARDED_HEADERS = (
    "content-type",
    "x-goog-api-key",
    "user-agent",
    "x-goog-api-client",
    "x-server-timeout",
    "authorization",
)
"""Request headers passed upstream. Only the first, third and fourth can reach a cassette (as provenance); the
``openai`` SDK sends its key as ``Authorization: Bearer`` (``08_protocols``), passed on and never stored."""

_SDK_VERSION = re.compile(r"google-genai-sdk/(\S+)")


def file_not_active(response: Reply) -> bool:
    """True for the 400 ``FAILED_PRECONDITION`` a model call gets while a file it names is still ``PROCESSING``.

    The recorder does not keep it: replay answers that from the state of its own files (:mod:`.files_api`), and a
    recorded one would be played to the same call made once the file is ``ACTIVE`` (``04_multimodal`` makes that call
    twice).
    """
    body = response.get("body")
    error = body.get("error") if isinstance(body, dict) else None
    return (
        response["status"] == 400
        and isinstance(error, dict)
        and error.get("status") == "FAILED_PRECONDITION"
        and FILE_NOT_ACTIVE in str(error.get("message", ""))
    )


class Recorder:
    """The record backend: forwards calls to ``upstream`` and records each exchange into its cassette.

    The first time a request is recorded in this run, earlier recordings of the same request are dropped, so a
    record run refreshes what it touches and keeps the rest (:class:`.store.CassetteWriter`).

    Args:
        store: the cassettes; this recorder holds their folder's lock from :meth:`start` to :meth:`close`.
        upstream: the API's base URL, e.g. ``https://generativelanguage.googleapis.com``.
        control: the server's faults and limits (limits apply to recorded calls too, RPM only).
        upstream_token: sent in the ``x-workbook-token`` header of every call to the upstream (a stand-in upstream of
            ``helpers.setup``, which needs it), or ``None``.
    """

    def __init__(
        self, store: CassetteStore, upstream: str, control: ControlPanel, upstream_token: str | None = None
    ) -> None:
        self.store, self.upstream, self.control = store, upstream, control
        self.upstream_token = upstream_token
        self._lock = FolderLock(store.folder)
        self._session: aiohttp.ClientSession | None = None
        self._background: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Take the folder's lock, merge the journals a killed recorder left, and open the upstream session.

        Raises:
            helpers.replay.cassettes.cassette.CassetteError: another recorder holds the folder.
        """
        self._lock.acquire()
        await asyncio.to_thread(self.store.recover)  # what a killed recorder left in journals, now in the files
        # The real API through the proxy the environment names (HTTPS_PROXY on a managed laptop), as the SDK would
        # reach it; a loopback upstream (the synthetic one) directly, whatever proxy variables are set.
        local = is_loopback(urllib.parse.urlsplit(self.upstream).hostname or "")
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
        self._session = aiohttp.ClientSession(timeout=timeout, trust_env=not local)

    async def close(self) -> None:
        """Finish recording the streams still being read (for up to :data:`FINISH_TIMEOUT_S`), wait for their writes,
        merge each cassette's journal into its file, close the upstream session and let the folder's lock go."""
        if self._background:
            await asyncio.wait(self._background, timeout=FINISH_TIMEOUT_S)
        try:
            await self.store.compact()
        except OSError as e:  # the journals stay, and are read with their cassettes
            print(f"record: could not merge a recording journal into its cassette: {e}", file=sys.stderr, flush=True)
        if self._session is not None:
            await self._session.close()
        self._lock.release()

    @property
    def session(self) -> aiohttp.ClientSession:
        """The client session to the upstream (open between :meth:`start` and :meth:`close`)."""
        assert self._session is not None, "Recorder.start() was not awaited"
        return self._session

    def send(
        self, method: str, path: str, query: Mapping[str, str], data: bytes | None, headers: Mapping[str, str]
    ) -> aiohttp.client._RequestContextManager:
        """Send a request to the upstream at ``path`` (with its version segment); the API key travels in
        ``x-goog-api-key``, never in the query (a ``?key=`` from the client is moved there)."""
        url = f"{self.upstream.rstrip('/')}/{path}"
        key = query.get("key")
        if key and not any(name.lower() == "x-goog-api-key" for name in headers):
            headers = {**headers, "x-goog-api-key": key}
        if self.upstream_token is not None:
            headers = {**headers, HEADER: self.upstream_token}
        return self.session.request(method, url, params=canonical_query(dict(query)), data=data, headers=headers)

    def unreachable(self, error: aiohttp.ClientError, headers: dict[str, str] | None = None) -> web.Response:
        """The 502 a client gets when the upstream cannot be reached."""
        message = f"record mode could not reach the upstream {self.upstream}: {error}."
        return error_response(502, f"{message} Check the network and --upstream.", headers=headers)

    async def answer(self, request: web.Request, api: ApiRequest) -> web.StreamResponse:
        """Send ``api`` upstream, relay the reply to ``request`` as it arrives and record it.

        A stream is recorded whole even when the client leaves early (see the module docstring); this returns as
        soon as the client stops receiving it.
        """
        # Limits set for the cassette apply in record mode too, so a lesson that teaches them records as it
        # replays; a refused call is not forwarded, hence not recorded.
        refusal = self.control.admit(api.cassette, api.path, None)
        if refusal is not None:
            return refusal
        headers = {h: api.headers[h] for h in FORWARDED_HEADERS if h in api.headers}
        try:
            upstream = await self.send(api.method, api.path, api.query, api.raw_body or None, headers)
        except aiohttp.ClientError as e:
            return self.unreachable(e)
        if upstream.headers.get("content-type", "").startswith(SSE_CONTENT_TYPE):
            stream = web.StreamResponse(status=upstream.status, headers={"Content-Type": SSE_CONTENT_TYPE})
            client_done = asyncio.Event()
            fault = self.control.take_stream_fault(api.cassette)
            # A task of its own, so it reads on after the client leaves (aiohttp then cancels this handler).
            task = asyncio.ensure_future(self._record_stream(request, api, upstream, stream, fault, client_done))
            self._background.add(task)
            task.add_done_callback(self._stream_recorded)
            await client_done.wait()
            return stream
        async with upstream:
            raw = await upstream.read()
            offset = round(time.monotonic() - api.start, 4)
            try:
                body = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                body = {"non_json_body": raw.decode("utf-8", "replace")}
            response = JsonReply(status=upstream.status, offset_s=offset, body=body)
            if UNSCRIPTED_HEADER not in upstream.headers and not file_not_active(response):
                try:
                    await self.keep(
                        api, recorded_request(api), response, provenance(request.headers, upstream, response)
                    )
                except SaveError as e:
                    return error_response(500, not_saved(e))
        return json_response(body, status=upstream.status)

    async def _record_stream(
        self,
        request: web.Request,
        api: ApiRequest,
        upstream: aiohttp.ClientResponse,
        stream: web.StreamResponse,
        fault: StreamFault | None,
        client_done: asyncio.Event,
    ) -> None:
        """Relay ``upstream``'s stream to the client (:meth:`_relay`), read it to its end, save it, then end the
        client's stream (with an error event if the save failed)."""
        async with upstream:
            try:
                chunks, sending = await self._relay(request, stream, upstream, api.start, fault, client_done)
                error: SaveError | None = None
                response = StreamReply(status=upstream.status, chunks=chunks)
                if chunks and UNSCRIPTED_HEADER not in upstream.headers:
                    try:
                        await self.keep(
                            api, recorded_request(api), response, provenance(request.headers, upstream, response)
                        )
                    except SaveError as e:
                        error = e
                if sending:
                    try:
                        if error is not None:
                            await stream.write(sse_event(error_json(500, not_saved(error))))
                        await stream.write_eof()
                    except ConnectionError:
                        pass
                elif error is not None:
                    print(f"record: {not_saved(error)}", file=sys.stderr, flush=True)
            finally:
                client_done.set()

    def _stream_recorded(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            print(f"record: a stream could not be recorded: {task.exception()!r}", file=sys.stderr, flush=True)

    @staticmethod
    async def _relay(
        request: web.Request,
        stream: web.StreamResponse,
        upstream: aiohttp.ClientResponse,
        start: float,
        fault: StreamFault | None,
        client_done: asyncio.Event,
    ) -> tuple[list[Chunk], bool]:
        """Copy ``upstream``'s server-sent events to ``stream`` line by line; return every event with its offset from
        ``start``, and whether the client still listens. ``fault`` strikes when event number ``fault.after_chunks``
        begins; a hold does not apply (holding the relay would hold the reading too, and record the hold into the
        later chunks' offsets). Once the client has gone (closed the connection, or struck by the fault),
        ``client_done`` is set and the rest is read, not sent."""
        if fault is not None and fault.release is not None:
            fault = None
        timing = request.get(TIMING)
        chunks: list[Chunk] = []
        lines: list[bytes] = []
        sending = True

        async def send(line: bytes) -> None:
            nonlocal sending
            try:
                if fault is not None and len(chunks) == fault.after_chunks and line.startswith(b"data:"):
                    await fault.inflict(request, stream)
                    sending = False
                else:
                    if timing is not None and line.startswith(b"data:"):
                        timing.chunk(parse_sse_event([line.strip()])[1])
                    await stream.write(line)
            except ConnectionError:
                sending = False
            if not sending:
                client_done.set()

        try:
            await stream.prepare(request)
        except ConnectionError:
            sending = False
            client_done.set()
        async for line in upstream.content:
            stripped = line.strip()
            if sending:
                await send(line)
            if stripped:
                lines.append(stripped)
            elif lines:
                chunks.append(received_chunk(lines, round(time.monotonic() - start, 4)))
                lines = []
        if lines:
            chunks.append(received_chunk(lines, round(time.monotonic() - start, 4)))
        return chunks, sending

    async def keep(self, api: ApiRequest, request: RecordedRequest, response: Reply, source: dict[str, Any]) -> None:
        """Write one exchange into ``api``'s cassette.

        Raises:
            SaveError: it could not be written, or it contains an API key the server was sent (see
                :meth:`.store.CassetteStore.record`).
        """
        await self.store.record(api.cassette, Exchange(request, response, source))


def received_chunk(lines: list[bytes], offset_s: float) -> Chunk:
    """One upstream SSE event (its non-empty lines) as a cassette chunk that arrived ``offset_s`` seconds in."""
    event, data, raw = parse_sse_event(lines)
    chunk = Chunk(offset_s=offset_s, data=data)
    if event is not None:
        chunk["event"] = event
    if raw:
        chunk["raw"] = True
    return chunk


def recorded_request(api: ApiRequest) -> RecordedRequest:
    """How ``api`` is written in a cassette: version-less path, query without the key, the parsed body."""
    return RecordedRequest(
        method=api.method, path=strip_version(api.path), query=canonical_query(api.query), body=api.body
    )


def not_saved(error: SaveError) -> str:
    """The message of the 500 a request gets when its exchange could not be written."""
    return f"Record mode could not save this exchange, so it was not recorded ({error}). Earlier recordings are kept."


MAX_AGENT_CHARS = 200
"""The longest ``User-Agent`` kept in a recording's provenance (the SDK's is about 60 characters)."""


def scrubbed_agent(agent: str) -> str:
    """A client's ``User-Agent`` as provenance may keep it: every key the server was sent and anything shaped like a
    key replaced by ``[redacted]``, cut to :data:`MAX_AGENT_CHARS` (a header is the client's to fill)."""
    return SEEN.redact(KEY_SHAPE.sub(REDACTED, agent))[:MAX_AGENT_CHARS]


def provenance(client: Mapping[str, str], upstream: aiohttp.ClientResponse, response: Reply) -> dict[str, Any]:
    """The exchange's provenance: a synthetic upstream's own label, else recorded today by the SDK whose
    ``user-agent`` is in the ``client`` request headers."""
    synthetic = upstream.headers.get(SYNTHETIC_HEADER)
    if synthetic:
        return json.loads(synthetic)
    agent = scrubbed_agent(client.get("user-agent", "unknown"))
    sdk = _SDK_VERSION.search(agent)
    last = response["chunks"][-1]["data"] if "chunks" in response else response["body"]
    return {
        "source": "recorded",
        "date": dt.date.today().isoformat(),
        "sdk": f"google-genai {sdk.group(1)}" if sdk else agent,
        "model_version": last.get("modelVersion") if isinstance(last, dict) else None,
    }
