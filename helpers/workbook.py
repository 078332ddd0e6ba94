"""The one setup call at the top of every notebook: choose replay, live or record, and point the SDK there.

Introduced in ``00_setup``. The mode comes from the environment variable ``WORKBOOK_MODE``:

- ``replay`` (the default): a local replay server plays the notebook's cassette back over real HTTP, with its
  recorded timing. No API key, no network.
- ``live``: the real Gemini API, with your key from ``GEMINI_API_KEY`` (or ``GOOGLE_API_KEY``); in Google Colab,
  when the environment has neither, from Colab Secrets of those names (:mod:`helpers.colab`).
- ``record``: the real API through the recorder, which refreshes the notebook's cassette as cells run.
  ``WORKBOOK_UPSTREAM=synthetic`` records from the synthetic stand-in instead (how the shipped cassettes are made);
  it has no Files or Batch API, so those are then served locally as in replay (``serve --local-files-batches``).

In replay, a request no recording matches (a prompt you changed) gets a labelled offline stand-in, sized and timed
like the model's answer, or the 404 that names the nearest recording: ``setup(..., unmatched=...)``, else
``WORKBOOK_UNMATCHED``, chooses; by default it improvises, except in CI (``CI`` set) and under tests and nbval (the
repository's ``conftest.py`` sets ``WORKBOOK_UNMATCHED=error``), where an unmatched request must fail.

Nothing here patches the SDK: it sets the SDK's own documented variables (``GOOGLE_GEMINI_BASE_URL`` and the key
variables; in Colab, the key from Colab Secrets when the environment has none), so a plain ``genai.Client()`` in the
next cell just works, and keeps proxies off loopback (``NO_PROXY``, :func:`helpers.proxies.keep_loopback_off_proxies`),
so it works behind a proxy too.

The replay server it starts answers only calls that carry its token (``serve --require-token``, ``SECURITY.md``):
other accounts of a shared machine reach its port too. Setup hands the token to the SDK in the key itself: each key
variable that is set becomes ``KEY.TOKEN`` (without a key, ``GEMINI_API_KEY`` becomes a placeholder with the token),
so every client that reads the key from the environment (the SDK, ``openai``, ``httpx`` with the key header, LiteLLM)
sends it, and record mode forwards only ``KEY`` upstream. Live mode gets the keys back as they were. No URL carries
the token, so nothing a notebook prints shows it.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import math
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import colab, models, progress
from .classroom.client import RoomError, room_request, room_url
from .prices import CHECKED as PRICES_CHECKED
from .proxies import keep_loopback_off_proxies
from .replay.cassettes.cassette import Cassette, CassetteError, check_writable, default_dir
from .replay.wire.defaults import (
    DEFAULT_UPSTREAM,
    FINISH_TIMEOUT_S,
    PLACEHOLDER_KEY,
    STAND_IN_LABEL,
    TOKEN_HEADER,
    TOKEN_SEPARATOR,
    TOKEN_VARIABLE,
    UNMATCHED_POLICIES,
    UNMATCHED_VARIABLE,
    UPSTREAM_TOKEN_VARIABLE,
)

MODES = ("replay", "live", "record")
KEY_VARIABLES = ("GOOGLE_API_KEY", "GEMINI_API_KEY")
"""Where the SDK looks for the API key, in its order of precedence."""
BASE_URL_VARIABLE = "GOOGLE_GEMINI_BASE_URL"
ROOM_VARIABLE = "WORKBOOK_ROOM"
"""A classroom relay's ``http://HOST:PORT`` (``docs/classroom.md``); with :data:`SEAT_VARIABLE` set, lessons join it."""
SEAT_VARIABLE = "WORKBOOK_SEAT"
"""The seat token the instructor handed out; the SDK sends it as its API key."""
STARTUP_TIMEOUT_S = 30.0
MODEL_CHECK_TIMEOUT_MS = 15_000
"""How long :func:`check_models` waits for each ``models.get``, milliseconds."""
STOP_TIMEOUT_S = 5.0
"""How long a replay server may take to stop before it is killed; a recorder gets its finish timeout on top."""


class WorkbookError(Exception):
    """Set-up could not proceed; the message says what happened and what to do."""


