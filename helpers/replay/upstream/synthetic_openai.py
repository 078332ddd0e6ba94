"""The synthetic upstream's OpenAI-compatible endpoint: chat completions answered from the same script, with the
same latency model as :mod:`.synthetic`, in the OpenAI protocol. Introduced for ``08_protocols``.

``POST /v1beta/openai/chat/completions`` and ``GET /v1beta/openai/models``, as Gemini serves them
(ai.google.dev/gemini-api/docs/openai, a stored copy read 2026-12-01). A request is translated to the native one it
stands for and drawn by :meth:`.SyntheticUpstream.timeline`, so a prompt gets the same text, thinking and timing
model either way:

- the last ``"role": "user"`` message's text picks the script entry; ``stop`` (a string or list) is
  ``stopSequences``, ``max_completion_tokens`` or ``max_tokens`` is ``maxOutputTokens``, ``seed`` is ``seed``;
  ``reasoning_effort`` (``minimal``/``low``/``medium``/``high``) is the ``thinkingLevel``, and so is
  ``extra_body={"google": {"thinking_config": {...}}}`` (the docs nest it as ``extra_body`` inside the SDK's
  ``extra_body``; both spellings are read). Both ways at once is a 400, as the docs say the two "overlap" and cannot
  be combined.
- each native chunk becomes one ``chat.completion.chunk``: ``delta.role`` only in the first, ``finish_reason`` null
  until the last text chunk, which says ``"stop"``, or ``"length"`` when ``max_tokens`` cut it (native
  ``MAX_TOKENS``). With ``stream_options: {"include_usage": true}`` every chunk has ``"usage": null`` and one more
  chunk follows with ``"choices": []`` and the usage (``completion_tokens_details.reasoning_tokens`` = the thinking
  tokens); without it the stream carries no usage at all, as the OpenAI protocol defines ``include_usage`` and
  ``08_protocols`` teaches. Then ``data: [DONE]``, at the last chunk's offset. A request that does not stream gets
  one ``chat.completion`` with its usage.
- a script entry's ``function_call`` answers a request with ``tools`` (unless its last message is a ``tool``
  result) with a tool call: the first delta has the call's ``index``, ``id``, ``type`` and ``name`` with empty
  ``arguments``, the next deltas carry the arguments' JSON in fragments (~8 characters each), then
  ``finish_reason: "tool_calls"``. The OpenAI protocol allows fragments; Gemini's endpoint may send the arguments
  whole in one delta. Code that joins fragments by ``index`` reads both. An entry with parallel calls (its
  ``function_call`` a list) sends every call's head in the first delta (indexes 0, 1, ...), then the calls'
  fragments interleaved by index, one a delta, so only code keyed by ``index`` joins them right.
- errors come as the endpoint sends them, a list holding the native error (:func:`.openai_compat_api.error_list`).

Assumed, not measured: the chunk ``id`` (``chatcmpl-`` and the native ``responseId``) and ``created`` (the
request's second); the OpenAI ``usage`` names filled from the native counts.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from ..cassettes.cassette import Chunk, Reply, camel_case
from ..pipeline.api_request import Timed, json_response, parse_json, send_timed
from ..services.openai_compat_api import body_problem, error_list, model_list
from ..wire.framing import SYNTHETIC_HEADER, UNSCRIPTED_HEADER, error_json
from .synthetic import (
    CHARS_PER_TOKEN,
    SyntheticUpstream,
    estimate_tokens,
    invalid_request,
    provenance,
)

ROOT = "/{version:v1beta}/openai"
ARGUMENT_FRAGMENT_CHARS = 8
"""How many characters of a tool call's arguments each delta carries."""
FINISH_REASONS = {"STOP": "stop", "MAX_TOKENS": "length"}
"""Native ``finishReason`` to the OpenAI protocol's ``finish_reason``."""


def _error(code: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(error_list(error_json(code, message)), status=code, headers=headers)


def _text(content: Any) -> str:
    """A message's text: its ``content`` string, or its text parts joined."""
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return " ".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))


