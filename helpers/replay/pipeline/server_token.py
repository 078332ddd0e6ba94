"""The replay server's per-server token, handed to clients on this machine through a private runtime file.

The pipeline layer (``docs/server.md``), standard library only (:mod:`helpers.control` imports it). As Jupyter
Server does (``jpserver-<pid>.json`` in its runtime dir), a server writes, while it serves, a file
``replay-<pid>-<port>.json`` (mode 0600) into :func:`runtime_dir` (mode 0700, owned by the user) saying
``{"url": ..., "token": ..., "pid": ...}``, and removes it when it stops. :func:`find` reads it back: that is how
``helpers.control`` sends the token that ``/_control`` routes require (:mod:`.guard`) for any server of this user,
whoever started it (``helpers.setup``, a test, a terminal), without the learner seeing it. Files left behind by a
killed server are removed by the next server that starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

HEADER = "x-workbook-token"
"""The request header that carries the token."""

ANY_ADDRESS = {"0.0.0.0", "::", "[::]"}
"""Bound hosts that answer on every address, loopback included."""

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


class RuntimeDirError(OSError):
    """The runtime folder is not private to this user; the message says what to do."""


def runtime_dir() -> Path:
    """The private folder of runtime files: ``$XDG_RUNTIME_DIR/gemini-workbook``, else
    ``<temp folder>/gemini-workbook-<uid>``; created with mode 0700 when missing.

    Raises:
        RuntimeDirError: it exists but belongs to another user, or others can read or write it.
    """
    base = os.environ.get("XDG_RUNTIME_DIR")
    folder = Path(base) / "gemini-workbook" if base else Path(tempfile.gettempdir()) / f"gemini-workbook-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700, parents=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise RuntimeDirError(
            f"{folder} must be a folder only you can read (mode 0700, owned by you): it holds the replay server's "
            f"token. Remove it (or run `chmod 700 {folder}` if it is yours) and start the server again."
        )
    return folder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        if not _alive(entry["pid"]):
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
        if isinstance(entry.get("url"), str) and _same_server(entry["url"], url) and _alive(entry["pid"]):
            token = entry.get("token")
            return token if isinstance(token, str) else None
    return None