@dataclass(frozen=True)
class Session:
    """What :func:`setup` chose.

    Attributes:
        mode: ``"replay"``, ``"live"`` or ``"record"``.
        cassette: the notebook's cassette name, e.g. ``"01_sync"``.
        base_url: where the SDK sends requests (``None`` in live mode: the SDK's default endpoint).
        server_url: the replay server's ``http://HOST:PORT`` (``None`` in live mode).
        speed: recorded delays are divided by this in replay; in replay and record, the server's own clocks (the
            rate-limit window, batch and file timelines) run this much faster.
        sources: what the cassette holds: ``"synthetic"``, ``"recorded"``, ``"recorded and synthetic"``.
        models: in replay, the model ids the cassette's recordings were made with.
        room: in a classroom room, the relay's ``http://HOST:PORT`` (``None`` alone).
        seat: in a room, the seat's token (a credential: never shown in the session's repr).
        seat_number: in a room, the seat's number on the instructor's dashboard.
    """

    mode: str
    cassette: str
    base_url: str | None
    server_url: str | None
    speed: float
    sources: str
    models: tuple[str, ...] = ()
    room: str | None = None
    seat: str | None = field(default=None, repr=False)
    seat_number: int | None = None

    @property
    def rest_base_url(self) -> str:
        """The REST root the ``google-genai`` SDK calls, ending in ``v1beta/``: the replay server's for this
        notebook, or Gemini's own in live mode. For raw HTTP clients (``httpx``, ``08_protocols``)."""
        return f"{self.base_url or DEFAULT_UPSTREAM + '/'}v1beta/"

    @property
    def openai_base_url(self) -> str:
        """The base URL of Gemini's OpenAI-compatible endpoint, for ``OpenAI(base_url=...)``: ``.../v1beta/openai/``
        on the replay server (or Gemini's own in live mode). Introduced in ``08_protocols``."""
        return f"{self.rest_base_url}openai/"

    def describe(self) -> str:
        """The one deterministic line the setup cell prints."""
        if self.room is not None:
            where = f"room {self.room} · seat {self.seat_number}"
            if self.mode == "live":
                return f"mode: live · {where} · calls go to the Gemini API through the room's relay, with its key"
            return f"mode: replay · {where} · cassette: {self.cassette} · {self.sources} responses, played by the room"
        if self.mode == "live":
            return "mode: live · calls go to the Gemini API with your key · nothing is recorded"
        if self.mode == "record":
            return f"mode: record · cassette: {self.cassette} · refreshed from the upstream as cells run"
        speed = "recorded speed" if self.speed == 1 else f"{self.speed:g}x recorded speed"
        recorded = f"{', '.join(self.models)} · " if self.models else ""
        return (
            f"mode: replay · cassette: {self.cassette} · {self.sources} responses · {recorded}prices read "
            f"{PRICES_CHECKED} · {speed} · no API key or network needed"
        )


_serial = itertools.count(1)


