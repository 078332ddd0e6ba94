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
  and inline PDFs (per page, reported under ``IMAGE`` as the API reports them) by the Gemini 3 ``media_resolution``
  rule (:func:`helpers.media.media_tokens`: 1120 an image, 560 a PDF page by default); other media (video,
  ``fileData``) are not counted.
- Thinking (Gemini 3): every answer thinks first. Its thinking tokens (the model's median for the request's
  ``thinkingLevel``, or its default level, times a log-normal jitter) are reported as ``thoughtsTokenCount``, billed
  in ``totalTokenCount``, and generated at the model's output speed before the first visible chunk, so thinking
  delays TTFT. A level the model does not take, or ``thinkingLevel`` and ``thinkingBudget`` together, is the API's
  400 ``INVALID_ARGUMENT``; ``thinkingBudget`` alone (kept "for backwards compatibility", the thinking page says) caps
  the thinking tokens, never below the model's least.
- Sampling: ``temperature``, ``topP`` and ``topK`` are deprecated for Gemini 3.6 and later (changelog, 2026-07-21)
  and change nothing here; 3.5 Flash-Lite refuses presence and frequency penalties and a last turn by the model
  (400), as Google Cloud's 3.5 Flash-Lite page says.
- ``maxOutputTokens`` truncates and finishes with ``MAX_TOKENS``; ``stopSequences`` cut the text before the stop.
- ``seed`` picks a fixed variant of the scripted text and pins the draw of thinking tokens and timing, so a seeded
  request is answered the same way every time; without it, variants and draws change per call (as sampling would).
- Function calling: an entry with a ``function_call`` answers a request that declares ``tools`` with that call (one
  chunk, no text, a ``thoughtSignature`` on the call's part as Gemini 3 sends it), and the turn that sends the tool's
  ``functionResponse`` back with its text. That turn must send the model's call back with its signature, or it is
  the API's 400 (ai.google.dev/gemini-api/docs/thought-signatures); the SDK's chats do this for you.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import math
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from ...media import MEDIA_RESOLUTION_TOKENS, media_tokens
from ...models import CATALOG, PROFILES, LatencyProfile
from ..cassettes.cassette import Reply, camel_case, canonical_json
from ..pipeline import error_middleware
from ..pipeline.api_request import MAX_BODY_BYTES, Timed, error_response, json_response, parse_json, send_timed
from ..wire.framing import SYNTHETIC_HEADER, UNSCRIPTED_HEADER, check_request_body
from .synthetic_interactions import InteractionsUpstream

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
    ``parallel_calls`` are more calls made in the same answer, after ``function_call`` (a script's
    ``"function_call"`` given as a list; introduced for ``08_protocols``'s parallel tool calls).
    """

    prompt: str
    variants: list[str]
    model: str | None = None
    function_call: dict[str, Any] | None = None
    parallel_calls: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Script:
    """The synthetic upstream's answers, first match wins. File form: ``{"responses": [{"prompt", "text" |
    "variants", "model"?, "function_call"?}]}``, where ``function_call`` is one call or a list of parallel calls."""

    entries: list[ScriptEntry] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Script:
        """Read a script file. Raises ``ValueError`` naming the file and entry when it is malformed."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            entries = []
            for e in data["responses"]:
                calls = _function_calls(e)
                first = calls[0] if calls else None
                entries.append(
                    ScriptEntry(e["prompt"], e.get("variants") or [e["text"]], e.get("model"), first, calls[1:])
                )
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


