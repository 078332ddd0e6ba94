"""Run an aiohttp app on a socket: print ``serving http://HOST:PORT``, then serve until asked to stop.

The pipeline layer (``docs/server.md``). It also notes when each request's first bytes arrived
(:func:`arrival`): under a burst, hundreds of requests wait in the event loop's queue before their handlers run, and
a request's recorded timing must count from its arrival, not from when its turn came.

Its connections are bounded (``SECURITY.md``, "Limits"): a connection without a complete request head for
:data:`IDLE_TIMEOUT_S` is closed (idle keep-alive connections and slow-header clients alike), and the accept loop
(:class:`_GuardedServer`) survives running out of file descriptors: it says so in one log line, waits, and accepts
again once descriptors are free.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

from ..wire.framing import JSON_CONTENT_TYPE, error_json, json_bytes
from . import server_token

try:
    import resource
except ImportError:  # Windows: no per-process open-file limit to read or raise (its sockets are not CRT descriptors)
    resource = None  # type: ignore[assignment]

BODY_TIMEOUT = web.AppKey("workbook_body_timeout_s", float)
"""How long an API request's body may take to arrive after its head, seconds: the idle timeout :func:`running` was
given (a body trickled a byte at a time would otherwise hold a handler forever; :func:`.api_request.parse` reads it)."""
APP_TOKEN = web.AppKey("workbook_token", str)
"""An app's per-server token (:mod:`.guard` sets it); :func:`running` publishes it for the app's URL
(:func:`.server_token.published`)."""

IDLE_TIMEOUT_S = 30.0
"""Seconds a connection may go without a complete request head before it is closed: from when it opened, and after
each response. It bounds idle keep-alive connections and slow-header ("slowloris") clients, which would otherwise hold
a file descriptor each for ever (aiohttp's ``keepalive_timeout``, which also runs while a request head trickles in).
``serve --idle-timeout`` changes it."""
ACCEPT_RETRY_S = 0.25
"""Seconds the accept loop waits before it tries again when the process is out of file descriptors."""
ACCEPT_LOG_INTERVAL_S = 60.0
"""The accept loop says it is out of file descriptors at most once per this many seconds (one line, not one per try)."""
OUT_OF_DESCRIPTORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
"""``accept()`` errors that mean "no resources now, try again later", as asyncio's own accept loop treats them."""


class PortInUseError(OSError):
    """The requested port is taken; the message says by what means to pick another."""


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (``port`` 0 picks a free one).

    Raises:
        PortInUseError: the port is already in use.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    if hasattr(socket, "SO_EXCLUSIVEADDRUSE"):
        # Windows: SO_REUSEADDR there would let a second server bind the same port (asyncio sets it on POSIX only).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
    else:  # POSIX: rebind a port whose last connections are still in TIME_WAIT
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"port {port} on {host} is already in use (another replay server?). Stop that process, or pass "
                "--port 0 to pick a free port."
            ) from None
        raise
    return sock


FIRST_REQUEST_WINDOW_S = 0.05
"""A connection's first request whose bytes arrive within this many seconds of the connection being accepted is
timed from the accept. A client making a burst opens hundreds of connections and writes each request as soon as its
connection is up, while this server sets the connections up one after another: the request began when its connection
was opened, not when the server got round to reading it. Beyond the window (a connection opened ahead, then used),
the request is timed from its bytes, so a recorded delay is at most this much short of the client's own view."""

_arrivals: dict[asyncio.BaseProtocol, float] = {}
"""When the bytes of the request a connection is receiving began to arrive, by the connection's aiohttp protocol."""


def arrival(request: web.Request) -> float | None:
    """When ``request``'s first bytes arrived (event loop clock), and forget it: call it once the body is read, so
    that bytes arriving later belong to the connection's next request. ``None`` for a request served elsewhere."""
    return _arrivals.pop(request.protocol, None)