class ServerProcess:
    """A ``python -m helpers.replay ...`` subprocess, tied to this kernel (it exits when the kernel does).

    With ``--require-token`` in ``args``, the server takes ``token`` as its token, and a recorder sends
    ``upstream_token`` to its upstream (both given in its environment, which only this user can read, never on its
    command line, which every user can).
    """

    def __init__(
        self, args: list[str], port: int = 0, token: str | None = None, upstream_token: str | None = None
    ) -> None:
        self.args = args
        # One log per server: a replacement's log never carries what an earlier server wrote.
        self.log = Path(tempfile.gettempdir()) / f"gemini-workbook-{os.getpid()}-{args[0]}-{next(_serial)}.log"
        # 0600: only its user reads the log (the server also redacts every key it was sent from it, SECURITY.md).
        fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if os.chmod in os.supports_fd:  # POSIX: a file left by an earlier process with this pid keeps no wider mode
            os.chmod(fd, 0o600)  # (Windows: the temp folder is the user's own, and files have no such modes)
        with os.fdopen(fd, "ab") as log:
            # stdin stays open as a lifeline: when this process dies, or stop() closes it, the server sees EOF and
            # stops cleanly. That works on every OS (Windows has no SIGTERM to send: terminate() kills outright).
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "helpers.replay", *args, "--port", str(port), "--watch-stdin"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env={**os.environ, **_tokens(token, upstream_token)},
            )
        self.url = self._read_url()
        self.token = self._read_token() if "--require-token" in args else None
        atexit.register(self.stop)

    def _read_url(self) -> str:
        line: list[str] = []
        stdout = self.proc.stdout
        assert stdout is not None, "the server is started with stdout=PIPE"
        reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(STARTUP_TIMEOUT_S)
        first = line[0].strip() if line else ""
        if not first.startswith("serving http://"):
            self.stop()
            why = _last_error(self.log)
            if why:
                raise WorkbookError(f"the replay server did not start: {why}")
            raise WorkbookError(
                f"the replay server did not start (it printed {first!r}; its log is {self.log}). "
                "Re-run this cell; if it fails again, run `python -m helpers.replay serve` in a terminal to see why."
            )
        return first.split()[1]

    def _read_token(self) -> str:
        """The ``token TOKEN`` line a ``--require-token`` server prints second (read from its pipe, never logged)."""
        stdout = self.proc.stdout
        assert stdout is not None, "the server is started with stdout=PIPE"
        words = stdout.readline().split()
        if words[:1] != ["token"] or len(words) != 2:
            self.stop()
            raise WorkbookError(f"the replay server did not say its token (its log is {self.log}). Re-run this cell.")
        return words[1]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """Stop the server: close its standard input, which it takes as the signal to shut down cleanly (on every
        OS), and kill it by its handle if it has not exited in time. Its log file goes too when the server wrote
        nothing to it (a clean run).

        A recording server first finishes the streams it is still recording: it gets up to the recorder's
        :data:`FINISH_TIMEOUT_S` more before it is killed.
        """
        if self.alive():
            stdin = self.proc.stdin
            assert stdin is not None, "the server is started with stdin=PIPE"
            with contextlib.suppress(OSError):  # a server that has just exited closed its end already
                stdin.close()
            timeout = STOP_TIMEOUT_S + (FINISH_TIMEOUT_S if "--record" in self.args else 0.0)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(OSError):
            if self.log.stat().st_size == 0:
                self.log.unlink()


def _last_error(log: Path) -> str:
    """The message of the ``error: ...`` line a server that would not start wrote last to ``log``, or ``""``."""
    with contextlib.suppress(OSError):
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("error: ")]
        if lines:
            return lines[-1].removeprefix("error: ")
    return ""


_servers: dict[str, ServerProcess] = {}
_current: Session | None = None
_wrapped: dict[str, tuple[str | None, str]] = {}
"""The key variables :func:`_wrap_keys` changed: name -> (the value before, the value it set)."""
_token = secrets.token_urlsafe(32)
"""This kernel's replay servers' token: every server :func:`setup` starts takes it, so that a client made before a
server was replaced (``genai.Client()`` keeps the key it read) still reaches the new one."""


def _unwrap_keys() -> None:
    """Give every key variable back the value it had before :func:`_wrap_keys` (one changed since is kept)."""
    for name, (before, wrapped) in _wrapped.items():
        if os.environ.get(name) == wrapped:
            if before is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = before
    _wrapped.clear()


def _wrap_keys(token: str) -> None:
    """Make each key variable that is set ``KEY.TOKEN`` (``GEMINI_API_KEY`` a placeholder with it when none is), so
    that every client reading the key from the environment sends the replay server its token (see the module
    docstring)."""
    before = {name: _wrapped[name][0] if name in _wrapped else os.environ.get(name) for name in KEY_VARIABLES}
    for name in [name for name in KEY_VARIABLES if before[name]] or ["GEMINI_API_KEY"]:
        wrapped = f"{before[name] or PLACEHOLDER_KEY}{TOKEN_SEPARATOR}{token}"
        os.environ[name] = wrapped
        _wrapped[name] = (before[name], wrapped)


def current_session() -> Session:
    """The :class:`Session` the last :func:`setup` call chose.

    Raises:
        WorkbookError: :func:`setup` has not run in this kernel yet.
    """
    if _current is None:
        raise WorkbookError("helpers.setup(...) has not run in this kernel yet: run the notebook's setup cell first.")
    return _current


def _announce(session: Session) -> Session:
    global _current
    _current = session
    if session.mode != "live":
        _explain_connection_errors()
    print(session.describe())
    line = progress.lesson_line(session.cassette)
    if line is not None:
        print(line)
    return session


_noted: set[str] = set()
"""What :func:`record_check` has already noted once in this kernel (a local write failing, a room not answering)."""


