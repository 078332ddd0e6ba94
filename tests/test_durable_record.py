"""Durable recording: an exchange is kept only once written, a failed write is a clear 500 that loses nothing, two
recorders never share a folder, and a stopping recorder finishes the streams it is still recording."""

from __future__ import annotations

import asyncio
import errno
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from helpers.replay.app.replay_server import CassetteStore, Mode, ReplayServer
from helpers.replay.cassettes import cassette, store
from helpers.replay.cassettes.cassette import Cassette, default_dir
from helpers.replay.pipeline.api_request import json_response
from helpers.replay.pipeline.socket_server import running
from helpers.replay.wire.framing import SSE_CONTENT_TYPE, sse_event

from .conftest import chunk, start_server

GENERATE = "v1/models/gemini-2.5-flash:generateContent"
STREAM = "v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
SLOW_STREAM_S = 1.5
"""How long the stand-in's slow stream lasts: its last chunk comes this long after the first."""


def body(prompt: str) -> bytes:
    """A generate body as the SDK sends it; ``json.dumps`` escapes a lone surrogate as the SDK does."""
    return json.dumps({"contents": [{"parts": [{"text": prompt}], "role": "user"}]}).encode()


async def prompt_of(request: web.Request) -> str:
    """The request's prompt, with what UTF-8 cannot encode replaced (the real API answers a lone surrogate)."""
    return (await request.json())["contents"][0]["parts"][0]["text"].encode("utf-8", "replace").decode()


def upstream_app() -> web.Application:
    """Answers any generate call with its prompt; streams two chunks, or (prompt ``slow``) three over 1.5 s."""

    async def generate(request: web.Request) -> web.Response:
        return json_response(chunk(await prompt_of(request), final=True))

    async def stream(request: web.Request) -> web.StreamResponse:
        prompt = await prompt_of(request)
        reply = web.StreamResponse(headers={"Content-Type": SSE_CONTENT_TYPE})
        await reply.prepare(request)
        pieces = ["a ", "b ", "c."] if prompt == "slow" else [prompt, "."]
        for i, text in enumerate(pieces):
            if prompt == "slow" and i:
                await asyncio.sleep(SLOW_STREAM_S / 2)
            await reply.write(sse_event(chunk(text, final=i == len(pieces) - 1)))
        await reply.write_eof()
        return reply

    app = web.Application()
    app.router.add_post("/v1/models/gemini-2.5-flash:generateContent", generate)
    app.router.add_post("/v1/models/gemini-2.5-flash:streamGenerateContent", stream)
    return app


@pytest.fixture
async def recorder(tmp_path: Path) -> AsyncIterator[str]:
    """An in-process recorder on ``tmp_path`` in front of :func:`upstream_app`; yields ``URL/rec``."""
    async with running(upstream_app()) as upstream:
        server = ReplayServer(CassetteStore(tmp_path), mode=Mode.RECORD, upstream=upstream)
        async with running(server.app()) as url:
            yield f"{url}/rec"


async def post(url: str, data: bytes) -> tuple[int, Any]:
    """POST ``data``; the status and the JSON reply, or for a stream the list of its events' JSON."""
    headers = {"Content-Type": "application/json", "x-goog-api-key": "k"}
    async with aiohttp.ClientSession() as session, session.post(url, data=data, headers=headers) as reply:
        text = await reply.text()
        if reply.content_type == SSE_CONTENT_TYPE:
            return reply.status, [json.loads(e[len("data: ") :]) for e in text.split("\r\n\r\n") if e]
        return reply.status, json.loads(text)


def recorded_prompts(folder: Path) -> list[str]:
    cassette = Cassette.load(folder / "rec.json")
    return [e.request["body"]["contents"][0]["parts"][0]["text"] for e in cassette.exchanges]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


