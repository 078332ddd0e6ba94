"""The Interactions API: recorded from a stand-in with known timing and replayed, its ids and misses explained by
replay, the synthetic upstream's state, and interaction streams timed and plotted."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp import web
from google import genai
from google.genai import types

from helpers import control, plots
from helpers.models import FLASH, PROFILES
from helpers.replay.cassettes.cassette import Cassette
from helpers.replay.pipeline.control_panel import carries_text
from helpers.replay.pipeline.socket_server import running
from helpers.replay.services.interactions_api import BACKGROUND_S, Background
from helpers.replay.upstream.synthetic import Script, ScriptEntry, SyntheticUpstream
from helpers.replay.wire.framing import SSE_CONTENT_TYPE, sse_event
from helpers.timing import atimed, timed

from .conftest import start_server

SPEED = 4
"""The synthetic cassette's replay speed: a background interaction runs BACKGROUND_S / SPEED (2 s), long enough for
a create, a get and a cancel on a busy machine."""
EARLY_S = 0.001
"""The clock granularity allowed when a time is compared with an offset: nothing is read or sent earlier."""
PIECES = ["Hash ", "tables ", "find keys fast."]
EVENTS: list[tuple[float, dict | str]] = [
    (0.10, {"event_type": "interaction.created", "interaction": {"id": "v1_known", "status": "in_progress"}}),
    (0.10, {"event_type": "step.start", "index": 0, "step": {"type": "model_output"}}),
    (0.30, {"event_type": "step.delta", "index": 0, "delta": {"type": "text", "text": PIECES[0]}}),
    (0.45, {"event_type": "step.delta", "index": 0, "delta": {"type": "text", "text": PIECES[1]}}),
    (0.70, {"event_type": "step.delta", "index": 0, "delta": {"type": "text", "text": PIECES[2]}}),
    (0.70, {"event_type": "step.stop", "index": 0}),
    (
        0.75,
        {
            "event_type": "interaction.completed",
            "interaction": {"id": "v1_known", "status": "completed", "usage": {"total_output_tokens": 6}},
        },
    ),
    (0.75, "[DONE]"),
]
"""What the stand-in streams: each event at its offset in seconds, the last one the raw ``[DONE]``."""


def stand_in() -> web.Application:
    """A stand-in Interactions endpoint that streams :data:`EVENTS` at their offsets."""

    async def create(request: web.Request) -> web.StreamResponse:
        start = asyncio.get_running_loop().time()
        reply = web.StreamResponse(headers={"Content-Type": SSE_CONTENT_TYPE})
        for offset, event in EVENTS:
            await asyncio.sleep(max(0.0, start + offset - asyncio.get_running_loop().time()))
            if not reply.prepared:
                await reply.prepare(request)
            if isinstance(event, str):
                await reply.write(sse_event(event, raw=True))
            else:
                await reply.write(sse_event(event, event=event["event_type"]))
        await reply.write_eof()
        return reply

    app = web.Application()
    app.router.add_post("/v1beta/interactions", create)
    return app


def quick(script: Script) -> SyntheticUpstream:
    """The synthetic upstream with a fast profile for FLASH (the test is about shapes and state, not latency)."""
    return SyntheticUpstream(script, {FLASH: dataclasses.replace(PROFILES[FLASH], ttft_s=0.05, tokens_per_s=4000.0)})


def client_for(url: str, cassette: str) -> genai.Client:
    return genai.Client(
        api_key="placeholder", http_options=types.HttpOptions(base_url=f"{url}/{cassette}/", api_version="v1beta")
    )


async def read_stream(client: genai.Client) -> list:
    stream = await client.aio.interactions.create(model=FLASH, input="How do hash tables work?", stream=True)
    return [event async for event in stream]


def texts(events: list) -> list[str]:
    return [e.delta.text for e in events if e.event_type == "step.delta" and e.delta.type == "text"]


async def test_record_then_replay_keeps_events_their_timing_and_text(tmp_path: Path) -> None:
    async with running(stand_in()) as upstream:
        recorder = start_server("--port", "0", "--cassettes", str(tmp_path), "--record", "--upstream", upstream)
        try:
            recorded_events = await read_stream(client_for(recorder.url, "rec"))
        finally:
            recorder.stop()
    (exchange,) = Cassette.load(tmp_path / "rec.json").exchanges
    assert exchange.request["path"] == "interactions"
    chunks = exchange.response["chunks"]
    assert [c.get("event") for c in chunks[:-1]] == [e["event_type"] for _, e in EVENTS[:-1]]  # type: ignore[index]
    assert chunks[-1]["data"] == "[DONE]" and chunks[-1]["raw"] is True
    # The recorder reads each event after the stand-in sent it: never earlier than the stand-in's offset.
    offsets = [c["offset_s"] for c in chunks]
    for got, (want, _) in zip(offsets, EVENTS, strict=True):
        assert got >= want - EARLY_S, offsets

    replay = start_server("--port", "0", "--cassettes", str(tmp_path))
    try:
        client = client_for(replay.url, "rec")
        with contextlib.suppress(Exception):  # open the connection first: the measurement is the replay alone
            await client.aio.interactions.get("v1_warm-up")
        control.reset_stats(cassette="rec", server_url=replay.url)
        replayed_events = await read_stream(client)
        stats = control.stats(cassette="rec", server_url=replay.url)
    finally:
        replay.stop()
    assert [e.event_type for e in replayed_events] == [e.event_type for e in recorded_events]
    assert len(replayed_events) == len(EVENTS) - 1  # [DONE] ends the stream; the SDK does not yield it
    assert texts(replayed_events) == texts(recorded_events) == PIECES
    (seen,) = [r for r in stats.requests if r.chunks_s]
    sent = [t - seen.start_s for t in seen.chunks_s]
    assert len(sent) == len(chunks)
    # Every event by the server's own clock at its recorded offset or later: TTFT (the first text, event 2) and the
    # gaps after it are kept as lower bounds. How close is a figure: bench/replay_bench.py.
    for got, want in zip(sent, offsets, strict=True):
        assert got >= want - EARLY_S, (sent, offsets)
    assert sent[2] >= offsets[2] - EARLY_S


@pytest.fixture(scope="module")
def synthetic_replay(tmp_path_factory: pytest.TempPathFactory):
    """A cassette authored from the synthetic upstream through the record path, and a replay server of it."""
    folder = tmp_path_factory.mktemp("interactions")
    script = Script([ScriptEntry("Hi", ["Hello there."]), ScriptEntry("Go on", ["And so on."])])

    async def author() -> str:
        async with running(quick(script).app()) as upstream:
            recorder = start_server("--port", "0", "--cassettes", str(folder), "--record", "--upstream", upstream)
            try:
                c = client_for(recorder.url, "syn")
                first = await c.aio.interactions.create(model=FLASH, input="Hi")
                await c.aio.interactions.create(model=FLASH, input="Go on", previous_interaction_id=first.id)
                waiting = await c.aio.interactions.create(model=FLASH, input="Hi", background=True)
                while (await c.aio.interactions.get(waiting.id)).status == "in_progress":
                    await asyncio.sleep(0.05)  # the stand-in completes it when its answer's timeline ends
            finally:
                recorder.stop()
        return first.id

    first_id = asyncio.run(author())
    server = start_server("--port", "0", "--cassettes", str(folder), "--speed", str(SPEED))
    yield server, first_id
    server.stop()


def test_replay_continues_by_recorded_id_and_explains_an_unknown_one(synthetic_replay) -> None:
    server, first_id = synthetic_replay
    client = client_for(server.url, "syn")
    first = client.interactions.create(model=FLASH, input="Hi")
    assert first.id == first_id and first.output_text == "Hello there."
    second = client.interactions.create(model=FLASH, input="Go on", previous_interaction_id=first.id)
    assert second.output_text == "And so on."
    assert second.usage.total_input_tokens > first.usage.total_input_tokens  # the history was read again
    with pytest.raises(Exception, match="v1_typed-by-hand") as caught:
        client.interactions.create(model=FLASH, input="Go on", previous_interaction_id="v1_typed-by-hand")
    assert type(caught.value).__name__ == "NotFoundError" and caught.value.status_code == 404
    assert "cassette 'syn' knows the 3 interaction ids" in str(caught.value)
    with pytest.raises(Exception, match="was not found") as missing:
        client.interactions.get("v1_nope")
    assert missing.value.status_code == 404


def test_replay_runs_a_background_interactions_lifecycle_divided_by_speed(synthetic_replay) -> None:
    server, _ = synthetic_replay
    client = client_for(server.url, "syn")
    waiting = client.interactions.create(model=FLASH, input="Hi", background=True)
    assert waiting.status == "in_progress" and client.interactions.get(waiting.id).status == "in_progress"
    cancelled = client.interactions.cancel(waiting.id)
    assert cancelled.status == "cancelled" and client.interactions.get(waiting.id).status == "cancelled"
    with pytest.raises(Exception, match="is cancelled") as refused:
        client.interactions.create(model=FLASH, input="Go on", previous_interaction_id=waiting.id)
    assert refused.value.status_code == 400
    with pytest.raises(Exception, match="still running"):
        client.interactions.cancel(waiting.id)

    again = client.interactions.create(model=FLASH, input="Hi", background=True)
    polls = 0
    while (polled := client.interactions.get(again.id)).status == "in_progress":
        polls += 1
        assert polls < 200, "still in progress after 10 s"
        time.sleep(0.05)
    assert polled.status == "completed" and polled.output_text == "Hello there."


def test_a_background_interactions_lifecycle_is_divided_by_speed() -> None:
    running = Background({"id": "v1_x", "status": "in_progress"}, created=100.0)
    assert running.status(100.0 + 0.9 * BACKGROUND_S / 10, speed=10) == "in_progress"
    assert running.status(100.0 + 1.1 * BACKGROUND_S / 10, speed=10) == "completed"
    running.ended = ("cancelled", 100.1)
    assert running.status(1e9, speed=10) == "cancelled"


def test_an_unrecorded_interaction_is_named_by_its_input_and_what_it_continues(synthetic_replay) -> None:
    server, first_id = synthetic_replay
    client = client_for(server.url, "syn")
    with pytest.raises(Exception) as caught:
        client.interactions.create(model=FLASH, input="Go further", previous_interaction_id=first_id)
    message = caught.value.body["error"]["message"]
    assert f'POST interactions ("Go further", continuing {first_id})' in message
    assert 'differs at input: recorded "Go on", sent "Go further"' in message


async def test_synthetic_upstream_keeps_state_as_the_api_describes() -> None:
    script = Script([ScriptEntry("Hi", ["Hello there, and welcome. " * 4])])
    async with running(quick(script).app()) as upstream:
        c = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=upstream + "/", api_version="v1beta"))
        unstored = await c.aio.interactions.create(model=FLASH, input="Hi", store=False)
        with pytest.raises(Exception) as not_kept:
            await c.aio.interactions.get(unstored.id)
        assert not_kept.value.status_code == 404
        done = await c.aio.interactions.create(model=FLASH, input="Hi")
        with pytest.raises(Exception) as finished:
            await c.aio.interactions.cancel(done.id)
        assert finished.value.status_code == 400 and "still running" in str(finished.value)
        with pytest.raises(Exception) as incompatible:
            await c.aio.interactions.create(model=FLASH, input="Hi", store=False, background=True)
        assert incompatible.value.status_code == 400
        await c.aio.interactions.delete(done.id)
        with pytest.raises(Exception) as deleted:
            await c.aio.interactions.create(model=FLASH, input="Hi", previous_interaction_id=done.id)
        assert deleted.value.status_code == 404


async def test_timed_and_atimed_measure_an_interaction_stream_from_before_the_request() -> None:
    script = Script([ScriptEntry("Hi", ["Hello there, and welcome to the workbook. " * 6])])
    async with running(quick(script).app()) as upstream:
        c = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=upstream + "/"))
        stream = atimed(c.aio.interactions.create(model=FLASH, input="Hi", stream=True))
        events = [e async for e in stream]
    timing = stream.timing
    assert len(timing.chunks) == len(events)
    first_text = next(i for i, e in enumerate(events) if e.event_type == "step.delta" and e.delta.type == "text")
    assert timing.ttft_s == timing.chunks[first_text].at_s and timing.first_chunk_s < timing.ttft_s
    assert timing.chars == len("".join(texts(events)))
    assert timing.output_tokens == events[-1].interaction.usage.total_output_tokens > 0
    assert str(timing).startswith("first chunk ")
    plots.chunk_arrival({"interaction": timing})  # draws it


def test_timed_calls_a_stream_factory_when_iteration_starts() -> None:
    opened: list[str] = []

    def factory():
        opened.append("now")
        return iter([SimpleNamespace(event_type="step.delta", delta=SimpleNamespace(type="text", text="abc"))])

    stream = timed(factory)
    assert opened == []
    assert [e.delta.text for e in stream] == ["abc"] and opened == ["now"]
    assert stream.timing.chars == 3


def test_holds_count_an_interaction_streams_text_deltas() -> None:
    assert carries_text({"event_type": "step.delta", "delta": {"type": "text", "text": "Hi"}})
    assert not carries_text({"event_type": "step.delta", "delta": {"type": "thought_signature", "signature": "x"}})
    assert not carries_text({"event_type": "interaction.created", "interaction": {"id": "v1_x"}})