def native_config(body: dict[str, Any]) -> dict[str, Any] | str:
    """The native ``generationConfig`` a chat-completions body stands for, or why the endpoint refuses it."""
    config: dict[str, Any] = {}
    stop = body.get("stop")
    if stop is not None:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None:
        config["maxOutputTokens"] = limit
    if body.get("seed") is not None:
        config["seed"] = body["seed"]
    google = (body.get("extra_body") or {}).get("google") or body.get("google") or {}
    thinking = camel_case(google.get("thinking_config") or {})
    effort = body.get("reasoning_effort")
    if effort is not None and thinking:
        return "reasoning_effort and thinking_config overlap: set one of them, not both."
    if effort is not None:
        thinking = {"thinkingLevel": str(effort).upper()}
    if thinking:
        config["thinkingConfig"] = thinking
    return config


def chunk(response_id: str, created: int, model: str, delta: dict[str, Any] | None, finish: str | None) -> dict:
    """One ``chat.completion.chunk``; ``delta`` ``None`` gives the usage chunk's empty ``choices``."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {
        "id": response_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": choices,
    }


def usage(native: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI ``usage`` object for a native ``usageMetadata``."""
    prompt = native.get("promptTokenCount", 0)
    thoughts = native.get("thoughtsTokenCount", 0)
    completion = native.get("candidatesTokenCount", 0) + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


