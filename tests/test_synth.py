"""The synthetic upstream's answers, one concern per section (others may add theirs in sections of their own)."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import pytest
from google import genai
from google.genai import errors, types
from PIL import Image

from helpers.cassette import Cassette
from helpers.media import IMAGE_TILE_TOKENS, image_tokens
from helpers.models import FLASH
from helpers.replay.runner import running
from helpers.replay.synth import (
    Script,
    ScriptEntry,
    SyntheticUpstream,
    _last_user_text,
    estimate_tokens,
    prompt_token_details,
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


def test_image_tokens_follow_the_documented_tiles() -> None:
    assert image_tokens(384, 384) == image_tokens(1, 1) == IMAGE_TILE_TOKENS == 258
    assert image_tokens(385, 100) == 258, "one 768x768 tile"
    assert image_tokens(1000, 800) == 4 * 258 and image_tokens(1536, 768) == 2 * 258
    with pytest.raises(ValueError, match="positive sides"):
        image_tokens(0, 10)


def test_prompt_token_details_count_inline_images_and_nothing_else() -> None:
    body = {
        "contents": [
            {"role": "user", "parts": [inline(png(64, 64), "image/png"), inline(png(800, 600), "image/png")]},
            {"role": "user", "parts": [{"text": QUESTION}, inline(b"%PDF-1.4", "application/pdf")]},
            {"role": "user", "parts": [{"fileData": {"file_uri": "https://x/files/a", "mime_type": "video/mp4"}}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
    }
    text = estimate_tokens(QUESTION) + estimate_tokens("Be brief.")
    assert prompt_token_details(body) == {"TEXT": text, "IMAGE": 258 + 2 * 258}
    assert prompt_token_details({"contents": [{"parts": [{"text": QUESTION}]}]}) == {"TEXT": estimate_tokens(QUESTION)}
    unreadable = {"contents": [{"parts": [inline(b"not a png", "image/png")]}]}
    assert prompt_token_details(unreadable) == {"TEXT": 0, "IMAGE": 258}, "one tile when the size can't be read"


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
    assert by_modality == {types.MediaModality.TEXT: estimate_tokens(QUESTION), types.MediaModality.IMAGE: 258}
    assert usage.prompt_token_count == counted.total_tokens == estimate_tokens(QUESTION) + 258
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count


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

        result = types.Part.from_function_response(name=call.name, response=get_weather(**call.args))
        contents = [
            types.Content(role="user", parts=[types.Part(text=WEATHER)]),
            chunk.candidates[0].content,
            types.Content(role="user", parts=[result]),
        ]
        stream = await client.aio.models.generate_content_stream(model=FLASH, contents=contents, config=config)
        assert "".join([c.text async for c in stream]) == ANSWER

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
