"""The replay server core through the real SDK over real HTTP: matching, timing, cycling, concurrency, errors."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from google import genai
from google.genai import errors, types

from helpers import control
from helpers.models import FLASH
from helpers.replay.cassettes.cassette import Cassette, CassetteError, strip_version
from helpers.replay.pipeline.api_request import sleep_until
from helpers.replay.wire.framing import parse_sse_event, sse_event

from .conftest import PROMPT, TEXT, Server, start_server

MODEL = FLASH


def client(url: str, cassette: str = "t", api_version: str | None = None) -> genai.Client:
    return genai.Client(
        api_key="test-key", http_options=types.HttpOptions(base_url=f"{url}/{cassette}/", api_version=api_version)
    )


def test_first_line_is_the_contract_and_sigterm_stops_cleanly(cassette_dir: Path) -> None:
    srv = start_server("--port", "0", "--cassettes", str(cassette_dir))
    host, port = srv.url.removeprefix("http://").split(":")
    assert srv.first_line == f"serving http://127.0.0.1:{port}" and host == "127.0.0.1"
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(timeout=10) == 0


def test_port_in_use_gives_one_clear_message(server: Server, cassette_dir: Path) -> None:
    port = server.url.rsplit(":", 1)[1]
    result = subprocess.run(
        [sys.executable, "-m", "helpers.replay", "serve", "--port", port, "--cassettes", str(cassette_dir)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: port {port} on 127.0.0.1 is already in use (another replay server?). Stop that process, or pass "
        "--port 0 to pick a free port."
    ]


@pytest.mark.parametrize("api_version", ["v1", "v1beta"])
def test_sync_generate_replays_the_recorded_response(server: Server, api_version: str) -> None:
    c = client(server.url, api_version=api_version)
    response = c.models.generate_content(model=MODEL, contents=PROMPT)
    assert response.text == TEXT
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.usage_metadata.total_token_count == 16


STREAM_OFFSETS_S = [0.10, 0.15, 0.25]
"""The recorded offsets of cassette ``t``'s stream (conftest)."""
EARLY_S = 0.001
"""The clock granularity allowed when a time is compared with a recorded offset: nothing may be sent earlier."""


def test_sync_stream_keeps_chunk_boundaries_and_recorded_timing(server: Server) -> None:
    """Replayed chunks go out no earlier than recorded, by the server's own clock and as the client sees them.

    Only lower bounds: a busy machine delivers late, never early. How close to the recording chunks arrive is a
    figure, measured by ``bench/replay_bench.py`` (replay fidelity, TTFT and gap errors).
    """
    c = client(server.url)
    c.models.generate_content(model=MODEL, contents=PROMPT)  # warm the connection
    control.reset_stats(cassette="t", server_url=server.url)
    start = time.perf_counter()
    arrivals = []
    for chunk in c.models.generate_content_stream(model=MODEL, contents=PROMPT):
        arrivals.append((time.perf_counter() - start, chunk.text))
    assert [text for _, text in arrivals] == ["Sunlight ", "scatters, ", "blue most."]
    for (measured, _), recorded in zip(arrivals, STREAM_OFFSETS_S, strict=True):
        assert measured >= recorded - EARLY_S, arrivals
    (seen,) = control.stats(cassette="t", server_url=server.url).requests
    sent = [t - seen.start_s for t in seen.chunks_s]
    assert len(sent) == 3 and sent == sorted(sent) and seen.status == 200
    for got, recorded in zip(sent, STREAM_OFFSETS_S, strict=True):
        assert got >= recorded - EARLY_S, sent


def test_a_held_stream_waits_for_its_release_and_then_goes_on(server: Server) -> None:
    c = client(server.url)
    kw = {"cassette": "t", "server_url": server.url}
    control.reset_stats(**kw)
    control.hold_stream(after_text_chunks=1, **kw)
    try:
        stream = c.models.generate_content_stream(model=MODEL, contents=PROMPT)
        assert next(stream).text == "Sunlight "
        time.sleep(STREAM_OFFSETS_S[-1] * 2)  # long past the recorded end: still held
        (held,) = control.stats(**kw).requests
        assert (len(held.chunks_s), held.end_s) == (1, None)
        control.release_stream(**kw)
        assert [ch.text for ch in stream] == ["scatters, ", "blue most."]
    finally:
        control.clear_faults(**kw)  # releases it too, should an assertion above fail
    (done,) = control.stats(**kw).requests
    assert len(done.chunks_s) == 3
    assert done.chunks_s[1] - done.chunks_s[0] >= STREAM_OFFSETS_S[-1] * 2, "the rest went out only once released"
    # A hold no stream has taken is dropped by the release; the next stream is not held.
    control.hold_stream(after_text_chunks=0, **kw)
    control.release_stream(**kw)
    assert [ch.text for ch in c.models.generate_content_stream(model=MODEL, contents=PROMPT)][-1] == "blue most."


