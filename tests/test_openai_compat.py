"""Gemini's OpenAI-compatible endpoint through the real ``openai`` SDK: record from a stand-in upstream with known
timing, replay what was recorded (texts, chunks, ``[DONE]``, timing by the server's own record), the key never
stored; and the synthetic upstream's streams (usage chunk, tool-call fragments, stop vs length, errors)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from aiohttp import web

from helpers import control
from helpers.models import FLASH, MODELS
from helpers.replay.cassettes.cassette import Cassette
from helpers.replay.pipeline.control_panel import carries_text
from helpers.replay.pipeline.socket_server import running
from helpers.replay.wire.framing import SSE_CONTENT_TYPE, sse_event
from helpers.workbook import Session

from .conftest import start_server, write_cassette

EARLY_S = 0.001
"""The clock granularity allowed when a time is compared with an offset: nothing is read or sent earlier."""
FAKE_KEY = "AIza" + "Sy" + "0pen4iC0mpatK3yN0tRea1abcdef123"  # key-shaped on purpose; built in pieces
OFFSETS = [0.20, 0.35, 0.60]
PIECES = ["One ", "two ", "three."]
PROMPT = "Count to three."


def completion_chunk(i: int, text: str) -> dict:
    delta = {"role": "assistant", "content": text} if i == 0 else {"content": text}
    finish = "stop" if i == len(PIECES) - 1 else None
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": FLASH,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def stand_in_upstream(seen: list[str]) -> web.Application:
    """A stand-in of the endpoint: streams PIECES at OFFSETS after each request, then ``data: [DONE]``."""

    async def stream(request: web.Request) -> web.StreamResponse:
        start = asyncio.get_running_loop().time()
        seen.append(request.headers.get("Authorization", ""))
        reply = web.StreamResponse(headers={"Content-Type": SSE_CONTENT_TYPE})
        await reply.prepare(request)
        for i, (offset, text) in enumerate(zip(OFFSETS, PIECES, strict=True)):
            await asyncio.sleep(start + offset - asyncio.get_running_loop().time())
            await reply.write(sse_event(completion_chunk(i, text)))
        await reply.write(sse_event("[DONE]", raw=True))
        await reply.write_eof()
        return reply

    app = web.Application()
    app.router.add_post("/v1beta/openai/chat/completions", stream)
    return app


async def ask(base_url: str, key: str) -> tuple[list[str], list[str | None]]:
    """The streamed chunks' texts and finish reasons, through ``AsyncOpenAI``."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0)
    texts, finishes = [], []
    stream = await client.chat.completions.create(
        model=FLASH, messages=[{"role": "user", "content": PROMPT}], stream=True
    )
    async for chunk in stream:
        texts.append(chunk.choices[0].delta.content)
        finishes.append(chunk.choices[0].finish_reason)
    await client.close()
    return texts, finishes


async def test_record_then_replay_through_the_openai_sdk_keeps_texts_chunks_done_and_timing(tmp_path: Path) -> None:
    seen: list[str] = []
    async with running(stand_in_upstream(seen)) as upstream:
        recorder = start_server("--port", "0", "--cassettes", str(tmp_path), "--record", "--upstream", upstream)
        try:
            recorded_texts, finishes = await ask(f"{recorder.url}/rec/v1beta/openai/", FAKE_KEY)
        finally:
            recorder.stop()
            out, err = recorder.proc.communicate()
    assert recorded_texts == PIECES and finishes == [None, None, "stop"]
    assert seen == [f"Bearer {FAKE_KEY}"], "the Bearer key must reach the upstream"
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert FAKE_KEY not in path.read_text(errors="replace"), path
    assert FAKE_KEY not in out + err

    (exchange,) = Cassette.load(tmp_path / "rec.json").exchanges
    assert exchange.request["path"] == "openai/chat/completions"
    assert "authorization" not in json.dumps(exchange.to_json()).lower()
    chunks = exchange.response["chunks"]
    assert [c.get("raw", False) for c in chunks] == [False, False, False, True] and chunks[-1]["data"] == "[DONE]"
    recorded = [c["offset_s"] for c in chunks]
    for got, want in zip(recorded, OFFSETS, strict=False):
        assert got >= want - EARLY_S, recorded

    replay = start_server("--port", "0", "--cassettes", str(tmp_path))
    try:
        control.reset_stats(cassette="rec", server_url=replay.url)
        texts, _ = await ask(f"{replay.url}/rec/v1beta/openai/", "placeholder")
        (timing,) = control.stats(cassette="rec", server_url=replay.url).requests
    finally:
        replay.stop()
    assert texts == PIECES
    # Every event, [DONE] included, went out no earlier than recorded (the server's own record): TTFT is kept.
    sent = [t - timing.start_s for t in timing.chunks_s]
    assert len(sent) == len(chunks)
    for got, want in zip(sent, recorded, strict=True):
        assert got >= want - EARLY_S, (sent, recorded)


