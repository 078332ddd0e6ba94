"""The replay server: an aiohttp app that answers Gemini REST calls from cassettes, with their recorded timing.

The app layer, the top (``docs/server.md`` follows one request through every layer): it assembles the pipeline.

URL layout (a fixed contract): ``http://HOST:PORT/<cassette>/`` is a base URL for the SDK; the first path segment
names the cassette, the rest is the API path with its version segment (``v1`` and ``v1beta`` both work).
Started by ``python -m helpers.replay serve``; introduced in ``00_setup``.

A request goes: :mod:`.error_middleware` (any failure below becomes the API's error shape) ->
:meth:`.guard.Guard.middleware` (Host, Origin, token, content type; notes the key) -> :func:`.api_request.parse`
(parsed once, cassette name and body checked) -> :meth:`.ControlPanel.middleware` (stats, injected latency and
failures) -> the service whose route matches (:mod:`.files_api`, :mod:`.batches_api`, :mod:`.interactions_api`,
:mod:`.openai_compat_api`, else :mod:`.models_api`) -> for model calls, the backend (:mod:`.playback` or
:mod:`.recorder`) -> :mod:`.framing` framing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from ..backends.playback import Replayer
from ..backends.recorder import Recorder
from ..cassettes.matcher import Matcher
from ..cassettes.store import CassetteStore, check_name
from ..pipeline import error_middleware
from ..pipeline.api_request import MAX_BODY_BYTES, Backend, Mode, parse
from ..pipeline.control_panel import STATS_HISTORY, ControlPanel
from ..pipeline.guard import Grants, Guard
from ..pipeline.rate_limits import Limits
from ..services.batches_api import BatchService
from ..services.files_api import FileLimits, FileService
from ..services.interactions_api import InteractionService
from ..services.models_api import ModelService
from ..services.openai_compat_api import OpenAICompatService
from ..upstream.improviser import Improviser
from ..wire.defaults import DEFAULT_UPSTREAM


@dataclass
class ReplayServer:
    """Plays cassettes back (or, in a record mode, forwards to ``upstream`` and records) over real HTTP.

    Attributes:
        store: the cassettes.
        speed: every recorded delay is divided by this (2.0 replays twice as fast); the server's own clocks (rate
            limit window, batch, file and background-interaction timelines) run this much faster.
        mode: replay, record, or record with the Files and Batch APIs served here (:class:`.api_request.Mode`).
        upstream: where a record mode forwards calls.
        limits: ``--rpm``/``--tpm`` for every cassette, until one gets its own through the control endpoint.
        file_limits: how long uploads and files are kept and how many bytes the Files API holds
            (``--upload-ttl``, ``--max-stored-bytes``).
        stats_history: requests each cassette's stats timeline keeps (:data:`.control_panel.STATS_HISTORY`).
        remote: bound to a non-loopback address (``--allow-remote``): every call then needs the token (:mod:`.guard`).
        unmatched: in replay, what a request no recording matches gets (``--unmatched``): ``"error"``, the 404 that
            names the nearest recording, or ``"improvise"``, a labelled stand-in (:mod:`.improviser`). A control
            call may choose otherwise for one cassette.
        require_token: every call needs the token, on loopback too (``--require-token``; ``helpers.setup`` always
            starts its servers so).
        token: the server's token (:class:`.guard.Guard`); a fresh random one when ``None``.
        upstream_token: a record mode's upstream's token, sent with every call forwarded to it (``helpers.setup``'s
            synthetic stand-in requires one).
    """

    store: CassetteStore
    speed: float = 1.0
    mode: Mode = Mode.REPLAY
    upstream: str = DEFAULT_UPSTREAM
    limits: Limits = field(default_factory=Limits)
    file_limits: FileLimits = field(default_factory=FileLimits)
    stats_history: int = STATS_HISTORY
    remote: bool = False
    unmatched: str = "error"
    require_token: bool = False
    token: str | None = None
    upstream_token: str | None = None

    def _lookup(self, name: str) -> None:
        """Raise :class:`CassetteError` unless the server can serve cassette ``name`` (record mode creates it)."""
        if self.mode.records:
            check_name(name)
        else:
            self.store.get(name)

    def app(self) -> web.Application:
        """The aiohttp application, every layer in place (see the module docstring)."""
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        control = ControlPanel(self.speed, self.limits, self._lookup, self.stats_history)
        matcher = Matcher()
        recorder = Recorder(self.store, self.upstream, control, self.upstream_token) if self.mode.records else None
        grants = Grants()
        files = FileService(self.mode, self.speed, self.store, matcher, recorder, self.file_limits, grants)
        improviser = None if self.mode.records else Improviser(files)
        backend: Backend = recorder or Replayer(self.store, matcher, control, self.speed, improviser, self.unmatched)
        guard = Guard(self.remote, self.token, self.require_token, grants)
        guard.install(app)
        app.middlewares.extend([guard.middleware, parse, control.middleware])
        error_middleware.install(app)  # outermost: any failure below becomes the API's error shape
        files.install(app)
        BatchService(self.mode, self.speed, self.store, matcher, files).install(app)
        InteractionService(self.mode, self.speed, self.store, backend, improviser).install(app)
        control.install(app)
        OpenAICompatService(self.mode, backend).install(app)
        ModelService(backend, None if self.mode.forwards_files_batches else files).install(app)
        if recorder is not None:
            app.on_startup.append(lambda _app: recorder.start())
            app.on_cleanup.append(lambda _app: recorder.close())
        return app


__all__ = ["CassetteStore", "Mode", "ReplayServer"]
