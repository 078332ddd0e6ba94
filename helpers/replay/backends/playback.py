"""Replay: answer an API call from its cassette, each part at its recorded offset after the request arrived.

The backend layer (``docs/server.md``), one of its two backends (the other is :mod:`.recorder`). A request is
matched by :class:`.matcher.Matcher`, admitted by the rate limits (a refused call does not use up its recording's
turn), then played: a stream's chunks were encoded as SSE events once, when the cassette was loaded
(:attr:`helpers.replay.cassettes.cassette.Exchange.frames`), so playing is sleeping to each offset and writing bytes.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..cassettes.cassette import CassetteError, Exchange, MissingCassetteError
from ..cassettes.matcher import Matcher, unmatched_message
from ..cassettes.store import CassetteStore
from ..pipeline.api_request import ApiRequest, error_response, raw_json_response, sleep_until
from ..pipeline.control_panel import TIMING, ControlPanel, carries_text
from ..wire.framing import SSE_CONTENT_TYPE


class Replayer:
    """The replay backend.

    Args:
        store: the cassettes.
        matcher: the server's matcher (batches take turns through it too).
        control: the server's faults and limits.
        speed: every recorded delay is divided by this.
    """

    def __init__(self, store: CassetteStore, matcher: Matcher, control: ControlPanel, speed: float) -> None:
        self.store, self.matcher, self.control, self.speed = store, matcher, control, speed

    async def answer(self, request: web.Request, api: ApiRequest) -> web.StreamResponse:
        """Play the recording whose turn it is; 404 ``NOT_FOUND`` (saying why) when there is none."""
        try:
            cassette = self.store.get(api.cassette)
        except MissingCassetteError as e:
            return error_response(404, str(e), "FAILED_PRECONDITION")
        except CassetteError as e:
            return error_response(400, str(e), "FAILED_PRECONDITION")
        exchange = self.matcher.next(cassette, api.key, take=False)
        if exchange is None:
            message = unmatched_message(cassette, api.method, api.path, api.query, api.body)
            return error_response(404, message, "NOT_FOUND")
        refusal = self.control.admit(api.cassette, api.path, exchange)
        if refusal is not None:
            return refusal
        self.matcher.advance(api.cassette, api.key)
        return await self.play(request, api, exchange)

    async def play(self, request: web.Request, api: ApiRequest, exchange: Exchange) -> web.StreamResponse:
        """Send a recorded response, each part at its recorded offset (divided by ``speed``) after ``api.start``.

        A stream fault injected for the cassette (:meth:`ControlPanel.take_stream_fault`) strikes when the chunk after
        its ``after_chunks`` is due; a hold waits, after that many chunks with text, until released. The stats note
        when each chunk went out.
        """
        response = exchange.response
        if "chunks" not in response:
            await sleep_until(api.start + response["offset_s"] / self.speed)
            return raw_json_response(exchange.body_bytes, status=response["status"])
        stream = web.StreamResponse(status=response["status"], headers={"Content-Type": SSE_CONTENT_TYPE})
        fault = self.control.take_stream_fault(api.cassette)
        timing = request.get(TIMING)
        texts = 0
        try:
            for i, ((offset, frame), chunk) in enumerate(zip(exchange.frames, response["chunks"], strict=True)):
                await sleep_until(api.start + offset / self.speed)
                if not stream.prepared:
                    await stream.prepare(request)
                if fault is not None and fault.due(i, texts):
                    if not await fault.strike(request, stream):
                        return stream
                    fault = None  # a hold, released: the rest goes out as recorded (what is overdue, now)
                if timing is not None:
                    timing.chunk(chunk["data"])
                await stream.write(frame)
                texts += carries_text(chunk["data"])
            if fault is None or fault.release is not None:
                await stream.write_eof()
            else:
                await fault.inflict(request, stream)  # after the last chunk: the stream has fewer than after_chunks
        except (ConnectionResetError, asyncio.CancelledError):
            # The client went away mid-stream (a cancelled cell, a timeout): nothing left to send.
            pass
        return stream
