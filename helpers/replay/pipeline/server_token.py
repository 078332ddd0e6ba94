"""The replay server's per-server token, handed to clients on this machine through a private runtime file.

The pipeline layer (``docs/server.md``), light (:mod:`helpers.control` imports it). As Jupyter Server does
(``jpserver-<pid>.json`` in its runtime dir), a server writes, while it serves, a file ``replay-<pid>-<port>.json``
(mode 0600 on POSIX) into :func:`runtime_dir` (this user's own runtime folder, from ``platformdirs``) saying
``{"url": ..., "token": ..., "pid": ...}``, and removes it when it stops. :func:`find` reads it back: that is how
``helpers.control`` sends the token that ``/_control`` routes require (:mod:`.guard`) for any server of this user,
whoever started it (``helpers.setup``, a test, a terminal), without the learner seeing it. Files left behind by a
killed server are removed by the next server that starts.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import urllib.parse
import warnings
from collections.abc import Iterator
from pathlib import Path

import platformdirs
import psutil  # type: ignore[import-untyped]

from ..wire.defaults import LOOPBACK_HOSTS, TOKEN_HEADER

HEADER = TOKEN_HEADER
"""The request header that carries the token."""

ANY_ADDRESS = {"0.0.0.0", "::", "[::]"}
"""Bound hosts that answer on every address, loopback included."""

LOOPBACK_NAMES = {*LOOPBACK_HOSTS, "[::1]"}

APP_NAME = "gemini-workbook"
"""The name of the runtime folder (:func:`runtime_dir`)."""


class RuntimeDirError(OSError):
    """The runtime folder is not private to this user; the message says what to do."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is this machine's loopback."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def runtime_dir() -> Path:
    """This user's private folder of runtime files, created when missing: ``platformdirs.user_runtime_dir``, i.e.
    ``$XDG_RUNTIME_DIR/gemini-workbook`` on Linux (without that variable, ``/run/user/<uid>/...`` or a private
    folder in the temp folder), ``~/Library/Caches/TemporaryItems/gemini-workbook`` on macOS,
    ``%LOCALAPPDATA%\\Temp\\gemini-workbook`` (inside the user's profile, which only they can read) on Windows.
    On POSIX, ``platformdirs`` makes sure the folder and its parents are this user's alone (mode 0700).

    Raises:
        RuntimeDirError: the folder, or a folder above it, belongs to another user or others can write it (POSIX).
    """
    try:
        with warnings.catch_warnings():
            # platformdirs says so when $XDG_RUNTIME_DIR is unset (a container, an ssh session): its fallback is just
            # as private (it checks it), so the learner has nothing to do about it.
            warnings.simplefilter("ignore", platformdirs.RuntimeDirWarning)
            return Path(platformdirs.user_runtime_dir(APP_NAME, appauthor=False, ensure_exists=True))
    except PermissionError as e:
        raise RuntimeDirError(
            f"the replay server's runtime folder, which holds its token, is not private to you ({e}). Remove that "
            "folder (or, if it is yours, run `chmod 700` on it), or set XDG_RUNTIME_DIR to a folder only you can "
            "read, then start the server again."
        ) from None


def _entries() -> Iterator[tuple[Path, dict]]:
    """The runtime files and what they say, newest first (a stale file whose pid was reused loses to the live
    server's), skipping unreadable ones."""
    paths = []
    for path in runtime_dir().glob("replay-*.json"):
        with contextlib.suppress(OSError):
            paths.append((path.stat().st_mtime, path))
    for _mtime, path in sorted(paths, reverse=True):
        with contextlib.suppress(OSError, ValueError):
            entry = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(entry, dict) and isinstance(entry.get("pid"), int):
                yield path, entry


@contextlib.contextmanager
def published(url: str, token: str) -> Iterator[Path]:
    """Write the runtime file saying ``url``'s token for the duration of the block (see the module docstring)."""
    folder = runtime_dir()
    for path, entry in _entries():
        if not psutil.pid_exists(entry["pid"]):
            with contextlib.suppress(OSError):
                path.unlink()
    port = urllib.parse.urlsplit(url).port
    path = folder / f"replay-{os.getpid()}-{port}.json"
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"url": url, "token": token, "pid": os.getpid()}, f)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


def _same_server(published_url: str, url: str) -> bool:
    """Whether ``url`` reaches the server published as ``published_url`` (loopback names are one host)."""
    a, b = urllib.parse.urlsplit(published_url), urllib.parse.urlsplit(url)
    try:
        if a.port != b.port:
            return False
    except ValueError:  # not a URL with a port (an IPv6 address without brackets, say)
        return False
    hosts = {a.hostname or "", b.hostname or ""}
    return len(hosts) == 1 or hosts <= LOOPBACK_NAMES | ANY_ADDRESS


def find(url: str) -> str | None:
    """The token of the live server of this user at ``url`` (``http://HOST:PORT``), or ``None`` if none is
    published.

    Raises:
        RuntimeDirError: see :func:`runtime_dir`.
    """
    for _path, entry in _entries():
        if isinstance(entry.get("url"), str) and _same_server(entry["url"], url) and psutil.pid_exists(entry["pid"]):
            token = entry.get("token")
            return token if isinstance(token, str) else None
    return None
