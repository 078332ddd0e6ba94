"""Record mode: forward each call to an upstream Gemini endpoint, stream the answer back, write it to the cassette.

The client's API key is passed upstream and never stored: it is dropped from the query, never copied from headers
into the cassette, and any exchange that still contains it is refused rather than written.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from ..cassette import Cassette, CassetteError, Exchange, canonical_query, strip_version
from .control import TIMING
from .wire import (
    FILE_NOT_ACTIVE,
    SSE_CONTENT_TYPE,
    SYNTHETIC_HEADER,
    UNSCRIPTED_HEADER,
    error_response,
    json_response,
)

if TYPE_CHECKING:
    from .control import StreamFault
    from .server import ApiRequest, CassetteStore

FORWARDED_HEADERS = ("content-type", "x-goog-api-key", "user-agent", "x-goog-api-client", "x-server-timeout")
"""Request headers passed upstream. Only the first, third and fourth can reach a cassette (as provenance)."""


FINISH_TIMEOUT_S = 60.0
"""How long a recorder that is stopping waits for streams whose clients have left to finish, before it gives up."""

MIN_KEY_LENGTH = 20
"""Keys shorter than this are test placeholders (a real Gemini API key is 39 characters) and may occur anywhere."""

_SDK_VERSION = re.compile(r"google-genai-sdk/(\S+)")


def file_not_active(response: dict[str, Any]) -> bool:
    """True for the 400 ``FAILED_PRECONDITION`` a model call gets while a file it names is still ``PROCESSING``.

    The recorder does not keep it: replay answers that from the state of its own files (:mod:`.files`), and a recorded
    one would be played to the same call made once the file is ``ACTIVE`` (``04_multimodal`` makes that call twice).
    """
    error = response.get("body", {}).get("error") if isinstance(response.get("body"), dict) else None
    return (
        response.get("status") == 400
        and isinstance(error, dict)
        and error.get("status") == "FAILED_PRECONDITION"
        and FILE_NOT_ACTIVE in str(error.get("message", ""))
    )


@dataclass
class Recorder:
    """Forwards calls to ``upstream`` and appends each exchange to its cassette, saving after every exchange.

    The first time a request is recorded in this run, earlier recordings of the same request are dropped, so a
    record run refreshes what it touches and keeps the rest.
    """

    store: CassetteStore
    upstream: str
    _session: aiohttp.ClientSession | None = None
    _refreshed: set[tuple[str, str]] = field(default_factory=set)
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=30))

    async def close(self) -> None:
        """Finish recording the streams whose clients have left (for up to :data:`FINISH_TIMEOUT_S`), then close the
        upstream session."""
        if self._background:
            await asyncio.wait(self._background, timeout=FINISH_TIMEOUT_S)
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        """The client session to the upstream (open between :meth:`start` and :meth:`close`)."""
        assert self._session is not None, "Recorder.start() was not awaited"
        return self._session

    async def forward(
        self,
        request: web.Request,
        api: ApiRequest,
        start: float,
        take_fault: Callable[[], StreamFault | None] = lambda: None,
    ) -> web.StreamResponse:
        """Send ``api`` upstream, relay the reply to ``request`` as it arrives and record it.

        ``take_fault`` is called when the reply turns out to be a stream, and returns the stream fault to inflict on
        the client (used up), if any. A stream is recorded whole even when the client leaves early (see the module
        docstring); this returns as soon as the client stops receiving it.
        """
        loop = asyncio.get_running_loop()
        key_value = request.headers.get("x-goog-api-key") or api.query.get("key") or ""
        headers = {h: request.headers[h] for h in FORWARDED_HEADERS if h in request.headers}
        url = f"{self.upstream.rstrip('/')}/{api.path}"
        try:
            upstream = await self.session.request(
                api.method, url, params=canonical_query(api.query), data=api.raw_body or None, headers=headers
            )
        except aiohttp.ClientError as e:
            return error_response(
                502,
                f"record mode could not reach the upstream {self.upstream}: {e}. Check the network and --upstream.",
            )
        if upstream.headers.get("content-type", "").startswith(SSE_CONTENT_TYPE):
            stream = web.StreamResponse(status=upstream.status, headers={"Content-Type": SSE_CONTENT_TYPE})
            client_done = asyncio.Event()
            # A task of its own, so it reads on after the client leaves (aiohttp then cancels this handler).
            task = asyncio.ensure_future(
                self._record_stream(request, api, upstream, stream, start, take_fault(), key_value, client_done)
            )
            self._background.add(task)
            task.add_done_callback(self._stream_recorded)
            await client_done.wait()
            return stream
        async with upstream:
            raw = await upstream.read()
            offset = round(loop.time() - start, 4)
            try:
                body = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                body = {"non_json_body": raw.decode("utf-8", "replace")}
            response = {"status": upstream.status, "offset_s": offset, "body": body}
            if UNSCRIPTED_HEADER not in upstream.headers and not file_not_active(response):
                self.save(api, response, self.provenance(request.headers, upstream, response), key_value)
        return json_response(body, status=upstream.status)

    async def _record_stream(
        self,
        request: web.Request,
        api: ApiRequest,
        upstream: aiohttp.ClientResponse,
        stream: web.StreamResponse,
        start: float,
        fault: StreamFault | None,
        key_value: str,
        client_done: asyncio.Event,
    ) -> None:
        """Relay ``upstream``'s stream to the client (:meth:`_relay`), read it to its end, and save it."""
        async with upstream:
            try:
                chunks = await self._relay(request, stream, upstream, start, fault, client_done)
            finally:
                client_done.set()
            response = {"status": upstream.status, "chunks": chunks}
            if chunks and UNSCRIPTED_HEADER not in upstream.headers:
                self.save(api, response, self.provenance(request.headers, upstream, response), key_value)

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
    ) -> list[dict[str, Any]]:
        """Copy ``upstream``'s server-sent events to ``stream`` line by line, and return every event with its offset
        from ``start``. ``fault`` strikes when event number ``fault.after_chunks`` begins; a hold does not apply
        (holding the relay would hold the reading too, and record the hold into the later chunks' offsets). Once the
        client has gone (closed the connection, or struck by the fault), ``client_done`` is set and the rest is read,
        not sent."""
        loop = asyncio.get_running_loop()
        if fault is not None and fault.release is not None:
            fault = None
        timing = request.get(TIMING)
        chunks: list[dict[str, Any]] = []
        data_lines: list[bytes] = []
        sending = True

        async def send(line: bytes | None) -> None:
            nonlocal sending
            try:
                if line is None:
                    await stream.write_eof()
                elif fault is not None and len(chunks) == fault.after_chunks and line.startswith(b"data:"):
                    await fault.inflict(request, stream)
                    sending = False
                else:
                    if timing is not None and line.startswith(b"data:"):
                        timing.chunks.append(loop.time())
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
            if stripped.startswith(b"data:"):
                data_lines.append(stripped[5:].strip())
            elif not stripped and data_lines:
                offset = round(loop.time() - start, 4)
                chunks.append({"offset_s": offset, "data": json.loads(b"\n".join(data_lines))})
                data_lines = []
        if data_lines:
            chunks.append({"offset_s": round(loop.time() - start, 4), "data": json.loads(b"\n".join(data_lines))})
        if sending:
            await send(None)
        return chunks

    @staticmethod
    def provenance(client: Mapping[str, str], upstream: aiohttp.ClientResponse, response: dict[str, Any]) -> dict:
        """The exchange's provenance: a synthetic upstream's own label, else recorded today by the SDK whose
        ``user-agent`` is in the ``client`` request headers."""
        synthetic = upstream.headers.get(SYNTHETIC_HEADER)
        if synthetic:
            return json.loads(synthetic)
        sdk = _SDK_VERSION.search(client.get("user-agent", ""))
        last = response["chunks"][-1]["data"] if "chunks" in response else response.get("body")
        return {
            "source": "recorded",
            "date": dt.date.today().isoformat(),
            "sdk": f"google-genai {sdk.group(1)}" if sdk else client.get("user-agent", "unknown"),
            "model_version": last.get("modelVersion") if isinstance(last, dict) else None,
        }

    def save(self, api: ApiRequest, response: dict[str, Any], provenance: dict, key_value: str) -> None:
        """Append one exchange to ``api``'s cassette and write it, unless it contains ``key_value`` (the API key)."""
        request = {
            "method": api.method,
            "path": strip_version(api.path),
            "query": canonical_query(api.query),
            "body": api.body,
        }
        exchange = Exchange(request, response, provenance)
        if len(key_value) >= MIN_KEY_LENGTH and key_value in json.dumps(exchange.to_json()):
            # Defence in depth: an upstream that echoes the key must not get it written to disk.
            print("record: an exchange contained the API key and was not written", file=sys.stderr, flush=True)
            return
        try:
            cassette, _ = self.store.get(api.cassette)
        except CassetteError:
            if self.store.path(api.cassette).exists():
                raise
            cassette = Cassette(api.cassette, self.store.path(api.cassette))
        if (api.cassette, exchange.key) not in self._refreshed:
            self._refreshed.add((api.cassette, exchange.key))
            cassette.exchanges = [e for e in cassette.exchanges if e.key != exchange.key]
        cassette.exchanges.append(exchange)
        cassette.save()
