"""Reliability of the replay server under the ways a notebook really ends: stops, disconnects, load, a dead server.

What the other test modules already cover is not repeated here: corrupt, unknown and unmatched cassettes, a port in
use and a malformed JSON body (``test_replay``), a key that never reaches a file or the recorder's output
(``test_record``), uploads of 0 bytes and 9 MiB (``test_files_batches``), key-shaped strings in tracked files
(``test_hygiene``). No test here asserts a wall-clock time: waits are deadlines for something to happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import nbclient
import nbformat
import pytest
from google import genai
from google.genai import errors

import helpers
from helpers import control, workbook
from helpers.replay.cassettes.cassette import Cassette
from helpers.replay.pipeline.socket_server import running

from .conftest import PROMPT, TEXT, Server, generate_exchange, start_server, stream_exchange, write_cassette
from .test_record import FAKE_KEY, PIECES, stand_in_upstream

MODEL = helpers.FLASH
LONG_GAP_S = 30.0
"""The gap before the last chunk of the ``gap`` stream, and the recorded time of the ``slow`` answer: far longer
than any test waits, so a request still in flight after a disconnect would show."""


@pytest.fixture
def env(env: Path) -> Path:
    """The clean environment of ``conftest.env``, its cassettes folder holding ``07_demo``."""
    write_cassette(
        env, "07_demo", [generate_exchange(PROMPT, TEXT, 0.0), stream_exchange(PROMPT, [(0.0, "a"), (0.0, "b")])]
    )
    return env


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
    assert server.log.stat().st_size == 0
    assert workbook.stopped_server_message() is None  # running: a connection error has another cause
    server.stop()
    assert "The replay server for this notebook stopped (exit code 0;" in workbook.stopped_server_message()
    # The server used to abort at shutdown (SIGABRT, "could not acquire lock for <_io.BufferedReader name='<stdin>'>")
    # because the thread watching its stdin held the buffered reader's lock.
    assert server.proc.returncode == 0
    assert not server.log.exists(), "a clean run leaves no log file behind"


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
    through the SDK; re-running setup makes the same client work again; other connection errors keep their traceback.
    """
    cells = [
        'from google import genai\nimport helpers\nsession = helpers.setup("07_demo", speed=2)\n'
        "client = genai.Client()",
        'from helpers import workbook\nworkbook._servers["serve"].proc.kill()\nworkbook._servers["serve"].proc.wait()',
        f"client.models.generate_content(model=helpers.FLASH, contents={PROMPT!r})",
        # With retry options the SDK leaves retrying to them; without, its aio client sleeps 1-10 s and tries once
        # more before raising the same error (google-genai 3.6.1), which would only slow this test down.
        "from google.genai import types\n"
        "once = types.HttpOptions(retry_options=types.HttpRetryOptions(attempts=1))\n"
        "once = types.GenerateContentConfig(http_options=once)\n"
        f"await client.aio.models.generate_content(model=helpers.FLASH, contents={PROMPT!r}, config=once)",
        # Re-running setup alone is enough: the new server takes the old port, so the same client reaches it.
        'session = helpers.setup("07_demo", speed=2)\n'
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
            '.log). Re-run the setup cell, helpers.setup("07_demo", speed=2), to start a new one on the same port, '
            "then this cell again."
        )
    assert "".join(o.text for o in outputs[4] if o.output_type == "stream").endswith(f"needed\n{TEXT}\n")
    (cut,) = outputs[5]
    assert cut.ename == "RemoteProtocolError" and len(cut.traceback) > 1  # the server runs: the usual traceback


# A key never written ------------------------------------------------------------------------------------------------


async def test_recording_through_setup_writes_the_key_nowhere(
    env: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """``test_record`` proves it for the server's own output; here the path a notebook takes: ``setup()`` in record
    mode with the key in the environment, the server's log file under the temp folder, and the notebook's output."""
    seen: list[str] = []
    async with running(stand_in_upstream(seen)) as upstream:
        monkeypatch.setenv("WORKBOOK_MODE", "record")
        monkeypatch.setenv("WORKBOOK_UPSTREAM", upstream)
        monkeypatch.setenv("GEMINI_API_KEY", FAKE_KEY)
        helpers.setup("rec")
        client = genai.Client()
        texts = [ch.text async for ch in await client.aio.models.generate_content_stream(model=MODEL, contents="Count")]
        with pytest.raises(errors.ClientError):  # the stand-in has no such model: its 404 is relayed and recorded
            await client.aio.models.generate_content(model=helpers.FLASH_LITE, contents="Count")
        await client.aio.aclose()
        server = workbook._servers["serve"]
        server.stop()
    assert texts == PIECES and seen == [FAKE_KEY], "the key must reach the upstream"
    assert server.proc.returncode == 0
    out, err = capfd.readouterr()
    for where, text in {
        "stdout": out,
        "stderr": err,
        "logging": caplog.text,
        "the server's log": server.log.read_text(errors="replace") if server.log.exists() else "",
        **{str(p): p.read_text(errors="replace") for p in env.parent.rglob("*") if p.is_file()},
    }.items():
        assert FAKE_KEY not in text, where
    assert len(Cassette.load(env / "rec.json").exchanges) == 2


# Load ---------------------------------------------------------------------------------------------------------------

STREAMS = 1000
LOAD_SPEED = 4
LOAD_PIECES = [(offset, f"part {i} ") for i, offset in enumerate([0.4, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0])]
"""A 12-s answer in seven chunks; at ``--speed 4`` each stream lasts 3 s, longer than opening 1000 connections takes,
so every stream is in flight at once."""


@pytest.fixture
def many_files() -> Iterator[None]:
    """Room for the 1000 sockets on each side (the server inherits the limit): raise the soft limit if need be."""
    resource = pytest.importorskip("resource", reason="Windows has no open-file limit to raise (no resource module)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 3 * STREAMS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"needs {wanted} open files; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_a_thousand_concurrent_streams_complete_without_an_error(many_files: None, tmp_path: Path) -> None:
    write_cassette(tmp_path, "load", [stream_exchange("load", LOAD_PIECES)])
    srv = start_server("--port", "0", "--cassettes", str(tmp_path), "--speed", str(LOAD_SPEED))
    url = f"{srv.url}/load/v1/models/{MODEL}:streamGenerateContent"

    async def stream(session: aiohttp.ClientSession) -> list[str]:
        async with session.post(url, params={"alt": "sse"}, json=body("load")) as reply:
            assert reply.status == 200
            return [
                json.loads(line[6:])["candidates"][0]["content"]["parts"][0]["text"]
                async for line in reply.content
                if line.startswith(b"data: ")
            ]

    try:
        # A raw aiohttp client: the SDK's own per-request work would make this a test of the client, not the server.
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
            results = await asyncio.gather(*(stream(session) for _ in range(STREAMS)), return_exceptions=True)
        s = await asyncio.to_thread(control.stats, cassette="load", server_url=srv.url)
    finally:
        srv.stop()
    errors_seen = [r for r in results if isinstance(r, BaseException)]
    assert errors_seen == [], f"{len(errors_seen)} streams failed, e.g. {errors_seen[0]!r}"
    assert all(texts == [text for _, text in LOAD_PIECES] for texts in results)
    assert (s.received, s.answered, s.rejected, s.in_flight, s.peak_in_flight) == (STREAMS, STREAMS, {}, 0, STREAMS)
    assert srv.proc.returncode == 0 and srv.proc.stderr.read() == ""