def _note_once(kind: str, message: str) -> None:
    if kind not in _noted:
        _noted.add(kind)
        print(f"note: {message}")


def record_check(exercise: str, status: str) -> None:
    """Keep the outcome of ``qN.check()`` (introduced in ``01_sync``): in this user's progress file
    (:mod:`helpers.progress`), and, in a classroom room, on the room's relay too.

    Never raises and never waits long: a progress file that cannot be written, or a relay that is down, is one note
    in this kernel (the first time) and the lesson goes on. Nothing is kept before :func:`setup` has run.

    Args:
        exercise: the exercise's variable, ``"q1"``, ...
        status: the outcome's status, ``"correct"``, ``"incorrect"`` or ``"unattempted"``.
    """
    session = _current
    if session is None:
        return
    try:
        progress.record(session.cassette, exercise, status)
    except progress.ProgressError as e:
        _note_once("local", f"your progress was not saved: {e}")
    if session.room is not None and session.seat is not None:
        why = progress.post_to_room(session.room, session.seat, session.cassette, exercise, status)
        if why is not None:
            _note_once(
                "room",
                f"the room's relay did not take this result ({why}); it is saved on this machine, and later checks "
                "try the room again.",
            )


def stopped_server_message() -> str | None:
    """The one line to show when a call fails because this kernel's replay server has stopped; ``None`` otherwise.

    Shown in place of the traceback by the IPython handler :func:`setup` installs (introduced in ``00_setup``).

    ``None`` too while the server runs, in live mode, and before :func:`setup`: a connection error then has another
    cause, and its usual traceback says more.
    """
    server = _servers.get("serve")
    if _current is None or _current.mode == "live" or server is None or server.alive():
        return None
    code = server.proc.returncode
    how = f"exit code {code}"
    if code < 0:
        with contextlib.suppress(ValueError):
            how = f"killed by {signal.Signals(-code).name}"
    speed = "" if _current.speed == 1 else f", speed={_current.speed:g}"
    return (
        f"The replay server for this notebook stopped ({how}; its log is {server.log}). Re-run the setup cell, "
        f'helpers.setup("{_current.cassette}"{speed}), to start a new one on the same port, then this cell again.'
    )


def _show_connection_error(
    shell: Any, etype: type[BaseException], value: BaseException, tb: Any, tb_offset: int | None = None
) -> None:
    """IPython's handler for the HTTP clients' connection errors: :func:`stopped_server_message` if there is one, in
    place of a traceback through the SDK and its HTTP client; otherwise the usual traceback."""
    message = stopped_server_message()
    if message is None:
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
    else:
        # What showtraceback() itself ends with, given our one line as the traceback to display.
        shell._showtraceback(etype, value, [f"{etype.__name__}: {message}"])


def _explain_connection_errors() -> None:
    """Under IPython (a notebook kernel), route the SDK's connection errors through :func:`_show_connection_error`.

    Uses IPython's ``set_custom_exc`` hook (which replaces a custom handler set before); the SDK is not touched.
    Sync calls fail with ``httpx2`` transport errors, ``client.aio`` calls with ``aiohttp`` connection errors.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return
    import aiohttp
    import httpx2

    errors = (httpx2.TransportError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)
    shell.set_custom_exc(errors, _show_connection_error)


def _tokens(token: str | None, upstream_token: str | None) -> dict[str, str]:
    """The environment variables that give a server its token and its upstream's."""
    given = {TOKEN_VARIABLE: token, UPSTREAM_TOKEN_VARIABLE: upstream_token}
    return {name: value for name, value in given.items() if value}


def _server(role: str, args: list[str], upstream_token: str | None = None) -> ServerProcess:
    """The running server for ``role`` if it was started with ``args``; otherwise a new one (the old one stopped).

    A replacement takes the old server's port when it is free, so clients made before (``genai.Client()`` keeps its
    base URL) reach the new server: re-running the setup cell is enough after a server died or the speed changed.
    """
    current = _servers.get(role)
    if current is not None and current.alive() and current.args == args:
        return current
    if current is None:
        _servers[role] = ServerProcess(args, token=_token, upstream_token=upstream_token)
        return _servers[role]
    current.stop()
    port = int(current.url.rsplit(":", 1)[1])
    try:
        if not _port_free(port):
            raise WorkbookError(f"port {port} is taken")
        _servers[role] = ServerProcess(args, port=port, token=_token, upstream_token=upstream_token)
    except WorkbookError:  # the port was taken meanwhile: any free one will do, and earlier clients must be told
        _servers[role] = ServerProcess(args, token=_token, upstream_token=upstream_token)
        print(squatted_port_message(port, _servers[role].url))
    return _servers[role]