class _Stamping(asyncio.Protocol):
    """An aiohttp connection protocol that notes when a request's first bytes arrive, in the transport's callback:
    before the request waits in the event loop's queue (a connection's first request: see
    :data:`FIRST_REQUEST_WINDOW_S`). Everything else is the wrapped protocol's."""

    def __init__(self, inner: Any, accepted: float | None = None) -> None:
        self.inner = inner
        self._accepted = accepted

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if self._accepted is not None:
            if now - self._accepted <= FIRST_REQUEST_WINDOW_S:
                now = self._accepted
            self._accepted = None
        _arrivals.setdefault(self.inner, now)
        self.inner.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        _arrivals.pop(self.inner, None)
        self.inner.connection_lost(exc)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class _GuardedServer:
    """Accepts connections on a listening socket and hands each to ``factory``'s protocol; what aiohttp's site needs
    of an :class:`asyncio.Server` (``close``, ``sockets``).

    Out of file descriptors (``EMFILE``), uvloop's own accept loop retries at once and logs every failure (hundreds of
    megabytes in seconds) while every client waits. This one writes one line to stderr (at most one per
    :data:`ACCEPT_LOG_INTERVAL_S`), retries every :data:`ACCEPT_RETRY_S`, and serves again as soon as descriptors are
    free; connections that arrive meanwhile wait in the listen backlog.
    """

    def __init__(self, sock: socket.socket, factory: Callable[[float], asyncio.Protocol], backlog: int) -> None:
        self.sock, self._factory = sock, factory
        sock.listen(backlog)
        sock.setblocking(False)
        self._connecting: set[asyncio.Task[Any]] = set()
        self._task = asyncio.ensure_future(self._accept_loop())

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return (self.sock,)

    def close(self) -> None:
        """Stop accepting; connections already made are aiohttp's to close."""
        self._task.cancel()

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        logged_at: float | None = None
        while True:
            try:
                conn, _ = await loop.sock_accept(self.sock)
                self._connect(loop, conn)
                while True:  # take what else is waiting now, without a trip through the event loop for each
                    conn, _ = self.sock.accept()
                    self._connect(loop, conn)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                continue
            except OSError as e:
                if e.errno not in OUT_OF_DESCRIPTORS:
                    raise
                now = time.monotonic()
                if logged_at is None or now - logged_at >= ACCEPT_LOG_INTERVAL_S:
                    logged_at = now
                    limit = open_file_limit()
                    print(
                        f"replay server: out of file descriptors ({os.strerror(e.errno)}"
                        f"{'' if limit is None else f'; limit {limit}'}): new "
                        "connections wait until open ones close (idle ones do after serve --idle-timeout seconds). "
                        "Close clients you no longer use.",
                        file=sys.stderr,
                        flush=True,
                    )
                await asyncio.sleep(ACCEPT_RETRY_S)

    def _connect(self, loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
        conn.setblocking(False)
        accepted = time.monotonic()
        task = asyncio.ensure_future(loop.connect_accepted_socket(lambda: self._factory(accepted), conn))
        self._connecting.add(task)
        task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Task[Any]) -> None:
        self._connecting.discard(task)
        if not task.cancelled():
            task.exception()  # a client gone while its transport was set up is nobody's error: read, not logged


class _QuietErrors(RequestHandler):
    """aiohttp's connection handler, except for a request it cannot parse: aiohttp answers that with a text body and
    a log entry quoting the raw request line or header, which may carry an API key. This answers with the API's JSON
    error naming only the kind of error, and logs nothing (a stream of garbage must not fill the log)."""

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already sent; the connection is closed")
        text = (
            f"The server could not parse this HTTP request ({type(exc).__name__}: its request line or a header is "
            "malformed). Send a well-formed HTTP/1.1 request, as the SDK does."
        )
        body = json_bytes(error_json(status, text))
        response = web.Response(status=status, body=body, headers={"Content-Type": JSON_CONTENT_TYPE})
        response.force_close()
        return response


class _StampingSite(web.SockSite):
    """A :class:`aiohttp.web.SockSite` whose connections note their requests' arrival (:class:`_Stamping`), accepted
    by a :class:`_GuardedServer`."""

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None

        def protocol(accepted: float) -> _Stamping:
            return _Stamping(_QuietErrors(server, loop=server._loop, **server._kwargs), accepted)

        self._server = _GuardedServer(self._sock, protocol, self._backlog)  # type: ignore[assignment]


