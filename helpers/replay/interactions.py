"""The Interactions API in replay: ``/{v}/interactions`` answered from the cassette, ids checked against it.

A service (layer 4 of the server, ``docs/server.md``); introduced in ``06_interactions``. Routes, after the cassette
segment (``{v}`` is ``v1``, ``v1beta``, ...)::

    POST   {v}/interactions                 create (a JSON reply, or with ``"stream": true`` SSE events)
    GET    {v}/interactions/{id}[?stream=false]
    POST   {v}/interactions/{id}/cancel
    DELETE {v}/interactions/{id}

What the real API does (google-genai 3.4.0's ``_gaos/interactions.py`` and ai.google.dev/gemini-api/docs/interactions,
read 2026-12-01): an interaction is a stored resource (``store`` defaults to true; retained 55 days on the paid tier,
1 day on the free tier), continued by ``previous_interaction_id``, read back by ``get``, removed by ``delete``, and
cancelled while a ``background`` one runs. A stream sends one SSE event per step change, each with its ``event:``
type, and ends with ``data: [DONE]``.

How replay answers: every call is a recorded exchange, played by the backend like any other (each stream event at
its recorded offset, with its ``event:`` field and the raw ``[DONE]``), matched by method, path (the id is in it)
and body (``previous_interaction_id`` is in it). Replayed answers carry their recorded ids, so a cell that passes
``interaction.id`` on sends the id its recording saw. This service adds what a cassette alone cannot say: an id the
cassette never saw (typed by hand, or from another run) gets the API's 404 ``NOT_FOUND`` naming it, as the real API
answers an unknown interaction, instead of a "no recording" message. Background interactions run their lifecycle
upstream and are replayed as recorded (``get`` and ``cancel`` replies in recorded order); this server runs none.
In record mode the service is not installed: the recorder forwards every interaction call upstream.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..cassette import Cassette, CassetteError
from .files import VERSION
from .pipeline import API, Backend, Mode, error_response
from .store import CassetteStore

PATH = "interactions"
"""The version-less path of ``create``; ``interactions/{id}...`` for the rest."""


def recorded_ids(cassette: Cassette) -> set[str]:
    """The interaction ids the cassette's recorded answers carry: a reply's ``id``, or a stream event's
    ``interaction.id`` (``interaction.created``, ``interaction.completed``)."""
    ids: set[str] = set()
    for exchange in cassette.exchanges:
        if not exchange.request["path"].startswith(PATH):
            continue
        response: dict[str, Any] = dict(exchange.response)
        datas = [response.get("body")] + [c.get("data") for c in response.get("chunks") or []]
        for data in datas:
            if isinstance(data, dict):
                found = (data.get("interaction") or {}).get("id") if "event_type" in data else data.get("id")
                if isinstance(found, str):
                    ids.add(found)
    return ids


class InteractionService:
    """The Interactions routes of a replay server.

    Args:
        mode: the server's mode; in a record mode nothing is installed (the recorder forwards the calls).
        store: the cassettes.
        backend: the replay backend that plays the recordings.
    """

    def __init__(self, mode: Mode, store: CassetteStore, backend: Backend) -> None:
        self.mode, self.store, self.backend = mode, store, backend
        self._ids: dict[str, tuple[Cassette, int, set[str]]] = {}

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
        """``POST {v}/interactions``: refuse a ``previous_interaction_id`` the cassette never saw, else play."""
        api = request[API]
        previous = api.body.get("previous_interaction_id") if isinstance(api.body, dict) else None
        known = self.known(api.cassette)
        if isinstance(previous, str) and known is not None and previous not in known:
            return self._not_found(api.cassette, previous, known)
        return await self.backend.answer(request, api)

    async def by_id(self, request: web.Request) -> web.StreamResponse:
        """``GET``, ``DELETE`` and ``cancel`` of ``{v}/interactions/{id}``: refuse an id the cassette never saw."""
        api = request[API]
        interaction_id = request.match_info["id"]
        known = self.known(api.cassette)
        if known is not None and interaction_id not in known:
            return self._not_found(api.cassette, interaction_id, known)
        return await self.backend.answer(request, api)