class OpenAIUpstream:
    """The OpenAI-compatible routes of a :class:`.SyntheticUpstream` (see the module docstring)."""

    def __init__(self, upstream: SyntheticUpstream) -> None:
        self.upstream = upstream

    def install(self, app: web.Application) -> None:
        """Add the routes to the synthetic upstream's app (pass this to :meth:`.SyntheticUpstream.app`)."""
        app.router.add_post(ROOT + "/chat/completions", self.chat_completions)
        app.router.add_get(ROOT + "/models", self.list_models)

    async def list_models(self, request: web.Request) -> web.Response:
        return json_response(model_list(self.upstream.profiles))

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        start = time.monotonic()
        body = parse_json(await request.read())  # deep nesting or a 5000-digit integer: a 400, not a 500
        return await send_timed(request, start, self.respond(body))

    def respond(self, body: Any) -> web.Response | Timed:
        """The reply to a chat completion with JSON ``body``: planned ahead, streamed or not, or the endpoint's error
        (in its list shape) to send at once."""
        problem = body_problem(body)
        if problem is not None:
            return _error(400, problem)
        model = body["model"].removeprefix("models/")
        if model not in self.upstream.profiles:
            return _error(404, f"models/{model} is not found for API version v1beta, or is not supported.")
        config = native_config(body)
        if isinstance(config, str):
            return _error(400, config)
        users = [m for m in body["messages"] if isinstance(m, dict) and m.get("role") == "user"]
        prompt = _text(users[-1].get("content")) if users else ""
        problem = invalid_request(model, {"generationConfig": config})
        if problem is not None:
            return _error(400, problem)
        entry = self.upstream.script.find(model, prompt)
        if entry is None:
            return _error(
                400,
                f"the synthetic upstream has no scripted response for {prompt[:80]!r} on {model}; add one to the "
                "notebook's script (see docs/cassettes.md).",
                headers={UNSCRIPTED_HEADER: "1"},
            )
        words = sum(estimate_tokens(_text(m.get("content"))) for m in body["messages"] if isinstance(m, dict))
        timeline = self.upstream.timeline(model, body, config, entry, words)
        last = body["messages"][-1]
        calls = entry.function_call is not None and bool(body.get("tools")) and last.get("role") != "tool"
        made = [entry.function_call, *entry.parallel_calls] if calls and entry.function_call else []
        events = self.events(model, timeline, made, body)
        headers = {SYNTHETIC_HEADER: json.dumps(provenance(self.upstream.profiles[model]))}
        reply: Reply
        if not body.get("stream"):
            done = completion([data for _, data in events if isinstance(data, dict)])
            reply = {"status": 200, "offset_s": events[-1][0], "body": done}
        else:
            chunks: list[Chunk] = [
                {"offset_s": offset, "data": data, "raw": True}
                if isinstance(data, str)
                else {"offset_s": offset, "data": data}
                for offset, data in events
            ]
            reply = {"status": 200, "chunks": chunks}
        return Timed(reply, headers)

    @staticmethod
    def events(
        model: str, timeline: list[tuple[float, dict[str, Any]]], calls: list[dict[str, Any]], body: dict[str, Any]
    ) -> list[tuple[float, dict[str, Any] | str]]:
        """The stream's events with their offsets: chunks (the tool ``calls`` made, when any, else the text), the usage
        chunk if asked for, and ``"[DONE]"``; for a request that does not stream, the last chunk has the usage
        :func:`completion` reports."""
        native = timeline[-1][1]
        response_id = "chatcmpl-" + native["responseId"]
        created = int(time.time())
        events: list[tuple[float, dict[str, Any] | str]] = []
        if calls:
            offset = timeline[0][0]
            arguments = [json.dumps(call["args"]) for call in calls]
            heads = [
                {
                    "index": index,
                    "id": "call_" + native["responseId"][:12] + (f"_{index}" if index else ""),
                    "type": "function",
                    "function": {"name": call["name"], "arguments": ""},
                }
                for index, call in enumerate(calls)
            ]
            events.append(
                (offset, chunk(response_id, created, model, {"role": "assistant", "tool_calls": heads}, None))
            )
            for i in range(0, max(map(len, arguments)), ARGUMENT_FRAGMENT_CHARS):
                for index, joined in enumerate(arguments):
                    if i >= len(joined):
                        continue
                    offset += ARGUMENT_FRAGMENT_CHARS / CHARS_PER_TOKEN / 200  # at ~200 tokens/s
                    fragment = {"index": index, "function": {"arguments": joined[i : i + ARGUMENT_FRAGMENT_CHARS]}}
                    piece = chunk(response_id, created, model, {"tool_calls": [fragment]}, None)
                    events.append((round(offset, 4), piece))
            events.append((round(offset, 4), chunk(response_id, created, model, {}, "tool_calls")))
            tokens = sum(estimate_tokens(joined) for joined in arguments)
            native = {**native, "usageMetadata": {**native["usageMetadata"], "candidatesTokenCount": tokens}}
        else:
            for i, (offset, native_chunk) in enumerate(timeline):
                candidate = native_chunk["candidates"][0]
                delta: dict[str, Any] = {"role": "assistant"} if i == 0 else {}
                delta["content"] = candidate["content"]["parts"][0]["text"]
                finish = FINISH_REASONS.get(candidate["finishReason"], "stop") if "finishReason" in candidate else None
                events.append((offset, chunk(response_id, created, model, delta, finish)))
        end = events[-1][0]
        if not body.get("stream"):  # these events only build the non-streamed completion, which has the usage
            last = events[-1][1]
            assert isinstance(last, dict)
            last["usage"] = usage(native["usageMetadata"])
        elif (body.get("stream_options") or {}).get("include_usage"):
            for _, event in events:
                assert isinstance(event, dict)
                event["usage"] = None
            events.append(
                (end, {**chunk(response_id, created, model, None, None), "usage": usage(native["usageMetadata"])})
            )
        events.append((end, "[DONE]"))
        return events


def completion(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The non-streamed ``chat.completion`` equivalent to a stream's chunks: the deltas' text joined (tool calls
    joined by index), the last ``finish_reason``, the usage."""
    message: dict[str, Any] = {"role": "assistant", "content": None}
    texts: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish, totals = None, None
    for data in chunks:
        totals = data.get("usage") or totals
        for choice in data["choices"]:
            delta = choice["delta"]
            if delta.get("content"):
                texts.append(delta["content"])
            for part in delta.get("tool_calls", []):
                call = calls.setdefault(
                    part["index"], {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
                )
                call["id"] = part.get("id") or call["id"]
                call["function"]["name"] += part.get("function", {}).get("name", "")
                call["function"]["arguments"] += part.get("function", {}).get("arguments", "")
            finish = choice["finish_reason"] or finish
    if texts:
        message["content"] = "".join(texts)
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return {
        "id": chunks[0]["id"],
        "object": "chat.completion",
        "created": chunks[0]["created"],
        "model": chunks[0]["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": totals,
    }
