"""The room relay: one aiohttp app that seats call as they would call the Gemini API, and the instructor watches.

Routes (a seat authenticates with its token, sent as the SDK sends an API key: ``x-goog-api-key``, or
``Authorization: Bearer`` from the ``openai`` SDK, or ``?key=``; the instructor with the dashboard's token, in
``x-workbook-token`` or ``?token=``):

    *    /<cassette>/<API path>           seat: the API, exactly as the replay server's URL layout (docs/server.md)
    *    /_control/<cassette>/<action>    seat: its own replay server's faults, limits and stats (replay only)
    GET  /_room/seat                      seat: {"seat", "mode", "rpm", "tpm", "budget_usd"}
    POST /_room/session                   seat: {"cassette", "speed"} -> {"seat", "mode", "sources", "models"}
    POST /_room/progress                  seat: {"lesson", "exercise", "status"} -> {}
    GET  /_room/dashboard                 instructor: the dashboard page (:mod:`.dashboard`)
    GET  /_room/events, /_room/seats, /_room/progress.csv; POST /_room/seats/{n}/revoke|unrevoke   instructor

An upload's bytes are the one exception: the SDK sends them without a key to the upload URL the relay handed out
(as the real API's upload URL is the credential), so the relay knows their seat by its ``upload_id``.

Every route needs a token: an unknown one gets 401 ``UNAUTHENTICATED``, a revoked seat's 403 ``PERMISSION_DENIED``,
in the API's JSON error shape, so binding a LAN address exposes nothing to a machine without one. Streams pass
through as their bytes arrive (never buffered). Before a model call is forwarded, the seat's limits and budget
(:mod:`.meter`) may refuse it with 429; after it, its tokens and cost are counted. The instructor's key is put only in
the upstream request's header (:mod:`.backends`): never in a reply, the log (standard error, redacted by
:class:`helpers.replay.wire.api_keys.RedactingStream`), the page or a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import urllib.parse
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from .. import progress
from ..replay.cassettes.cassette import CassetteError, MissingCassetteError, strip_version
from ..replay.cassettes.store import CassetteStore, name_problem
from ..replay.pipeline import error_middleware
from ..replay.pipeline.api_request import (
    CONTROL_PREFIX,
    MAX_BODY_BYTES,
    error_response,
    json_response,
    parse_json,
)
from ..replay.pipeline.server_token import HEADER as INSTRUCTOR_HEADER
from ..replay.wire.api_keys import REDACTED, SEEN
from ..replay.wire.framing import SSE_CONTENT_TYPE, ApiError
from .backends import LiveUpstream, ReplayPool, Target
from .client import ROOM_PREFIX
from .dashboard import Dashboard
from .meter import Meter, StreamUsage, find_usage, limited_path
from .seats import Seat, SeatBook

PASSED_REQUEST_HEADERS = {"content-type", "user-agent", "x-goog-api-client", "x-server-timeout", "accept"}
"""Request headers passed on (with every ``x-goog-upload-*`` one); never a key, a token, a cookie or an origin."""
PASSED_RESPONSE_HEADERS = {"content-type", "content-encoding", "retry-after"}
"""Response headers passed back (with every ``x-goog-upload-*`` one, the upload URL rewritten to the relay)."""
UPLOAD_URL = "x-goog-upload-url"
MAX_UPLOADS = 10_000
"""Upload sessions the relay remembers the seat of (the oldest are forgotten first)."""
MAX_SPEED = 1000.0
"""The highest replay speed a lesson may ask the relay for (the lessons use at most 60)."""


@dataclass(frozen=True)
class RoomConfig:
    """How the relay runs (``python -m helpers.classroom serve``'s flags).

    Attributes:
        meter: per-seat limits and budget.
        store: the cassettes replayed (``--cassettes``).
        live: forward to the Gemini API instead of replaying; ``None`` in replay.
        instructor_token: the dashboard's token (a fresh random one when ``None``).
    """

    meter: Meter
    store: CassetteStore
    live: LiveUpstream | None = None
    instructor_token: str | None = None

    @property
    def mode(self) -> str:
        return "live" if self.live is not None else "replay"


class Relay:
    """The relay's state and routes; :meth:`app` assembles them with the dashboard's (:mod:`.dashboard`).

    Args:
        book: the room's seats.
        config: how it runs.
    """

    def __init__(self, book: SeatBook, config: RoomConfig) -> None:
        self.book, self.config, self.meter = book, config, config.meter
        self.instructor_token = config.instructor_token or secrets.token_urlsafe(24)
        self.replay = ReplayPool(config.store) if config.live is None else None
        self.version = 0
        """Counts changes to what the dashboard shows."""
        self.changed = asyncio.Event()
        """Set (and replaced by a fresh one) at each change: what the dashboard's streams wait on."""
        for secret in [self.instructor_token, *(seat.token for seat in book.seats)]:
            SEEN.note(secret)  # never in the log
        if config.live is not None:
            SEEN.note(config.live.key)
        self._key = config.live.key.encode() if config.live is not None else b""
        self.uploads: OrderedDict[str, Seat] = OrderedDict()
        """The seat of each upload session, by ``upload_id``: the SDK sends an upload's bytes without its key (the
        upload URL is the credential, as the real API's is), so the relay knows the seat by the URL it handed out."""

    @property
    def mode(self) -> str:
        """``"replay"`` or ``"live"``."""
        return self.config.mode

    def app(self) -> web.Application:
        """The aiohttp application: every route of the module docstring."""
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        error_middleware.install(app)  # any failure becomes the API's JSON error, never a traceback
        Dashboard(self).install(app)
        room = f"/{ROOM_PREFIX}"
        app.router.add_get(f"{room}/seat", self.seat_info)
        app.router.add_post(f"{room}/session", self.session)
        app.router.add_post(f"{room}/progress", self.progress)
        app.router.add_route("*", f"/{CONTROL_PREFIX}/{{cassette}}/{{action:.+}}", self.control)
        app.router.add_route("*", "/{cassette}/{path:.*}", self.api)
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, app: web.Application) -> None:
        if self.replay is not None:
            await self.replay.close()
        if self.config.live is not None:
            await self.config.live.close()

    # --- who is calling ------------------------------------------------------------------------------------------

    def notify(self) -> None:
        """Tell the dashboard's streams that something changed."""
        self.version += 1
        event, self.changed = self.changed, asyncio.Event()
        event.set()

    def seat(self, request: web.Request) -> Seat:
        """The calling seat.

        Raises:
            ApiError: 401 without a known seat token, 403 for a revoked seat.
        """
        token = seat_token(request.headers, request.query)
        seat = self.book.by_token(token) if token else self.uploads.get(request.query.get("upload_id", ""))
        if seat is None:
            raise ApiError(
                401,
                "This room's relay needs a seat token as the API key: pass the one your instructor gave you "
                "(helpers.setup(..., seat=TOKEN) or WORKBOOK_SEAT); it is not a Gemini API key.",
                "UNAUTHENTICATED",
            )
        if seat.revoked:
            raise ApiError(403, f"The instructor has paused {seat.label}: ask them to let it call again.")
        return seat

    def check_instructor(self, request: web.Request) -> None:
        """Refuse a dashboard route without the instructor's token.

        Raises:
            ApiError: 401 without a token, 403 with another.
        """
        given = request.headers.get(INSTRUCTOR_HEADER) or request.query.get("token", "")
        if not given:
            raise ApiError(
                401, "The dashboard needs its token: open the URL the relay printed (dashboard URL).", "UNAUTHENTICATED"
            )
        if not secrets.compare_digest(given.encode(), self.instructor_token.encode()):
            raise ApiError(403, "That is not this relay's dashboard token: open the URL the relay printed.")

    # --- the seats' own routes -----------------------------------------------------------------------------------

    async def seat_info(self, request: web.Request) -> web.Response:
        seat = self.seat(request)
        limits = self.meter.limits
        return json_response(
            {
                "seat": seat.number,
                "mode": self.config.mode,
                "rpm": limits.rpm,
                "tpm": limits.tpm,
                "budget_usd": self.meter.budget_usd,
            }
        )

    async def session(self, request: web.Request) -> web.Response:
        """A lesson's ``helpers.setup`` joining: which cassette it plays, at what speed."""
        seat = self.seat(request)
        body = await _json_object(request)
        cassette, speed = body.get("cassette"), body.get("speed", 1.0)
        problem = name_problem(cassette) if isinstance(cassette, str) else "the lesson's name must be a string."
        if problem is not None:
            raise ApiError(400, f'"cassette": {problem}')
        assert isinstance(cassette, str)
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not 0 < speed <= MAX_SPEED:
            raise ApiError(400, f'"speed" must be a number above 0 and at most {MAX_SPEED:g}, got {speed!r}.')
        if not math.isfinite(speed):
            raise ApiError(400, f'"speed" must be finite, got {speed!r}.')
        answer: dict[str, Any] = {"seat": seat.number, "mode": self.config.mode}
        if self.replay is not None:
            try:
                recorded = self.config.store.get(cassette)
            except MissingCassetteError as e:
                raise ApiError(404, f"The room's relay has no recordings for this lesson: {e}") from None
            except CassetteError as e:
                raise ApiError(400, str(e), "FAILED_PRECONDITION") from None
            await self.replay.server(seat.number, cassette, float(speed))
            answer.update(sources=recorded.sources(), models=recorded.models())
        seat.lesson = cassette
        seat.touch()
        self.notify()
        return json_response(answer)

    async def progress(self, request: web.Request) -> web.Response:
        """One check's outcome, posted by :func:`helpers.workbook.record_check`."""
        seat = self.seat(request)
        body = await _json_object(request)
        lesson, exercise, status = body.get("lesson"), body.get("exercise"), body.get("status")
        if not isinstance(lesson, str) or name_problem(lesson) is not None:
            raise ApiError(400, '"lesson" must be a lesson\'s name, e.g. "01_sync".')
        if not isinstance(exercise, str) or not progress.EXERCISE.fullmatch(exercise):
            raise ApiError(400, '"exercise" must be an exercise\'s variable, e.g. "q1".')
        if status not in progress.STATUSES:
            raise ApiError(400, f'"status" must be one of {", ".join(progress.STATUSES)}.')
        if len(seat.progress) >= progress.MAX_LESSONS and lesson not in seat.progress:
            raise ApiError(400, f"A seat's progress holds at most {progress.MAX_LESSONS} lessons.")
        seat.record_check(lesson, exercise, status)
        self.notify()
        return json_response({})

    # --- calls passed on -----------------------------------------------------------------------------------------

    async def control(self, request: web.Request) -> web.StreamResponse:
        """A seat's control call (:mod:`helpers.control`), passed to its own replay server for the cassette."""
        seat = self.seat(request)
        cassette = request.match_info["cassette"]
        if self.replay is None:
            raise ApiError(
                400,
                "This room is live: the real API's limits, faults and stats cannot be steered (as in live mode).",
                "FAILED_PRECONDITION",
            )
        _check_cassette(cassette)
        target = await self.replay.target(seat.number, cassette, control=True)
        path = f"{CONTROL_PREFIX}/{cassette}/{request.match_info['action']}"
        return await self.forward(request, seat, target, path, await request.read())

    async def api(self, request: web.Request) -> web.StreamResponse:
        """A seat's API call: counted, limited, then passed to its replay server or the upstream."""
        seat = self.seat(request)
        cassette, path = request.match_info["cassette"], request.match_info["path"]
        _check_cassette(cassette)
        raw = await request.read()
        counted = limited_path(strip_version(path), request.method, lambda: _maybe_json(raw, request.content_type))
        seat.requests += 1
        seat.touch()
        admitted_at = 0.0
        if counted is not None:
            refusal, admitted_at = self.meter.admit(seat, counted)
            if refusal is not None:
                seat.limited += 1
                seat.statuses[refusal.status] += 1
                self.notify()
                return refusal
        if self.replay is not None:
            target = await self.replay.target(seat.number, cassette)
            path = f"{cassette}/{path}"
        else:
            assert self.config.live is not None
            target = self.config.live.target(bearer=_uses_bearer(request.headers))
        usage: list[tuple[int, int] | None] = [None]
        try:
            return await self.forward(request, seat, target, path, raw, usage)
        finally:
            if counted is not None:
                self.meter.settle(seat, counted, admitted_at, usage[0])
            self.notify()

    async def forward(
        self,
        request: web.Request,
        seat: Seat,
        target: Target,
        path: str,
        raw: bytes,
        usage: list[tuple[int, int] | None] | None = None,
    ) -> web.StreamResponse:
        """Send the call to ``target`` and pass its answer back as it arrives; ``usage[0]`` gets its tokens."""
        headers = {k: v for k, v in request.headers.items() if _passed(k, PASSED_REQUEST_HEADERS)}
        headers.update(target.headers)
        headers["Accept-Encoding"] = "identity"  # usage is read off the bytes: no compression to undo
        query = {k: v for k, v in request.query.items() if k != "key"}
        url = f"{target.base}{path}"
        seat.in_flight += 1
        try:
            sent = target.session.request(request.method, url, params=query, data=raw or None, headers=headers)
            async with sent as up:
                return await self._pass_back(request, seat, target, up, usage)
        except aiohttp.ClientError as e:
            where = "the Gemini API" if self.config.live is not None else "the seat's replay server"
            return error_response(502, f"The room's relay could not reach {where} ({type(e).__name__}).")
        finally:
            seat.in_flight -= 1

    async def _pass_back(
        self,
        request: web.Request,
        seat: Seat,
        target: Target,
        up: aiohttp.ClientResponse,
        usage: list[tuple[int, int] | None] | None,
    ) -> web.StreamResponse:
        headers = {k: v for k, v in up.headers.items() if _passed(k, PASSED_RESPONSE_HEADERS)}
        if UPLOAD_URL in {k.lower() for k in headers}:
            key = next(k for k in headers if k.lower() == UPLOAD_URL)
            headers[key] = self._relay_url(request, target, headers[key])
            self._remember_upload(seat, headers[key])
        if up.status >= 300:
            seat.statuses[up.status] += 1
        if not up.headers.get("content-type", "").startswith(SSE_CONTENT_TYPE):
            data = self._redact(await up.read())
            if usage is not None and up.status < 300:
                usage[0] = find_usage(_maybe_json(data, "application/json"))
            return web.Response(status=up.status, body=data, headers=headers)
        stream = web.StreamResponse(status=up.status, headers=headers)
        await stream.prepare(request)
        reader = StreamUsage()
        with contextlib.suppress(ConnectionError):
            async for data in up.content.iter_any():
                reader.feed(data)
                await stream.write(self._redact(data))
            await stream.write_eof()
        if usage is not None:
            usage[0] = reader.usage
        return stream

    def _remember_upload(self, seat: Seat, url: str) -> None:
        upload_id = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).get("upload_id", [""])[0]
        if upload_id:
            self.uploads[upload_id] = seat
            while len(self.uploads) > MAX_UPLOADS:
                self.uploads.popitem(last=False)

    def _redact(self, data: bytes) -> bytes:
        """``data`` without the instructor's key, should an upstream ever echo it (a misconfigured ``--upstream``)."""
        return data.replace(self._key, REDACTED.encode()) if self._key and self._key in data else data

    def _relay_url(self, request: web.Request, target: Target, url: str) -> str:
        """An upload URL the upstream (or a seat's replay server) gave, pointed at the relay instead: the seat must
        send the upload's bytes through the relay, with its token."""
        if not url.startswith(target.base):
            return url
        rest = url[len(target.base) :]
        cassette = request.match_info.get("cassette", "")
        prefix = f"{cassette}/" if self.config.live is not None else ""
        return f"{request.scheme}://{request.host}/{prefix}{rest}"


