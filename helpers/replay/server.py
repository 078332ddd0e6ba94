"""The replay server: an aiohttp app that answers Gemini REST calls from cassettes, with their recorded timing.

URL layout (a fixed contract): ``http://HOST:PORT/<cassette>/`` is a base URL for the SDK; the first path segment
names the cassette, the rest is the API path with its version segment (``v1`` and ``v1beta`` both work).
Started by ``python -m helpers.replay serve``; introduced in ``00_setup``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from ..cassette import (
    Cassette,
    CassetteError,
    Exchange,
    canonical_query,
    json_differences,
    request_key,
    strip_version,
)
from .control import ControlPanel
from .limits import Limits
from .wire import SSE_CONTENT_TYPE, error_response, json_response, sse_event

CASSETTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class ApiRequest:
    """A request as the server sees it, after the cassette segment is taken off the path."""

    cassette: str
    method: str
    path: str
    """The API path with its version segment, e.g. ``v1/models/gemini-3.8-flash:generateContent``."""
    query: dict[str, str]
    raw_body: bytes
    body: Any = None

    @property
    def key(self) -> str:
        return request_key(self.method, self.path, self.query, self.body)

    def summary(self) -> str:
        """``POST models/m:generateContent ("first words of the prompt...")``, for error messages."""
        text = _first_text(self.body)
        prompt = f" ({json.dumps(text[:60] + ('...' if len(text) > 60 else ''))})" if text else ""
        return f"{self.method} {strip_version(self.path)}{prompt}"


def _first_text(body: Any) -> str:
    """The last user turn's first text part of a generate/countTokens body, or ``""``."""
    if not isinstance(body, dict):
        return ""
    contents = body.get("contents") or body.get("generateContentRequest", {}).get("contents") or []
    for content in reversed(contents):
        for part in content.get("parts", []) if isinstance(content, dict) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                return part["text"]
    return ""