def squatted_port_message(port: int, new_url: str) -> str:
    """The line :func:`setup` prints when its restarted server could not have its old ``port`` back.

    Another process took the port after the old server stopped: a client made before (``genai.Client()`` keeps its
    base URL) would now send its calls (in record mode, with your key) to that process.
    """
    return (
        f"warning: port {port} of the old replay server is now taken by another process, so the new one serves "
        f"{new_url}. Clients made before this cell still point at port {port}: re-run the cells that create them "
        "(genai.Client()), and don't use the old ones."
    )


def _port_free(port: int) -> bool:
    """Whether ``port`` on loopback can be bound now (nobody else listens on it), bound as the server binds it."""
    from .replay.pipeline.socket_server import bind

    try:
        bind("127.0.0.1", port).close()
    except OSError:
        return False
    return True


def _has_key() -> bool:
    return any(os.environ.get(v) for v in KEY_VARIABLES)


def _require_key(mode: str) -> None:
    """Live or record mode found no key in the environment: in Google Colab, put the one from Colab Secrets there
    (where the SDK reads it); otherwise, or with no usable secret, raise the one-line :class:`WorkbookError` saying
    where the key goes. The key is never printed or written anywhere."""
    if not colab.running_in_colab():
        raise WorkbookError(
            f"WORKBOOK_MODE={mode} needs your API key: set GEMINI_API_KEY in the environment that starts Jupyter "
            "(see 00_setup, 'Where your key goes'), or unset WORKBOOK_MODE to replay the recordings offline."
        )
    try:
        name, key = colab.key_from_secrets()
    except colab.ColabKeyError as e:
        raise WorkbookError(f"WORKBOOK_MODE={mode} needs your API key: {e}") from None
    os.environ[name] = key


def check_models(base_url: str | None, token: str | None = None) -> list[str]:
    """Ask the API once whether it serves each model the workbook uses (:data:`helpers.models.MODELS`).

    Called by :func:`setup` in live and record mode, so a retired or mistyped model id is one line at the top of the
    notebook instead of a 404 in every later cell. Uses the key the SDK finds in the environment; makes one
    ``models.get`` per model, no retries, :data:`MODEL_CHECK_TIMEOUT_MS` each.

    Args:
        base_url: where to ask (the record upstream), or ``None`` for the SDK's default endpoint (live mode).
        token: the upstream's token, for ``helpers.setup``'s synthetic stand-in (sent as ``x-workbook-token``).

    Returns:
        One message per model that is not served (what the API said, and where to change the id), or that could
        not be checked; empty when every model is served. Never raises for an API or network error.
    """
    from google import genai
    from google.genai import errors, types

    options = types.HttpOptions(
        base_url=base_url,
        timeout=MODEL_CHECK_TIMEOUT_MS,
        retry_options=types.HttpRetryOptions(attempts=1),
        headers={TOKEN_HEADER: token} if token else None,
    )
    problems = []
    with genai.Client(http_options=options) as client:
        for model in models.MODELS:
            try:
                client.models.get(model=model)
            except errors.APIError as e:
                problems.append(
                    f"model check: the API does not serve {model} ({e.code} {e.status}: {e.message}); change it in "
                    "helpers/models.py (FLASH / FLASH_LITE), then re-record the cassettes"
                )
            except Exception as e:  # a network failure: say it once, the calls that follow will meet it too
                problems.append(f"model check: could not ask the API about {model} ({type(e).__name__}: {e})")
    return problems


IMPROVISING = (
    f'unmatched requests: a labelled offline stand-in answers them (its text starts "{STAND_IN_LABEL}"; timing and '
    "token counts are modelled, the words are not the model's). To record the real answer, start Jupyter with "
    "GEMINI_API_KEY set and WORKBOOK_MODE=record."
)
"""The line :func:`setup` adds in replay when it improvises (introduced in ``00_setup``)."""


