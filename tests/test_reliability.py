"""Reliability of the replay server under the ways a notebook really ends: stops, disconnects, load, a dead server.

What the other test modules already cover is not repeated here: corrupt, unknown and unmatched cassettes, a port in
use and a malformed JSON body (``test_replay``), a key that never reaches a file or the recorder's output
(``test_record``), uploads of 0 bytes and 9 MiB (``test_files_batches``), key-shaped strings in tracked files
(``test_hygiene``). No test here asserts a wall-clock time: waits are deadlines for something to happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import nbclient
import nbformat
import pytest

import helpers
from helpers import control, workbook

from .conftest import PROMPT, TEXT, Server, generate_exchange, start_server, stream_exchange, write_cassette

MODEL = helpers.FLASH
LONG_GAP_S = 30.0
"""The gap before the last chunk of the ``gap`` stream, and the recorded time of the ``slow`` answer: far longer
than any test waits, so a request still in flight after a disconnect would show."""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A clean environment whose cassettes folder is ``tmp_path/cassettes`` holding ``07_demo``; servers stopped."""
    folder = tmp_path / "cassettes"
    folder.mkdir()
    write_cassette(
        folder, "07_demo", [generate_exchange(PROMPT, TEXT, 0.0), stream_exchange(PROMPT, [(0.0, "a"), (0.0, "b")])]
    )
    monkeypatch.setenv("WORKBOOK_CASSETTES", str(folder))
    for name in ("WORKBOOK_MODE", "WORKBOOK_UPSTREAM", "GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL"):
        monkeypatch.setenv(name, "")  # records the value to restore, so what setup() sets is undone afterwards
        monkeypatch.delenv(name)
    yield folder
    for server in workbook._servers.values():
        server.stop()
    workbook._servers.clear()


async def eventually(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Poll ``condition`` (in a thread: it may block) until it holds or ``timeout_s`` passes; the event loop runs on.

    A deadline for something to happen, not a timing assertion.
    """
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def test_a_server_setup_started_stops_cleanly_and_logs_nothing(env: Path) -> None:
    helpers.setup("07_demo")
    server = workbook._servers["serve"]
    logged = server.log.stat().st_size
    assert workbook.stopped_server_message() is None  # running: a connection error has another cause
    server.stop()
    assert "The replay server for this notebook stopped (exit code 0;" in workbook.stopped_server_message()
    # The server used to abort at shutdown (SIGABRT, "could not acquire lock for <_io.BufferedReader name='<stdin>'>")
    # because the thread watching its stdin held the buffered reader's lock.
    assert server.proc.returncode == 0
    assert server.log.read_bytes()[logged:] == b""


# A client that goes away ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gap_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("gap")
    exchanges = [
        stream_exchange("gap", [(0.0, "first "), (0.01, "second "), (LONG_GAP_S, "last")]),
        generate_exchange("slow", "finally", LONG_GAP_S),
    ]
    write_cassette(folder, "gap", exchanges)
    srv = start_server("--port", "0", "--cassettes", str(folder))
    yield srv
    srv.stop()


def open_sockets(pid: int) -> int:
    """How many sockets process ``pid`` holds open (Linux: its ``/proc/PID/fd`` links to ``socket:[inode]``)."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # closed while we looked
            count += os.readlink(fd).startswith("socket:")
    return count


def body(prompt: str) -> dict:
    return {"contents": [{"parts": [{"text": prompt}], "role": "user"}]}


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts sockets through /proc (Linux)")
async def test_clients_that_disconnect_mid_stream_or_mid_wait_leave_nothing_behind(gap_server: Server) -> None:
    kw = {"cassette": "gap", "server_url": gap_server.url}
    pid = gap_server.proc.pid
    control.reset_stats(**kw)
    idle = open_sockets(pid)
    url = f"{gap_server.url}/gap/v1/models/{MODEL}"
    async with aiohttp.ClientSession() as session:
        streams = []
        for _ in range(20):
            reply = await session.post(f"{url}:streamGenerateContent", params={"alt": "sse"}, json=body("gap"))
            assert (await reply.content.readline()).startswith(b"data: ")  # mid-stream: the first chunk is in
            streams.append(reply)
        with pytest.raises(asyncio.TimeoutError):
            await session.post(f"{url}:generateContent", json=body("slow"), timeout=aiohttp.ClientTimeout(total=0.2))
        assert (await asyncio.to_thread(control.stats, **kw)).in_flight >= 20
        for reply in streams:
            reply.close()  # drops the connection, as a cancelled cell or a timeout does
    # The server notices at once, not when the next chunk (30 s away) or the slow answer would be due.
    assert await eventually(lambda: control.stats(**kw).in_flight == 0), control.stats(**kw)
    assert await eventually(lambda: open_sockets(pid) <= idle), (open_sockets(pid), idle)
    s = control.stats(**kw)
    assert (s.received, s.answered, s.rejected) == (21, 20, {})  # the streams' 200s went out; the wait got none
    assert all(r.end_s is not None and r.end_s < LONG_GAP_S for r in s.requests)


# A server that stops under a running notebook ------------------------------------------------------------------------


def test_a_stopped_server_is_named_by_the_next_call_and_setup_recovers(env: Path, tmp_path: Path) -> None:
    """In a real kernel: the next sync or async call after the server dies prints one line saying so, not a traceback
    through the SDK; re-running setup (and the client cell) works again; other connection errors keep their traceback.
    """
    cells = [
        'from google import genai\nimport helpers\nsession = helpers.setup("07_demo", speed=2)\n'
        "client = genai.Client()",
        'from helpers import workbook\nworkbook._servers["serve"].proc.kill()\nworkbook._servers["serve"].proc.wait()',
        f"client.models.generate_content(model=helpers.FLASH, contents={PROMPT!r})",
        f"await client.aio.models.generate_content(model=helpers.FLASH, contents={PROMPT!r})",
        'session = helpers.setup("07_demo", speed=2)\nclient = genai.Client()\n'
        f"print(client.models.generate_content(model=helpers.FLASH, contents={PROMPT!r}).text)",
        "from helpers import control\ncontrol.cut_stream(after_chunks=1)\n"
        f"for chunk in client.models.generate_content_stream(model=helpers.FLASH, contents={PROMPT!r}):\n    pass",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    resources = {"metadata": {"path": str(tmp_path)}}
    nbclient.NotebookClient(
        notebook, kernel_name="python3", allow_errors=True, timeout=60, resources=resources
    ).execute()
    outputs = [cell.outputs for cell in notebook.cells]

    log = Path(tempfile.gettempdir()) / "gemini-workbook-"
    for out, error in zip(outputs[2:4], ["ConnectError", "ClientConnectorError"], strict=True):
        assert [o.output_type for o in out] == ["error"] and out[0].ename == error
        (line,) = out[0].traceback
        assert line.startswith(
            f"{error}: The replay server for this notebook stopped (killed by SIGKILL; its log is {log}"
        )
        assert line.endswith(
            '.log). Re-run the setup cell, helpers.setup("07_demo", speed=2), to start a new one, then the cell that '
            "makes your genai.Client(): a client made earlier still points at the stopped server."
        )
    assert "".join(o.text for o in outputs[4] if o.output_type == "stream").endswith(f"needed\n{TEXT}\n")
    (cut,) = outputs[5]
    assert cut.ename == "RemoteProtocolError" and len(cut.traceback) > 1  # the server runs: the usual traceback
