"""The replay server's own record of each request, which exercise checks judge by: what it received (the prompt, the
system instruction), what it sent back (each chunk's text and usage) and when, how many requests were in flight.

Read through ``helpers.control.stats`` from a real server with the real SDK; the record is bounded (``SECURITY.md``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google import genai
from google.genai import types

import helpers
from helpers import control
from helpers.models import FLASH
from helpers.replay.app.replay_server import CassetteStore, ReplayServer
from helpers.replay.cassettes.cassette import Exchange
from helpers.replay.pipeline import control_panel as panel
from helpers.replay.pipeline.socket_server import running

from .conftest import generate_exchange, stream_exchange, write_cassette

SYSTEM = "Answer in one sentence."


def with_system(exchange: Exchange, system: str) -> Exchange:
    """The exchange as sent with a system instruction (in a config, so with the SDK's ``"generationConfig": {}``)."""
    instruction = {"parts": [{"text": system}], "role": "user"}
    body = {**exchange.request["body"], "systemInstruction": instruction, "generationConfig": {}}
    return Exchange({**exchange.request, "body": body}, exchange.response, exchange.provenance)


EXCHANGES = [
    with_system(generate_exchange("hi", "hello", 0.05), SYSTEM),
    stream_exchange("s", [(0.05, "one "), (0.10, "two "), (0.15, "three")]),
    *(generate_exchange(f"p{i}", f"answer {i}", 0.05) for i in range(3)),
]


@pytest.fixture
async def url(tmp_path: Path) -> AsyncIterator[str]:
    write_cassette(tmp_path, "rec", EXCHANGES)
    async with running(ReplayServer(CassetteStore(tmp_path)).app()) as address:
        yield address


def client(url: str) -> genai.Client:
    return genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=f"{url}/rec/"))


async def stats(url: str) -> control.Stats:
    return await asyncio.to_thread(control.stats, cassette="rec", server_url=url)


async def test_a_reply_is_recorded_with_its_prompt_system_instruction_text_and_usage(url: str) -> None:
    config = types.GenerateContentConfig(system_instruction=SYSTEM)
    response = await client(url).aio.models.generate_content(model=FLASH, contents="hi", config=config)
    (seen,) = (await stats(url)).requests
    assert (seen.prompt, seen.system, seen.streamed, seen.in_flight, seen.chunks_s) == ("hi", SYSTEM, False, 1, ())
    (reply,) = seen.sent
    assert reply.text == response.text == "hello" == seen.text
    assert seen.usage == reply.usage == {"promptTokenCount": 6, "candidatesTokenCount": 10, "totalTokenCount": 16}
    assert seen.usage["totalTokenCount"] == response.usage_metadata.total_token_count
    assert seen.first_byte_s <= reply.at_s <= seen.end_s, "a reply is noted once written"


async def test_each_chunk_is_recorded_with_its_text_usage_and_when_it_went_out(url: str) -> None:
    chunks = [c async for c in await client(url).aio.models.generate_content_stream(model=FLASH, contents="s")]
    (seen,) = (await stats(url)).requests
    assert seen.streamed and seen.prompt == "s" and seen.system is None
    assert [s.text for s in seen.sent] == [c.text for c in chunks] == ["one ", "two ", "three"]
    assert tuple(s.at_s for s in seen.sent) == seen.chunks_s
    assert list(seen.chunks_s) == sorted(seen.chunks_s) and seen.first_text_s == seen.chunks_s[0]
    # Only the last chunk carries the whole usage; every chunk carries the prompt's count, as the API sends them.
    assert [s.usage["totalTokenCount"] for s in seen.sent] == [6, 6, 16]
    assert seen.usage == {"promptTokenCount": 6, "candidatesTokenCount": 10, "totalTokenCount": 16}
    # The recorded offsets (0.05, 0.10, 0.15 s) are lower bounds of the server's own times, whatever the load.
    offsets = [t - seen.start_s for t in seen.chunks_s]
    assert all(o >= recorded - 0.001 for o, recorded in zip(offsets, [0.05, 0.10, 0.15], strict=True))


async def test_each_request_notes_how_many_were_in_flight_when_it_arrived(url: str) -> None:
    await asyncio.to_thread(control.add_latency, 0.5, cassette="rec", server_url=url)
    c = client(url)
    answers = await asyncio.gather(*(c.aio.models.generate_content(model=FLASH, contents=f"p{i}") for i in range(3)))
    assert [a.text for a in answers] == ["answer 0", "answer 1", "answer 2"]
    seen = (await stats(url)).requests
    assert sorted(r.in_flight for r in seen) == [1, 2, 3]
    assert {r.prompt: r.text for r in seen} == {"p0": "answer 0", "p1": "answer 1", "p2": "answer 2"}


