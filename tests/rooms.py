"""Room relays for tests: ``python -m helpers.classroom serve ...`` started as an instructor starts it, on loopback.

Every relay started here is stopped by its handle when its ``with`` block ends, whatever happens; every HTTP call
has a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.classroom.client import SEAT_HEADER
from helpers.replay.pipeline.server_token import HEADER

TIMEOUT_S = 20.0
"""The longest a relay may take to start, or any one call to it."""


@dataclass
class RunningRelay:
    """A relay subprocess: its URL, its dashboard URL and token, its seats' tokens, and what it printed."""

    proc: subprocess.Popen
    lines: list[str]
    seats_file: Path
    stderr: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.lines[0].split()[1]

    @property
    def dashboard(self) -> str:
        return self.lines[1].split()[1]

    @property
    def token(self) -> str:
        return self.dashboard.split("token=", 1)[1]

    @property
    def seats(self) -> list[str]:
        return self.seats_file.read_text().split()

    def base_url(self, seat_cassette: str) -> str:
        return f"{self.url}/{seat_cassette}/"

    def snapshot(self) -> dict[str, Any]:
        """The dashboard's JSON snapshot (``GET /_room/seats``)."""
        return call(f"{self.url}/_room/seats", headers={HEADER: self.token})[1]

    def seat(self, number: int) -> dict[str, Any]:
        """Seat ``number``'s entry of :meth:`snapshot`."""
        return self.snapshot()["seats"][number - 1]


def call(
    url: str, body: Any = None, *, headers: dict[str, str] | None = None, method: str | None = None
) -> tuple[int, Any]:
    """``(status, parsed JSON or text)`` of one HTTP call; error statuses are returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=TIMEOUT_S) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def as_seat(token: str) -> dict[str, str]:
    """The headers a seat's SDK sends its token in."""
    return {SEAT_HEADER: token}


@contextlib.contextmanager
def relay(seats_file: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[RunningRelay]:
    """A relay serving ``--seats-file seats_file`` with ``args``; stopped (SIGTERM, then killed) afterwards."""
    environment = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    environment.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "helpers.classroom", "serve", "--seats-file", str(seats_file), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=environment,
    )
    running = RunningRelay(proc, [], seats_file)
    assert proc.stderr is not None
    errors = threading.Thread(target=lambda: running.stderr.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    errors.start()
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend([proc.stdout.readline(), proc.stdout.readline()]))
        reader.start()
        reader.join(TIMEOUT_S)
        running.lines = [line.rstrip("\n") for line in lines]
        if len(running.lines) < 2 or not running.lines[0].startswith("serving "):
            proc.kill()
            errors.join(5)
            raise AssertionError(f"the relay did not start: {running.lines} {''.join(running.stderr)}")
        yield running
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        errors.join(5)
