"""A synthetic upstream: a stand-in Gemini API that answers from a script of responses with modelled latency.

With no API key here, the shipped cassettes are authored by recording *through the real record path* from this
server: the SDK sends exactly the request a notebook cell sends, the recorder times the chunks as they arrive, and
every exchange is labelled synthetic with the latency model and the published figure it follows
(:data:`helpers.models.PROFILES`). Used by ``python -m helpers.replay synth`` and ``... author``.

What is modelled, and how (assumptions, not measurements):
- TTFT: log-normal with the profile's median and sigma. Chunk gaps: tokens in the chunk / the profile's tokens/s,
  times a uniform 0.8-1.2 jitter.
- Chunking: a short first chunk (the first few words), then about 30 tokens a chunk, split at word boundaries.
- Tokens: text estimated at 4 characters a token (the ratio Google's docs quote for Gemini models); inline images
  by the documented Gemini 2.x rule (:func:`helpers.media.image_tokens`: 258 for an image up to 384x384 px);
  other media (PDFs, video, ``fileData``) are not counted.
- ``maxOutputTokens`` truncates and finishes with ``MAX_TOKENS``; ``stopSequences`` cut the text before the stop.
- ``seed`` picks a fixed variant of the scripted text; without it, variants rotate per call (as sampling would).
- Function calling: an entry with a ``function_call`` answers a request that declares ``tools`` with that call (one
  chunk, no text), and the turn that sends the tool's ``functionResponse`` back with its text.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import io
import json
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from PIL import Image

from ..cassette import canonical_json
from ..media import IMAGE_TILE_TOKENS, image_tokens
from ..models import PROFILES, LatencyProfile
from .wire import (
    SSE_CONTENT_TYPE,
    SYNTHETIC_HEADER,
    UNSCRIPTED_HEADER,
    error_response,
    json_response,
    sse_event,
)

CHARS_PER_TOKEN = 4
FIRST_CHUNK_WORDS = 3
TOKENS_PER_CHUNK = 30


def estimate_tokens(text: str) -> int:
    """Tokens in ``text`` at 4 characters a token (at least 1 for non-empty text); an estimate, not a tokenizer."""
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN)) if text else 0


def chunk_text(text: str) -> list[str]:
    """Split ``text`` the way the synthetic upstream streams it: the first few words, then ~30-token chunks.

    Splits fall on word boundaries and the chunks join back to ``text`` exactly.
    """
    words = re.findall(r"\S+\s*|\s+", text)
    if not words:
        return [text]
    chunks = ["".join(words[:FIRST_CHUNK_WORDS])]
    current = ""
    for word in words[FIRST_CHUNK_WORDS:]:
        current += word
        if len(current) >= TOKENS_PER_CHUNK * CHARS_PER_TOKEN:
            chunks.append(current)
            current = ""
    if current:
        chunks.append(current)
    return chunks


@dataclass
class ScriptEntry:
    """One scripted answer: used for any request whose last user text contains ``prompt``.

    ``function_call`` (``{"name": str, "args": dict}``), when set, is the answer to a request that declares
    ``tools``; the text answers the request that sends the tool's result back (introduced in ``03_streaming``).
    """

    prompt: str
    variants: list[str]
    model: str | None = None
    function_call: dict[str, Any] | None = None


@dataclass
class Script:
    """The synthetic upstream's answers, first match wins. File form: ``{"responses": [{"prompt", "text" |
    "variants", "model"?, "function_call"?}]}``."""

    entries: list[ScriptEntry] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Script:
        """Read a script file. Raises ``ValueError`` naming the file and entry when it is malformed."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            entries = [
                ScriptEntry(e["prompt"], e.get("variants") or [e["text"]], e.get("model"), _function_call(e))
                for e in data["responses"]
            ]
            return cls(entries)
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(
                f"synthetic script {path} is unreadable or malformed ({e!r}); see docs/cassettes.md"
            ) from None

    def find(self, model: str, prompt: str) -> ScriptEntry | None:
        for entry in self.entries:
            if entry.prompt in prompt and entry.model in (None, model):
                return entry
        return None