SCRIPT = {
    "responses": [
        {
            "prompt": "weather",
            "text": "It is sunny in Paris, 18 degrees.",
            "function_call": {"name": "get_weather", "args": {"city": "Paris"}},
        },
        {"prompt": "Count", "text": "One, two, three. STOP here and then some more words follow."},
    ]
}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m helpers.replay synth`` (its OpenAI routes installed by the command) behind a recording server:
    the base URL for ``OpenAI(base_url=...)``."""
    folder = tmp_path_factory.mktemp("synth")
    (folder / "script.json").write_text(json.dumps(SCRIPT))
    upstream = subprocess.Popen(
        [sys.executable, "-m", "helpers.replay", "synth", "--script", str(folder / "script.json"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert upstream.stdout is not None
    url = upstream.stdout.readline().split()[1]
    server = start_server("--port", "0", "--cassettes", str(folder), "--record", "--upstream", url)
    yield f"{server.url}/syn/v1beta/openai/"
    server.stop()
    upstream.terminate()
    upstream.wait(timeout=10)


async def test_the_usage_chunk_has_empty_choices_and_comes_last(synthetic: str) -> None:
    client = openai.AsyncOpenAI(base_url=synthetic, api_key="placeholder", max_retries=0)
    chunks = [
        c
        async for c in await client.chat.completions.create(
            model=FLASH,
            messages=[{"role": "user", "content": "Count"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    ]
    await client.close()
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert all(c.usage is None for c in chunks[:-1]) and chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[1].choices[0].delta.role is None


async def test_a_stream_carries_usage_only_when_asked_for_and_a_whole_completion_always(synthetic: str) -> None:
    # The fidelity bug of issue 25: without include_usage, the last chunk carried the usage anyway.
    client = openai.AsyncOpenAI(base_url=synthetic, api_key="placeholder", max_retries=0)
    messages = [{"role": "user", "content": "Count"}]
    chunks = [c async for c in await client.chat.completions.create(model=FLASH, messages=messages, stream=True)]
    whole = await client.chat.completions.create(model=FLASH, messages=messages)
    await client.close()
    assert all(c.usage is None for c in chunks) and all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert whole.usage is not None and whole.usage.total_tokens > 0


def test_the_shipped_08_cassette_streams_usage_only_where_asked_for() -> None:
    """What replay plays is what the cassette holds: no stream recorded without include_usage has a usage."""
    cassette = Cassette.load(Path(__file__).resolve().parents[1] / "notebooks" / "cassettes" / "08_protocols.json")
    streams = [
        e for e in cassette.exchanges if e.request["path"].endswith("chat/completions") and e.response.get("chunks")
    ]
    asked = [bool(((e.request["body"] or {}).get("stream_options") or {}).get("include_usage")) for e in streams]
    assert any(asked) and not all(asked)
    for exchange, wants in zip(streams, asked, strict=True):
        chunks = [c["data"] for c in exchange.response["chunks"] if not c.get("raw")]
        with_usage = [c for c in chunks if c.get("usage")]
        assert with_usage == (chunks[-1:] if wants else []), exchange.request["body"]


async def test_stop_sequences_finish_stop_and_max_tokens_finish_length(synthetic: str) -> None:
    client = openai.AsyncOpenAI(base_url=synthetic, api_key="placeholder", max_retries=0)
    messages = [{"role": "user", "content": "Count"}]
    stopped = await client.chat.completions.create(model=FLASH, messages=messages, stop=["STOP"])
    cut = await client.chat.completions.create(model=FLASH, messages=messages, max_tokens=3)
    await client.close()
    assert stopped.choices[0].message.content == "One, two, three. " and stopped.choices[0].finish_reason == "stop"
    assert cut.choices[0].finish_reason == "length" and len(cut.choices[0].message.content) == 12


async def test_a_streamed_tool_call_arrives_in_argument_fragments_by_index(synthetic: str) -> None:
    client = openai.AsyncOpenAI(base_url=synthetic, api_key="placeholder", max_retries=0)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    messages: list = [{"role": "user", "content": "What's the weather in Paris?"}]
    deltas = [
        c.choices[0]
        async for c in await client.chat.completions.create(model=FLASH, messages=messages, tools=tools, stream=True)
    ]
    fragments = [d.delta.tool_calls[0] for d in deltas if d.delta.tool_calls]
    assert len(fragments) > 2 and {f.index for f in fragments} == {0} and fragments[0].id
    assert json.loads("".join(f.function.arguments or "" for f in fragments)) == {"city": "Paris"}
    assert deltas[-1].finish_reason == "tool_calls"
    call = {"id": fragments[0].id, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    messages += [
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": fragments[0].id, "content": '{"sky": "sunny"}'},
    ]
    answer = await client.chat.completions.create(model=FLASH, messages=messages, tools=tools)
    await client.close()
    assert answer.choices[0].message.content == "It is sunny in Paris, 18 degrees."


async def test_refusals_come_in_the_endpoints_list_shape_and_name_the_last_user_message(tmp_path: Path) -> None:
    write_cassette(tmp_path, "empty", [])
    replay = start_server("--port", "0", "--cassettes", str(tmp_path))
    client = openai.AsyncOpenAI(base_url=f"{replay.url}/empty/v1beta/openai/", api_key="placeholder", max_retries=0)
    try:
        messages = [{"role": "user", "content": "first"}, {"role": "user", "content": "What is SSE?"}]
        with pytest.raises(openai.NotFoundError) as missing:
            await client.chat.completions.create(model=FLASH, messages=messages)
        with pytest.raises(openai.BadRequestError) as bad:
            await client.chat.completions.create(model=FLASH, messages=[])
        listed = [m.id async for m in client.models.list()]
        await client.close()
    finally:
        replay.stop()
    (error,) = missing.value.body
    assert error["error"]["status"] == "NOT_FOUND" and '"What is SSE?"' in error["error"]["message"]
    assert "non-empty list" in bad.value.body[0]["error"]["message"]
    assert listed == [f"models/{m}" for m in MODELS]


def test_the_session_gives_the_compatible_endpoints_base_url_in_every_mode() -> None:
    replay = Session("replay", "08_protocols", "http://127.0.0.1:9/08_protocols/", "http://127.0.0.1:9", 1.0, "x")
    live = Session("live", "08_protocols", None, None, 1.0, "live")
    assert replay.openai_base_url == "http://127.0.0.1:9/08_protocols/v1beta/openai/"
    assert live.openai_base_url == "https://generativelanguage.googleapis.com/v1beta/openai/"
    assert live.rest_base_url == "https://generativelanguage.googleapis.com/v1beta/"


def test_holds_and_stats_count_openai_chunks_with_text_only() -> None:
    def delta(content: str | None) -> dict:
        return {"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]}

    assert carries_text(delta("Hello")) and not carries_text(delta(None)) and not carries_text(delta(""))
    assert not carries_text({"choices": [], "usage": {"total_tokens": 3}}) and not carries_text("[DONE]")