class CassetteStore:
    """Cassettes of one folder, loaded on first use and reloaded when their file changes on disk."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._cache: dict[str, tuple[float, Cassette, dict[str, list[Exchange]]]] = {}

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def names(self) -> list[str]:
        """The cassettes in the folder, sorted."""
        return sorted(p.stem for p in self.folder.glob("*.json"))

    def get(self, name: str) -> tuple[Cassette, dict[str, list[Exchange]]]:
        """The cassette and its exchanges grouped by request key, in recorded order.

        Raises:
            CassetteError: the cassette does not exist or is corrupt.
        """
        path = self.path(name)
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            known = ", ".join(self.names()) or "none"
            raise CassetteError(
                f"no cassette named '{name}' in {self.folder} (cassettes here: {known}). Check the name passed "
                f"to helpers.setup(), or record it with WORKBOOK_MODE=record."
            ) from None
        cached = self._cache.get(name)
        if cached and cached[0] == mtime:
            return cached[1], cached[2]
        cassette = Cassette.load(path)
        index: dict[str, list[Exchange]] = defaultdict(list)
        for exchange in cassette.exchanges:
            index[exchange.key].append(exchange)
        self._cache[name] = (mtime, cassette, index)
        return cassette, index


@dataclass
class ReplayServer:
    """Plays cassettes back (or, with ``record``, forwards to ``upstream`` and records) over real HTTP.

    Attributes:
        store: the cassettes.
        speed: every recorded delay is divided by this (2.0 replays twice as fast).
        recorder: set in record mode; forwards and writes exchanges.
        local_files_batches: in record mode, serve the Files and Batch APIs here as replay does (batch requests
            answered from the recordings made so far) instead of forwarding them: for the synthetic upstream, which
            has neither. Replay ignores it.
        limits: ``--rpm``/``--tpm`` for every cassette, until one gets its own through the control endpoint.
        control: faults, rate limits and stats per cassette (``/_control/...``, see :mod:`.control`).
    """

    store: CassetteStore
    speed: float = 1.0
    recorder: Any = None
    local_files_batches: bool = False
    limits: Limits = field(default_factory=Limits)
    control: ControlPanel = field(init=False)
    _cursor: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))

    def __post_init__(self) -> None:
        self.control = ControlPanel(self.speed, self.limits, CASSETTE_NAME, self._lookup)

    @property
    def forwards_files_batches(self) -> bool:
        """True when Files and Batch calls go upstream: record mode without ``local_files_batches``."""
        return self.recorder is not None and not self.local_files_batches

    def _lookup(self, name: str) -> None:
        """Raise :class:`CassetteError` unless the server can serve cassette ``name`` (record mode creates it)."""
        if self.recorder is None:
            self.store.get(name)

    def app(self) -> web.Application:
        """The aiohttp application: every method on ``/{cassette}/{api path}``."""
        app = web.Application(client_max_size=64 * 1024**2)
        from .batches import install  # imported here: it imports this module

        install(self, app)  # the Files and Batch APIs (.files, .batches), ahead of the control and catch-all routes
        self.control.install(app)
        app.router.add_route("*", "/{cassette}/{path:.*}", self.handle)
        if self.recorder is not None:
            app.on_startup.append(lambda _app: self.recorder.start())
            app.on_cleanup.append(lambda _app: self.recorder.close())
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one API call: parse it, then record it or replay it."""
        start = asyncio.get_running_loop().time()
        name = request.match_info["cassette"]
        if not CASSETTE_NAME.match(name):
            return error_response(
                404, f"'{name}' is not a cassette name; use http://HOST:PORT/<cassette>/ as base URL."
            )
        api = ApiRequest(name, request.method, request.match_info["path"], dict(request.query), await request.read())
        if api.raw_body and not api.path.startswith("upload/"):
            try:
                api.body = json.loads(api.raw_body)
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                return error_response(400, f"Invalid JSON payload received. {e}.")
        if self.recorder is not None:
            # Limits set for the cassette apply in record mode too, so a lesson that teaches them records as it
            # replays; a refused call is not forwarded, hence not recorded.
            refusal = self.control.admit(name, api.path, None)
            if refusal is not None:
                return refusal
            return await self.recorder.forward(request, api, start, lambda: self.control.take_stream_fault(name))
        try:
            cassette, index = self.store.get(name)
        except CassetteError as e:
            return error_response(404 if "no cassette" in str(e) else 400, str(e), "FAILED_PRECONDITION")
        recorded = index.get(api.key)
        if not recorded:
            return error_response(404, unmatched_message(cassette, api), "NOT_FOUND")
        exchange = recorded[self._cursor[(name, api.key)] % len(recorded)]
        refusal = self.control.admit(name, api.path, exchange)
        if refusal is not None:
            return refusal  # a refused call does not use up its recording's turn
        self._cursor[(name, api.key)] += 1
        return await self.play(request, exchange, start)

    async def play(self, request: web.Request, exchange: Exchange, start: float) -> web.StreamResponse:
        """Send a recorded response, each part at its recorded offset (divided by ``speed``) after ``start``.

        A stream fault injected for the cassette (:meth:`ControlPanel.take_stream_fault`) strikes when the chunk after
        its ``after_chunks`` is due.
        """
        response = exchange.response
        if not exchange.is_stream:
            await self._sleep_until(start + response["offset_s"] / self.speed)
            return json_response(response["body"], status=response["status"])
        stream = web.StreamResponse(status=response["status"], headers={"Content-Type": SSE_CONTENT_TYPE})
        fault = self.control.take_stream_fault(request.match_info["cassette"])
        try:
            for i, chunk in enumerate(response["chunks"]):
                await self._sleep_until(start + chunk["offset_s"] / self.speed)
                if not stream.prepared:
                    await stream.prepare(request)
                if fault is not None and i == fault.after_chunks:
                    break
                await stream.write(sse_event(chunk["data"]))
            if fault is None:
                await stream.write_eof()
            else:
                await fault.inflict(request, stream)
        except (ConnectionResetError, asyncio.CancelledError):
            # The client went away mid-stream (a cancelled cell, a timeout): nothing left to send.
            pass
        return stream

    @staticmethod
    async def _sleep_until(deadline: float) -> None:
        # Sleeping to an absolute deadline keeps chunk gaps from drifting as the stream goes on.
        delay = deadline - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)


def unmatched_message(cassette: Cassette, api: ApiRequest) -> str:
    """What to tell a client whose request has no recording: which cassette, the request, the nearest miss, the fix."""
    same_path = [e for e in cassette.exchanges if strip_version(e.request["path"]) == strip_version(api.path)]
    lines = [f"No recording in cassette '{cassette.name}' for {api.summary()}."]
    if same_path:
        best, diffs = min(
            ((e, json_differences(e.request.get("body"), api.body)) for e in same_path),
            key=lambda pair: len(pair[1]),
        )
        diffs = diffs or json_differences(best.request.get("query") or {}, canonical_query(api.query))
        index = cassette.exchanges.index(best)
        shown = "; ".join(diffs[:3]) + (f"; and {len(diffs) - 3} more" if len(diffs) > 3 else "")
        lines.append(f"Nearest recording (exchange {index}) differs at {shown}.")
    else:
        paths = sorted({strip_version(e.request["path"]) for e in cassette.exchanges})
        lines.append(f"Nothing was recorded for that path; this cassette has: {', '.join(paths[:6]) or 'nothing'}.")
    lines.append(
        "Run the cell exactly as the notebook has it, or record this request: set GEMINI_API_KEY and "
        f"WORKBOOK_MODE=record and re-run the notebook (it refreshes {cassette.path.name})."
    )
    return " ".join(lines)