async def test_async_stream_and_generate(server: Server) -> None:
    c = client(server.url)
    texts = [ch.text async for ch in await c.aio.models.generate_content_stream(model=MODEL, contents=PROMPT)]
    assert texts == ["Sunlight ", "scatters, ", "blue most."]
    assert (await c.aio.models.generate_content(model=MODEL, contents=PROMPT)).text == TEXT
    await c.aio.aclose()


def test_identical_requests_cycle_through_recordings_in_order(cassette_dir: Path) -> None:
    srv = start_server("--port", "0", "--cassettes", str(cassette_dir))
    try:
        c = client(srv.url)
        got = [c.models.generate_content(model=MODEL, contents="Count").text for _ in range(5)]
    finally:
        srv.stop()
    assert got == ["take 0", "take 1", "take 2", "take 0", "take 1"]


async def test_hundred_concurrent_one_second_requests_finish_together(server: Server) -> None:
    """Served concurrently: by the server's own record, each request waited its recorded second, and the answers
    went out over about as long as the requests took to arrive (one at a time, they would span 99 s or more).

    The wall time of the batch is a figure: ``bench/replay_bench.py`` (async speed-up, server's addition).
    """
    c = client(server.url)
    control.reset_stats(cassette="t", server_url=server.url)
    start = time.perf_counter()
    results = await asyncio.gather(
        *(c.aio.models.generate_content(model=MODEL, contents="Wait one second") for _ in range(100))
    )
    wall = time.perf_counter() - start
    await c.aio.aclose()
    assert {r.text for r in results} == {"done"} and wall >= 1.0
    seen = (await asyncio.to_thread(control.stats, cassette="t", server_url=server.url)).requests
    assert len(seen) == 100 and all(r.first_byte_s - r.start_s >= 1.0 - EARLY_S for r in seen)
    arrived_over = max(r.start_s for r in seen) - min(r.start_s for r in seen)
    answered_over = max(r.first_byte_s for r in seen) - min(r.first_byte_s for r in seen)
    assert answered_over < arrived_over + 50, (arrived_over, answered_over)


@pytest.mark.parametrize("speed", [0.25, 4.0])
def test_speed_divides_recorded_delays(cassette_dir: Path, speed: float) -> None:
    """The server waits the recorded delay divided by ``--speed``, by its own clock. At 0.25 that is the longest
    wait of the three ways to get it wrong (ignoring speed, multiplying by it), so a lower bound catches them; how
    promptly it answers is a figure (``bench/replay_bench.py``)."""
    srv = start_server("--port", "0", "--cassettes", str(cassette_dir), "--speed", str(speed))
    try:
        c = client(srv.url)
        c.models.generate_content(model=MODEL, contents="Count")  # warm the connection (recorded at 0 s)
        control.reset_stats(cassette="t", server_url=srv.url)
        start = time.perf_counter()
        assert c.models.generate_content(model=MODEL, contents=PROMPT).text == TEXT  # recorded at 0.05 s
        wall = time.perf_counter() - start
        (seen,) = control.stats(cassette="t", server_url=srv.url).requests
    finally:
        srv.stop()
    assert seen.first_byte_s - seen.start_s >= 0.05 / speed - EARLY_S and wall >= 0.05 / speed - EARLY_S, seen


def test_unmatched_request_names_cassette_nearest_difference_and_fix(server: Server) -> None:
    c = client(server.url)
    with pytest.raises(errors.ClientError) as info:
        c.models.generate_content(model=MODEL, contents="Why is the sky green?")
    e = info.value
    assert e.code == 404 and e.status == "NOT_FOUND"
    assert f"No recording in cassette 't' for POST models/{FLASH}:generateContent" in e.message
    assert '"Why is the sky green?"' in e.message
    assert 'contents[0].parts[0].text: recorded "Why is the sky blue?", sent "Why is the sky green?"' in e.message
    assert "WORKBOOK_MODE=record" in e.message


def test_unmatched_path_lists_what_the_cassette_has(server: Server) -> None:
    c = client(server.url)
    with pytest.raises(errors.ClientError) as info:
        c.models.count_tokens(model=MODEL, contents=PROMPT)
    assert "Nothing was recorded for that path" in info.value.message
    assert f"models/{FLASH}:generateContent" in info.value.message


