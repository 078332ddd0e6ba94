"""Which exercises a learner has done: every ``qN.check()`` outcome, kept in a per-user data folder.

Introduced in ``00_setup``: the setup cell's second line says how many of the lesson's exercises are done, and
``python -m helpers progress`` lists every lesson (``--reset`` forgets it all). Outcomes are written to
``progress.json`` in :func:`data_dir`, never into the repository, and stay on this machine unless the lesson runs in a
classroom room (``helpers.setup(..., room=URL, seat=TOKEN)``), where each outcome is also posted to the room's relay
(:func:`post_to_room`) so the instructor's dashboard shows who is stuck where.

The file is ``{"format": 1, "lessons": {"01_sync": {"q1": {"status", "done", "attempts", "last"}}}}``: the latest
status (``"correct"``, ``"incorrect"`` or ``"unattempted"``), whether the exercise was ever correct, how many checks
ran, and when the last one did (UTC, ISO 8601). Kernels of several lessons may write at once: writes hold a lock
(``filelock``) and replace the file atomically.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
from filelock import FileLock

from .classroom.client import RoomError, room_request
from .paths import NOTEBOOKS_DIR
from .replay.cassettes.cassette import write_atomically

DATA_DIR_VARIABLE = "WORKBOOK_DATA_DIR"
"""Set it to keep progress somewhere else than the per-user data folder (the test suite points it at a temp folder)."""
APP_NAME = "gemini-workbook"
FILE_NAME = "progress.json"
FORMAT = 1
STATUSES = ("correct", "incorrect", "unattempted")
CHECK_CELL = re.compile(r"^\s*(q\d+)\.check\(\)", re.MULTILINE)
EXERCISE = re.compile(r"q\d{1,3}")
"""What an exercise's name looks like (``q1``): the variable a lesson binds it to."""
MAX_LESSONS = 100
"""The most lessons a classroom relay keeps outcomes of, per seat (what a seat can make it hold is bounded)."""
ROOM_TIMEOUT_S = 2.0
"""How long posting an outcome to a room's relay may take before it is given up (the lesson goes on)."""
LOCK_TIMEOUT_S = 10.0
"""How long a write waits for another kernel's write to finish before it gives up (progress is not worth a hang)."""


class ProgressError(Exception):
    """The progress file could not be read or written; the message says which file and what to do."""


def data_dir() -> Path:
    """The folder progress is kept in: ``$WORKBOOK_DATA_DIR`` when set, else the per-user data folder of
    ``platformdirs`` (``~/.local/share/gemini-workbook`` on Linux, ``~/Library/Application Support/gemini-workbook``
    on macOS, ``%LOCALAPPDATA%\\gemini-workbook`` on Windows)."""
    override = os.environ.get(DATA_DIR_VARIABLE)
    return Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def progress_file() -> Path:
    """``progress.json`` in :func:`data_dir`."""
    return data_dir() / FILE_NAME


def _lock() -> FileLock:
    path = progress_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_S)


def load() -> dict[str, dict[str, dict[str, Any]]]:
    """Every recorded outcome: ``{lesson: {exercise: {"status", "done", "attempts", "last"}}}``; empty when nothing
    is recorded yet.

    Raises:
        ProgressError: the file exists but is not a progress file (the message names it and says how to start over).
    """
    path = progress_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ProgressError(
            f"{path} is not a readable progress file ({e}); run `python -m helpers progress --reset` to start over."
        ) from None
    lessons = data.get("lessons") if isinstance(data, dict) else None
    if not isinstance(lessons, dict):
        raise ProgressError(f"{path} has no 'lessons'; run `python -m helpers progress --reset` to start over.")
    return lessons


def record(lesson: str, exercise: str, status: str, now: dt.datetime | None = None) -> dict[str, Any]:
    """Note that ``exercise`` (``"q2"``) of ``lesson`` (``"01_sync"``) was checked with ``status``.

    Called by ``qN.check()`` through :func:`helpers.workbook.record_check` (``01_sync`` introduces checks).

    Args:
        lesson: the notebook's name.
        exercise: the exercise's variable, ``"q1"``, ``"q2"``, ...
        status: one of :data:`STATUSES`.
        now: when it was checked (UTC); now by default.

    Returns:
        The exercise's entry after the update.

    Raises:
        ValueError: ``status`` is not one of :data:`STATUSES`.
        ProgressError: the file could not be read or written (see :func:`load`).
    """
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    when = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    try:
        with _lock():
            lessons = load()
            entry = updated(lessons.setdefault(lesson, {}).get(exercise), status, when)
            lessons[lesson][exercise] = entry
            _save(lessons)
    except (OSError, TimeoutError) as e:
        raise ProgressError(
            f"could not write {progress_file()} ({e}); set {DATA_DIR_VARIABLE} to a folder you can write."
        ) from None
    return entry