async def test_a_failed_write_is_a_500_that_keeps_every_earlier_exchange_and_stops_nothing_later(
    recorder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await post(f"{recorder}/{GENERATE}", body("one")))[0] == 200
    assert (await post(f"{recorder}/{STREAM}", body("two")))[0] == 200
    before = (tmp_path / "rec.json").read_bytes()

    real_open = open

    class HalfWrites:
        """A file whose writes stop half-way with ENOSPC, as on a full disk."""

        def __init__(self, *args: Any) -> None:
            self.f = real_open(*args)

        def __enter__(self) -> HalfWrites:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

        def write(self, data: bytes) -> int:
            if len(data) > 16:  # the new exchange, not the restored closing lines
                self.f.write(data[: len(data) // 2])
                self.f.flush()
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.f, name)

    monkeypatch.setattr(store, "open", HalfWrites, raising=False)
    status, reply = await post(f"{recorder}/{GENERATE}", body("three"))
    assert status == 500 and reply["error"]["status"] == "INTERNAL"
    assert "could not save" in reply["error"]["message"] and "No space left" in reply["error"]["message"]
    status, events = await post(f"{recorder}/{STREAM}", body("four"))
    assert status == 200 and [e["candidates"][0]["content"]["parts"][0]["text"] for e in events[:2]] == ["four", "."]
    assert events[2]["error"]["code"] == 500 and "No space left" in events[2]["error"]["message"]
    assert (tmp_path / "rec.json").read_bytes() == before, "the file is restored to what it was"
    monkeypatch.undo()

    assert (await post(f"{recorder}/{GENERATE}", body("five")))[0] == 200
    assert recorded_prompts(tmp_path) == ["one", "two", "five"]
    assert leftovers(tmp_path) == []


async def test_a_failed_atomic_replace_leaves_no_temp_file(
    recorder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    # The first write of a run replaces the whole file (temp file, then rename).
    monkeypatch.setattr(cassette.os, "replace", full_disk)
    status, reply = await post(f"{recorder}/{GENERATE}", body("one"))
    assert status == 500 and "No space left" in reply["error"]["message"]
    assert leftovers(tmp_path) == [] and not (tmp_path / "rec.json").exists()
    monkeypatch.undo()
    assert (await post(f"{recorder}/{GENERATE}", body("two")))[0] == 200
    assert recorded_prompts(tmp_path) == ["two"]


async def test_a_lone_surrogate_is_a_400_naming_the_field_and_never_forwarded(recorder: str, tmp_path: Path) -> None:
    """Half an emoji cannot be written (UTF-8 has no such character): refused before it is forwarded and billed."""
    assert (await post(f"{recorder}/{GENERATE}", body("before")))[0] == 200
    status, reply = await post(f"{recorder}/{GENERATE}", body("half an emoji \ud83d"))
    assert status == 400 and reply["error"]["status"] == "INVALID_ARGUMENT"
    assert "surrogate" in reply["error"]["message"] and "'contents[0].parts[0].text'" in reply["error"]["message"]
    status, reply = await post(f"{recorder}/{STREAM}", body("\ud83d"))
    assert status == 400 and "surrogate" in reply["error"]["message"]
    assert (await post(f"{recorder}/{GENERATE}", body("after")))[0] == 200
    assert recorded_prompts(tmp_path) == ["before", "after"]
    assert leftovers(tmp_path) == []


async def test_text_like_the_old_chunk_markers_records_and_replays_as_sent(recorder: str, tmp_path: Path) -> None:
    # The old writer swapped "\u00000\u0000" strings for stream chunks: a prompt spelt so was corrupted.
    marker = "\x000\x00"
    assert (await post(f"{recorder}/{STREAM}", body("x")))[0] == 200
    assert (await post(f"{recorder}/{GENERATE}", body(marker)))[0] == 200
    assert recorded_prompts(tmp_path) == ["x", marker]
    async with running(ReplayServer(CassetteStore(tmp_path)).app()) as url:
        status, reply = await post(f"{url}/rec/{GENERATE}", body(marker))
    assert status == 200 and reply["candidates"][0]["content"]["parts"][0]["text"] == marker


def test_the_renderer_writes_the_shipped_cassettes_byte_for_byte() -> None:
    # The format is unchanged: a re-recording only diffs where exchanges changed.
    paths = sorted(default_dir().glob("*.json"))
    assert paths
    for path in paths:
        assert Cassette.load(path).text() == path.read_text(encoding="utf-8"), path.name


def test_a_second_recorder_on_the_same_folder_refuses_to_start(tmp_path: Path) -> None:
    first = start_server("--port", "0", "--cassettes", str(tmp_path), "--record", "--upstream", "http://127.0.0.1:9")
    try:
        second = subprocess.run(
            [sys.executable, "-m", "helpers.replay", "serve", "--port", "0", "--cassettes", str(tmp_path), "--record"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2 and second.stdout == ""
        assert second.stderr.startswith("error: another recorder") and str(tmp_path) in second.stderr
        replay = start_server("--port", "0", "--cassettes", str(tmp_path))  # replaying alongside is fine
        replay.stop()
    finally:
        first.stop()
    again = start_server("--port", "0", "--cassettes", str(tmp_path), "--record")  # the lock went with the first
    again.stop()
    assert not (tmp_path / store.LOCK_NAME).exists()


async def test_stopping_a_recorder_finishes_the_streams_it_is_still_recording(tmp_path: Path) -> None:
    async with running(upstream_app()) as upstream:
        server = start_server("--port", "0", "--cassettes", str(tmp_path), "--record", "--upstream", upstream)
        try:
            headers = {"Content-Type": "application/json", "x-goog-api-key": "k"}
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"{server.url}/rec/{STREAM}", data=body("slow"), headers=headers) as reply,
            ):
                await reply.content.readline()  # the first event: the stream is under way
            server.proc.terminate()  # SIGTERM: the clean shutdown a setup re-run asks for by closing its stdin
            code = await asyncio.to_thread(server.proc.wait, 30)
        finally:
            if server.proc.poll() is None:
                server.proc.kill()
    assert code == 0
    (exchange,) = Cassette.load(tmp_path / "rec.json").exchanges
    assert "chunks" in exchange.response and len(exchange.response["chunks"]) == 3, "recorded whole"
