"""A room's seats: their tokens (the seats file), and what the relay knows of each seat while it runs.

The seats file (``serve --seats-file F``) holds one seat token per line; seat 1 is the first line. When it is absent
the relay writes it with ``--seats`` fresh random tokens; when present its tokens are reused (a learner's
``WORKBOOK_SEAT`` keeps working after the relay restarts) and fresh ones are appended up to ``--seats``. The file is
written atomically with mode 0600 (only its owner reads it on POSIX systems; on Windows it inherits the folder's
access rules): it holds credentials. Blank lines and ``#`` comments are ignored.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import progress
from ..replay.cassettes.cassette import write_atomically

TOKEN_CHARACTERS = re.compile(r"[A-Za-z0-9_-]{20,200}")
"""What a seat token looks like: URL-safe, long enough to guess at no better than chance, short enough to type."""
TOKEN_BYTES = 18
"""Random bytes in a fresh token: ``secrets.token_urlsafe(18)``, 24 characters."""
MAX_SEATS = 500
"""The most seats a room may have (``--seats``): each holds per-seat state and, in replay, its own servers."""


class SeatsFileError(ValueError):
    """The seats file cannot be used; the message names the file and line and says what to do."""


def load_tokens(path: Path, seats: int) -> list[str]:
    """The tokens of seats 1 to ``seats``: those in ``path``, then fresh ones appended (and written) up to ``seats``.

    Raises:
        SeatsFileError: ``seats`` is out of range, a line is not a token, a token repeats, or the file cannot be
            read or written.
    """
    if not 1 <= seats <= MAX_SEATS:
        raise SeatsFileError(f"--seats must be from 1 to {MAX_SEATS}, got {seats}.")
    tokens: list[str] = []
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as e:
        raise SeatsFileError(f"cannot read the seats file {path} ({e}).") from None
    for number, line in enumerate(text.splitlines(), start=1):
        token = line.split("#", 1)[0].strip()
        if not token:
            continue
        if not TOKEN_CHARACTERS.fullmatch(token):
            raise SeatsFileError(
                f"{path}, line {number}, is not a seat token (20 or more letters, digits, '-' or '_'): fix or "
                "remove the line, or give a new file name to start fresh."
            )
        if token in tokens:
            raise SeatsFileError(f"{path}, line {number}, repeats an earlier seat's token: two seats would be one.")
        tokens.append(token)
    if len(tokens) < seats:
        tokens += [secrets.token_urlsafe(TOKEN_BYTES) for _ in range(seats - len(tokens))]
        body = "".join(f"{t}\n" for t in tokens)
        try:
            write_atomically(path, body.encode())  # a temp file made with mode 0600, then renamed
        except OSError as e:
            raise SeatsFileError(f"cannot write the seats file {path} ({e.strerror or e}).") from None
    return tokens[:seats]


@dataclass
class Seat:
    """One seat as the relay sees it, since it started.

    Attributes:
        number: the seat's number, from 1 (its line in the seats file).
        token: its token (a credential: never in a snapshot, page or log).
        revoked: the instructor revoked it: every call gets 403 until it is un-revoked.
        requests: API calls the relay answered for it, whatever their status.
        limited: calls the relay refused with 429 (over ``--rpm``/``--tpm`` or the budget).
        statuses: how many answers had each non-2xx status (the relay's and the upstream's).
        tokens: tokens its calls used (``usageMetadata.totalTokenCount`` or its OpenAI and Interactions peers).
        cost_usd: their estimated cost (:mod:`.meter`, from :mod:`helpers.prices`).
        in_flight: calls arrived and not yet finished.
        last_activity: when it last called, seconds since the epoch (``None``: never).
        lesson: the lesson its last ``helpers.setup`` named.
        progress: its exercises' outcomes, ``{lesson: {exercise: entry}}`` (:func:`helpers.progress.updated`).
        latest: the exercise it checked last, per lesson.
    """

    number: int
    token: str = field(repr=False)
    revoked: bool = False
    requests: int = 0
    limited: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    tokens: int = 0
    cost_usd: float = 0.0
    in_flight: int = 0
    last_activity: float | None = None
    lesson: str | None = None
    progress: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    latest: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``seat 07``: how pages and messages name it."""
        return f"seat {self.number:02d}"

    def touch(self) -> None:
        """Note activity now."""
        self.last_activity = time.time()

    def record_check(self, lesson: str, exercise: str, status: str) -> None:
        """Keep one check's outcome, as the learner's own file keeps it."""
        when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        lessons = self.progress.setdefault(lesson, {})
        lessons[exercise] = progress.updated(lessons.get(exercise), status, when)
        self.latest[lesson] = exercise
        self.touch()

    def snapshot(self, totals: dict[str, int]) -> dict[str, Any]:
        """What the dashboard shows of this seat (no token), with each lesson's exercises done out of ``totals``."""
        lessons = {}
        for lesson, entries in self.progress.items():
            last_name = self.latest[lesson]
            last = entries[last_name]
            lessons[lesson] = {
                "done": sum(1 for e in entries.values() if e["done"]),
                "total": totals.get(lesson, 0),
                "last": {"exercise": last_name, "status": last["status"], "attempts": last["attempts"]},
            }
        return {
            "seat": self.number,
            "label": self.label,
            "revoked": self.revoked,
            "requests": self.requests,
            "limited": self.limited,
            "statuses": {str(code): n for code, n in sorted(self.statuses.items())},
            "tokens": self.tokens,
            "cost_usd": round(self.cost_usd, 6),
            "in_flight": self.in_flight,
            "last_activity": self.last_activity,
            "lesson": self.lesson,
            "progress": lessons,
        }


class SeatBook:
    """Every seat of the room, found by token or number."""

    def __init__(self, tokens: list[str]) -> None:
        self.seats = [Seat(number, token) for number, token in enumerate(tokens, start=1)]
        self._by_token = {seat.token: seat for seat in self.seats}

    def by_token(self, token: str) -> Seat | None:
        """The seat whose token is ``token``, or ``None``."""
        return self._by_token.get(token)

    def by_number(self, number: int) -> Seat | None:
        """Seat ``number`` (from 1), or ``None``."""
        return self.seats[number - 1] if 1 <= number <= len(self.seats) else None
