"""The Interactions API in replay: ``/{v}/interactions`` answered from the cassette, ids checked against it.

A service (the services layer, ``docs/server.md``); introduced in ``06_interactions``. Routes, after the cassette
segment (``{v}`` is ``v1``, ``v1beta``, ...)::

    POST   {v}/interactions                 create (a JSON reply, or with ``"stream": true`` SSE events)
    GET    {v}/interactions/{id}[?stream=false]
    POST   {v}/interactions/{id}/cancel
    DELETE {v}/interactions/{id}

What the real API does (google-genai 3.6.1's ``_gaos/interactions.py`` and ai.google.dev/gemini-api/docs/interactions,
read 2026-12-01): an interaction is a stored resource (``store`` defaults to true; retained 55 days on the paid tier,
1 day on the free tier), continued by ``previous_interaction_id``, read back by ``get``, removed by ``delete``, and
cancelled while a ``background`` one runs. A stream sends one SSE event per step change, each with its ``event:``
type, and ends with ``data: [DONE]``.

How replay answers: every call is a recorded exchange, played by the backend like any other (each stream event at
its recorded offset, with its ``event:`` field and the raw ``[DONE]``), matched by method, path (the id is in it)
and body (``previous_interaction_id`` is in it). Replayed answers carry their recorded ids, so a cell that passes
``interaction.id`` on sends the id its recording saw. This service adds what a cassette alone cannot say:

- an id the cassette never saw (typed by hand, or from another run) gets the API's 404 ``NOT_FOUND`` naming it, as
  the real API answers an unknown interaction, instead of a "no recording" message; an id an improvised stand-in
  issued (``serve --unmatched improvise``, :mod:`.improviser`) is known too, and the improviser answers its calls;
- a background interaction (``"background": true``, whose recorded reply is ``in_progress``) runs its lifecycle
  here, divided by ``--speed`` as batch jobs do: ``in_progress`` for :data:`BACKGROUND_S`, then ``completed`` (``get``
  then answers with the cassette's recorded ``completed`` reply for that id, or says none was recorded); ``cancel``
  while it runs makes it ``cancelled`` (afterwards, 400 ``FAILED_PRECONDITION``), and continuing one that is not
  completed is 400 ``FAILED_PRECONDITION``, as the synthetic upstream answers (:mod:`.synthetic_interactions`).

In record mode the service is not installed: the recorder forwards every interaction call upstream.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..backends.playback import Improviser
from ..cassettes.cassette import Cassette, CassetteError, Exchange
from ..cassettes.store import CassetteStore
from ..pipeline.api_request import API, Backend, Mode, error_response, json_response
from .files_api import VERSION

PATH = "interactions"
"""The version-less path of ``create``; ``interactions/{id}...`` for the rest."""
BACKGROUND_S = 8.0
"""Seconds a background interaction stays ``in_progress`` at ``--speed`` 1 (a teaching choice, as batches have: long
enough that a cell can cancel it on a busy machine at ``06_interactions``' 4x; real background runs take minutes)."""


@dataclass
class Background:
    """A background interaction this server is running: its recorded ``in_progress`` reply, when it was created
    (``time.monotonic()``), and ``(status, when)`` once cancelled."""

    reply: dict[str, Any]
    created: float
    ended: tuple[str, float] | None = None

    def status(self, now: float, speed: float) -> str:
        """``in_progress``, ``completed`` or ``cancelled`` at ``now``."""
        if self.ended is not None:
            return self.ended[0]
        return "in_progress" if now < self.created + BACKGROUND_S / speed else "completed"


def exchange_ids(exchange: Exchange) -> set[str]:
    """The interaction ids an exchange's answer carries: a reply's ``id``, or a stream event's ``interaction.id``
    (``interaction.created``, ``interaction.completed``); none for an exchange of another API."""
    ids: set[str] = set()
    if not exchange.request["path"].startswith(PATH):
        return ids
    response: dict[str, Any] = dict(exchange.response)
    datas = [response.get("body")] + [c.get("data") for c in response.get("chunks") or []]
    for data in datas:
        if isinstance(data, dict):
            found = (data.get("interaction") or {}).get("id") if "event_type" in data else data.get("id")
            if isinstance(found, str):
                ids.add(found)
    return ids


def recorded_ids(cassette: Cassette) -> set[str]:
    """The interaction ids the cassette's recorded answers carry (:func:`exchange_ids`)."""
    return set().union(*(exchange_ids(exchange) for exchange in cassette.exchanges))


class InteractionService:
    """The Interactions routes of a replay server.

    Args:
        mode: the server's mode; in a record mode nothing is installed (the recorder forwards the calls).
        speed: the server's ``--speed`` (a background interaction's lifecycle is divided by it).
        store: the cassettes.
        backend: the replay backend that plays the recordings.
        improviser: the backend's improviser, whose stand-in interactions are known ids too.
    """

    def __init__(
        self, mode: Mode, speed: float, store: CassetteStore, backend: Backend, improviser: Improviser | None = None
    ) -> None:
        self.mode, self.speed, self.store, self.backend = mode, speed, store, backend
        self.improviser = improviser
        self._ids: dict[str, tuple[Cassette, int, set[str]]] = {}
        self.running: dict[tuple[str, str], Background] = {}

    def install(self, app: web.Application) -> None:
        """Add the routes (before the catch-all route); none in a record mode."""
        if self.mode.records:
            return
        base = "/{cassette}/" + VERSION + "/" + PATH
        app.router.add_post(base, self.create)
        app.router.add_get(base + "/{id}", self.by_id)
        app.router.add_delete(base + "/{id}", self.by_id)
        app.router.add_post(base + "/{id}/cancel", self.by_id)

    def known(self, name: str) -> set[str] | None:
        """The ids cassette ``name`` recorded (cached per revision); ``None`` when it cannot be loaded (the backend
        then answers with the reason)."""
        try:
            cassette = self.store.get(name)
        except CassetteError:
            return None
        cached = self._ids.get(name)
        if cached is None or cached[0] is not cassette or cached[1] != cassette.revision:
            cached = self._ids[name] = (cassette, cassette.revision, recorded_ids(cassette))
        return cached[2]

    def _unknown(self, name: str, interaction_id: str, known: set[str]) -> bool:
        """Whether cassette ``name`` neither recorded ``interaction_id`` nor had a stand-in issue it."""
        improvised = self.improviser.interaction_ids(name) if self.improviser is not None else ()
        return interaction_id not in known and interaction_id not in improvised

    def _not_found(self, cassette: str, interaction_id: str, known: set[str]) -> web.Response:
        sample = ", ".join(sorted(known)[:3]) or "none"
        return error_response(
            404,
            f"Interaction '{interaction_id}' was not found. (Replay: cassette '{cassette}' knows the "
            f"{len(known)} interaction ids its recordings created ({sample}{', ...' if len(known) > 3 else ''}); "
            "pass on the id of an interaction created in this run, as interaction.id.)",
            "NOT_FOUND",
        )

    async def create(self, request: web.Request) -> web.StreamResponse:
        """``POST {v}/interactions``: refuse a ``previous_interaction_id`` the cassette never saw (or a background
        one that is not completed), else play; a background reply starts its lifecycle here."""
        api = request[API]
        body = api.body if isinstance(api.body, dict) else {}
        previous = body.get("previous_interaction_id")
        known = self.known(api.cassette)
        if isinstance(previous, str) and known is not None and self._unknown(api.cassette, previous, known):
            return self._not_found(api.cassette, previous, known)
        running = self.running.get((api.cassette, str(previous)))
        if running is not None and (status := running.status(time.monotonic(), self.speed)) != "completed":
            return error_response(
                400,
                f"Interaction '{previous}' is {status}: only a completed interaction can be continued.",
                "FAILED_PRECONDITION",
            )
        response = await self.backend.answer(request, api)
        if body.get("background") is True and response.status == 200 and isinstance(response, web.Response):
            reply = json.loads(response.body) if isinstance(response.body, bytes) else None
            if isinstance(reply, dict) and isinstance(reply.get("id"), str):
                self.running[(api.cassette, reply["id"])] = Background(reply, time.monotonic())
        return response

    async def by_id(self, request: web.Request) -> web.StreamResponse:
        """``GET``, ``DELETE`` and ``cancel`` of ``{v}/interactions/{id}``: refuse an id the cassette never saw; run
        a background interaction's lifecycle; play the rest."""
        api = request[API]
        interaction_id = request.match_info["id"]
        known = self.known(api.cassette)
        if known is not None and self._unknown(api.cassette, interaction_id, known):
            return self._not_found(api.cassette, interaction_id, known)
        running = self.running.get((api.cassette, interaction_id))
        if running is None:
            return await self.backend.answer(request, api)
        now = time.monotonic()
        status = running.status(now, self.speed)
        if request.method == "DELETE":
            del self.running[(api.cassette, interaction_id)]
            return json_response({})
        if request.path.endswith("/cancel"):
            if status != "in_progress":
                return error_response(
                    400,
                    f"Interaction '{interaction_id}' is {status}; only a background interaction that is still "
                    "running can be cancelled.",
                    "FAILED_PRECONDITION",
                )
            running.ended = ("cancelled", now)
            return json_response({**running.reply, "status": "cancelled"})
        if status != "completed":
            return json_response({**running.reply, "status": status})
        result = self._result(api.cassette, interaction_id)
        if result is None:
            return error_response(
                404,
                f"Background interaction '{interaction_id}' has completed, but cassette '{api.cassette}' recorded no "
                "completed reply for it. Record the notebook again, polling with interactions.get until it "
                "completes.",
                "NOT_FOUND",
            )
        return json_response(result)

    def _result(self, cassette: str, interaction_id: str) -> dict[str, Any] | None:
        """The cassette's recorded ``completed`` reply to ``GET interactions/{id}``, or ``None``."""
        try:
            recorded = self.store.get(cassette)
        except CassetteError:
            return None
        for exchange in reversed(recorded.exchanges):
            body = exchange.response.get("body")
            if (
                exchange.request["method"] == "GET"
                and exchange.request["path"] == f"{PATH}/{interaction_id}"
                and isinstance(body, dict)
                and body.get("status") == "completed"
            ):
                return body
        return None
