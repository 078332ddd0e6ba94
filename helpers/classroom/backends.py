"""Where the relay sends a seat's calls: its own replay servers (replay, the default) or the Gemini API (``--live``).

**Replay.** Thirty seats running the same lesson must not share one replay server: its matcher's turns (identical
requests take the recordings in turn), its injected faults and its stats (which exercise checks read) are per
cassette, so one seat's calls would move another's turn, a hold one seat's check set would catch another's stream,
and a check would count the whole room's requests. So each seat gets, per lesson, a replay server of its own: the
replay server's own app (:class:`.replay_server.ReplayServer`), run in the relay's process on a loopback port
(:func:`.socket_server.running`), all of them sharing one in-memory copy of the cassettes. A lesson's
``helpers.setup(..., speed=S)`` starts its server at that speed, and a new one when the speed changes, exactly as a
kernel's own server is restarted (:func:`helpers.workbook.setup`). ``/_control`` calls of a seat (faults, limits and
stats its checks use) reach its server with that server's token, which never leaves the relay.

**Live.** Calls go to ``--upstream`` (the Gemini API) with the instructor's key in ``x-goog-api-key`` (or
``Authorization: Bearer`` when the seat used that scheme, as the ``openai`` SDK does); the seat's token is never
forwarded. Proxy variables apply to the upstream (the instructor's network may need one), never to loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import aiohttp

from ..replay.app.replay_server import ReplayServer
from ..replay.cassettes.store import CassetteStore
from ..replay.pipeline.api_request import Mode
from ..replay.pipeline.server_token import HEADER as CONTROL_HEADER
from ..replay.pipeline.socket_server import APP_TOKEN, running

CONNECT_TIMEOUT_S = 30.0
"""How long connecting to the upstream (or a seat's replay server) may take, seconds."""


@dataclass
class Target:
    """Where one call goes.

    Attributes:
        base: the URL the call's API path is appended to, ending in ``/``.
        headers: headers to add (the replay server's token on control calls; the instructor's key live).
        session: the HTTP client to send it with.
    """

    base: str
    headers: dict[str, str]
    session: aiohttp.ClientSession


@dataclass
class _Server:
    url: str
    token: str
    speed: float
    stack: contextlib.AsyncExitStack


@dataclass
class ReplayPool:
    """The seats' replay servers, one per seat and lesson, started on first use (see the module docstring).

    Args:
        store: the cassettes, shared by every server.
    """

    store: CassetteStore
    _servers: dict[tuple[int, str], _Server] = field(default_factory=dict)
    _locks: dict[tuple[int, str], asyncio.Lock] = field(default_factory=dict)
    _session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The loopback client every call to a seat's server goes through (no proxy: ``trust_env`` is off)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0)
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S)
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False)
        return self._session

    async def server(self, seat: int, cassette: str, speed: float | None = None) -> _Server:
        """The replay server of ``seat`` for ``cassette``: the running one, or a new one when there is none or
        ``speed`` differs from its speed (``None``: whatever it runs at, 1 for a new one)."""
        key = (seat, cassette)
        async with self._locks.setdefault(key, asyncio.Lock()):
            current = self._servers.get(key)
            if current is not None and (speed is None or speed == current.speed):
                return current
            if current is not None:
                await current.stack.aclose()
            wanted = 1.0 if speed is None else speed
            stack = contextlib.AsyncExitStack()
            app = ReplayServer(self.store, wanted, Mode.REPLAY).app()
            url = await stack.enter_async_context(running(app))
            self._servers[key] = _Server(url, app[APP_TOKEN], wanted, stack)
            return self._servers[key]

    async def target(self, seat: int, cassette: str, *, control: bool = False) -> Target:
        """Where seat ``seat``'s call for ``cassette`` goes; ``control`` adds its server's token."""
        server = await self.server(seat, cassette)
        return Target(f"{server.url}/", {CONTROL_HEADER: server.token} if control else {}, self.session)

    async def close(self) -> None:
        """Stop every server and close the client."""
        for server in self._servers.values():
            await server.stack.aclose()
        self._servers.clear()
        if self._session is not None:
            await self._session.close()


@dataclass
class LiveUpstream:
    """The Gemini API (or ``--upstream``), called with the instructor's key.

    Args:
        url: the upstream's base URL, e.g. ``https://generativelanguage.googleapis.com``.
        key: the instructor's API key; it is only ever put in the header of an upstream request.
    """

    url: str
    key: str = field(repr=False)
    _session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The client to the upstream; it follows the proxy variables, as the SDK would on this machine."""
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S)
            self._session = aiohttp.ClientSession(timeout=timeout, trust_env=True, auto_decompress=False)
        return self._session

    def target(self, bearer: bool) -> Target:
        """Where a seat's call goes, with the key in the scheme the seat used (``bearer``: ``Authorization``)."""
        header = {"Authorization": f"Bearer {self.key}"} if bearer else {"x-goog-api-key": self.key}
        return Target(f"{self.url.rstrip('/')}/", header, self.session)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
