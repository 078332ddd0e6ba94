"""The instructor's dashboard: one plain page of the room's seats, updated live over server-sent events.

Routes, each refused without the dashboard's token (``?token=`` or the ``x-workbook-token`` header; 401 without,
403 with another):

    GET  /_room/dashboard?token=T          the page (``dashboard.html``: no build step, no outside resource)
    GET  /_room/events?token=T             SSE: an event ``room`` with a :meth:`Dashboard.snapshot` at each change
    GET  /_room/seats                      the same snapshot, as JSON
    POST /_room/seats/{n}/revoke           seat n's calls get 403 until ...
    POST /_room/seats/{n}/unrevoke         ... this
    GET  /_room/progress.csv?token=T       every seat's exercise outcomes, one row per exercise

The events are lesson ``07_web``'s technique: an ``EventSource`` on the page, one ``data:`` line of JSON per event.
Changes come in bursts (thirty seats streaming), so a stream sends at most one snapshot per :data:`MIN_INTERVAL_S`
and, between changes, one every :data:`HEARTBEAT_S` (which also tells a proxy the connection is alive).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import secrets
import time
from importlib import resources
from typing import Any, Protocol

from aiohttp import web

from .. import progress
from ..replay.pipeline.api_request import json_response
from ..replay.wire.framing import SSE_CONTENT_TYPE, ApiError, sse_event
from .client import ROOM_PREFIX
from .meter import Meter
from .seats import SeatBook

MIN_INTERVAL_S = 0.25
"""The shortest time between two snapshots on one stream, seconds."""
HEARTBEAT_S = 10.0
"""The longest time between two snapshots on one stream, seconds."""
MAX_STREAMS = 20
"""The most dashboard pages open at once (a projector, a laptop, a phone: a few)."""
CSV_COLUMNS = ("seat", "lesson", "exercise", "status", "done", "attempts", "last")


class Room(Protocol):
    """What the dashboard reads and changes of the relay (:class:`.relay.Relay`)."""

    book: SeatBook
    meter: Meter
    version: int
    changed: asyncio.Event

    @property
    def mode(self) -> str: ...

    def notify(self) -> None: ...

    def check_instructor(self, request: web.Request) -> None: ...


class Dashboard:
    """The dashboard's routes over the relay's state."""

    def __init__(self, relay: Room) -> None:
        self.relay = relay
        self.totals = {lesson: len(progress.exercises(lesson)) for lesson in progress.lessons()}
        self.streams = 0

    def install(self, app: web.Application) -> None:
        room = f"/{ROOM_PREFIX}"
        app.router.add_get(f"{room}/dashboard", self.page)
        app.router.add_get(f"{room}/events", self.events)
        app.router.add_get(f"{room}/seats", self.seats)
        app.router.add_post(f"{room}/seats/{{number:\\d+}}/{{action:revoke|unrevoke}}", self.revoke)
        app.router.add_get(f"{room}/progress.csv", self.csv)

    def snapshot(self) -> dict[str, Any]:
        """The room now: ``{"mode", "now", "limits", "lessons", "seats": [...]}`` (see :meth:`.seats.Seat.snapshot`);
        ``now`` is the relay's clock (seconds since the epoch), for the page to show how long ago a seat was active."""
        meter = self.relay.meter
        return {
            "mode": self.relay.mode,
            "now": time.time(),
            "limits": {"rpm": meter.limits.rpm, "tpm": meter.limits.tpm, "budget_usd": meter.budget_usd},
            "lessons": self.totals,
            "seats": [seat.snapshot(self.totals) for seat in self.relay.book.seats],
        }

    async def page(self, request: web.Request) -> web.Response:
        self.relay.check_instructor(request)
        nonce = secrets.token_urlsafe(16)
        html = resources.files(__package__).joinpath("dashboard.html").read_text(encoding="utf-8")
        headers = {
            "Content-Security-Policy": (
                f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; "
                "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
            ),
            "Referrer-Policy": "no-referrer",  # the URL carries the token
            "Cache-Control": "no-store",
        }
        return web.Response(text=html.replace("{nonce}", nonce), content_type="text/html", headers=headers)

    async def events(self, request: web.Request) -> web.StreamResponse:
        self.relay.check_instructor(request)
        if self.streams >= MAX_STREAMS:
            raise ApiError(429, f"At most {MAX_STREAMS} dashboard pages can be open at once: close one.")
        stream = web.StreamResponse(
            headers={"Content-Type": SSE_CONTENT_TYPE, "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )
        self.streams += 1
        try:
            await stream.prepare(request)
            while True:
                seen = self.relay.version
                await stream.write(sse_event(self.snapshot(), event="room"))
                if self.relay.version == seen:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.relay.changed.wait(), HEARTBEAT_S)
                await asyncio.sleep(MIN_INTERVAL_S)  # let a burst of changes become one snapshot
        except ConnectionError:  # the page was closed
            return stream
        finally:
            self.streams -= 1

    async def seats(self, request: web.Request) -> web.Response:
        self.relay.check_instructor(request)
        return json_response(self.snapshot())

    async def revoke(self, request: web.Request) -> web.Response:
        self.relay.check_instructor(request)
        seat = self.relay.book.by_number(int(request.match_info["number"]))
        if seat is None:
            raise ApiError(404, f"This room has seats 1 to {len(self.relay.book.seats)}.")
        seat.revoked = request.match_info["action"] == "revoke"
        self.relay.notify()
        return json_response({"seat": seat.number, "revoked": seat.revoked})

    async def csv(self, request: web.Request) -> web.Response:
        self.relay.check_instructor(request)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for seat in self.relay.book.seats:
            if not seat.progress:
                writer.writerow([seat.number, "", "", "", "", 0, ""])
            for lesson, entries in sorted(seat.progress.items()):
                for exercise, e in sorted(entries.items(), key=lambda item: int(item[0][1:])):
                    writer.writerow([seat.number, lesson, exercise, e["status"], e["done"], e["attempts"], e["last"]])
        headers = {"Content-Disposition": 'attachment; filename="room-progress.csv"', "Cache-Control": "no-store"}
        return web.Response(text=out.getvalue(), content_type="text/csv", headers=headers)