def updated(entry: dict[str, Any] | None, status: str, when: str) -> dict[str, Any]:
    """An exercise's entry after one more check with ``status`` at ``when`` (ISO 8601): the latest status, whether
    it was ever correct, how many checks ran. ``entry`` is the one before (``None`` for the first check). The same
    rule keeps a learner's file and a classroom relay's record of the room (:mod:`helpers.classroom.seats`)."""
    entry = entry or {}
    return {
        "status": status,
        "done": bool(entry.get("done")) or status == "correct",
        "attempts": int(entry.get("attempts", 0)) + 1,
        "last": when,
    }


def _save(lessons: dict[str, Any]) -> None:
    write_atomically(progress_file(), json.dumps({"format": FORMAT, "lessons": lessons}, indent=1).encode())


def reset() -> None:
    """Forget every recorded outcome (the file is removed).

    Raises:
        ProgressError: the file could not be removed.
    """
    try:
        with _lock():
            progress_file().unlink(missing_ok=True)
    except (OSError, TimeoutError) as e:
        raise ProgressError(f"could not remove {progress_file()} ({e}).") from None


def exercises(lesson: str, notebooks: Path = NOTEBOOKS_DIR) -> tuple[str, ...]:
    """The exercises of ``lesson``, in order (``("q1", "q2", "q3")``): the ``qN.check()`` cells of its notebook;
    empty when the lesson has no notebook there."""
    path = notebooks / f"{lesson}.ipynb"
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return ()
    found: list[str] = []
    for cell in cells:
        if cell.get("cell_type") == "code":
            source = "".join(cell.get("source", ""))
            found += [name for name in CHECK_CELL.findall(source) if name not in found]
    return tuple(found)


def lessons(notebooks: Path = NOTEBOOKS_DIR) -> list[str]:
    """The workbook's lessons with exercises, in order: ``["00_setup", "01_sync", ...]``."""
    return [p.stem for p in sorted(notebooks.glob("[0-9][0-9]_*.ipynb")) if exercises(p.stem, notebooks)]


@dataclass(frozen=True)
class LessonProgress:
    """One lesson's progress.

    Attributes:
        lesson: the notebook's name.
        done: its exercises that were ever checked correct.
        total: how many exercises it has (0 when its notebook is not found).
        attempted: exercises checked at least once, whatever the outcome.
    """

    lesson: str
    done: int
    total: int
    attempted: int


def summary(recorded: dict[str, dict[str, dict[str, Any]]] | None = None) -> list[LessonProgress]:
    """Progress per lesson: every lesson of the workbook, then any other lesson outcomes were recorded for.

    Args:
        recorded: outcomes as :func:`load` returns them (loaded when ``None``).
    """
    recorded = load() if recorded is None else recorded
    names = lessons()
    names += sorted(set(recorded) - set(names))
    result = []
    for lesson in names:
        entries = recorded.get(lesson, {})
        known = exercises(lesson)
        done = sum(1 for name, e in entries.items() if e.get("done") and (not known or name in known))
        result.append(LessonProgress(lesson, done, len(known), len(entries)))
    return result


def lesson_line(lesson: str) -> str | None:
    """The setup cell's progress line for ``lesson``, e.g. ``progress: 1 of 4 exercises done in this lesson ...``;
    ``None`` for a lesson without exercises. Never raises: an unreadable file is one line saying so."""
    total = len(exercises(lesson))
    if not total:
        return None
    try:
        entries = load().get(lesson, {})
    except ProgressError as e:
        return f"progress: {e}"
    done = sum(1 for e in entries.values() if e.get("done"))
    return f"progress: {done} of {total} exercises done in this lesson · python -m helpers progress shows every lesson"


def table(rows: list[LessonProgress]) -> str:
    """``python -m helpers progress``'s table: one line per lesson, ``01_sync   2 of 4 done  (3 tried)``."""
    width = max((len(r.lesson) for r in rows), default=0)
    lines = []
    for r in rows:
        of = f" of {r.total}" if r.total else ""
        lines.append(f"{r.lesson:{width}}  {r.done}{of} done  ({r.attempted} tried)")
    done, total = sum(r.done for r in rows), sum(r.total for r in rows)
    lines.append(f"{'all':{width}}  {done} of {total} done")
    return "\n".join(lines)


def post_to_room(room: str, seat: str, lesson: str, exercise: str, status: str) -> str | None:
    """Post one outcome to a classroom relay (``POST {room}/_room/progress`` with the seat's token), within
    :data:`ROOM_TIMEOUT_S`.

    Returns:
        ``None`` when the relay took it; otherwise why not, in a few words (it never raises: a relay that is down
        must not break a lesson).
    """
    payload = {"lesson": lesson, "exercise": exercise, "status": status}
    try:
        room_request(room, seat, "POST", "progress", payload, timeout_s=ROOM_TIMEOUT_S)
    except RoomError as e:
        return str(e)
    return None