def test_malformed_json_body_is_400_invalid_argument(server: Server) -> None:
    url = f"{server.url}/t/v1/models/{MODEL}:generateContent"
    reply = httpx.post(url, content=b"{not json", headers={"Content-Type": "application/json"})
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and error["message"].startswith("Invalid JSON payload received.")


def test_unknown_cassette_lists_the_known_ones(server: Server) -> None:
    c = client(server.url, cassette="nope")
    with pytest.raises(errors.ClientError) as info:
        c.models.generate_content(model=MODEL, contents=PROMPT)
    assert info.value.code == 404
    assert "no cassette named 'nope'" in info.value.message and "cassettes here: t" in info.value.message


def test_corrupt_cassette_names_file_and_position(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"format": 1,\n "exchanges": [\n  {"request": }\n ]}\n')
    srv = start_server("--port", "0", "--cassettes", str(tmp_path))
    c = client(srv.url, cassette="bad")
    try:
        with pytest.raises(errors.ClientError) as info:
            c.models.generate_content(model=MODEL, contents=PROMPT)
    finally:
        srv.stop()
    assert info.value.status == "FAILED_PRECONDITION"
    assert f"cassette {tmp_path / 'bad.json'} is not valid JSON at line 3 column 15" in info.value.message
    assert (tmp_path / "bad.json").read_text().startswith('{"format": 1')  # nothing lost


def test_malformed_exchange_is_named(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text(
        json.dumps(
            {
                "format": 1,
                "exchanges": [{"request": {"method": "POST", "path": "p"}, "response": {"status": 200, "chunks": []}}],
            }
        )
    )
    with pytest.raises(CassetteError, match=r"malformed at exchanges\[0\]\.response\.chunks: expected a non-empty"):
        Cassette.load(path)


@pytest.mark.parametrize(
    ("data", "event", "raw"),
    [({"text": "é, \\n"}, None, False), ({"delta": 1}, "content.delta", False), ("[DONE]", None, True)],
)
def test_sse_events_round_trip_with_event_type_and_raw_text(data: object, event: str | None, raw: bool) -> None:
    frame = sse_event(data, event=event, raw=raw)
    assert frame.endswith(b"\r\n\r\n") and frame.count(b"\r\n\r\n") == 1
    assert parse_sse_event(frame.strip().split(b"\r\n")) == (event, data, raw)


@pytest.mark.parametrize("chunk", [{"data": 5, "raw": True}, {"data": "x", "raw": 1}, {"data": {}, "event": 7}])
def test_malformed_chunk_fields_are_named(tmp_path: Path, chunk: dict) -> None:
    path = tmp_path / "x.json"
    exchange = {"request": {"method": "POST", "path": "p"}, "response": {"status": 200, "chunks": [chunk]}}
    chunk["offset_s"] = 0.1
    path.write_text(json.dumps({"format": 1, "exchanges": [exchange]}))
    with pytest.raises(CassetteError, match=r"chunks\[0\]: expected \"event\" to be a string"):
        Cassette.load(path)


def test_strip_version_keeps_upload_prefix() -> None:
    assert strip_version("v1beta/models/m:generateContent") == "models/m:generateContent"
    assert strip_version("/v1/files/abc") == "files/abc"
    assert strip_version("upload/v1beta/files") == "upload/files"
    assert strip_version("models") == "models"


@pytest.mark.skipif(sys.platform != "linux", reason="reads the server's limits in /proc, which only Linux has")
def test_the_server_raises_its_open_file_limit(server: Server) -> None:
    # Each stream is a socket: under the common soft limit of 1024 a server would hold only ~1014 streams.
    pytest.importorskip("resource", reason="Windows has no open-file limit to raise (no resource module)")
    limits = Path(f"/proc/{server.proc.pid}/limits").read_text()
    soft, hard = re.search(r"Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)", limits).groups()
    assert soft == hard or int(soft) >= 65_536, limits


def test_sleep_until_never_wakes_before_its_deadline_on_uvloop() -> None:
    """uvloop's timers run on a whole-millisecond clock and fire up to a millisecond early; recorded delays are lower
    bounds, so the server's sleep must re-sleep what is left (a single ``asyncio.sleep`` fails this)."""
    uvloop = pytest.importorskip("uvloop", reason="uvloop has no Windows build (asyncio's loop serves)")

    async def earliest() -> float:
        worst = 1.0
        for i in range(100):
            deadline = time.monotonic() + 0.0104 + (i % 10) / 10_000  # fractions of a millisecond, as recordings have
            await sleep_until(deadline)
            worst = min(worst, time.monotonic() - deadline)
        return worst

    assert uvloop.run(earliest()) >= 0.0
