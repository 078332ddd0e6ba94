"""The cassettes of one folder, held in memory: loaded once, checked by name, and (recording) written durably.

The cassette layer of the server (``docs/server.md``): it knows the cassette format (:mod:`.cassette`), not HTTP.

- Replay reads a cassette on first use and again only when its file changes on disk (a re-recording).
- Recording keeps the in-memory cassette as the truth: :meth:`CassetteStore.record` hands an exchange to the
  cassette's :class:`CassetteWriter`, which writes off the event loop, merges a burst of exchanges into one write,
  and never reads back the file it wrote. An exchange joins the cassette only once it is on disk; a failed write
  (:class:`SaveError`) leaves the cassette and its file as they were, and no temp file.
- No write can corrupt what was recorded before it, whenever the process is killed: the cassette file is only ever
  replaced whole (a temp file renamed over it), once when a run begins, and each new exchange is appended to the
  cassette's journal (:func:`.cassette.journal_path`), whose last line alone a crash can cut short, and which
  loading leaves out. Each append costs the size of its exchanges, however long the cassette has grown; the journal
  is merged back into the file when the recorder stops (:meth:`CassetteStore.compact`).
- No exchange whose text contains an API key the server was sent (:data:`.api_keys.SEEN`) is written: that check is
  on its final serialised text, right before the write, whatever route the key came by.
- A recorder holds the folder's lock (:class:`FolderLock`, a ``filelock`` lock, portable), so a second one on the same
  folder refuses to start rather than overwrite the first one's recordings.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from pathlib import Path

import filelock

from ..wire.api_keys import SEEN
from .cassette import (
    JOURNAL_SUFFIX,
    Cassette,
    CassetteError,
    Exchange,
    MissingCassetteError,
    journal_header,
    journal_line,
    journal_path,
    write_atomically,
)

CASSETTE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
"""What a cassette name looks like: the first path segment of every API URL (``/<cassette>/v1/...``). Match it with
``fullmatch`` only (:func:`is_name`): ``re.match`` with ``$`` would accept a name that ends in a newline."""
MAX_NAME_LENGTH = 100
"""The longest cassette name, in characters. ``NAME.json`` must fit a file name (255 bytes on common file systems)
with room for a writer's temporary file beside it; the longest shipped name has 15."""

LOCK_NAME = ".recording.lock"
"""The lock file a recorder holds in its cassette folder."""


class BadCassetteName(CassetteError):
    """A first path segment that cannot name a cassette."""


class SaveError(Exception):
    """An exchange could not be written; the message says why (the disk, the folder, or the exchange itself)."""