def _function_calls(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """An entry's ``function_call`` (one call, or a non-empty list of parallel calls) as the API sends them
    (``{"name", "args"}`` each); empty when it has none.

    Raises:
        TypeError: a call is not an object with a string ``name`` and an object ``args``.
    """
    given = entry.get("function_call")
    if given is None:
        return []
    calls = given if isinstance(given, list) and given else [given]
    for call in calls:
        if not (isinstance(call, dict) and isinstance(call.get("name"), str) and isinstance(call.get("args"), dict)):
            raise TypeError(f'"function_call" must be {{"name": str, "args": {{...}}}} or a list of them, got {call!r}')
    return [{"name": call["name"], "args": call["args"]} for call in calls]


def _answers_calls(content: Any) -> bool:
    """True for a turn made only of ``functionResponse`` parts: a tool's result sent back, not a user's words."""
    parts = (content.get("parts") or []) if isinstance(content, dict) else []
    return bool(parts) and all(isinstance(p, dict) and "functionResponse" in p for p in parts)


def _texts(contents: list[Any]) -> list[str]:
    return [p["text"] for c in contents if isinstance(c, dict) for p in c.get("parts", []) if "text" in p]


def _is_users_words(content: dict[str, Any]) -> bool:
    """True for a user turn that is not only tools' results sent back.

    A turn whose role is missing or blank is the user's: "If not set, the service will default to 'user'"
    (``types.Content.role`` in google-genai 3.6.1; a blank string is unset on the wire). GenAI Processors
    (``09_frameworks``) sends ``"role": ""``."""
    return (content.get("role") or "user") == "user" and not _answers_calls(content)


def _last_user_text(body: dict[str, Any]) -> str:
    """The text of the last user turn; turns that only send tools' results back are skipped (they have none)."""
    users = [c for c in body.get("contents", []) if _is_users_words(c)]
    return " ".join(_texts(users[-1:]))


PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
"""A page object in a PDF's bytes: how :func:`prompt_token_details` counts an inline PDF's pages."""


def _inline_media_tokens(part: dict[str, Any], resolution: str | None) -> int:
    """Tokens of an inline image or PDF part by :func:`helpers.media.media_tokens` at the part's own
    ``mediaResolution`` level, else the request's ``resolution``; 0 for any other part."""
    blob = part.get("inlineData") or part.get("inline_data")
    if not isinstance(blob, dict):
        return 0
    mime_type = str(blob.get("mimeType", blob.get("mime_type", "")))
    own = part.get("mediaResolution") or part.get("media_resolution")
    level = own.get("level", resolution) if isinstance(own, dict) else resolution
    if mime_type.startswith("image/"):
        return media_tokens("image", level)
    if mime_type == "application/pdf":
        try:
            pages = len(PDF_PAGE.findall(base64.b64decode(blob.get("data", ""))))
        except ValueError:
            pages = 0
        return media_tokens("pdf", level, pages=max(pages, 1))
    return 0


def prompt_token_details(body: dict[str, Any]) -> dict[str, int]:
    """Estimated input tokens of a generate request by modality, as ``promptTokensDetails`` reports them.

    ``TEXT``: every text part of the contents and system instruction, at 4 characters a token. ``IMAGE`` (present
    only when there are inline images or PDFs): :func:`helpers.media.media_tokens` of each at its
    ``media_resolution`` (the part's, else ``generationConfig.mediaResolution``, else the default), the Gemini 3 rule;
    PDF pages count under ``IMAGE`` as the API reports them. Not modelled: audio, video and ``fileData`` parts (0).
    """
    contents = [*body.get("contents", []), body.get("systemInstruction") or {}]
    parts = [p for c in contents if isinstance(c, dict) for p in c.get("parts", []) if isinstance(p, dict)]
    details = {"TEXT": sum(estimate_tokens(p["text"]) for p in parts if isinstance(p.get("text"), str))}
    resolution = (body.get("generationConfig") or {}).get("mediaResolution")
    if resolution not in (None, "MEDIA_RESOLUTION_UNSPECIFIED", *MEDIA_RESOLUTION_TOKENS):
        resolution = None
    media = sum(_inline_media_tokens(p, resolution) for p in parts)
    if media:
        details["IMAGE"] = media
    return details


SIGNATURE_DOCS = "https://ai.google.dev/gemini-api/docs/thought-signatures"


def invalid_request(model: str, body: dict[str, Any]) -> str | None:
    """Why the API would refuse this generate request with 400 ``INVALID_ARGUMENT`` on ``model``, or ``None``.

    Checks what Gemini 3 enforces and the lessons teach: the thinking level (per model, :mod:`helpers.models`), level
    and budget together, ``media_resolution`` levels, 3.5 Flash-Lite's refusals, and thought signatures on function
    calls sent back in the current turn.
    """
    config = body.get("generationConfig") or {}
    thinking = config.get("thinkingConfig") or {}
    level = thinking.get("thinkingLevel")
    allowed = CATALOG[model].thinking_levels if model in CATALOG else ()
    if level is not None and "thinkingBudget" in thinking:
        return "You cannot use both thinking_level and thinking_budget in the same request."
    if level is not None and str(level).upper() not in allowed:
        return f"thinking_level {level} is not supported by {model}; the supported values are {', '.join(allowed)}."
    parts = [
        p for c in body.get("contents", []) if isinstance(c, dict) for p in c.get("parts", []) if isinstance(p, dict)
    ]
    levels = [config.get("mediaResolution")]
    levels += [p["mediaResolution"].get("level") for p in parts if isinstance(p.get("mediaResolution"), dict)]
    for resolution in levels:
        if resolution not in (None, "MEDIA_RESOLUTION_UNSPECIFIED", *MEDIA_RESOLUTION_TOKENS):
            return f"Invalid value at 'media_resolution' ({resolution!r})."
    contents = [c for c in body.get("contents", []) if isinstance(c, dict)]
    if model in CATALOG and CATALOG[model].refuses_penalties_and_prefill:
        penalties = [name for name in ("presencePenalty", "frequencyPenalty") if name in config]
        if penalties:
            return f"{', '.join(penalties)} is not supported by {model}."
        if contents and contents[-1].get("role") == "model":
            return f"{model} does not support a request whose last turn has the model role (a prefilled answer)."
    return _missing_signature(contents)


def _missing_signature(contents: list[dict[str, Any]]) -> str | None:
    """The API's complaint when a model turn of the current turn (since the last user text) sends a function call
    back without the ``thoughtSignature`` the model gave it; ``None`` when every call carries one."""
    starts = [i for i, c in enumerate(contents) if _is_users_words(c)]
    for position, content in enumerate(contents[starts[-1] if starts else 0 :]):
        calls = [p for p in content.get("parts", []) if isinstance(p, dict) and "functionCall" in p]
        if content.get("role") == "model" and calls and "thoughtSignature" not in calls[0]:
            name = calls[0]["functionCall"].get("name", "?")
            return (
                "Function call is missing a thought_signature in functionCall parts. This is required for tools to "
                f"work correctly. Additional data, function call `{name}`, position {position + 1}. Please refer to "
                f"{SIGNATURE_DOCS} for more details."
            )
    return None


def thoughts_tokens(model: str, config: dict[str, Any], rng: random.Random) -> int:
    """Thinking tokens of one synthetic answer: the model's median for the request's level (its default level when
    none is set), times a log-normal jitter (sigma 0.3); ``thinkingBudget`` alone caps it, but never below the
    model's least-thinking median (Gemini 3 cannot turn thinking off). An assumption, see :mod:`helpers.models`."""
    spec = CATALOG[model]
    thinking = config.get("thinkingConfig") or {}
    medians = spec.profile.thoughts_tokens
    median = medians[str(thinking.get("thinkingLevel") or spec.default_thinking).upper()]
    tokens = max(1, round(median * rng.lognormvariate(0.0, 0.3)))
    budget = thinking.get("thinkingBudget")
    if isinstance(budget, int) and budget >= 0:
        tokens = min(tokens, max(budget, min(medians.values())))
    return tokens


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
    redraw: bool = True
    """Identical requests draw afresh, as sampling would (see :meth:`timeline`); ``False`` answers every identical
    request the same way, as if seeded (replay's improviser, which must be deterministic and keeps no count)."""
    _calls: dict[str, int] = field(default_factory=dict)

    def app(self, *services: Callable[[web.Application], None]) -> web.Application:
        """The aiohttp app; each of ``services`` adds its routes before the catch-all (e.g.
        :meth:`.synthetic_openai.OpenAIUpstream.install`)."""
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[self.label])
        error_middleware.install(app)
        app.router.add_get("/{version}/models", self.list_models)
        app.router.add_get("/{version}/models/{model}", self.get_model)
        app.router.add_post("/{version}/models/{model}:{method}", self.generate)
        InteractionsUpstream(self.plan).install(app)
        for install in services:
            install(app)
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
            "record it from the real API (WORKBOOK_MODE=record with a key) or add it to "
            "helpers/replay/upstream/synthetic.py.",
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
        start = time.monotonic()
        model, method = request.match_info["model"], request.match_info["method"]
        raw = parse_json(await request.read())
        check_request_body(f"models/{model}:{method}", raw)  # a wrong-typed field is the API's 400, naming it
        body = camel_case(raw)  # the SDK sends some nested fields (thinking_level) in snake_case
        return await send_timed(request, start, self.respond(model, method, body, request.match_info["version"]))

    def respond(self, model: str, method: str, body: dict[str, Any], version: str) -> web.Response | Timed:
        """The reply to one ``generateContent``, ``streamGenerateContent`` or ``countTokens`` request with a
        camelCase ``body``: :meth:`plan`'s answer as the method sends it (one JSON reply when the last chunk is due,
        or the chunks as a stream), or the reply to send at once."""
        answer = self.plan(model, method, body, version)
        if isinstance(answer, web.Response):
            return answer
        timeline = answer.timeline
        reply: Reply
        if method == "generateContent":
            reply = {"status": 200, "offset_s": timeline[-1][0], "body": merge_chunks([data for _, data in timeline])}
        else:
            reply = {"status": 200, "chunks": [{"offset_s": offset, "data": data} for offset, data in timeline]}
        return Timed(reply, answer.headers)

    def plan(self, model: str, method: str, body: dict[str, Any], version: str) -> web.Response | Answer:
        """The answer to one ``generateContent`` (or ``streamGenerateContent``, ``countTokens``) request with a
        camelCase ``body``: an :class:`Answer` to send, or the API's error (or a ``countTokens`` reply) to send at
        once. The Interactions stand-in (:mod:`.synthetic_interactions`) answers through it too, so both APIs share one
        script, latency model and thinking."""
        if model not in self.profiles:
            return error_response(
                404,
                f"models/{model} is not found for API version {version}, or is not "
                f"supported for {method}. Call ListModels to see the list of available models and their "
                "supported methods.",
            )
        problem = invalid_request(model, body.get("generateContentRequest", body) if method == "countTokens" else body)
        if problem is not None:
            return error_response(400, problem)
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
        config = body.get("generationConfig", {})
        timeline = self.timeline(model, body, config, entry, prompt_token_details(body))
        thoughts = timeline[-1][1].get("usageMetadata", {}).get("thoughtsTokenCount", 0)
        contents = body.get("contents") or [{}]
        if entry.function_call is not None and body.get("tools") and not _answers_calls(contents[-1]):
            timeline = as_function_call(timeline, entry.function_call, entry.parallel_calls)
        return Answer(timeline, self.profiles[model], thoughts)

    def timeline(
        self,
        model: str,
        request: Any,
        config: dict[str, Any],
        entry: ScriptEntry,
        input_tokens: int | Mapping[str, int],
    ) -> list[tuple[float, dict[str, Any]]]:
        """One answer's chunks with their offsets (:func:`synthesize`), drawn for this call of ``request``.

        ``request`` (any JSON) identifies the call: identical ones count as retries, each drawing afresh (a
        variant of the text, the thinking tokens, the timing), unless ``config`` has a ``seed``, which pins all of
        them, or :attr:`redraw` is off, which pins them for every request. ``config`` is in the native spelling
        (``generationConfig``: ``seed``, ``stopSequences``, ``maxOutputTokens``, ``thinkingConfig``).
        """
        calls_key = canonical_json([model, request])
        call = 0
        if self.redraw:
            call = self._calls.get(calls_key, 0)
            self._calls[calls_key] = call + 1
        seed = config.get("seed")
        text = entry.variants[(seed if seed is not None else call) % len(entry.variants)]
        # A seed pins the sampling: the same seeded request gets the same thinking, tokens and timing every time.
        draw = "seeded" if seed is not None or not self.redraw else call
        rng = random.Random(int(hashlib.sha256(f"{calls_key}|{draw}".encode()).hexdigest(), 16))
        thoughts = thoughts_tokens(model, config, rng) if model in CATALOG else 0
        return synthesize(model, text, config, input_tokens, self.profiles[model], rng, thoughts)