def _function_call(entry: dict[str, Any]) -> dict[str, Any] | None:
    """An entry's ``function_call`` as the API sends it (``{"name", "args"}``); ``None`` when it has none.

    Raises:
        TypeError: not an object with a string ``name`` and an object ``args``.
    """
    call = entry.get("function_call")
    if call is None:
        return None
    if not (isinstance(call, dict) and isinstance(call.get("name"), str) and isinstance(call.get("args"), dict)):
        raise TypeError(f'"function_call" must be {{"name": str, "args": {{...}}}}, got {call!r}')
    return {"name": call["name"], "args": call["args"]}


def _answers_calls(content: Any) -> bool:
    """True for a turn made only of ``functionResponse`` parts: a tool's result sent back, not a user's words."""
    parts = (content.get("parts") or []) if isinstance(content, dict) else []
    return bool(parts) and all(isinstance(p, dict) and "functionResponse" in p for p in parts)


def _texts(contents: list[Any]) -> list[str]:
    return [p["text"] for c in contents if isinstance(c, dict) for p in c.get("parts", []) if "text" in p]


def _last_user_text(body: dict[str, Any]) -> str:
    """The text of the last user turn; turns that only send tools' results back are skipped (they have none)."""
    users = [c for c in body.get("contents", []) if c.get("role", "user") == "user" and not _answers_calls(c)]
    return " ".join(_texts(users[-1:]))


def _inline_image_tokens(part: dict[str, Any]) -> int:
    """Tokens of an inline image part by :func:`helpers.media.image_tokens` (its size read from the image's header),
    one tile if the data is not a readable image; 0 for any other part."""
    blob = part.get("inlineData") or part.get("inline_data")
    if not isinstance(blob, dict) or not str(blob.get("mimeType", blob.get("mime_type", ""))).startswith("image/"):
        return 0
    try:
        with Image.open(io.BytesIO(base64.b64decode(blob.get("data", "")))) as image:
            return image_tokens(*image.size)
    except (OSError, ValueError):
        return IMAGE_TILE_TOKENS


def prompt_token_details(body: dict[str, Any]) -> dict[str, int]:
    """Estimated input tokens of a generate request by modality, as ``promptTokensDetails`` reports them.

    ``TEXT``: every text part of the contents and system instruction, at 4 characters a token. ``IMAGE`` (present
    only when there are inline images): :func:`helpers.media.image_tokens` of each, the documented rule for Gemini
    2.x (258 tokens for an image up to 384x384 px). Not modelled: PDFs, audio, video and ``fileData`` parts (0 tokens).
    """
    contents = [*body.get("contents", []), body.get("systemInstruction") or {}]
    parts = [p for c in contents if isinstance(c, dict) for p in c.get("parts", []) if isinstance(p, dict)]
    details = {"TEXT": sum(estimate_tokens(p["text"]) for p in parts if isinstance(p.get("text"), str))}
    images = sum(_inline_image_tokens(p) for p in parts)
    if images:
        details["IMAGE"] = images
    return details


def token_details(tokens: int | Mapping[str, int]) -> list[dict[str, Any]]:
    """``promptTokensDetails`` for a count by modality, or for a plain count (all of it ``TEXT``)."""
    by_modality = {"TEXT": tokens} if isinstance(tokens, int) else tokens
    return [{"modality": modality, "tokenCount": count} for modality, count in by_modality.items()]


