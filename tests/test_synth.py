"""The synthetic upstream's answers, one concern per section (others may add theirs in sections of their own)."""

from __future__ import annotations

import base64
import io
import json
import random
import re
from pathlib import Path

import pytest
from google import genai
from google.genai import errors, types
from PIL import Image

from helpers import models
from helpers.media import MEDIA_RESOLUTION_TOKENS, media_tokens
from helpers.models import FLASH, FLASH_LITE
from helpers.replay.cassettes.cassette import Cassette
from helpers.replay.pipeline.socket_server import running
from helpers.replay.upstream.synthetic import (
    Script,
    ScriptEntry,
    SyntheticUpstream,
    _last_user_text,
    estimate_tokens,
    invalid_request,
    prompt_token_details,
    synthesize,
)

from .conftest import start_server

# Image tokens (04_multimodal) ---------------------------------------------------------------------------------------

QUESTION = "What is in this picture?"


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (255, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def inline(data: bytes, mime_type: str) -> dict:
    return {"inlineData": {"data": base64.b64encode(data).decode(), "mimeType": mime_type}}


def test_media_tokens_follow_the_gemini_3_levels() -> None:
    assert media_tokens("image") == media_tokens("image", "MEDIA_RESOLUTION_UNSPECIFIED") == 1120
    assert [media_tokens("image", level) for level in MEDIA_RESOLUTION_TOKENS] == [280, 560, 1120, 2240]
    assert media_tokens("pdf", pages=3) == 3 * 560 and media_tokens("pdf", "MEDIA_RESOLUTION_LOW", pages=2) == 560
    for bad in (("image", "MEDIA_RESOLUTION_TINY"), ("pdf", "MEDIA_RESOLUTION_ULTRA_HIGH"), ("audio", None)):
        with pytest.raises(ValueError, match=r"kind must be|not a media_resolution level"):
            media_tokens(*bad)


def test_prompt_token_details_count_inline_images_and_pdf_pages_at_their_resolution() -> None:
    two_pages = b"%PDF-1.4 1 0 obj << /Type /Pages >> 2 0 obj << /Type /Page >> 3 0 obj << /Type/Page >>"
    low = {"mediaResolution": {"level": "MEDIA_RESOLUTION_LOW"}}
    body = {
        "contents": [
            {
                "role": "user",
                "parts": [inline(png(64, 64), "image/png"), {**inline(png(800, 600), "image/png"), **low}],
            },
            {"role": "user", "parts": [{"text": QUESTION}, inline(two_pages, "application/pdf")]},
            {"role": "user", "parts": [{"fileData": {"file_uri": "https://x/files/a", "mime_type": "video/mp4"}}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
    }
    text = estimate_tokens(QUESTION) + estimate_tokens("Be brief.")
    assert prompt_token_details(body) == {"TEXT": text, "IMAGE": 1120 + 280 + 2 * 560}, "size in pixels is irrelevant"
    body["generationConfig"] = {"mediaResolution": "MEDIA_RESOLUTION_MEDIUM"}
    assert prompt_token_details(body) == {"TEXT": text, "IMAGE": 560 + 280 + 2 * 560}, "the part's own level wins"
    assert prompt_token_details({"contents": [{"parts": [{"text": QUESTION}]}]}) == {"TEXT": estimate_tokens(QUESTION)}


async def test_usage_and_count_tokens_report_the_image_through_the_sdk() -> None:
    script = Script([ScriptEntry(QUESTION, ["A red square."])])
    async with running(SyntheticUpstream(script).app()) as url:
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=f"{url}/"))
        contents = [types.Part.from_bytes(data=png(100, 100), mime_type="image/png"), QUESTION]
        response = await client.aio.models.generate_content(model=FLASH, contents=contents)
        counted = await client.aio.models.count_tokens(model=FLASH, contents=contents)
        await client.aio.aclose()
    usage = response.usage_metadata
    by_modality = {d.modality: d.token_count for d in usage.prompt_tokens_details}
    assert by_modality == {types.MediaModality.TEXT: estimate_tokens(QUESTION), types.MediaModality.IMAGE: 1120}
    assert usage.prompt_token_count == counted.total_tokens == estimate_tokens(QUESTION) + 1120
    assert usage.thoughts_token_count > 0, "Gemini 3 always thinks"
    total = usage.prompt_token_count + usage.candidates_token_count + usage.thoughts_token_count
    assert usage.total_token_count == total


# Function calling (03_streaming) ------------------------------------------------------------------------------------

WEATHER = "What's the weather in Paris right now?"
CALL = {"name": "get_weather", "args": {"city": "Paris"}}
ANSWER = "It is 18 °C and sunny in Paris."


def get_weather(city: str) -> dict:
    """Current weather for a city."""
    return {"city": city, "temperature_c": 18, "sky": "sunny"}


def test_a_script_entry_may_carry_a_function_call(tmp_path) -> None:
    path = tmp_path / "script.json"
    path.write_text(json.dumps({"responses": [{"prompt": "weather", "function_call": CALL, "text": ANSWER}]}))
    (entry,) = Script.load(path).entries
    assert (entry.function_call, entry.variants) == (CALL, [ANSWER])
    path.write_text(json.dumps({"responses": [{"prompt": "weather", "function_call": {"name": "f"}, "text": "x"}]}))
    with pytest.raises(ValueError, match=r"script\.json is unreadable or malformed .*function_call"):
        Script.load(path)


async def test_a_stream_with_tools_gets_the_call_then_the_answer_to_its_result() -> None:
    script = Script([ScriptEntry("weather in Paris", [ANSWER], function_call=CALL)])
    config = types.GenerateContentConfig(
        tools=[get_weather], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)
    )
    async with running(SyntheticUpstream(script).app()) as url:
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=f"{url}/"))
        stream = await client.aio.models.generate_content_stream(model=FLASH, contents=WEATHER, config=config)
        (chunk,) = [c async for c in stream]
        (call,) = chunk.function_calls
        assert (call.name, call.args) == (CALL["name"], CALL["args"])
        assert chunk.candidates[0].finish_reason == types.FinishReason.STOP
        assert chunk.usage_metadata.candidates_token_count == estimate_tokens(json.dumps(CALL))
        assert chunk.candidates[0].content.parts[0].thought_signature, "Gemini 3 signs its function calls"

        result = types.Part.from_function_response(name=call.name, response=get_weather(**call.args))
        contents = [
            types.Content(role="user", parts=[types.Part(text=WEATHER)]),
            chunk.candidates[0].content,
            types.Content(role="user", parts=[result]),
        ]
        stream = await client.aio.models.generate_content_stream(model=FLASH, contents=contents, config=config)
        assert "".join([c.text async for c in stream]) == ANSWER

        unsigned = types.Content(role="model", parts=[types.Part(function_call=call)])
        with pytest.raises(errors.ClientError, match="missing a thought_signature") as refused:
            await client.aio.models.generate_content(model=FLASH, contents=[contents[0], unsigned, contents[2]])
        assert refused.value.code == 400 and refused.value.status == "INVALID_ARGUMENT"

        plain = await client.aio.models.generate_content(model=FLASH, contents=WEATHER)
        assert plain.text == ANSWER and plain.function_calls is None, "without tools, the text answers"
        whole = await client.aio.models.generate_content(model=FLASH, contents=WEATHER, config=config)
        assert whole.function_calls[0].name == CALL["name"], "generateContent gets the call too"
        await client.aio.aclose()


