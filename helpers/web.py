"""Serve web apps from a notebook and read their server-sent events: what lesson ``07_web`` runs its apps with.

- :class:`AppServer`: a web server in a subprocess (``python -m uvicorn ...``, ``python -m flask ... run``) on a free
  port, started when it accepts connections and stopped cleanly, with the kernel's environment (so ``genai.Client()``
  in the app reaches the replay server :func:`helpers.setup` started).
- :class:`ThreadServer`: an ASGI or WSGI app served from a thread of this process (a learner's endpoint, a demo).
- :class:`BufferingProxy`: a reverse proxy that buffers responses as nginx does by default, unless the response says
  ``X-Accel-Buffering: no``.
- :func:`read_events`: one SSE request read with ``httpx-sse``, each event timed as it arrives.
- :func:`redraws`: how many DOM updates the page's throttle makes for given chunk arrival times.

Introduced in ``07_web``. Times are seconds from :func:`time.perf_counter`.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import httpx_sse
import uvicorn
from aiohttp import web as aioweb
from IPython.display import IFrame
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from . import needs
from .paths import NOTEBOOKS_DIR
from .replay.cassettes.cassette import Cassette, default_dir
from .replay.pipeline.server_token import is_loopback
from .replay.pipeline.socket_server import running
from .workbook import WorkbookError

HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 30.0
"""How long a server may take to accept connections: importing FastAPI and the SDK takes a second or two."""
STOP_TIMEOUT_S = 5.0
"""How long a server may take to stop after it was asked to, before it is killed."""
WEB_DIR = NOTEBOOKS_DIR / "web"
"""``notebooks/web``: lesson 07's apps (``app.py``, ``flask_app.py``) and their page."""


class Page(IFrame):  # type: ignore[misc]
    """A web page shown in the notebook (an ``<iframe>``), whose text form is its URL: ``Page(server.url)``.

    IPython's ``IFrame`` with a repr that does not change from run to run (IPython's names an object address).
    """

    def __init__(self, url: str, height: int = 420) -> None:
        super().__init__(url, width="100%", height=height)

    def __repr__(self) -> str:
        return f"<page {self.src}>"