@dataclass
class SyntheticUpstream:
    """An aiohttp app that answers like the Gemini API, from a :class:`Script`, with modelled timing."""

    script: Script
    profiles: dict[str, LatencyProfile] = field(default_factory=lambda: dict(PROFILES))
    """Latency profile per model id it answers for; any other model gets the API's 404."""
    _calls: dict[str, int] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024**2, middlewares=[self.label])
        app.router.add_get("/{version}/models", self.list_models)
        app.router.add_get("/{version}/models/{model}", self.get_model)
        app.router.add_post("/{version}/models/{model}:{method}", self.generate)
        app.router.add_route("*", "/{tail:.*}", self.not_implemented)  # last: only what no route above answers
        return app

    @web.middleware
    async def label(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Label every scripted answer synthetic; those without a latency profile were answered at once."""
        response = await handler(request)
        if not response.prepared and UNSCRIPTED_HEADER not in response.headers:
            response.headers.setdefault(SYNTHETIC_HEADER, json.dumps(provenance(None)))
        return response

    async def not_implemented(self, request: web.Request) -> web.Response:
        """501 ``UNIMPLEMENTED`` for a route this stand-in does not model, marked so the recorder does not keep it:
        the author sees the message (the SDK raises it in the cell) instead of a cassette holding a fake answer."""
        return error_response(
            501,
            f"the synthetic upstream does not implement {request.method} {request.path}, so nothing was recorded; "
            "record it from the real API (WORKBOOK_MODE=record with a key) or add it to helpers/replay/synth.py.",
            headers={UNSCRIPTED_HEADER: "1"},
        )

    async def list_models(self, request: web.Request) -> web.Response:
        return json_response({"models": [model_resource(m) for m in self.profiles]})

    async def get_model(self, request: web.Request) -> web.Response:
        model = request.match_info["model"]
        if model not in self.profiles:
            return error_response(404, f"models/{model} is not found for API version {request.match_info['version']}.")
        return json_response(model_resource(model))

    async def generate(self, request: web.Request) -> web.StreamResponse:
        start = asyncio.get_running_loop().time()
        model, method = request.match_info["model"], request.match_info["method"]
        body = await request.json()
        if model not in self.profiles:
            return error_response(
                404,
                f"models/{model} is not found for API version {request.match_info['version']}, or is not "
                f"supported for {method}. Call ListModels to see the list of available models and their "
                "supported methods.",
            )
        if method == "countTokens":
            inner = body.get("generateContentRequest", body)
            details = prompt_token_details(inner)
            return json_response({"totalTokens": sum(details.values()), "promptTokensDetails": token_details(details)})
        prompt = _last_user_text(body)
        entry = self.script.find(model, prompt)
        if entry is None:
            return error_response(
                400,
                f"the synthetic upstream has no scripted response for {prompt[:80]!r} on {model}; add one "
                "to the notebook's script (see docs/cassettes.md).",
                headers={UNSCRIPTED_HEADER: "1"},
            )
        calls_key = canonical_json([model, body])
        call = self._calls.get(calls_key, 0)
        self._calls[calls_key] = call + 1
        config = body.get("generationConfig", {})
        seed = config.get("seed")
        text = entry.variants[(seed if seed is not None else call) % len(entry.variants)]
        rng = random.Random(int(hashlib.sha256(f"{calls_key}|{call}".encode()).hexdigest(), 16))
        timeline = synthesize(model, text, config, prompt_token_details(body), self.profiles[model], rng)
        contents = body.get("contents") or [{}]
        if entry.function_call is not None and body.get("tools") and not _answers_calls(contents[-1]):
            timeline = as_function_call(timeline, entry.function_call)
        headers = {SYNTHETIC_HEADER: json.dumps(provenance(self.profiles[model]))}
        loop = asyncio.get_running_loop()
        if method == "generateContent":
            await asyncio.sleep(max(0.0, start + timeline[-1][0] - loop.time()))
            return json_response(merge_chunks([data for _, data in timeline]), headers=headers)
        stream = web.StreamResponse(headers={"Content-Type": SSE_CONTENT_TYPE, **headers})
        for offset, data in timeline:
            await asyncio.sleep(max(0.0, start + offset - loop.time()))
            if not stream.prepared:
                await stream.prepare(request)
            await stream.write(sse_event(data))
        await stream.write_eof()
        return stream


def provenance(profile: LatencyProfile | None) -> dict[str, Any]:
    """The provenance a synthetic exchange carries: today's date, the latency model and its published source.

    ``profile`` is ``None`` for answers given at once (model lists, token counts, errors).
    """
    if profile is None:
        return {
            "source": "synthetic",
            "date": dt.date.today().isoformat(),
            "latency_model": "none: answered at once",
            "based_on": "the API's response and error formats (docs/wire.md)",
        }
    return {
        "source": "synthetic",
        "date": dt.date.today().isoformat(),
        "latency_model": (
            f"log-normal TTFT (median {profile.ttft_s:.2f} s, sigma {profile.ttft_sigma}), "
            f"{profile.tokens_per_s:.0f} output tokens/s, ~{TOKENS_PER_CHUNK} tokens a chunk; "
            f"tokens estimated at {CHARS_PER_TOKEN} characters each"
        ),
        "based_on": profile.source,
    }


def model_resource(model: str) -> dict[str, Any]:
    """The ``models.get`` resource for a model (limits from ai.google.dev/gemini-api/docs/models, read 2026-11-21)."""
    return {
        "name": f"models/{model}",
        "version": "001",
        "displayName": model.replace("gemini-", "Gemini ").replace("-", " ").title(),
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": [
            "generateContent",
            "countTokens",
            "createCachedContent",
            "batchGenerateContent",
        ],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
        "thinking": True,
    }


def synthesize(
    model: str,
    text: str,
    config: dict[str, Any],
    input_tokens: int | Mapping[str, int],
    profile: LatencyProfile,
    rng: random.Random,
) -> list[tuple[float, dict[str, Any]]]:
    """The chunks of one synthetic answer with their offsets in seconds from the request, ready to stream.

    Applies ``stopSequences`` and ``maxOutputTokens`` from ``config`` to ``text`` first. Each chunk is a
    ``GenerateContentResponse``; only the last carries ``finishReason`` and complete ``usageMetadata``.
    ``input_tokens`` is the prompt's count, or its count by modality (:func:`prompt_token_details`).
    """
    details = token_details(input_tokens)
    prompt_tokens = sum(d["tokenCount"] for d in details)
    finish = "STOP"
    for stop in config.get("stopSequences", []):
        if stop in text:
            text = text[: text.index(stop)]
    limit = config.get("maxOutputTokens")
    if limit is not None and estimate_tokens(text) > limit:
        text, finish = text[: limit * CHARS_PER_TOKEN], "MAX_TOKENS"
    response_id = "".join(
        rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") for _ in range(22)
    )
    offset = rng.lognormvariate(math.log(profile.ttft_s), profile.ttft_sigma)
    pieces = chunk_text(text)
    timeline = []
    for i, piece in enumerate(pieces):
        if i:
            offset += estimate_tokens(piece) / profile.tokens_per_s * rng.uniform(0.8, 1.2)
        last = i == len(pieces) - 1
        candidate: dict[str, Any] = {"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}
        usage: dict[str, Any] = {
            "promptTokenCount": prompt_tokens,
            "totalTokenCount": prompt_tokens,
            "promptTokensDetails": details,
        }
        if last:
            candidate["finishReason"] = finish
            output = estimate_tokens(text)
            usage = {**usage, "candidatesTokenCount": output, "totalTokenCount": prompt_tokens + output}
        timeline.append(
            (
                round(offset, 4),
                {
                    "candidates": [candidate],
                    "usageMetadata": usage,
                    "modelVersion": model,
                    "responseId": response_id,
                },
            )
        )
    return timeline


def as_function_call(
    timeline: list[tuple[float, dict[str, Any]]], call: dict[str, Any]
) -> list[tuple[float, dict[str, Any]]]:
    """A synthesized answer turned into a function call: one chunk, at the first chunk's offset (the TTFT), whose
    only part is ``{"functionCall": call}``, finishing ``STOP``; its output tokens are the call's JSON at 4 characters
    a token. Introduced for ``03_streaming`` (function calling while streaming)."""
    offset = timeline[0][0]
    data = json.loads(json.dumps(timeline[-1][1]))
    data["candidates"][0]["content"]["parts"] = [{"functionCall": call}]
    data["candidates"][0]["finishReason"] = "STOP"
    usage = data["usageMetadata"]
    usage["candidatesTokenCount"] = estimate_tokens(json.dumps(call))
    usage["totalTokenCount"] = usage["promptTokenCount"] + usage["candidatesTokenCount"]
    return [(offset, data)]


def merge_chunks(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The single ``generateContent`` reply equivalent to a stream of chunks: texts joined into one part (other parts,
    such as a function call, kept after it), the last chunk's metadata."""
    merged = json.loads(json.dumps(chunks[-1]))
    parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
    texts = [p["text"] for p in parts if "text" in p]
    others = [p for p in parts if "text" not in p]
    merged["candidates"][0]["content"]["parts"] = ([{"text": "".join(texts)}] if texts else []) + others
    return merged