@contextlib.asynccontextmanager
async def running(
    app: web.Application, host: str = "127.0.0.1", port: int = 0, idle_timeout_s: float = IDLE_TIMEOUT_S
) -> AsyncIterator[str]:
    """Serve ``app`` in the current event loop for the duration of the block; yields its ``http://HOST:PORT`` URL.

    ``idle_timeout_s``: see :data:`IDLE_TIMEOUT_S`.
    """
    sock = bind(host, port)
    app[BODY_TIMEOUT] = idle_timeout_s
    # handler_cancellation: a client that goes away (a cancelled cell, a timeout) ends its request at once, rather than
    # when its next recorded chunk is due, so the stats show it as ended and nothing sleeps on for it.
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=1.0,
        handler_cancellation=True,
        keepalive_timeout=idle_timeout_s,
    )
    await runner.setup()
    # A large backlog: a notebook may open hundreds of connections at once.
    site = _StampingSite(runner, sock, backlog=2048)
    await site.start()
    bound_host, bound_port = sock.getsockname()[:2]
    token = app.get(APP_TOKEN)
    try:
        host_in_url = f"[{bound_host}]" if ":" in bound_host else bound_host
        with server_token.published(f"http://{host_in_url}:{bound_port}", token) if token else contextlib.nullcontext():
            yield f"http://{bound_host}:{bound_port}"
    finally:
        await runner.cleanup()


OPEN_FILES_WITHOUT_A_HARD_LIMIT = 65_536
"""The open-file limit :func:`raise_open_file_limit` asks for where the hard limit is unlimited."""


def open_file_limit() -> int | None:
    """This process's soft limit on open files; ``None`` where there is none to read (Windows, which has no
    ``resource`` module: sockets there are not C runtime file descriptors)."""
    return None if resource is None else resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def raise_open_file_limit() -> int | None:
    """Raise this process's soft limit on open files to its hard limit; return the limit now in force
    (:func:`open_file_limit`: ``None`` on Windows, where there is no such limit to raise).

    Each open connection is a file descriptor: under the common soft limit of 1024, a server holds only about 1014
    concurrent streams (measured by ``bench/run.py``), although the hard limit usually allows far more.
    """
    if resource is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = OPEN_FILES_WITHOUT_A_HARD_LIMIT if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return open_file_limit()


STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGBREAK")
"""The signals that stop :func:`serve_forever`, those of them this platform has: Ctrl+C, ``kill`` (POSIX), and
Ctrl+Break (Windows)."""


def stop_on_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Set ``stop`` when one of :data:`STOP_SIGNALS` arrives; call from the main thread.

    The loop's own signal handlers where it has them (POSIX). Windows' Proactor loop has none
    (``add_signal_handler`` raises :class:`NotImplementedError`): there a plain :func:`signal.signal` handler wakes
    the loop instead, which is safe because asyncio wakes its loop on any signal (``signal.set_wakeup_fd``).
    """
    for name in STOP_SIGNALS:
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        try:
            loop.add_signal_handler(sig, stop.set)
        except NotImplementedError:
            signal.signal(sig, lambda _sig, _frame: loop.call_soon_threadsafe(stop.set))


async def serve_forever(
    app: web.Application,
    host: str,
    port: int,
    watch_stdin: bool = False,
    idle_timeout_s: float = IDLE_TIMEOUT_S,
    show_token: bool = False,
) -> None:
    """Serve until SIGINT or SIGTERM, or Ctrl+Break on Windows (:func:`stop_on_signals`), or standard input
    closing (with ``watch_stdin``: how :class:`helpers.workbook.ServerProcess` stops it, on every OS), then shut down
    cleanly.

    The first stdout line is exactly ``serving http://HOST:PORT``, flushed, once the socket accepts connections;
    with ``show_token`` a second one says ``token TOKEN`` (the app's :data:`APP_TOKEN`).
    The open-file limit is raised first (:func:`raise_open_file_limit`), so the server holds thousands of streams.
    """
    raise_open_file_limit()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    stop_on_signals(loop, stop)
    if watch_stdin:

        def wait_for_eof() -> None:
            # os.read on the raw descriptor, not sys.stdin: a daemon thread blocked inside a buffered reader holds
            # its lock, and the interpreter aborts at shutdown ("could not acquire lock ... at interpreter shutdown").
            while os.read(sys.stdin.fileno(), 4096):
                pass
            loop.call_soon_threadsafe(stop.set)

        threading.Thread(target=wait_for_eof, daemon=True).start()
    async with running(app, host, port, idle_timeout_s) as url:
        print(f"serving {url}", flush=True)
        if show_token:
            print(f"token {app[APP_TOKEN]}", flush=True)
        await stop.wait()
