"""Shared fixtures: cassettes written in a temporary folder, and replay servers started as the notebooks start them."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import helpers
from helpers import workbook
from helpers.models import FLASH
from helpers.replay.cassettes.cassette import Cassette, Exchange

PROMPT = "Why is the sky blue?"
TEXT = "Sunlight scatters off air molecules, and blue light scatters the most."


def chunk(text: str, *, final: bool = False, tokens: int = 10) -> dict:
    """A ``GenerateContentResponse`` chunk as the API streams it (complete usage only on the final chunk)."""
    candidate: dict = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    usage: dict = {"promptTokenCount": 6, "totalTokenCount": 6}
    if final:
        candidate["finishReason"] = "STOP"
        usage = {"promptTokenCount": 6, "candidatesTokenCount": tokens, "totalTokenCount": 6 + tokens}
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": FLASH, "responseId": "r"}


def generate_exchange(prompt: str, text: str, offset_s: float, model: str = FLASH) -> Exchange:
    """A non-streaming ``generateContent`` exchange answered ``offset_s`` seconds after the request."""
    body = {"contents": [{"parts": [{"text": prompt}], "role": "user"}]}
    return Exchange(
        {"method": "POST", "path": f"models/{model}:generateContent", "query": {}, "body": body},
        {"status": 200, "offset_s": offset_s, "body": chunk(text, final=True)},
        {"source": "synthetic", "date": "2026-11-21", "latency_model": "fixed, for tests", "based_on": "tests"},
    )


def stream_exchange(prompt: str, pieces: list[tuple[float, str]], model: str = FLASH) -> Exchange:
    """A ``streamGenerateContent`` exchange: ``pieces`` are ``(offset_s, text)`` in order."""
    body = {"contents": [{"parts": [{"text": prompt}], "role": "user"}]}
    chunks = [
        {"offset_s": offset, "data": chunk(text, final=i == len(pieces) - 1)} for i, (offset, text) in enumerate(pieces)
    ]
    return Exchange(
        {"method": "POST", "path": f"models/{model}:streamGenerateContent", "query": {"alt": "sse"}, "body": body},
        {"status": 200, "chunks": chunks},
        {"source": "synthetic", "date": "2026-11-21", "latency_model": "fixed, for tests", "based_on": "tests"},
    )


def write_cassette(folder: Path, name: str, exchanges: list[Exchange]) -> Cassette:
    cassette = Cassette(name, folder / f"{name}.json", exchanges, "test cassette")
    cassette.save()
    return cassette


@dataclass
class Server:
    """A ``python -m helpers.replay serve`` subprocess and the URL from its first line."""

    proc: subprocess.Popen
    url: str
    first_line: str

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(timeout=10)


def start_server(*args: str) -> Server:
    proc = subprocess.Popen(
        [sys.executable, "-m", "helpers.replay", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = proc.stdout.readline().rstrip("\n")
    if not first.startswith("serving "):
        proc.kill()
        raise AssertionError(f"server did not start: {first!r} {proc.stderr.read()}")
    return Server(proc, first.split()[1], first)


@pytest.fixture(scope="module")
def cassette_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with cassette ``t``: a plain and a streamed answer, three takes of a cycling prompt, a 1 s wait."""
    folder = tmp_path_factory.mktemp("cassettes")
    write_cassette(
        folder,
        "t",
        [
            generate_exchange(PROMPT, TEXT, 0.05),
            stream_exchange(PROMPT, [(0.10, "Sunlight "), (0.15, "scatters, "), (0.25, "blue most.")]),
            *(generate_exchange("Count", f"take {i}", 0.0) for i in range(3)),
            generate_exchange("Wait one second", "done", 1.0),
        ],
    )
    return folder


@pytest.fixture(scope="module")
def server(cassette_dir: Path) -> Iterator[Server]:
    srv = start_server("--port", "0", "--cassettes", str(cassette_dir))
    yield srv
    srv.stop()


WORKBOOK_VARIABLES = (
    "WORKBOOK_MODE",
    "WORKBOOK_UPSTREAM",
    "WORKBOOK_CASSETTES",
    "WORKBOOK_ROOM",
    "WORKBOOK_SEAT",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_GEMINI_BASE_URL",
    "NO_PROXY",
    "no_proxy",
    "http_proxy",
    "https_proxy",
)
"""Every environment variable ``helpers.setup`` reads or sets (the proxy ones through
:func:`helpers.proxies.keep_loopback_off_proxies`, which in a classroom room adds the room's host), but
``WORKBOOK_UNMATCHED``: the repository's root ``conftest.py`` sets it to ``error`` for every test (and every notebook
kernel nbval starts), and it stays."""


def clean_workbook_env(mp: pytest.MonkeyPatch) -> None:
    """Unset :data:`WORKBOOK_VARIABLES`; undoing ``mp`` restores them, removing any that ``setup()`` created.

    ``setenv`` comes first because it records the previous value (or its absence); ``delenv`` of an unset variable
    records nothing, so a variable ``setup()`` later created would outlive the test.
    """
    for name in WORKBOOK_VARIABLES:
        mp.setenv(name, "")
        mp.delenv(name)


def stop_workbook_servers() -> None:
    """Stop every server ``helpers.setup`` started in this process."""
    for server in workbook._servers.values():
        server.stop()
    workbook._servers.clear()


@contextlib.contextmanager
def lesson_replay(notebook: str, speed: float, unmatched: str | None = None) -> Iterator[helpers.Session]:
    """Replay a lesson's own shipped cassette, as its notebook does, in a clean environment restored afterwards
    (``unmatched``: as ``helpers.setup`` takes it; by default the tests' ``error``)."""
    with pytest.MonkeyPatch.context() as mp:
        clean_workbook_env(mp)
        try:
            yield helpers.setup(notebook, speed=speed, unmatched=unmatched)
        finally:
            stop_workbook_servers()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A clean environment whose cassettes folder is ``tmp_path/cassettes``; servers stopped afterwards."""
    folder = tmp_path / "cassettes"
    folder.mkdir()
    clean_workbook_env(monkeypatch)
    monkeypatch.setenv("WORKBOOK_CASSETTES", str(folder))
    yield folder
    stop_workbook_servers()
