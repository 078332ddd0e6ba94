"""Replay's improviser (issue 28): an unmatched request answered by a labelled offline stand-in, through the real SDKs.

Every API surface it answers (sync, async and streamed generateContent, countTokens, Interactions, the OpenAI-compatible
endpoint), its determinism, its label and header, its timing against the model's latency profile judged by the
server's own record, what it refuses, and the switch (CLI, ``helpers.setup``, environment, control). Exercise checks
in improvise mode: ``test_improvise_checks.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from google import genai
from google.genai import errors, types

import helpers
from helpers import control, workbook
from helpers.models import CATALOG, FLASH, FLASH_LITE, PROFILES
from helpers.replay.cassettes.cassette import Cassette, Chunk, Exchange
from helpers.replay.cassettes.matcher import Matcher
from helpers.replay.cassettes.store import CassetteStore
from helpers.replay.pipeline.api_request import ApiRequest, Mode
from helpers.replay.services.files_api import FileService
from helpers.replay.upstream.improviser import MAX_INTERACTIONS, Improviser, stand_in_text
from helpers.replay.upstream.synthetic import chunk_text, estimate_tokens
from helpers.replay.wire.defaults import STAND_IN_LABEL, UNMATCHED_VARIABLE
from helpers.replay.wire.framing import IMPROVISED_HEADER

from .conftest import PROMPT, Server, generate_exchange, start_server, write_cassette

MINE = "Write a haiku about my cat."
"""A prompt no cassette here recorded."""
EARLY_S = 0.001
"""The clock granularity allowed when a time is compared with a planned offset: nothing is sent earlier."""
LATE_S = 0.5
"""How much later than planned the server may send a chunk on this loaded, shared machine (its own record)."""
ROUNDING_S = 2e-4
"""Planned offsets are rounded to 0.1 ms; a gap between two of them, to twice that."""
SPREAD = 3.0
"""Log-normal draws are judged within this many sigmas of their median."""


def created(interaction_id: str, prompt: str, answer: list[str], *, stream: bool) -> Exchange:
    """A recorded ``interactions.create`` of ``prompt`` answered with the texts ``answer`` (one delta each when
    streamed), as the API sends it."""
    steps = [
        {"type": "thought", "signature": "c2ln"},
        {"type": "model_output", "content": [{"type": "text", "text": "".join(answer)}]},
    ]
    resource = {"id": interaction_id, "status": "completed", "model": FLASH, "steps": steps, "usage": {}}
    body = {"model": FLASH, "input": prompt, **({"stream": True} if stream else {})}
    response: dict = {"status": 200, "offset_s": 0.0, "body": resource}
    if stream:
        head = {"id": interaction_id, "model": FLASH}
        events = [
            {"event_type": "interaction.created", "interaction": {**head, "status": "in_progress"}},
            {"event_type": "step.start", "index": 0, "step": {"type": "thought"}},
            {"event_type": "step.stop", "index": 0},
            {"event_type": "step.start", "index": 1, "step": {"type": "model_output"}},
            *({"event_type": "step.delta", "index": 1, "delta": {"type": "text", "text": t}} for t in answer),
            {"event_type": "step.stop", "index": 1},
            {"event_type": "interaction.completed", "interaction": {**head, "status": "completed", "usage": {}}},
        ]
        chunks = [{"offset_s": 0.0, "data": e, "event": e["event_type"]} for e in events]
        response = {"status": 200, "chunks": [*chunks, {"offset_s": 0.0, "data": "[DONE]", "raw": True}]}
    provenance = {"source": "synthetic", "date": "2026-12-06", "latency_model": "none, for tests", "based_on": "tests"}
    return Exchange({"method": "POST", "path": "interactions", "query": {}, "body": body}, response, provenance)


RECORDED_CHAT = [
    ("v1_first", "Hi there.", ["Hello ", "back."], False),
    ("v1_streamed", "Go on.", ["More ", "words."], True),
]
"""Recorded interactions of cassette ``i``: id, prompt, answer, streamed."""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("improvise")
    write_cassette(folder, "t", [generate_exchange(PROMPT, "Recorded.", 0.0)])
    write_cassette(folder, "i", [created(i, p, a, stream=s) for i, p, a, s in RECORDED_CHAT])
    return folder


@pytest.fixture(scope="module")
def improvising(folder: Path) -> Iterator[Server]:
    server = start_server("--port", "0", "--cassettes", str(folder), "--unmatched", "improvise")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def strict(folder: Path) -> Iterator[Server]:
    server = start_server("--port", "0", "--cassettes", str(folder))
    yield server
    server.stop()


CLIENTS: dict[str, genai.Client] = {}


def client(server: Server) -> genai.Client:
    """The SDK pointed at cassette ``t`` of ``server``: one per server, kept (a client garbage-collected mid-call
    closes its connections)."""
    if server.url not in CLIENTS:
        CLIENTS[server.url] = genai.Client(
            api_key="test-key", http_options=types.HttpOptions(base_url=f"{server.url}/t/")
        )
    return CLIENTS[server.url]


def header(response: types.GenerateContentResponse) -> dict:
    assert response.sdk_http_response is not None and response.sdk_http_response.headers is not None
    return json.loads(response.sdk_http_response.headers[IMPROVISED_HEADER])


# Each surface, through the real SDKs -------------------------------------------------------------------------------


def test_generate_content_sync_async_and_streamed_get_one_labelled_answer_with_honest_usage(
    improvising: Server,
) -> None:
    sdk = client(improvising)
    whole = sdk.models.generate_content(model=FLASH, contents=MINE)
    text = whole.text
    assert text is not None and text.startswith(STAND_IN_LABEL + " ") and text == stand_in_text(FLASH, MINE)
    assert "WORKBOOK_MODE=record" in text and "GEMINI_API_KEY" in text
    assert whole.model_version == FLASH and whole.candidates[0].finish_reason == types.FinishReason.STOP
    usage = whole.usage_metadata
    assert usage.prompt_token_count == estimate_tokens(MINE) and usage.candidates_token_count == estimate_tokens(text)
    assert usage.thoughts_token_count > 0, "Gemini 3 always thinks"
    assert (
        usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count + usage.thoughts_token_count
    )
    provenance = header(whole)
    assert provenance["source"] == "improvised" and "cassette 't'" in provenance["why"]
    assert PROFILES[FLASH].source == provenance["based_on"]

    chunks = list(sdk.models.generate_content_stream(model=FLASH, contents=MINE))
    assert [c.text for c in chunks] == chunk_text(text), "streamed in the synthetic upstream's chunks"
    assert chunks[-1].usage_metadata == usage and chunks[-1].response_id == whole.response_id

    fresh = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=f"{improvising.url}/t/"))

    async def both() -> tuple[str | None, str]:
        answer = await fresh.aio.models.generate_content(model=FLASH, contents=MINE)
        stream = await fresh.aio.models.generate_content_stream(model=FLASH, contents=MINE)
        streamed = "".join([c.text or "" async for c in stream])
        await fresh.aio.aclose()
        return answer.text, streamed

    assert asyncio.run(both()) == (text, text)


def test_count_tokens_is_improvised_with_the_workbooks_count(improvising: Server) -> None:
    counted = client(improvising).models.count_tokens(model=FLASH, contents=MINE)
    assert counted.total_tokens == estimate_tokens(MINE)
    assert json.loads(counted.sdk_http_response.headers[IMPROVISED_HEADER])["source"] == "improvised"


def test_interactions_create_streamed_continued_and_read_back(improvising: Server) -> None:
    sdk = client(improvising)
    first = sdk.interactions.create(model=FLASH, input=MINE)
    assert first.status == "completed" and first.output_text == stand_in_text(FLASH, MINE)
    assert first.usage.total_input_tokens == estimate_tokens(MINE) and first.usage.total_thought_tokens > 0
    events = list(sdk.interactions.create(model=FLASH, input=MINE, stream=True))
    assert events[0].event_type == "interaction.created" and events[-1].event_type == "interaction.completed"
    deltas = "".join(e.delta.text for e in events if e.event_type == "step.delta" and e.delta.type == "text")
    assert deltas == first.output_text
    follow_up = sdk.interactions.create(model=FLASH, input="And a limerick?", previous_interaction_id=first.id)
    assert follow_up.output_text.startswith(STAND_IN_LABEL)
    read_so_far = estimate_tokens(MINE) + estimate_tokens(first.output_text) + estimate_tokens("And a limerick?")
    assert follow_up.usage.total_input_tokens == read_so_far, "the conversation is read again, as the API does"
    assert sdk.interactions.get(first.id).steps[0].type == "user_input"


@pytest.mark.parametrize(("interaction_id", "prompt", "answer", "streamed"), RECORDED_CHAT)
def test_continuing_a_recorded_interaction_reads_its_recorded_conversation(
    improvising: Server, interaction_id: str, prompt: str, answer: list[str], streamed: bool
) -> None:
    sdk = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=f"{improvising.url}/i/"))
    asked = "And then?"

    async def go_on() -> types.Interaction:  # through client.aio, the async path
        reply = await sdk.aio.interactions.create(model=FLASH, input=asked, previous_interaction_id=interaction_id)
        await sdk.aio.aclose()
        return reply

    reply = asyncio.run(go_on())
    assert reply.output_text == stand_in_text(FLASH, asked) and reply.previous_interaction_id == interaction_id
    read = estimate_tokens(prompt) + estimate_tokens("".join(answer)) + estimate_tokens(asked)
    assert reply.usage.total_input_tokens == read, "the recorded conversation is read again, as the API does"
    with pytest.raises(Exception) as caught:  # the Interactions client raises its own errors, not errors.APIError
        sdk.interactions.create(model=FLASH, input=asked, previous_interaction_id="v1_nobody_made_this")
    assert caught.value.status_code == 404 and "Interaction 'v1_nobody_made_this' was not found" in str(caught.value)


def test_the_openai_compatible_endpoint_streamed_and_not(improvising: Server) -> None:
    sdk = openai.OpenAI(base_url=f"{improvising.url}/t/v1beta/openai/", api_key="test-key", max_retries=0)
    messages = [{"role": "user", "content": MINE}]
    whole = sdk.chat.completions.create(model=FLASH, messages=messages)
    assert whole.choices[0].message.content == stand_in_text(FLASH, MINE)
    assert whole.choices[0].finish_reason == "stop" and whole.usage.prompt_tokens == estimate_tokens(MINE)
    stream = sdk.chat.completions.create(
        model=FLASH, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == stand_in_text(FLASH, MINE)
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens > 0
    raw = sdk.chat.completions.with_raw_response.create(model=FLASH, messages=messages)
    assert json.loads(raw.headers[IMPROVISED_HEADER])["source"] == "improvised"
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.chat.completions.create(model="gemini-0.0-nonexistent", messages=messages)
    assert caught.value.body[0]["error"]["message"].startswith("models/gemini-0.0-nonexistent is not found")
    sdk.close()


# Determinism, timing and thinking, by the server's record ----------------------------------------------------------


def stream_record(server: Server, config: types.GenerateContentConfig | None = None) -> tuple[list, list[float]]:
    """One improvised stream: its chunks, and when the server sent each (seconds after the request arrived)."""
    control.reset_stats(cassette="t", server_url=server.url)
    chunks = list(client(server).models.generate_content_stream(model=FLASH, contents=MINE, config=config))
    (timing,) = control.stats(cassette="t", server_url=server.url).requests
    return chunks, [t - timing.start_s for t in timing.chunks_s]


def plan(folder: Path, body: dict) -> list[Chunk]:
    """The chunks the improviser plans for a ``streamGenerateContent`` of ``body`` on cassette ``t`` (in-process)."""
    store = CassetteStore(folder)
    improviser = Improviser(FileService(Mode.REPLAY, 1.0, store, Matcher(), None))
    path = f"v1beta/models/{FLASH}:streamGenerateContent"
    api = ApiRequest("t", "POST", path, "v1beta", {"alt": "sse"}, {}, b"", body, 0.0)
    exchange = improviser.improvise(store.get("t"), api)
    assert isinstance(exchange, Exchange) and "chunks" in exchange.response
    return exchange.response["chunks"]


SDK_BODY = {"contents": [{"parts": [{"text": MINE}], "role": "user"}]}
"""What ``generate_content_stream(model=..., contents=MINE)`` sends."""


def test_the_same_request_twice_gets_the_same_text_chunks_usage_and_offsets(improvising: Server, folder: Path) -> None:
    planned = plan(folder, SDK_BODY)
    assert plan(folder, SDK_BODY) == planned, "planned alike, offsets included"
    first, sent_first = stream_record(improvising)
    second, sent_second = stream_record(improvising)
    assert [c.model_dump(exclude={"sdk_http_response"}) for c in first] == [
        c.model_dump(exclude={"sdk_http_response"}) for c in second
    ]
    assert [c.text for c in first] == [c["data"]["candidates"][0]["content"]["parts"][0]["text"] for c in planned]
    assert first[-1].usage_metadata.thoughts_token_count == planned[-1]["data"]["usageMetadata"]["thoughtsTokenCount"]
    # The server's record: every chunk of both went out at its planned offset (never earlier; later only by the
    # machine's slack).
    for sent in (sent_first, sent_second):
        for got, chunk in zip(sent, planned, strict=True):
            assert chunk["offset_s"] - EARLY_S <= got <= chunk["offset_s"] + LATE_S, (sent, planned)


def test_timing_and_thinking_follow_the_models_profile_by_the_servers_record(improvising: Server, folder: Path) -> None:
    profile = PROFILES[FLASH]
    chunks, sent = stream_record(improvising)
    thoughts = chunks[-1].usage_metadata.thoughts_token_count
    median = profile.thoughts_tokens[CATALOG[FLASH].default_thinking]
    assert median * math.exp(-SPREAD * 0.3) <= thoughts <= median * math.exp(SPREAD * 0.3)
    before_thinking = sent[0] - thoughts / profile.tokens_per_s
    low, high = (profile.ttft_s * math.exp(s * SPREAD * profile.ttft_sigma) for s in (-1, 1))
    assert low - EARLY_S <= before_thinking <= high + LATE_S, (sent[0], thoughts)
    # The chunk gaps, as planned: each chunk's tokens at the profile's speed with a 0.8-1.2 jitter.
    offsets = [c["offset_s"] for c in plan(folder, SDK_BODY)]
    for (a, b), chunk in zip(itertools.pairwise(offsets), chunks[1:], strict=True):
        at_speed = estimate_tokens(chunk.text) / profile.tokens_per_s
        assert 0.8 * at_speed - ROUNDING_S <= b - a <= 1.2 * at_speed + ROUNDING_S

    high_chunks, high_sent = stream_record(
        improvising, types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_level="HIGH"))
    )
    high_thoughts = high_chunks[-1].usage_metadata.thoughts_token_count
    high_median = profile.thoughts_tokens["HIGH"]
    assert high_median * math.exp(-SPREAD * 0.3) <= high_thoughts <= high_median * math.exp(SPREAD * 0.3)
    assert high_sent[0] - high_thoughts / profile.tokens_per_s <= high + LATE_S, "the thinking is what delays it"


def test_a_level_the_model_does_not_take_is_the_apis_400(improvising: Server) -> None:
    config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_level="MINIMAL"))
    with pytest.raises(errors.ClientError) as caught:
        client(improvising).models.generate_content(model=FLASH, contents=MINE, config=config)
    assert caught.value.code == 400 and "MINIMAL is not supported by" in caught.value.message


def test_other_models_get_their_own_profile(improvising: Server) -> None:
    lite = client(improvising).models.generate_content(model=FLASH_LITE, contents=MINE)
    assert lite.model_version == FLASH_LITE and lite.text == stand_in_text(FLASH_LITE, MINE)
    assert header(lite)["based_on"] == PROFILES[FLASH_LITE].source


# What is refused, and what is never written ------------------------------------------------------------------------


def test_an_unknown_model_is_the_apis_404(improvising: Server) -> None:
    with pytest.raises(errors.ClientError) as caught:
        client(improvising).models.generate_content(model="gemini-0.0-nonexistent", contents=MINE)
    assert caught.value.code == 404 and caught.value.status == "NOT_FOUND"
    assert caught.value.message.startswith("models/gemini-0.0-nonexistent is not found for API version")


def test_a_file_the_server_never_issued_is_refused_naming_it(improvising: Server) -> None:
    part = types.Part.from_uri(
        file_uri="https://generativelanguage.googleapis.com/v1beta/files/abc123", mime_type="image/png"
    )
    with pytest.raises(errors.ClientError) as caught:
        client(improvising).models.generate_content(model=FLASH, contents=[part, MINE])
    message = caught.value.message
    assert caught.value.code == 404 and message.startswith("No recording in cassette 't'")
    assert "It was not improvised: it names files/abc123, which this server does not hold" in message


def test_unknown_files_and_batches_are_refused_as_in_error_mode(improvising: Server, strict: Server) -> None:
    answers = []
    for server in (improvising, strict):
        sdk = client(server)
        with pytest.raises(errors.ClientError) as file_error:
            sdk.files.get(name="files/nosuchfile")
        with pytest.raises(errors.ClientError) as batch_error:
            sdk.batches.get(name="batches/nosuchbatch")
        answers.append([(e.value.code, e.value.status, e.value.message) for e in (file_error, batch_error)])
    assert answers[0] == answers[1]
    assert [code for code, _, _ in answers[0]] == [403, 404]


def test_the_improviser_keeps_a_bounded_number_of_interactions(folder: Path) -> None:
    store = CassetteStore(folder)
    improviser = Improviser(FileService(Mode.REPLAY, 1.0, store, Matcher(), None))
    made = []
    for n in range(MAX_INTERACTIONS + 2):
        body = {"model": FLASH, "input": f"Prompt number {n}."}
        exchange = improviser.improvise(
            store.get("t"), ApiRequest("t", "POST", "v1beta/interactions", "v1beta", {}, {}, b"", body, 0.0)
        )
        assert isinstance(exchange, Exchange) and "body" in exchange.response
        made.append(exchange.response["body"]["id"])
    kept = improviser.interaction_ids("t")
    assert len(kept) == MAX_INTERACTIONS and set(kept) == set(made[2:]), "the oldest are forgotten first"


def test_improvised_answers_are_never_written_into_the_cassette(improvising: Server, folder: Path) -> None:
    before = (folder / "t.json").read_bytes()
    sdk = client(improvising)
    sdk.models.generate_content(model=FLASH, contents="Yet another prompt of mine.")
    assert sdk.models.generate_content(model=FLASH, contents=PROMPT).text == "Recorded.", "recordings still win"
    assert (folder / "t.json").read_bytes() == before
    assert len(Cassette.load(folder / "t.json").exchanges) == 1


# The switch --------------------------------------------------------------------------------------------------------


def test_strict_mode_keeps_todays_404_and_a_control_call_switches_one_cassette(strict: Server) -> None:
    sdk = client(strict)
    with pytest.raises(errors.ClientError) as caught:
        sdk.models.generate_content(model=FLASH, contents=MINE)
    message = caught.value.message
    assert caught.value.code == 404 and message.startswith(f"No recording in cassette 't' for POST models/{FLASH}")
    assert "Nearest recording (exchange 0) differs at" in message and "improvised" not in message
    control.set_unmatched("improvise", cassette="t", server_url=strict.url)
    try:
        assert sdk.models.generate_content(model=FLASH, contents=MINE).text.startswith(STAND_IN_LABEL)
    finally:
        control.set_unmatched(None, cassette="t", server_url=strict.url)
    with pytest.raises(errors.ClientError):
        sdk.models.generate_content(model=FLASH, contents=MINE)
    with pytest.raises(helpers.WorkbookError, match=r'"unmatched" must be "improvise" or "error"'):
        control.set_unmatched("sometimes", cassette="t", server_url=strict.url)


def test_the_cli_flag_takes_two_values_and_says_so(folder: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "helpers.replay", "serve", "--cassettes", str(folder), "--unmatched", "guess"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "argument --unmatched: invalid choice: 'guess' (choose from 'improvise', 'error')" in result.stderr


def test_unmatched_policy_defaults_to_improvise_but_not_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UNMATCHED_VARIABLE)
    monkeypatch.delenv("CI", raising=False)
    assert workbook.unmatched_policy() == "improvise"
    monkeypatch.setenv("CI", "true")
    assert workbook.unmatched_policy() == "error"
    assert workbook.unmatched_policy("Improvise") == "improvise", "an explicit choice wins"
    monkeypatch.setenv(UNMATCHED_VARIABLE, "improvise")
    assert workbook.unmatched_policy() == "improvise"
    monkeypatch.setenv(UNMATCHED_VARIABLE, "maybe")
    with pytest.raises(helpers.WorkbookError, match=r"WORKBOOK_UNMATCHED='maybe' is not a choice"):
        workbook.unmatched_policy()
    with pytest.raises(helpers.WorkbookError, match=r"unmatched='yes' is not a choice"):
        workbook.unmatched_policy("yes")


def test_setup_says_once_that_it_improvises_and_how_to_record(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_cassette(env, "07_demo", [generate_exchange(PROMPT, "Recorded.", 0.0)])
    helpers.setup("07_demo")
    assert workbook.IMPROVISING not in capsys.readouterr().out, "tests run strict"
    helpers.setup("07_demo", unmatched="improvise")
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:] == [workbook.IMPROVISING] and "WORKBOOK_MODE=record" in lines[1] and STAND_IN_LABEL in lines[1]
    assert genai.Client().models.generate_content(model=FLASH, contents=MINE).text.startswith(STAND_IN_LABEL)