def seat_token(headers: Mapping[str, str], query: Mapping[str, str]) -> str:
    """The token a call carries as its API key: ``x-goog-api-key``, ``Authorization: Bearer``, the relay's
    ``x-workbook-token`` (control calls) or ``?key=``; ``""`` without one."""
    scheme, _, credentials = headers.get("Authorization", "").partition(" ")
    bearer = credentials.strip() if scheme.lower() == "bearer" else ""
    for token in (headers.get("x-goog-api-key"), bearer, headers.get(INSTRUCTOR_HEADER), query.get("key")):
        if token:
            return token.strip()
    return ""


def _uses_bearer(headers: Mapping[str, str]) -> bool:
    return "x-goog-api-key" not in headers and headers.get("Authorization", "").lower().startswith("bearer ")


def _passed(name: str, names: set[str]) -> bool:
    lower = name.lower()
    return lower in names or lower.startswith("x-goog-upload-")


def _check_cassette(name: str) -> None:
    problem = name_problem(name)
    if problem is not None:
        raise ApiError(404, problem)


def _maybe_json(raw: bytes, content_type: str) -> Any:
    """The JSON value of a body, or ``None`` (not JSON, or not parsable: the server it goes to says why)."""
    if not raw or "json" not in content_type:
        return None
    with contextlib.suppress(ApiError):
        return parse_json(raw)
    return None


async def _json_object(request: web.Request) -> dict[str, Any]:
    body = parse_json(await request.read() or b"{}")
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object.")
    return body
