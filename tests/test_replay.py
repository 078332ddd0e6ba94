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

from helpers.cassette import Cassette, CassetteError, strip_version
from helpers.models import FLASH

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


def test_sync_stream_keeps_chunk_boundaries_and_recorded_timing(server: Server) -> None:
    c = client(server.url)
    c.models.generate_content(model=MODEL, contents=PROMPT)  # warm the connection: timing below excludes set-up
    start = time.perf_counter()
    arrivals = []
    for chunk in c.models.generate_content_stream(model=MODEL, contents=PROMPT):
        arrivals.append((time.perf_counter() - start, chunk.text))
    assert [text for _, text in arrivals] == ["Sunlight ", "scatters, ", "blue most."]
    for (measured, _), recorded in zip(arrivals, [0.10, 0.15, 0.25], strict=True):
        assert recorded - 0.005 <= measured <= recorded + 0.05, arrivals


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
    c = client(server.url)
    start = time.perf_counter()
    results = await asyncio.gather(
        *(c.aio.models.generate_content(model=MODEL, contents="Wait one second") for _ in range(100))
    )
    wall = time.perf_counter() - start
    await c.aio.aclose()
    assert {r.text for r in results} == {"done"}
    # Sequentially this is 100 s; served concurrently it is the recorded 1 s plus the client's own overhead.
    assert 1.0 <= wall < 3.0, wall


def test_speed_divides_recorded_delays(cassette_dir: Path) -> None:
    srv = start_server("--port", "0", "--cassettes", str(cassette_dir), "--speed", "4")
    try:
        c = client(srv.url)
        c.models.generate_content(model=MODEL, contents=PROMPT)
        start = time.perf_counter()
        c.models.generate_content(model=MODEL, contents="Wait one second")
        wall = time.perf_counter() - start
    finally:
        srv.stop()
    assert 0.25 <= wall < 0.6, wall


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
    reply = httpx.post(f"{server.url}/t/v1/models/{MODEL}:generateContent", content=b"{not json")
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


def test_strip_version_keeps_upload_prefix() -> None:
    assert strip_version("v1beta/models/m:generateContent") == "models/m:generateContent"
    assert strip_version("/v1/files/abc") == "files/abc"
    assert strip_version("upload/v1beta/files") == "upload/files"
    assert strip_version("models") == "models"


def test_the_server_raises_its_open_file_limit(server: Server) -> None:
    # Each stream is a socket: under the common soft limit of 1024 a server would hold only ~1014 streams.
    limits = Path(f"/proc/{server.proc.pid}/limits").read_text()
    soft, hard = re.search(r"Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)", limits).groups()
    assert soft == hard or int(soft) >= 65_536, limits
