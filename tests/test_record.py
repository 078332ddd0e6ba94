"""Record mode against a local stand-in upstream with known timing, then replay of what was recorded."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from google import genai
from google.genai import errors, types

from helpers import control
from helpers.models import FLASH
from helpers.replay.cassettes.cassette import Cassette
from helpers.replay.pipeline.api_request import json_response
from helpers.replay.pipeline.socket_server import running
from helpers.replay.upstream.synthetic import Script, SyntheticUpstream
from helpers.replay.wire.framing import SSE_CONTENT_TYPE, sse_event

from .conftest import chunk, start_server

EARLY_S = 0.001
"""The clock granularity allowed when a time is compared with an offset: nothing is read or sent earlier."""
FAKE_KEY = "AIza" + "Sy" + "T3stK3yF0rRec0rdM0deN0tRea1xyz12"  # key-shaped on purpose; built in pieces
OFFSETS = [0.20, 0.35, 0.60]
PIECES = ["One ", "two ", "three."]


def stand_in_upstream(seen_keys: list[str]) -> web.Application:
    """A stand-in Gemini endpoint: streams PIECES at OFFSETS after each request, and answers countTokens."""

    async def stream(request: web.Request) -> web.StreamResponse:
        start = asyncio.get_running_loop().time()
        seen_keys.append(request.headers.get("x-goog-api-key", ""))
        reply = web.StreamResponse(headers={"Content-Type": SSE_CONTENT_TYPE})
        await reply.prepare(request)
        for i, (offset, text) in enumerate(zip(OFFSETS, PIECES, strict=True)):
            await asyncio.sleep(start + offset - asyncio.get_running_loop().time())
            await reply.write(sse_event(chunk(text, final=i == 2)))
        await reply.write_eof()
        return reply

    async def count(request: web.Request) -> web.Response:
        seen_keys.append(request.headers.get("x-goog-api-key", ""))
        return json_response({"totalTokens": 7})

    app = web.Application()
    app.router.add_post(f"/v1/models/{FLASH}:streamGenerateContent", stream)
    app.router.add_post(f"/v1/models/{FLASH}:countTokens", count)
    return app


async def test_record_then_replay_keeps_timing_and_never_the_key(tmp_path: Path) -> None:
    seen: list[str] = []
    async with running(stand_in_upstream(seen)) as upstream:
        recorder = start_server("--port", "0", "--cassettes", str(tmp_path), "--record", "--upstream", upstream)
        try:
            c = genai.Client(api_key=FAKE_KEY, http_options=types.HttpOptions(base_url=f"{recorder.url}/rec/"))
            texts = [ch.text async for ch in await c.aio.models.generate_content_stream(model=FLASH, contents="Count")]
            tokens = await c.aio.models.count_tokens(model=FLASH, contents="Count")
            await c.aio.aclose()
        finally:
            recorder.stop()
            out, err = recorder.proc.communicate()
    assert texts == PIECES and tokens.total_tokens == 7
    assert seen == [FAKE_KEY, FAKE_KEY], "the key must reach the upstream"

    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert FAKE_KEY not in path.read_text(errors="replace"), path
    assert FAKE_KEY not in out + err

    cassette = Cassette.load(tmp_path / "rec.json")
    stream, count = cassette.exchanges
    assert stream.provenance["source"] == "recorded" and stream.provenance["sdk"] == f"google-genai {genai.__version__}"
    assert stream.provenance["model_version"] == FLASH
    # The recorder's clock starts before the upstream's and it reads each chunk after it was sent: never earlier
    # than the upstream's offset. How much later (the recorder's own lag) is no test's business on a busy machine.
    recorded = [c["offset_s"] for c in stream.response["chunks"]]
    assert recorded == sorted(recorded), recorded
    for got, want in zip(recorded, OFFSETS, strict=True):
        assert got >= want - EARLY_S, recorded
    assert count.response["body"] == {"totalTokens": 7}
    assert "key" not in json.dumps(count.request).lower()

    replay = start_server("--port", "0", "--cassettes", str(tmp_path))
    try:
        c = genai.Client(api_key="placeholder", http_options=types.HttpOptions(base_url=f"{replay.url}/rec/"))
        # Open the connection first, so the measurement below is the replayed timing alone.
        with contextlib.suppress(errors.ClientError):
            await c.aio.models.generate_content(model=FLASH, contents="warm-up")
        control.reset_stats(cassette="rec", server_url=replay.url)
        start = time.perf_counter()
        arrivals = [
            time.perf_counter() - start
            async for _ in await c.aio.models.generate_content_stream(model=FLASH, contents="Count")
        ]
        await c.aio.aclose()
        streamed = [r for r in control.stats(cassette="rec", server_url=replay.url).requests if r.chunks_s]
    finally:
        replay.stop()
    # Replayed at the recorded offsets, by the server's clock and as the client sees them: never earlier. How close
    # is a figure: bench/replay_bench.py (replay fidelity).
    (seen,) = streamed
    sent = [t - seen.start_s for t in seen.chunks_s]
    for got_sent, got_arrival, want in zip(sent, arrivals, recorded, strict=True):
        assert got_sent >= want - EARLY_S and got_arrival >= want - EARLY_S, (sent, arrivals, recorded)


async def test_record_refreshes_only_what_it_touches(tmp_path: Path) -> None:
    seen: list[str] = []
    async with running(stand_in_upstream(seen)) as upstream:
        for _ in range(2):
            recorder = start_server("--port", "0", "--cassettes", str(tmp_path), "--record", "--upstream", upstream)
            c = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=f"{recorder.url}/rec/"))
            await c.aio.models.count_tokens(model=FLASH, contents="Count")
            await c.aio.models.count_tokens(model=FLASH, contents="Count")
            await c.aio.aclose()
            recorder.stop()
        recorder = start_server("--port", "0", "--cassettes", str(tmp_path), "--record", "--upstream", upstream)
        c = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=f"{recorder.url}/rec/"))
        await c.aio.models.count_tokens(model=FLASH, contents="Other")
        await c.aio.aclose()
        recorder.stop()
    bodies = [
        e.request["body"]["contents"][0]["parts"][0]["text"] for e in Cassette.load(tmp_path / "rec.json").exchanges
    ]
    # The second run replaced the first run's two takes of "Count"; the third run added "Other" and kept them.
    assert bodies == ["Count", "Count", "Other"]


async def test_unreachable_upstream_is_a_clear_502(tmp_path: Path) -> None:
    recorder = start_server("--port", "0", "--cassettes", str(tmp_path), "--record", "--upstream", "http://127.0.0.1:9")
    c = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=f"{recorder.url}/rec/"))
    try:
        try:
            await c.aio.models.count_tokens(model=FLASH, contents="Count")
        except errors.ServerError as e:
            assert e.code == 502 and "could not reach the upstream http://127.0.0.1:9" in e.message
        else:
            raise AssertionError("expected a 502")
        await c.aio.aclose()
    finally:
        recorder.stop()
    assert not (tmp_path / "rec.json").exists()


async def test_record_mode_applies_the_cassettes_rate_limit_and_records_only_admitted_calls(tmp_path: Path) -> None:
    seen: list[str] = []
    async with running(stand_in_upstream(seen)) as upstream:
        recorder = start_server(
            "--port", "0", "--cassettes", str(tmp_path), "--speed", "60", "--record", "--upstream", upstream
        )
        try:
            control.set_limits(rpm=2, cassette="rec", server_url=recorder.url)
            c = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=f"{recorder.url}/rec/"))

            async def ask() -> object:
                try:
                    return [
                        ch.text
                        async for ch in await c.aio.models.generate_content_stream(model=FLASH, contents="Count")
                    ]
                except errors.APIError as e:
                    return e

            outcomes = await asyncio.gather(*(ask() for _ in range(3)))
            # countTokens is not a model call: never limited.
            assert (await c.aio.models.count_tokens(model=FLASH, contents="Count")).total_tokens == 7
            await c.aio.aclose()
        finally:
            recorder.stop()
    refused = [o for o in outcomes if isinstance(o, errors.APIError)]
    assert [o for o in outcomes if o == PIECES] and len(refused) == 1 and refused[0].code == 429
    retry_delay = refused[0].details["error"]["details"][0]["retryDelay"]
    assert 0 < float(retry_delay.removesuffix("s")) <= 1.0, "the window lasts 60 s / --speed 60"
    assert len(seen) == 3, "the refused call never reached the upstream"
    streams = [e for e in Cassette.load(tmp_path / "rec.json").exchanges if e.is_stream]
    assert len(streams) == 2


def recorded_texts(folder: Path) -> list[list[str]]:
    """The chunk texts of every exchange of cassette ``rec``, in order."""
    exchanges = Cassette.load(folder / "rec.json").exchanges
    return [
        [piece["data"]["candidates"][0]["content"]["parts"][0]["text"] for piece in e.response["chunks"]]
        for e in exchanges
    ]


async def test_a_client_that_leaves_a_stream_is_let_go_and_the_stream_recorded_whole(tmp_path: Path) -> None:
    async with running(stand_in_upstream([])) as upstream:
        recorder = start_server("--port", "0", "--cassettes", str(tmp_path), "--record", "--upstream", upstream)
        try:
            c = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=f"{recorder.url}/rec/"))
            first = asyncio.Event()

            async def read() -> None:
                async for _ in await c.aio.models.generate_content_stream(model=FLASH, contents="Count"):
                    first.set()

            task = asyncio.create_task(read())
            await asyncio.wait_for(first.wait(), 30)  # bounded: a broken recorder fails here instead of hanging
            task.cancel()  # closes the connection after the first chunk, as a cancelled cell would
            await asyncio.gather(task, return_exceptions=True)
            await asyncio.sleep(0.05)
            assert control.stats(cassette="rec", server_url=recorder.url).in_flight == 0, "the client is let go"
            assert not (tmp_path / "rec.json").exists(), "the rest of the stream is still being read"
            for _ in range(100):
                if (tmp_path / "rec.json").exists():
                    break
                await asyncio.sleep(0.02)
            await c.aio.aclose()
        finally:
            recorder.stop()
    assert recorded_texts(tmp_path) == [PIECES]


async def test_stream_faults_strike_in_record_mode_and_replay_alike(tmp_path: Path) -> None:
    async def cut_after_one(url: str) -> list[str]:
        control.cut_stream(1, cassette="rec", server_url=url)
        c = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=f"{url}/rec/"))
        texts: list[str] = []
        try:
            async for ch in await c.aio.models.generate_content_stream(model=FLASH, contents="Count"):
                texts.append(ch.text)
        except aiohttp.ClientPayloadError:
            texts.append("<cut>")
        texts += [ch.text async for ch in await c.aio.models.generate_content_stream(model=FLASH, contents="Count")]
        await c.aio.aclose()
        return texts

    async with running(stand_in_upstream([])) as upstream:
        recorder = start_server("--port", "0", "--cassettes", str(tmp_path), "--record", "--upstream", upstream)
        try:
            recorded = await cut_after_one(recorder.url)
        finally:
            recorder.stop()
    assert recorded == ["One ", "<cut>", *PIECES], "the fault hits the next stream only"
    assert recorded_texts(tmp_path) == [PIECES, PIECES], "the cut stream is recorded whole"
    replay = start_server("--port", "0", "--cassettes", str(tmp_path))
    try:
        assert await cut_after_one(replay.url) == recorded
    finally:
        replay.stop()


async def test_models_get_list_and_count_tokens_record_from_the_synthetic_upstream_and_replay(tmp_path: Path) -> None:
    async with running(SyntheticUpstream(Script([])).app()) as upstream:
        recorder = start_server("--port", "0", "--cassettes", str(tmp_path), "--record", "--upstream", upstream)
        try:
            c = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=f"{recorder.url}/m/"))
            live = await c.aio.models.get(model=FLASH)
            listed = [m.name async for m in await c.aio.models.list()]
            tokens = await c.aio.models.count_tokens(model=FLASH, contents="Count these words, please.")
            await c.aio.aclose()
        finally:
            recorder.stop()
    assert live.name == f"models/{FLASH}" and live.input_token_limit == 1048576
    assert f"models/{FLASH}" in listed and tokens.total_tokens == 7
    replay = start_server("--port", "0", "--cassettes", str(tmp_path))
    try:
        c = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=f"{replay.url}/m/"))
        assert (await c.aio.models.get(model=FLASH)).name == live.name
        assert [m.name async for m in await c.aio.models.list()] == listed
        assert (await c.aio.models.count_tokens(model=FLASH, contents="Count these words, please.")).total_tokens == 7
        await c.aio.aclose()
    finally:
        replay.stop()
    paths = [e.request["path"] for e in Cassette.load(tmp_path / "m.json").exchanges]
    assert paths == [f"models/{FLASH}", "models", f"models/{FLASH}:countTokens"]


async def test_record_mode_relays_a_held_stream_unheld_and_times_its_chunks(tmp_path: Path) -> None:
    """A hold applies to replayed streams: held, a relay would record the hold into the later chunks' offsets."""
    async with running(stand_in_upstream([])) as upstream:
        recorder = start_server("--port", "0", "--cassettes", str(tmp_path), "--record", "--upstream", upstream)
        kw = {"cassette": "rec", "server_url": recorder.url}
        try:
            control.reset_stats(**kw)
            control.hold_stream(after_text_chunks=1, **kw)
            c = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=f"{recorder.url}/rec/"))
            texts = [ch.text async for ch in await c.aio.models.generate_content_stream(model=FLASH, contents="Count")]
            await c.aio.aclose()
            (seen,) = control.stats(**kw).requests
        finally:
            recorder.stop()
    assert texts == PIECES
    relayed = [t - seen.start_s for t in seen.chunks_s]
    assert len(relayed) == 3 and all(got >= want - EARLY_S for got, want in zip(relayed, OFFSETS, strict=True))