def test_only_turns_of_function_results_are_skipped_when_matching() -> None:
    result = {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {}}}]}
    body = {"contents": [{"role": "user", "parts": [{"text": WEATHER}]}, {"role": "model", "parts": []}, result]}
    assert _last_user_text(body) == WEATHER
    body["contents"].append({"role": "user", "parts": [{"text": "And tomorrow?"}]})
    assert _last_user_text(body) == "And tomorrow?"


def test_a_turn_with_a_blank_or_missing_role_is_the_users() -> None:
    for turn in ({"role": "", "parts": [{"text": WEATHER}]}, {"parts": [{"text": WEATHER}]}):
        assert _last_user_text({"contents": [turn]}) == WEATHER
    assert _last_user_text({"contents": [{"role": "model", "parts": [{"text": WEATHER}]}]}) == ""


# Thinking and Gemini 3's request rules (01_sync, 03_streaming) -------------------------------------------------------


def thinking(level: str | None = None, budget: int | None = None) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(thinking_level=level, thinking_budget=budget), seed=0
    )


async def test_thinking_tokens_grow_with_the_level_delay_the_first_chunk_and_are_billed() -> None:
    script = Script([ScriptEntry(QUESTION, ["A red square, drawn on white, in the middle of the picture."])])
    async with running(SyntheticUpstream(script).app()) as url:
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=f"{url}/"))
        usages = {}
        for level in ("LOW", "HIGH"):
            response = await client.aio.models.generate_content(model=FLASH, contents=QUESTION, config=thinking(level))
            usages[level] = response.usage_metadata
        again = await client.aio.models.generate_content(model=FLASH, contents=QUESTION, config=thinking("HIGH"))
        again = again.usage_metadata
        default = (await client.aio.models.generate_content(model=FLASH, contents=QUESTION)).usage_metadata
        capped = await client.aio.models.generate_content(model=FLASH, contents=QUESTION, config=thinking(budget=1))
        await client.aio.aclose()
    assert usages["LOW"].thoughts_token_count < usages["HIGH"].thoughts_token_count
    assert again.thoughts_token_count == usages["HIGH"].thoughts_token_count, "a seed pins the thinking too"
    assert usages["LOW"].candidates_token_count == usages["HIGH"].candidates_token_count, "same answer"
    assert default.thoughts_token_count > 0
    least = min(models.CATALOG[FLASH].profile.thoughts_tokens.values())
    assert capped.usage_metadata.thoughts_token_count <= least, "a budget caps it, but thinking never turns off"
    for usage in usages.values():
        assert usage.total_token_count == (
            usage.prompt_token_count + usage.candidates_token_count + usage.thoughts_token_count
        )
    profile = models.PROFILES[FLASH]
    unthinking = synthesize(FLASH, QUESTION, {}, 7, profile, random.Random(3))
    thinking_first = synthesize(FLASH, QUESTION, {}, 7, profile, random.Random(3), 400)
    assert thinking_first[0][0] == pytest.approx(unthinking[0][0] + 400 / profile.tokens_per_s, abs=1e-3)
    assert thinking_first[-1][1]["usageMetadata"]["thoughtsTokenCount"] == 400
    assert "thoughtsTokenCount" not in unthinking[-1][1]["usageMetadata"]