def is_name(name: str) -> bool:
    """Whether ``name`` can name a cassette: :data:`CASSETTE_NAME`, whole, of at most :data:`MAX_NAME_LENGTH`."""
    return len(name) <= MAX_NAME_LENGTH and CASSETTE_NAME.fullmatch(name) is not None


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a cassette (one sentence that shows the URL layout), or ``None`` if it can."""
    if is_name(name):
        return None
    shown = repr(name) if len(name) <= 60 else f"{name[:40]!r}... ({len(name)} characters)"
    if len(name) > MAX_NAME_LENGTH and CASSETTE_NAME.fullmatch(name):
        return f"{shown} is not a cassette name: names have at most {MAX_NAME_LENGTH} characters."
    return (
        f"{shown} is not a cassette name (letters, digits, '_', '.' and '-', starting with a letter or digit); "
        "use http://HOST:PORT/<cassette>/ as base URL."
    )


def check_name(name: str) -> str:
    """``name`` if it can name a cassette.

    Raises:
        BadCassetteName: it cannot; the message (:func:`name_problem`) shows the URL layout.
    """
    problem = name_problem(name)
    if problem is not None:
        raise BadCassetteName(problem)
    return name


class FolderLock:
    """An exclusive lock on a cassette folder, held from :meth:`acquire` to :meth:`release` (or process exit, when
    the operating system lets it go): ``filelock.FileLock`` (``flock`` on POSIX, ``LockFileEx`` on Windows)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_NAME
        self._lock = filelock.FileLock(self.path, timeout=0)

    def acquire(self) -> None:
        """Take the lock.

        Raises:
            CassetteError: another recorder holds it.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise CassetteError(
                f"another recorder is recording into {self.path.parent}: two would overwrite each other's recordings. "
                "Stop it (re-run its notebook's setup cell in replay mode, or restart its kernel) and start this one "
                "again."
            ) from None

    def release(self) -> None:
        """Let the lock go and remove its file."""
        if self._lock.is_locked:
            self._lock.release()
        with contextlib.suppress(OSError):
            self.path.unlink()


@dataclass
class _Pending:
    exchange: Exchange
    done: asyncio.Future[None]


class CassetteWriter:
    """Writes one cassette's new exchanges, off the event loop, a burst at a time.

    The first exchange of a request written in this run drops the cassette's earlier recordings of that request
    (a record run refreshes what it touches and keeps the rest). The run's first write replaces the file whole
    (atomically) and starts its journal; every later one appends the new exchanges to the journal, a write the size
    of the new exchanges however long the cassette has grown (see the module docstring).
    """

    def __init__(self, cassette: Cassette) -> None:
        self.cassette = cassette
        self._pending: list[_Pending] = []
        self._task: asyncio.Task[None] | None = None
        self._journal_size: int | None = None
        """The size of the journal as this writer last wrote it; ``None`` until the run's first write."""
        self._refreshed: set[str] = set()
        """The request keys written in this run."""
        self._keys = {e.key for e in cassette.exchanges}
        """The request keys the cassette holds."""

    async def add(self, exchange: Exchange) -> None:
        """Write ``exchange``, then add it to the cassette (the first of its request in this run replaces the
        earlier recordings of that request).

        Raises:
            SaveError: it could not be written; the cassette and its file are as they were.
        """
        done = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(exchange, done))
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._drain())
        await asyncio.shield(done)

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self._write, batch)
            except Exception as e:  # every failure of a write is reported to the requests it held
                error = SaveError(f"could not write {self.cassette.path}: {e}")
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(error)

    def _write(self, batch: list[_Pending]) -> None:
        """Render and write ``batch`` (in a worker thread); each item's future is resolved on the event loop."""
        loop = self._loop(batch)
        good: list[_Pending] = []
        for item in batch:
            try:
                if SEEN.find(item.exchange.text):  # rendered here, off the event loop, and kept for later writes
                    raise CassetteError("the exchange contains an API key this server was sent, so it is not written")
                good.append(item)
            except CassetteError as e:
                loop.call_soon_threadsafe(_fail, item.done, SaveError(str(e)))
        if not good:
            return
        cassette = self.cassette
        new = [item.exchange for item in good]
        refreshed = {e.key for e in new} - self._refreshed
        kept: list[Exchange] | None = None  # None: every exchange stays, and the new ones are appended
        if self._journal_size is None:
            kept = [e for e in cassette.exchanges if e.key not in refreshed]
            candidate = Cassette(cassette.name, cassette.path, kept + new, cassette.description)
            data = candidate.text().encode("utf-8")
            write_atomically(cassette.path, data)
            header = journal_header(data).encode()
            write_atomically(journal_path(cassette.path), header)  # after the file: a stale journal is ignored
            size = len(header)
        else:
            size = self._append(new, refreshed & self._keys)
        loop.call_soon_threadsafe(self._commit, kept, new, good, size, refreshed)

    def _append(self, new: list[Exchange], refresh: set[str]) -> int:
        """Append ``new`` to the journal, the first of each request in ``refresh`` marked to drop the earlier
        recordings of it; on failure cut the journal back to what it was. Returns the journal's new size."""
        assert self._journal_size is not None
        refresh = set(refresh)
        lines = []
        for exchange in new:
            lines.append(journal_line(exchange, exchange.key in refresh))
            refresh.discard(exchange.key)
        data = "".join(lines).encode("utf-8")
        with open(journal_path(self.cassette.path), "r+b") as f:
            try:
                f.seek(self._journal_size)
                f.write(data)
                f.flush()
            except OSError:
                f.truncate(self._journal_size)
                raise
        return self._journal_size + len(data)

    def _commit(
        self, kept: list[Exchange] | None, new: list[Exchange], good: list[_Pending], size: int, refreshed: set[str]
    ) -> None:
        # On the event loop: the cassette changes only here, after its file did.
        self._refreshed |= refreshed
        if kept is None:
            dropped = refreshed & self._keys  # recorded in an earlier run, recorded again now: the old ones go
            if dropped:
                self.cassette.exchanges = [e for e in self.cassette.exchanges if e.key not in dropped]
            self.cassette.exchanges.extend(new)
        else:
            self.cassette.exchanges = kept + new
            self._keys = {e.key for e in kept}
        self._keys.update(e.key for e in new)
        self.cassette.revision += 1
        self._journal_size = size
        for item in good:
            if not item.done.done():
                item.done.set_result(None)

    @staticmethod
    def _loop(batch: list[_Pending]) -> asyncio.AbstractEventLoop:
        return batch[0].done.get_loop()

    async def wait(self) -> None:
        """Return once everything handed to :meth:`add` so far is written (or has failed)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    def compact(self) -> None:
        """Merge the journal into the cassette file (replaced whole, atomically) and remove it; blocking, for a
        worker thread, once every write is done."""
        if self._journal_size is None:
            return
        write_atomically(self.cassette.path, self.cassette.text().encode("utf-8"))
        with contextlib.suppress(FileNotFoundError):
            journal_path(self.cassette.path).unlink()  # stale now: a crash before this line leaves it ignored
        self._journal_size = None


def _fail(future: asyncio.Future[None], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)


class CassetteStore:
    """The cassettes of one folder.

    Args:
        folder: where ``NAME.json`` files live.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._cache: dict[str, tuple[float, Cassette]] = {}
        self._writers: dict[str, CassetteWriter] = {}

    def path(self, name: str) -> Path:
        """Where cassette ``name`` is stored."""
        return self.folder / f"{name}.json"

    def names(self) -> list[str]:
        """The cassettes in the folder, sorted."""
        return sorted(p.stem for p in self.folder.glob("*.json"))

    def get(self, name: str) -> Cassette:
        """Cassette ``name``: the one being recorded, else the file's, reloaded when the file changed on disk.

        Raises:
            BadCassetteName: ``name`` cannot name a cassette.
            MissingCassetteError: there is no such cassette (and none is being recorded).
            CassetteError: the file is corrupt.
        """
        check_name(name)
        writer = self._writers.get(name)
        if writer is not None:
            return writer.cassette
        path = self.path(name)
        try:
            mtime = path.stat().st_mtime
            with contextlib.suppress(OSError):
                mtime += journal_path(path).stat().st_mtime  # a journal that changes is a change of the cassette
        except FileNotFoundError:
            known = ", ".join(self.names()) or "none"
            raise MissingCassetteError(
                f"no cassette named '{name}' in {self.folder} (cassettes here: {known}). Check the name passed "
                f"to helpers.setup(), or record it with WORKBOOK_MODE=record."
            ) from None
        cached = self._cache.get(name)
        if cached and cached[0] == mtime:
            return cached[1]
        cassette = Cassette.load(path)
        self._cache[name] = (mtime, cassette)
        return cassette

    async def record(self, name: str, exchange: Exchange) -> None:
        """Write ``exchange`` into cassette ``name`` (created when missing), then add it to the in-memory cassette.

        The first recording of a request in this run drops the cassette's earlier ones, in the same write.

        Raises:
            SaveError: it could not be written, or the cassette on disk is corrupt (it is then left alone).
        """
        writer = self._writers.get(name)
        if writer is None:
            try:
                cassette = self.get(name)
            except MissingCassetteError:
                cassette = Cassette(name, self.path(name))
            except CassetteError as e:
                raise SaveError(str(e)) from None
            writer = self._writers[name] = CassetteWriter(cassette)
        await writer.add(exchange)

    async def flush(self) -> None:
        """Return once every exchange handed to :meth:`record` so far is written (or has failed)."""
        for writer in list(self._writers.values()):
            await writer.wait()

    def recover(self) -> None:
        """Merge the journals a killed recorder left in the folder into their cassette files (each replaced whole,
        atomically) and remove them; blocking. A journal whose cassette file is corrupt is left alone.

        Raises:
            OSError: a file could not be written (the journal then stays, and loading still reads it).
        """
        for journal in self.folder.glob("*" + JOURNAL_SUFFIX):
            path = self.path(journal.name.removesuffix(JOURNAL_SUFFIX))
            try:
                cassette = Cassette.load(path)
            except CassetteError:
                continue
            write_atomically(path, cassette.text().encode("utf-8"))
            journal.unlink()

    async def compact(self) -> None:
        """Write every cassette recorded into as one whole file again (its journal merged in and removed), off the
        event loop; call once recording stops, after :meth:`flush`.

        Raises:
            OSError: a file could not be written (its journal then stays, and loading still reads it).
        """
        await self.flush()
        for writer in list(self._writers.values()):
            await asyncio.to_thread(writer.compact)