def free_port(host: str = HOST) -> int:
    """A TCP port that is free on ``host`` now (the OS picks it), for a server about to start."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _accepts(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


class AppServer:
    """``python -m MODULE *args --port N`` in a subprocess, serving on a free port of loopback until :meth:`stop`.

    ::

        with AppServer("uvicorn", "app:app", "--app-dir", "web") as server:
            print(server.url)   # http://127.0.0.1:PORT

    The subprocess inherits this process's environment (plus ``env``): ``GOOGLE_GEMINI_BASE_URL`` and
    ``GEMINI_API_KEY`` as :func:`helpers.setup` set them. Its output goes to a log file in the temporary folder,
    removed when the server stops cleanly. A server left running when Python exits is stopped then.

    Args:
        module: run with ``python -m``, e.g. ``"uvicorn"`` or ``"flask"``.
        args: its arguments; ``--port N`` is added at the end (both uvicorn and ``flask run`` take it).
        cwd: the working directory (default: this process's).
        env: variables to add to the inherited environment.
        port: the port; ``None`` picks a free one.

    Raises:
        WorkbookError: ``module``'s package is not installed (the install leaves LiteLLM out on Intel Macs:
            :mod:`helpers.needs`); the server exited, or did not accept connections within
            :data:`STARTUP_TIMEOUT_S`, the message quoting the last line of its log.
    """

    def __init__(
        self,
        module: str,
        *args: str,
        cwd: str | Path | None = None,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        package = module.partition(".")[0]
        if not needs.installed(package):
            raise WorkbookError(
                f"`{package}` is not installed in this environment, so `python -m {module}` cannot run. The "
                "workbook's install leaves it out only where it has no wheels (LiteLLM on an Intel Mac: skip this "
                "section); anywhere else, re-run the install command in the README."
            )
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.command = [sys.executable, "-m", module, *args, "--port", str(self.port)]
        handle, name = tempfile.mkstemp(prefix=f"workbook-{module}-", suffix=".log")
        self.log = Path(name)
        with os.fdopen(handle, "wb") as log:
            self.proc = subprocess.Popen(
                self.command,
                cwd=cwd,
                env={**os.environ, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        atexit.register(self.stop)
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _accepts(HOST, self.port):
            if not self.alive() or time.monotonic() > deadline:
                how = "exited" if not self.alive() else f"did not accept connections in {STARTUP_TIMEOUT_S:g} s"
                last = self.last_log_line()
                self.stop(keep_log=True)
                raise WorkbookError(
                    f"`{' '.join(['python', *self.command[1:]])}` {how}; it said {last!r} (its log is {self.log})."
                )
            time.sleep(0.05)

    def last_log_line(self) -> str:
        """The last non-empty line the server wrote, or ``""``."""
        with contextlib.suppress(OSError):
            lines = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
            return lines[-1] if lines else ""
        return ""

    def alive(self) -> bool:
        """True while the subprocess runs."""
        return self.proc.poll() is None

    def stop(self, *, keep_log: bool = False) -> None:
        """Stop the server by its handle (``terminate()``: SIGTERM on POSIX, an immediate end on Windows; then
        ``kill()`` after :data:`STOP_TIMEOUT_S`); its log goes unless ``keep_log``.

        Safe to call twice, and after the server exited by itself.
        """
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        atexit.unregister(self.stop)
        if not keep_log:
            self.log.unlink(missing_ok=True)

    def __enter__(self) -> AppServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        command = " ".join(self.command[2:-2])  # without --port N: the URL says it
        return f"<AppServer {'serving' if self.alive() else 'stopped'} {self.url}: python -m {command} --port PORT>"


class _QuietHandler(WSGIRequestHandler):
    """werkzeug's request handler without its access log line per request (it would print in the notebook)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class ThreadServer:
    """An ASGI app (FastAPI, Starlette) under uvicorn, or a WSGI app (Flask) under werkzeug, in a thread of this
    process, on a free port of loopback until :meth:`stop`::

        with ThreadServer(app) as server:
            events = read_events(f"{server.url}/stream", {"prompt": "..."})

    In this process, the app reaches what the notebook defined (its ``client``, its functions): how exercise checks
    serve a learner's endpoint. A WSGI app gets a thread per request, as ``flask run`` gives it.

    Args:
        app: an ASGI application, or a WSGI one when ``wsgi`` is true.
        wsgi: serve ``app`` as WSGI (default: it is one when it has a ``wsgi_app`` attribute, as Flask apps do).

    Raises:
        WorkbookError: the server did not start within :data:`STARTUP_TIMEOUT_S`.
    """

    def __init__(self, app: Any, *, wsgi: bool | None = None) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self._wsgi: BaseWSGIServer | None = None
        self._uvicorn: uvicorn.Server | None = None
        if wsgi if wsgi is not None else hasattr(app, "wsgi_app"):
            self._wsgi = make_server(HOST, self.port, app, threaded=True, request_handler=_QuietHandler)
            target: Callable[[], None] = self._wsgi.serve_forever
        else:
            config = uvicorn.Config(app, host=HOST, port=self.port, log_level="warning", lifespan="off")
            self._uvicorn = uvicorn.Server(config)
            target = self._uvicorn.run
        self._thread = threading.Thread(target=target, name=f"ThreadServer:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _accepts(HOST, self.port):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise WorkbookError(f"the app's server on port {self.port} did not start; see the error above.")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop serving and wait for the thread (streams still open are cut). Safe to call twice."""
        if self._wsgi is not None:
            self._wsgi.shutdown()
            self._wsgi.server_close()
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        self._thread.join(STOP_TIMEOUT_S)

    def __enter__(self) -> ThreadServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Event:
    """One server-sent event as a client received it.

    Attributes:
        event: its type: ``"message"`` unless the server named it (``"done"``, ``"error"``).
        data: its ``data`` parsed as JSON (the raw string when it is not JSON).
        id: its ``id``, or ``""``.
        at_s: when it arrived, seconds after the request was sent.
    """

    event: str
    data: Any
    id: str
    at_s: float


@dataclass(frozen=True)
class EventStream:
    """An SSE response as a client read it: status, headers and the events, each timed.

    Attributes:
        status: the HTTP status.
        headers: the response headers (names in lower case).
        events: every event, in order.
        took_s: seconds from sending the request to the end of the response (or to when the reader stopped).
        retry_ms: the last ``retry:`` the server sent, milliseconds (``None``: none).
    """

    status: int
    headers: dict[str, str]
    events: tuple[Event, ...]
    took_s: float
    retry_ms: int | None = None

    @property
    def text(self) -> str:
        """The answer: the ``text`` of every ``message`` event, joined."""
        return "".join(e.data.get("text") or "" for e in self.messages if isinstance(e.data, dict))

    @property
    def messages(self) -> list[Event]:
        """The ``message`` events (one per model chunk)."""
        return [e for e in self.events if e.event == "message"]

    @property
    def ttft_s(self) -> float | None:
        """Seconds to the first ``message`` event with text, as the client saw it (``None``: none came)."""
        return next((e.at_s for e in self.messages if isinstance(e.data, dict) and e.data.get("text")), None)

    @property
    def ttlt_s(self) -> float | None:
        """Seconds to the last ``message`` event (``None``: none came)."""
        messages = self.messages
        return messages[-1].at_s if messages else None

    def last(self, event: str) -> Event | None:
        """The last event of type ``event`` (e.g. ``"done"``), or ``None``."""
        return next((e for e in reversed(self.events) if e.event == event), None)


def _event(sse: httpx_sse.ServerSentEvent, at_s: float) -> Event:
    try:
        data = json.loads(sse.data)
    except ValueError:
        data = sse.data
    return Event(sse.event, data, sse.id, at_s)


async def read_events(
    url: str,
    params: dict[str, str] | None = None,
    *,
    client: httpx.AsyncClient | None = None,
    headers: dict[str, str] | None = None,
    stop_after: int | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> EventStream:
    """GET ``url`` and read its server-sent events with ``httpx-sse`` until the response ends; await it.

    Args:
        url: e.g. ``f"{server.url}/stream"``.
        params: the query, e.g. ``{"prompt": "..."}``.
        client: the ``httpx.AsyncClient`` to send with (share one across concurrent reads); ``None``: a new one, with
            a 60 s timeout for each read, that reaches a loopback ``url`` directly whatever proxy variables are set.
        headers: extra request headers, e.g. ``{"Last-Event-ID": "3"}``.
        stop_after: close the connection after this many events (``None``: read to the end).
        on_event: called with each :class:`Event` as it arrives.

    Events without data are left out, as a browser dispatches none for them (their ``retry:`` is kept).

    Returns:
        The :class:`EventStream`; an answer that is not ``text/event-stream`` (an HTTP error, say) has no events.

    Raises:
        httpx.HTTPError: the server could not be reached, or went silent for longer than the client's timeout.
    """
    if client is None:
        local = is_loopback(urllib.parse.urlsplit(url).hostname or "")
        async with httpx.AsyncClient(timeout=60.0, trust_env=not local) as own:
            return await read_events(url, params, client=own, headers=headers, stop_after=stop_after, on_event=on_event)
    started = time.perf_counter()
    events: list[Event] = []
    retry_ms = None
    async with httpx_sse.aconnect_sse(client, "GET", url, params=params, headers=dict(headers or {})) as source:
        response = source.response
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            async for sse in source.aiter_sse():
                if sse.retry is not None:
                    retry_ms = sse.retry
                if not sse.data:  # a browser dispatches no event without data (a bare retry:, say)
                    continue
                events.append(_event(sse, time.perf_counter() - started))
                if on_event is not None:
                    on_event(events[-1])
                if stop_after is not None and len(events) >= stop_after:
                    break
        else:
            await response.aread()
    took_s = time.perf_counter() - started
    return EventStream(response.status_code, dict(response.headers), tuple(events), took_s, retry_ms)


def recorded_offsets(notebook: str, prompt: str) -> list[float]:
    """When each chunk of the first recorded stream of ``prompt`` was sent, seconds after its request arrived.

    Read from the notebook's cassette (``helpers.replay.cassettes.cassette.default_dir()``): what replay plays, with
    no machine's timing in it, so lessons can compute from it and print the same figures on every run.

    Raises:
        WorkbookError: the cassette has no stream whose last user text is ``prompt``.
        helpers.replay.cassettes.cassette.CassetteError: the cassette is missing or corrupt.
    """
    cassette = Cassette.load(default_dir() / f"{notebook}.json")
    for exchange in cassette.exchanges:
        contents = (exchange.request.get("body") or {}).get("contents") or [{}]
        texts = [p.get("text") for p in contents[-1].get("parts", [])]
        response = exchange.response
        if "chunks" in response and texts == [prompt]:
            return [chunk["offset_s"] for chunk in response["chunks"]]
    raise WorkbookError(f"cassette {notebook} has no recorded stream of {prompt!r}: run the cell that streams it first")


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0, every_s: float = 0.05) -> bool:
    """Call ``predicate()`` every ``every_s`` seconds until it is true or ``timeout_s`` have passed.

    Returns:
        True if it became true, False on timeout (never raises for it: the caller says what failed).
    """
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(every_s)
    return True


def redraws(arrivals_s: Sequence[float], every_s: float) -> int:
    """How many DOM updates the page's throttle (``stream.js``) makes for chunks arriving at ``arrivals_s``.

    The page appends text to a buffer and, if no redraw is pending, schedules one ``every_s`` later; the redraw
    empties the buffer. So a chunk that arrives while a redraw is pending shares it. ``every_s=0`` redraws per chunk.

    Args:
        arrivals_s: chunk arrival times, seconds, in order.
        every_s: the throttle interval, seconds (``FLUSH_MS / 1000``).

    Returns:
        The number of redraws: from 1 (all in one) to ``len(arrivals_s)``; 0 for no chunks.
    """
    if every_s <= 0:
        return len(arrivals_s)
    count, due = 0, -1.0
    for at in arrivals_s:
        if at > due:  # no redraw pending: schedule one
            count, due = count + 1, at + every_s
    return count


SESSION = aioweb.AppKey("session", aiohttp.ClientSession)


@dataclass
class BufferingProxy:
    """A reverse proxy on a free port of loopback that buffers each response as nginx does by default.

    nginx (``proxy_buffering on``, its default) reads the upstream's response into buffers and sends it on when a
    buffer is full or the response ends, unless the response carries ``X-Accel-Buffering: no``
    (nginx.org/en/docs/http/ngx_http_proxy_module.html#proxy_buffering, read 2026-12-01). This stand-in holds the body
    until ``buffer_bytes`` have arrived or the response ends; with ``X-Accel-Buffering: no`` it passes each piece on
    at once. Use it as a context manager; ``url`` is where to send requests.

    Attributes:
        upstream: the server to forward to, ``http://HOST:PORT``.
        buffer_bytes: how much body to hold back (nginx's default ``proxy_buffers 8 4k|8k``: 32 KiB on most systems).
    """

    upstream: str
    buffer_bytes: int = 32 * 1024
    url: str = field(init=False, default="")
    _stack: contextlib.ExitStack = field(init=False, default_factory=contextlib.ExitStack)

    async def _forward(self, request: aioweb.Request) -> aioweb.StreamResponse:
        session = request.app[SESSION]
        target = self.upstream.rstrip("/") + str(request.rel_url)
        async with session.get(target, headers={"Accept": request.headers.get("Accept", "*/*")}) as upstream:
            passthrough = upstream.headers.get("X-Accel-Buffering", "").lower() == "no"
            headers = {k: v for k, v in upstream.headers.items() if k.lower() in ("content-type", "cache-control")}
            response = aioweb.StreamResponse(status=upstream.status, headers=headers)
            await response.prepare(request)
            held = b""
            async for piece in upstream.content.iter_any():
                held += piece
                if passthrough or len(held) >= self.buffer_bytes:
                    await response.write(held)
                    held = b""
            await response.write(held)
            await response.write_eof()
            return response

    def _app(self) -> aioweb.Application:
        app = aioweb.Application()

        async def session(app: aioweb.Application) -> Any:
            app[SESSION] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
            yield
            await app[SESSION].close()

        app.cleanup_ctx.append(session)
        app.router.add_route("GET", "/{path:.*}", self._forward)
        return app

    def __enter__(self) -> BufferingProxy:
        started = threading.Event()
        stop = threading.Event()
        urls: list[str] = []

        def serve() -> None:
            async def main() -> None:
                async with running(self._app()) as url:
                    urls.append(url)
                    started.set()
                    while not stop.is_set():
                        await asyncio.sleep(0.05)

            asyncio.run(main())

        thread = threading.Thread(target=serve, name="BufferingProxy", daemon=True)
        thread.start()
        if not started.wait(STARTUP_TIMEOUT_S):
            raise WorkbookError("the buffering proxy did not start")
        self.url = urls[0]
        self._stack.callback(thread.join, STOP_TIMEOUT_S)
        self._stack.callback(stop.set)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