def unmatched_policy(unmatched: str | None = None) -> str:
    """What replay does with a request no recording matches: ``"improvise"`` or ``"error"``.

    ``unmatched`` when given, else ``$WORKBOOK_UNMATCHED`` when set, else ``"error"`` in CI (``$CI`` set, as CI
    services set it) and ``"improvise"`` elsewhere. Introduced in ``00_setup``.

    Raises:
        WorkbookError: a value that is neither (the message names where it came from).
    """
    source, value = f"unmatched={unmatched!r}", unmatched
    if value is None:
        source, value = (
            f"{UNMATCHED_VARIABLE}={os.environ.get(UNMATCHED_VARIABLE)!r}",
            os.environ.get(UNMATCHED_VARIABLE),
        )
    if not value:
        return "error" if os.environ.get("CI", "").strip().lower() not in ("", "0", "false") else "improvise"
    if value.strip().lower() not in UNMATCHED_POLICIES:
        choices = " or ".join(f'"{p}"' for p in UNMATCHED_POLICIES)
        raise WorkbookError(f"{source} is not a choice: use {choices} (or leave it unset).")
    return value.strip().lower()


def setup(
    notebook: str,
    *,
    speed: float = 1.0,
    room: str | None = None,
    seat: str | None = None,
    unmatched: str | None = None,
) -> Session:
    """Prepare this kernel for a notebook: pick the mode, start the replay server if needed, point the SDK at it.

    Call it once at the top of a notebook; calling it again is cheap and restarts a server that has died. In a
    notebook kernel, a call that fails because the server has died then says so in one line
    (:func:`stopped_server_message`) instead of a traceback through the SDK.

    Args:
        notebook: the notebook's name without extension, e.g. ``"01_sync"``; it names the cassette.
        speed: in replay, divide every recorded delay by this (lessons use it to keep 100-request demos short); in
            replay and record, the rate-limit window lasts ``60 / speed`` seconds and batch and file timelines are
            as much shorter.
        room: a classroom relay's ``http://HOST:PORT`` (default ``$WORKBOOK_ROOM``): calls go there, replayed or
            live as the relay runs, and each check's outcome is posted to it (``docs/classroom.md``).
        seat: the seat token the instructor handed out (default ``$WORKBOOK_SEAT``); the SDK sends it as its API
            key, in place of any key of yours.
        unmatched: in replay, what a request no recording matches gets: ``"improvise"``, a labelled offline
            stand-in (one more line says so), or ``"error"``, the 404 that names the nearest recording. ``None``:
            :func:`unmatched_policy` chooses.

    Returns:
        The :class:`Session`; its one-line description is printed.

    Raises:
        WorkbookError: an unknown ``WORKBOOK_MODE``, a missing key in live or record mode (in Google Colab, read
            from Colab Secrets when the environment has none: :mod:`helpers.colab`), a missing or corrupt
            cassette in replay, a cassette folder record mode cannot write, a server that would not start, or a
            room that cannot be joined. The message says what to do.
            So does a bad ``unmatched`` (:func:`unmatched_policy`).
    """
    _unwrap_keys()  # a previous setup's server token is not this one's, and live mode needs the keys as they were
    mode = os.environ.get("WORKBOOK_MODE", "replay").strip().lower() or "replay"
    if mode not in MODES:
        raise WorkbookError(f"WORKBOOK_MODE={mode!r} is not a mode; use one of {', '.join(MODES)} (or leave it unset).")
    if not math.isfinite(speed) or speed <= 0:  # NaN compares false with everything: test finiteness first
        raise WorkbookError(f"speed must be a finite number greater than 0, got {speed}.")
    policy = unmatched_policy(unmatched)
    room = room or os.environ.get(ROOM_VARIABLE, "").strip() or None
    seat = seat or os.environ.get(SEAT_VARIABLE, "").strip() or None
    if room is not None or seat is not None:
        if mode == "record":
            raise WorkbookError(
                "WORKBOOK_MODE=record records on your own machine, not in a room: unset WORKBOOK_ROOM and "
                "WORKBOOK_SEAT to record, or unset WORKBOOK_MODE to use the room."
            )
        return _join_room(notebook, speed, room, seat)
    keep_loopback_off_proxies()
    upstream = os.environ.get("WORKBOOK_UPSTREAM", DEFAULT_UPSTREAM)
    if mode != "replay" and not _has_key() and not (mode == "record" and upstream == "synthetic"):
        _require_key(mode)
    folder = default_dir()
    if mode == "live":
        os.environ.pop(BASE_URL_VARIABLE, None)
        session = _announce(Session(mode, notebook, None, None, 1.0, "live"))
        for problem in check_models(None):
            print(problem)
        return session

    recorded: tuple[str, ...] = ()
    if mode == "replay":
        try:
            cassette = Cassette.load(folder / f"{notebook}.json")
        except CassetteError as e:
            raise WorkbookError(str(e)) from None
        sources, recorded = cassette.sources(), tuple(cassette.models())
        args = ["serve", "--require-token", "--cassettes", str(folder), "--speed", f"{speed:g}", "--unmatched", policy]
        server = _server("serve", args)
    else:
        try:
            check_writable(folder)  # refused here, before a server starts or a call is billed
        except CassetteError as e:
            raise WorkbookError(str(e)) from None
        sources, local, upstream_token = "recorded", [], None
        if upstream == "synthetic":
            script = folder.parent / "scripts" / f"{notebook}.json"
            upstream = _server("synth", ["synth", "--require-token", "--script", str(script)]).url
            upstream_token = _token
            # The synthetic upstream has no Files or Batch API: the recorder serves those as replay does.
            sources, local = "synthetic", ["--local-files-batches"]
        # --speed scales the server's own clocks in record mode too (rate-limit window, batch and file timelines),
        # so a lesson's waits match its replay; the upstream's answers keep their real timing.
        args = ["serve", "--require-token", "--cassettes", str(folder), "--speed", f"{speed:g}", "--record"]
        args += ["--upstream", upstream]
        server = _server("serve", [*args, *local], upstream_token)
    if not _has_key():  # the SDK needs a key to make a client (check_models makes one in record mode)
        os.environ["GEMINI_API_KEY"] = PLACEHOLDER_KEY
        _wrapped["GEMINI_API_KEY"] = (None, PLACEHOLDER_KEY)
    base_url = f"{server.url}/{notebook}/"
    os.environ[BASE_URL_VARIABLE] = base_url
    session = _announce(Session(mode, notebook, base_url, server.url, speed, sources, recorded))
    if mode == "replay" and policy == "improvise":
        print(IMPROVISING)
    if mode == "record":
        # The upstream itself, with the keys as they are: a check through the recorder would be recorded.
        for problem in check_models(upstream, upstream_token):
            print(problem)
    assert server.token is not None, "setup starts its servers with --require-token"
    _wrap_keys(server.token)
    return session


