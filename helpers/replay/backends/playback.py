"""Replay: answer an API call from its cassette, each part at its recorded offset after the request arrived.

The backend layer (``docs/server.md``), one of its two backends (the other is :mod:`.recorder`). A request is
matched by :class:`.matcher.Matcher`, admitted by the rate limits (a refused call does not use up its recording's
turn), then played: a stream's chunks were encoded as SSE events once, when the cassette was loaded
(:attr:`helpers.replay.cassettes.cassette.Exchange.frames`), so playing is sleeping to each offset and writing bytes.

A request no recording matches gets the 404 ``NOT_FOUND`` that names the nearest recording, unless the cassette
improvises (``serve --unmatched improvise``, or :func:`helpers.control.set_unmatched`): then an :class:`Improviser`
plans a labelled stand-in exchange, which is played like a recording (its offsets, the rate limits, the stats, the
stream faults) but never joins a cassette, and carries the ``x-workbook-improvised`` header. The app wires in the
synthetic upstream's (:mod:`helpers.replay.upstream.improviser`); this layer may not import it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection
from typing import Protocol

from aiohttp import web

from ..cassettes.cassette import Cassette, CassetteError, Exchange, MissingCassetteError
from ..cassettes.matcher import Matcher, unmatched_message
from ..cassettes.store import CassetteStore
from ..pipeline.api_request import ApiRequest, error_response, raw_json_response, sleep_until
from ..pipeline.control_panel import TIMING, ControlPanel, carries_text
from ..wire.framing import IMPROVISED_HEADER, SSE_CONTENT_TYPE


class Improviser(Protocol):
    """What answers, in replay, a request no recording matches when its cassette improvises."""

    def improvise(self, cassette: Cassette, api: ApiRequest) -> Exchange | str:
        """A stand-in exchange for ``api`` in the cassette's format, its ``provenance`` saying ``"source":
        "improvised"`` (played once, never recorded), or why it cannot be improvised honestly (one sentence, which
        the 404 adds to its message)."""
        ...

    def interaction_ids(self, cassette: str) -> Collection[str]:
        """The interaction ids the stand-ins of ``cassette`` have issued (continuing one is improvised too)."""
        ...


class Replayer:
    """The replay backend.

    Args:
        store: the cassettes.
        matcher: the server's matcher (batches take turns through it too).
        control: the server's faults and limits (and each cassette's own choice of what to do when nothing matches).
        speed: every recorded delay is divided by this.
        improviser: what answers a request no recording matches, for a cassette that improvises.
        unmatched: ``"improvise"`` or ``"error"``: what every cassette does when nothing matches, unless it was told
            otherwise (:meth:`ControlPanel.unmatched`); improvising needs ``improviser``.
    """

    def __init__(
        self,
        store: CassetteStore,
        matcher: Matcher,
        control: ControlPanel,
        speed: float,
        improviser: Improviser | None = None,
        unmatched: str = "error",
    ) -> None:
        self.store, self.matcher, self.control, self.speed = store, matcher, control, speed
        self.improviser, self.unmatched = improviser, unmatched

    async def answer(self, request: web.Request, api: ApiRequest) -> web.StreamResponse:
        """Play the recording whose turn it is; when there is none, a stand-in if the cassette improvises, else 404
        ``NOT_FOUND`` (saying why, and why it was not improvised when it could not be)."""
        try:
            cassette = self.store.get(api.cassette)
        except MissingCassetteError as e:
            return error_response(404, str(e), "FAILED_PRECONDITION")
        except CassetteError as e:
            return error_response(400, str(e), "FAILED_PRECONDITION")
        exchange = self.matcher.next(cassette, api.key, take=False)
        headers: dict[str, str] = {}
        if exchange is None:
            stand_in: Exchange | str | None = None
            if self.improviser is not None and self.control.unmatched(api.cassette, self.unmatched) == "improvise":
                stand_in = self.improviser.improvise(cassette, api)
            if not isinstance(stand_in, Exchange):
                message = unmatched_message(cassette, api.method, api.path, api.query, api.body)
                why = f" It was not improvised: {stand_in}" if stand_in else ""
                return error_response(404, message + why, "NOT_FOUND")
            exchange, headers = stand_in, {IMPROVISED_HEADER: json.dumps(stand_in.provenance)}
        refusal = self.control.admit(api.cassette, api.path, exchange)
        if refusal is not None:
            return refusal
        if not headers:
            self.matcher.advance(api.cassette, api.key)
        return await self.play(request, api, exchange, headers)

    async def play(
        self, request: web.Request, api: ApiRequest, exchange: Exchange, headers: dict[str, str] | None = None
    ) -> web.StreamResponse:
        """Send a recorded response, each part at its recorded offset (divided by ``speed``) after ``api.start``,
        with ``headers`` added.

        A stream fault injected for the cassette (:meth:`ControlPanel.take_stream_fault`) strikes when the chunk after
        its ``after_chunks`` is due; a hold waits, after that many chunks with text, until released. The stats note
        when each chunk went out.
        """
        response = exchange.response
        if "chunks" not in response:
            await sleep_until(api.start + response["offset_s"] / self.speed)
            return raw_json_response(exchange.body_bytes, status=response["status"], headers=headers)
        stream = web.StreamResponse(
            status=response["status"], headers={"Content-Type": SSE_CONTENT_TYPE, **(headers or {})}
        )
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