@dataclass(frozen=True)
class Answer:
    """One planned synthetic answer (:meth:`SyntheticUpstream.plan`).

    Attributes:
        timeline: ``(offset_s, GenerateContentResponse chunk)`` pairs, offsets in seconds from the request.
        profile: the latency profile that timed it (its ``tokens_per_s`` also paced the thinking).
        thoughts: thinking tokens, generated before the first chunk.
    """

    timeline: list[tuple[float, dict[str, Any]]]
    profile: LatencyProfile
    thoughts: int

    @property
    def headers(self) -> dict[str, str]:
        """The response headers that label the answer synthetic, with its provenance."""
        return {SYNTHETIC_HEADER: json.dumps(provenance(self.profile))}


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
            f"log-normal TTFT (median {profile.ttft_s:.2f} s, sigma {profile.ttft_sigma}) plus the thinking tokens "
            f"at {profile.tokens_per_s:.0f} output tokens/s, then ~{TOKENS_PER_CHUNK} tokens a chunk at that speed; "
            f"thinking tokens per level {profile.thoughts_tokens} (median); "
            f"tokens estimated at {CHARS_PER_TOKEN} characters each"
        ),
        "based_on": profile.source,
    }


def model_resource(model: str) -> dict[str, Any]:
    """The ``models.get`` resource for a model (limits from ai.google.dev/gemini-api/docs/models, read 2026-12-01)."""
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
    thoughts: int = 0,
) -> list[tuple[float, dict[str, Any]]]:
    """The chunks of one synthetic answer with their offsets in seconds from the request, ready to stream.

    Applies ``stopSequences`` and ``maxOutputTokens`` from ``config`` to ``text`` first. Each chunk is a
    ``GenerateContentResponse``; only the last carries ``finishReason`` and complete ``usageMetadata``.
    ``input_tokens`` is the prompt's count, or its count by modality (:func:`prompt_token_details`). ``thoughts``
    thinking tokens (:func:`thoughts_tokens`) are generated at ``profile.tokens_per_s`` before the first chunk, so
    they add to the TTFT, and every chunk's usage reports them as ``thoughtsTokenCount``.
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
    offset = rng.lognormvariate(math.log(profile.ttft_s), profile.ttft_sigma) + thoughts / profile.tokens_per_s
    pieces = chunk_text(text)
    timeline = []
    for i, piece in enumerate(pieces):
        if i:
            offset += estimate_tokens(piece) / profile.tokens_per_s * rng.uniform(0.8, 1.2)
        last = i == len(pieces) - 1
        candidate: dict[str, Any] = {"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}
        usage: dict[str, Any] = {
            "promptTokenCount": prompt_tokens,
            "totalTokenCount": prompt_tokens + thoughts,
            "promptTokensDetails": details,
        }
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        if last:
            candidate["finishReason"] = finish
            output = estimate_tokens(text)
            usage = {**usage, "candidatesTokenCount": output, "totalTokenCount": prompt_tokens + output + thoughts}
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
    timeline: list[tuple[float, dict[str, Any]]], call: dict[str, Any], parallel: list[dict[str, Any]] | None = None
) -> list[tuple[float, dict[str, Any]]]:
    """A synthesized answer turned into a function call: one chunk, at the first chunk's offset (the TTFT), whose
    only part is ``{"functionCall": call}``, finishing ``STOP``; its output tokens are the call's JSON at 4 characters
    a token. The part carries a ``thoughtSignature`` (opaque bytes, base64, as Gemini 3 sends with a call), which
    the turn that answers the call must send back. ``parallel`` calls follow as more ``functionCall`` parts in the same
    chunk, unsigned (Gemini signs only the first of parallel calls). Introduced for ``03_streaming`` (function calling
    while streaming)."""
    offset = timeline[0][0]
    data = json.loads(json.dumps(timeline[-1][1]))
    signature = base64.b64encode(hashlib.sha256(json.dumps(call, sort_keys=True).encode()).digest()).decode()
    others = [{"functionCall": c} for c in parallel or []]
    data["candidates"][0]["content"]["parts"] = [{"functionCall": call, "thoughtSignature": signature}, *others]
    data["candidates"][0]["finishReason"] = "STOP"
    usage = data["usageMetadata"]
    usage["candidatesTokenCount"] = sum(estimate_tokens(json.dumps(c)) for c in [call, *(parallel or [])])
    usage["totalTokenCount"] = (
        usage["promptTokenCount"] + usage["candidatesTokenCount"] + usage.get("thoughtsTokenCount", 0)
    )
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