@pytest.mark.parametrize(
    ("model", "config", "says"),
    [
        (FLASH, {"thinking_config": {"thinking_level": "MINIMAL"}}, "MINIMAL is not supported by gemini-3.8-flash"),
        (FLASH, {"thinking_config": {"thinking_level": "LOW", "thinking_budget": 64}}, "cannot use both"),
        (FLASH_LITE, {"presence_penalty": 0.5}, "presencePenalty is not supported"),
        (FLASH, {"media_resolution": "MEDIA_RESOLUTION_HIGH", "seed": 1}, None),
        (FLASH_LITE, {"thinking_config": {"thinking_level": "MINIMAL"}, "temperature": 0.2}, None),
    ],
)
async def test_gemini_3_request_rules_are_the_apis_400s(model: str, config: dict, says: str | None) -> None:
    script = Script([ScriptEntry(QUESTION, ["A red square."])])
    async with running(SyntheticUpstream(script).app()) as url:
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=f"{url}/"))
        try:
            call = client.aio.models.generate_content(model=model, contents=QUESTION, config=config)
            if says is None:
                assert (await call).text == "A red square."
            else:
                with pytest.raises(errors.ClientError, match=says) as refused:
                    await call
                assert refused.value.code == 400 and refused.value.status == "INVALID_ARGUMENT"
        finally:
            await client.aio.aclose()


def test_a_prefilled_model_turn_is_refused_by_flash_lite_only() -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": QUESTION}]}, {"role": "model", "parts": [{"text": "A"}]}]}
    assert "last turn has the model role" in invalid_request(FLASH_LITE, body)
    assert invalid_request(FLASH, body) is None


# Routes the stand-in does not model (authoring) ---------------------------------------------------------------------


async def test_a_route_the_stand_in_does_not_model_is_refused_and_never_recorded(tmp_path: Path) -> None:
    async with running(SyntheticUpstream(Script([])).app()) as upstream:
        recorder = start_server("--port", "0", "--cassettes", str(tmp_path), "--record", "--upstream", upstream)
        try:
            client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=f"{recorder.url}/u/"))
            with pytest.raises(errors.ServerError) as raised:
                await client.aio.caches.list()
            await client.aio.aclose()
        finally:
            recorder.stop()
    assert raised.value.code == 501 and raised.value.status == "UNIMPLEMENTED"
    assert re.search(
        r"does not implement GET /v1\w*/cachedContents, so nothing was recorded", str(raised.value.message)
    )
    assert not (tmp_path / "u.json").exists() or Cassette.load(tmp_path / "u.json").exchanges == []