async def test_a_refused_request_keeps_its_prompt_and_sends_nothing(url: str) -> None:
    with pytest.raises(genai.errors.ClientError):
        await client(url).aio.models.generate_content(model=FLASH, contents="never recorded")
    (seen,) = (await stats(url)).requests
    assert (seen.status, seen.prompt, seen.sent, seen.usage, seen.text) == (404, "never recorded", (), None, "")


async def test_the_record_is_bounded(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(panel, "DETAIL_HISTORY", 2)
    monkeypatch.setattr(panel, "PROMPT_CHARS", 1)
    monkeypatch.setattr(panel, "TEXT_CHARS", 5)
    c = client(url)
    for i in range(3):
        await c.aio.models.generate_content(model=FLASH, contents=f"p{i}")
    [c async for c in await c.aio.models.generate_content_stream(model=FLASH, contents="s")]
    seen = (await stats(url)).requests
    assert [r.prompt for r in seen] == [None, None, "p", "s"], "older requests keep their times only"
    assert [r.text for r in seen] == ["", "", "answe", "one t"]
    assert seen[0].usage is None and len(seen[0].sent) == 1 and seen[0].sent[0].at_s > 0
    assert [s.text for s in seen[-1].sent] == ["one ", "t", ""], "the text budget is per request, over its chunks"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"contents": [{"parts": [{"text": "hi"}]}]}, ("hi", None)),
        (  # a chat resends the history: the prompt is the last user turn
            {
                "contents": [
                    {"role": "user", "parts": [{"text": "first"}]},
                    {"role": "model", "parts": [{"text": "answer"}]},
                    {"role": "user", "parts": [{"text": "second, "}, {"inlineData": {}}, {"text": "with a picture"}]},
                ],
                "systemInstruction": {"parts": [{"text": "Be brief."}]},
            },
            ("second, with a picture", "Be brief."),
        ),
        (
            {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]},
            ("hi", "Be brief."),
        ),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}, ("hi", None)),
        ({"model": FLASH, "input": "hi", "system_instruction": "Be brief."}, ("hi", "Be brief.")),
        ({"model": FLASH, "input": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}, ("hi", None)),
        (None, (None, None)),
    ],
)
def test_the_prompt_is_read_from_every_request_shape(body: object, expected: tuple[str | None, str | None]) -> None:
    assert panel.request_texts(body) == expected


@pytest.mark.parametrize(
    ("chunk", "text", "usage"),
    [
        (
            {
                "candidates": [{"content": {"parts": [{"text": "plan", "thought": True}, {"text": "answer"}]}}],
                "usageMetadata": {"totalTokenCount": 9},
            },
            "answer",
            {"totalTokenCount": 9},
        ),
        ({"choices": [{"delta": {"content": "hi"}}], "usage": None}, "hi", None),
        ({"choices": [], "usage": {"total_tokens": 9}}, "", {"total_tokens": 9}),
        ({"choices": [{"message": {"content": "hi"}}], "usage": {"total_tokens": 9}}, "hi", {"total_tokens": 9}),
        ({"event_type": "step.delta", "delta": {"type": "text", "text": "hi"}}, "hi", None),
        (
            {"event_type": "interaction.completed", "interaction": {"usage": {"total_tokens": 9}}},
            "",
            {"total_tokens": 9},
        ),
        (
            {"steps": [{"type": "model_output", "content": [{"type": "text", "text": "hi"}]}], "usage": {"x": 1}},
            "hi",
            {"x": 1},
        ),
        ("[DONE]", "", None),
    ],
)
def test_text_and_usage_are_read_from_every_chunk_shape(chunk: object, text: str, usage: object) -> None:
    assert (panel.chunk_text(chunk), panel.chunk_usage(chunk), panel.carries_text(chunk)) == (text, usage, bool(text))


async def test_an_injected_429_carries_the_retry_delay_given(url: str) -> None:
    await asyncio.to_thread(control.fail_next, 3, 429, retry_delays_s=[2.5, 0.05], cassette="rec", server_url=url)
    delays = []
    for _ in range(3):
        with pytest.raises(genai.errors.ClientError) as caught:
            await client(url).aio.models.generate_content(model=FLASH, contents="hi")
        details = caught.value.details["error"].get("details", [])
        delays.append([d["retryDelay"] for d in details if d["@type"].endswith("RetryInfo")])
    assert delays == [["2.500s"], ["0.050s"], []], "each 429 in turn; one past the list has none"
    for bad in ({"n": 1, "status": 503, "retry_delays_s": [1]}, {"n": 1, "status": 429, "retry_delays_s": [1, 2]}):
        with pytest.raises(helpers.WorkbookError, match="retry_delays_s"):
            await asyncio.to_thread(control.fail_next, cassette="rec", server_url=url, **bad)