def _join_room(notebook: str, speed: float, room: str | None, seat: str | None) -> Session:
    """:func:`setup` in a classroom room: tell the relay which lesson this kernel runs (and at what speed), then
    point the SDK at it with the seat's token as its API key."""
    if room is None or seat is None:
        raise WorkbookError(
            "joining a room needs both its address and your seat token: helpers.setup(..., room=URL, seat=TOKEN), "
            f"or set {ROOM_VARIABLE} and {SEAT_VARIABLE} before starting Jupyter. Leave both unset to work alone."
        )
    try:
        url = room_url(room)
        info = room_request(url, seat, "POST", "session", {"cassette": notebook, "speed": speed})
    except RoomError as e:
        raise WorkbookError(
            f"could not join the room: {e}. Check the address and seat token your instructor gave you, and that "
            f"this machine is on the room's network; or unset {ROOM_VARIABLE} and {SEAT_VARIABLE} to work alone."
        ) from None
    replay = info.get("mode") == "replay"
    for name in KEY_VARIABLES:
        os.environ.pop(name, None)  # GOOGLE_API_KEY would win over the seat's token
    os.environ["GEMINI_API_KEY"] = seat
    keep_loopback_off_proxies(urllib.parse.urlsplit(url).hostname or "")  # the room is on the local network
    base_url = f"{url}/{notebook}/"
    os.environ[BASE_URL_VARIABLE] = base_url
    return _announce(
        Session(
            "replay" if replay else "live",
            notebook,
            base_url,
            url if replay else None,
            speed if replay else 1.0,
            str(info.get("sources", "live")),
            tuple(info.get("models", ())),
            room=url,
            seat=seat,
            seat_number=info.get("seat"),
        )
    )
