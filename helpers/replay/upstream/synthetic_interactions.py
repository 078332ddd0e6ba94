"""The synthetic upstream's Interactions API: ``/{v}/interactions`` answered in the real wire shape, from the same
script, latency model and thinking as its ``generateContent`` (:meth:`.synthetic.SyntheticUpstream.plan`).

Introduced for ``06_interactions``. Routes (``{v}`` is ``v1``, ``v1beta``, ...)::

    POST   {v}/interactions                 create; ``"stream": true`` streams SSE events
    GET    {v}/interactions/{id}            the stored interaction (its ``user_input`` step included)
    POST   {v}/interactions/{id}/cancel     cancel a background interaction still running
    DELETE {v}/interactions/{id}            forget it

Shapes from google-genai 3.6.1 (``google/genai/_gaos/types/interactions/``: ``Interaction``, ``Step``,
``InteractionSSEEvent``) and ai.google.dev/gemini-api/docs/interactions (read 2026-12-01):

- An interaction is ``{"id", "status", "model", "created", "updated", "steps", "usage", "previous_interaction_id"?}``;
  ``create`` returns the model's steps only (a ``thought`` with its ``signature``, then ``model_output`` or a
  ``function_call``), ``get`` the stored resource with the ``user_input`` step first, as the docs describe.
  ``usage`` counts ``total_input_tokens`` (the whole conversation the model read, history included),
  ``total_output_tokens``, ``total_thought_tokens`` and ``total_tokens``.
- A stream is ``text/event-stream``: one ``event: <event_type>`` / ``data: <json>`` event per step change
  (``interaction.created``, ``step.start``, ``step.delta``, ``step.stop``, ``interaction.completed``), ended by
  ``data: [DONE]`` (the SDK's sentinel, ``_gaos/interactions.py``). ``interaction.created`` goes out when the model
  starts (the TTFT before thinking), the thought's signature when thinking ends, each ``text`` delta when the same
  request's ``streamGenerateContent`` chunk would.
- State: interactions are stored unless ``"store": false``; ``previous_interaction_id`` continues from the stored
  conversation (its inputs and outputs; the docs: tools, system instruction and config are per interaction).
  A missing or deleted id is 404 ``NOT_FOUND``; continuing from a cancelled or unfinished one is 400
  ``FAILED_PRECONDITION``; ``store: false`` with ``background: true`` is 400 ``INVALID_ARGUMENT`` (the docs: they are
  incompatible). These statuses are this stand-in's choice where the docs name none.
- ``background: true`` answers at once with ``"status": "in_progress"`` and completes when the answer's timeline
  ends; ``cancel`` before then makes it ``cancelled`` (cancelling a finished one is 400 ``FAILED_PRECONDITION``).
- Ids are a hash of the request and how many identical requests came before, so re-authoring a lesson gives the
  same ids and the cassette's diff shows only what changed.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from ..cassettes.cassette import Chunk, Reply, canonical_json
from ..pipeline.api_request import Timed, error_response, json_response, parse_json, send_timed

DONE = "[DONE]"
"""The text of the event that ends an interaction stream (the SDK's ``sentinel``)."""


class Planned(Protocol):
    """What :meth:`.synthetic.SyntheticUpstream.plan` returns for an answer (its ``Answer``)."""

    @property
    def timeline(self) -> list[tuple[float, dict[str, Any]]]:
        """``(offset_s, GenerateContentResponse chunk)`` pairs."""

    @property
    def thoughts(self) -> int:
        """Thinking tokens, generated before the first chunk."""

    @property
    def profile(self) -> Any:
        """The latency profile (its ``tokens_per_s`` paced the thinking)."""

    @property
    def headers(self) -> dict[str, str]:
        """The response headers that label the answer synthetic (its provenance)."""


Planner = Callable[[str, str, dict[str, Any], str], "web.Response | Planned"]
"""``plan(model, method, generate_body, version)``: the synthetic ``generateContent`` answer, or an error reply."""


def _parts(content: Any) -> list[dict[str, Any]]:
    """``generateContent`` parts for an interaction's content: a string, one content object or a list of them."""
    items = [content] if isinstance(content, (str, dict)) else content if isinstance(content, list) else []
    parts: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, str):
            parts.append({"text": item})
        elif isinstance(item, dict) and item.get("type") == "text":
            parts.append({"text": str(item.get("text", ""))})
        elif isinstance(item, dict) and item.get("type") in ("image", "audio", "video", "document") and "data" in item:
            parts.append({"inlineData": {"mimeType": item.get("mime_type", ""), "data": item["data"]}})
    return parts


def turns(value: Any) -> list[dict[str, Any]]:
    """``generateContent`` contents for an interaction's ``input``: a string or content (one user turn), a list of
    contents (one user turn), or a list of steps (``user_input``, ``model_output``, ``function_call``,
    ``function_result``: the conversation resent by the client)."""
    items = value if isinstance(value, list) else [value]
    if not any(isinstance(i, dict) and i.get("type") in STEP_TYPES for i in items):
        return [{"role": "user", "parts": _parts(value)}]
    turns: list[dict[str, Any]] = []
    for step in items:
        kind = step.get("type") if isinstance(step, dict) else None
        if kind == "user_input":
            turn = {"role": "user", "parts": _parts(step.get("content") or [])}
        elif kind == "model_output":
            turn = {"role": "model", "parts": _parts(step.get("content") or [])}
        elif kind == "function_call":
            call = {"name": step.get("name"), "args": step.get("arguments") or {}}
            turn = {"role": "model", "parts": [{"functionCall": call}]}
        elif kind == "function_result":
            result = {"name": step.get("name") or "", "response": {"result": step.get("result")}}
            turn = {"role": "user", "parts": [{"functionResponse": result}]}
        else:
            continue
        if turns and turns[-1]["role"] == turn["role"]:
            turns[-1]["parts"].extend(turn["parts"])
        else:
            turns.append(turn)
    return turns


STEP_TYPES = frozenset(["user_input", "model_output", "function_call", "function_result", "thought"])


def generate_body(body: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``generateContent`` body (camelCase) equivalent to an interaction request after ``history``."""
    config = body.get("generation_config") or {}
    generation: dict[str, Any] = {}
    if config.get("thinking_level"):
        generation["thinkingConfig"] = {"thinkingLevel": str(config["thinking_level"]).upper()}
    for name, camel in (
        ("max_output_tokens", "maxOutputTokens"),
        ("seed", "seed"),
        ("stop_sequences", "stopSequences"),
    ):
        if name in config:
            generation[camel] = config[name]
    result: dict[str, Any] = {"contents": history + turns(body.get("input", ""))}
    if generation:
        result["generationConfig"] = generation
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"]
    if tools:
        declarations = [{k: t[k] for k in ("name", "description", "parameters") if k in t} for t in tools]
        result["tools"] = [{"functionDeclarations": declarations}]
    if body.get("system_instruction"):
        result["systemInstruction"] = {"parts": [{"text": str(body["system_instruction"])}]}
    return result


def _usage(usage_metadata: dict[str, Any]) -> dict[str, Any]:
    """An interaction's ``usage`` from a ``generateContent`` answer's ``usageMetadata``."""
    usage = {
        "total_input_tokens": usage_metadata.get("promptTokenCount", 0),
        "input_tokens_by_modality": [
            {"modality": d["modality"].lower(), "tokens": d["tokenCount"]}
            for d in usage_metadata.get("promptTokensDetails", [])
        ],
        "total_output_tokens": usage_metadata.get("candidatesTokenCount", 0),
        "total_thought_tokens": usage_metadata.get("thoughtsTokenCount", 0),
        "total_tokens": usage_metadata.get("totalTokenCount", 0),
    }
    return {k: v for k, v in usage.items() if v}


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Stored:
    """One interaction in the stand-in's memory.

    Attributes:
        resource: the interaction as ``get`` returns it once complete (``user_input`` step first).
        history: the conversation after it, as ``generateContent`` contents (what a continuation reads).
        done_at: ``time.monotonic()`` when it completes (its answer's last offset); a background one is
            ``in_progress`` until then.
        status: ``cancelled`` once cancelled, else ``None`` (the resource's own status).
    """

    resource: dict[str, Any]
    history: list[dict[str, Any]]
    done_at: float
    status: str | None = None

    def current(self, now: float) -> dict[str, Any]:
        """The resource as it stands at ``now``."""
        if self.status is not None:
            return {**self.resource, "status": self.status, "steps": self.resource["steps"][:1], "usage": {}}
        if now < self.done_at:
            return {**self.resource, "status": "in_progress", "steps": self.resource["steps"][:1], "usage": {}}
        return self.resource


@dataclass
class InteractionsUpstream:
    """The Interactions routes of the synthetic upstream (see the module docstring).

    Args:
        plan: the upstream's ``generateContent`` planner, so both APIs answer from one script and latency model.
    """

    plan: Planner
    interactions: dict[str, Stored] = field(default_factory=dict)
    earlier: Callable[[str], list[dict[str, Any]] | None] = field(default=lambda interaction_id: None)
    """The conversation after an interaction this stand-in did not make (as ``generateContent`` contents), or
    ``None`` when it is unknown: replay's improviser reads it from the cassette's recordings (:mod:`.improviser`)."""
    keep: int | None = None
    """How many interactions to keep at most, the oldest forgotten first; ``None``: all of them."""
    _seen: dict[str, int] = field(default_factory=dict)

    def install(self, app: web.Application) -> None:
        """Add the routes (before the upstream's catch-all)."""
        app.router.add_post("/{version}/interactions", self.create)
        app.router.add_get("/{version}/interactions/{id}", self.get)
        app.router.add_post("/{version}/interactions/{id}/cancel", self.cancel)
        app.router.add_delete("/{version}/interactions/{id}", self.delete)

    def _new_id(self, body: dict[str, Any]) -> str:
        key = canonical_json(body)
        n = self._seen[key] = self._seen.get(key, 0) + 1
        digest = hashlib.sha256(f"{key}|{n}".encode()).digest()
        return "v1_" + base64.urlsafe_b64encode(digest).decode().rstrip("=")[:40]

    def _lookup(self, interaction_id: str) -> Stored | web.Response:
        stored = self.interactions.get(interaction_id)
        if stored is None:
            return error_response(404, f"Interaction '{interaction_id}' was not found.", "NOT_FOUND")
        return stored

    async def create(self, request: web.Request) -> web.StreamResponse:
        """``POST {v}/interactions``: answer as the API does (see the module docstring)."""
        start = time.monotonic()
        body = parse_json(await request.read())  # bad JSON, too deep, a long integer: the API's 400 (ApiError)
        return await send_timed(request, start, self.respond(body, request.match_info["version"], start))

    def respond(self, body: Any, version: str, start: float) -> web.Response | Timed:
        """The reply to a ``create`` with JSON ``body`` that arrived at ``start`` (``time.monotonic()``): the
        interaction, streamed or not, planned ahead (it is stored now, complete once its last offset has passed), or
        the API's error to send at once."""
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return error_response(400, 'An interaction needs a "model" (this stand-in answers models, not agents).')
        store, background = body.get("store", True) is not False, body.get("background") is True
        if background and not store:
            return error_response(400, "store=false is incompatible with background=true.")
        history: list[dict[str, Any]] = []
        previous = body.get("previous_interaction_id")
        if previous:
            found = self._lookup(str(previous))
            earlier = self.earlier(str(previous)) if isinstance(found, web.Response) else None
            if earlier is not None:
                history = earlier
            elif isinstance(found, web.Response):
                return found
            elif (status := found.current(start)["status"]) not in ("completed", "requires_action"):
                return error_response(
                    400,
                    f"Interaction '{previous}' is {status}: only a completed interaction can be continued.",
                    "FAILED_PRECONDITION",
                )
            else:
                history = found.history
        model = body["model"].removeprefix("models/")
        method = "streamGenerateContent" if body.get("stream") else "generateContent"
        inner = generate_body(body, history)
        answer = self.plan(model, method, inner, version)
        if isinstance(answer, web.Response):
            return answer
        interaction_id = self._new_id(body)
        merged = merge(answer.timeline)
        steps = model_steps(merged)
        created = _now()
        resource: dict[str, Any] = {
            "id": interaction_id,
            "status": "requires_action" if any(s["type"] == "function_call" for s in steps) else "completed",
            "model": model,
            "created": created,
            "updated": created,
            "steps": steps,
            "usage": _usage(merged.get("usageMetadata") or {}),
        }
        if previous:
            resource["previous_interaction_id"] = previous
        done_at = answer.timeline[-1][0]
        if store:
            user_step = {"type": "user_input", "content": _contents(inner["contents"][len(history) :])}
            model_turn = merged["candidates"][0]["content"]
            self.interactions[interaction_id] = Stored(
                {**resource, "steps": [user_step, *steps]}, [*inner["contents"], model_turn], start + done_at
            )
        if self.keep is not None:
            for kept in (self.interactions, self._seen):
                for oldest in list(kept)[: max(0, len(kept) - self.keep)]:
                    del kept[oldest]
        reply: Reply
        if background:
            reply = {
                "status": 200,
                "offset_s": 0.0,
                "body": {**resource, "status": "in_progress", "steps": [], "usage": {}},
            }
        elif not body.get("stream"):
            reply = {"status": 200, "offset_s": done_at, "body": resource}
        else:
            chunks: list[Chunk] = [
                {"offset_s": offset, "data": DONE, "raw": True}
                if event == DONE
                else {"offset_s": offset, "data": event, "event": event["event_type"]}
                for offset, event in stream_events(resource, answer)
            ]
            reply = {"status": 200, "chunks": chunks}
        return Timed(reply, answer.headers)

    async def get(self, request: web.Request) -> web.Response:
        """``GET {v}/interactions/{id}``: the stored interaction as it stands now."""
        return self.by_id(request.match_info["id"], "get", time.monotonic())

    async def cancel(self, request: web.Request) -> web.Response:
        """``POST {v}/interactions/{id}/cancel``: a running (background) interaction becomes ``cancelled``."""
        return self.by_id(request.match_info["id"], "cancel", time.monotonic())

    async def delete(self, request: web.Request) -> web.Response:
        """``DELETE {v}/interactions/{id}``: forget it; answers ``{}``."""
        return self.by_id(request.match_info["id"], "delete", time.monotonic())

    def by_id(self, interaction_id: str, action: str, now: float) -> web.Response:
        """The reply to ``action`` (``"get"``, ``"cancel"`` or ``"delete"``) on a stored interaction at ``now``
        (``time.monotonic()``); the API's 404 for an id it does not hold."""
        found = self._lookup(interaction_id)
        if isinstance(found, web.Response):
            return found
        if action == "delete":
            del self.interactions[interaction_id]
            return json_response({})
        if action == "cancel":
            status = found.current(now)["status"]
            if status != "in_progress":
                return error_response(
                    400,
                    f"Interaction '{interaction_id}' is {status}; only a background interaction that is "
                    "still running can be cancelled.",
                    "FAILED_PRECONDITION",
                )
            found.status = "cancelled"
        return json_response(found.current(now))


def merge(timeline: list[tuple[float, dict[str, Any]]]) -> dict[str, Any]:
    """The whole answer of a ``generateContent`` timeline: its texts joined, other parts kept, the last metadata."""
    merged = json.loads(json.dumps(timeline[-1][1]))
    parts = [p for _, c in timeline for p in c["candidates"][0]["content"]["parts"]]
    text = "".join(p["text"] for p in parts if "text" in p)
    merged["candidates"][0]["content"]["parts"] = ([{"text": text}] if text else []) + [
        p for p in parts if "text" not in p
    ]
    return merged


def _signature(value: Any) -> str:
    """An opaque thought signature (base64), stable for the same answer."""
    return base64.b64encode(hashlib.sha256(canonical_json(value).encode()).digest()).decode()


def model_steps(merged: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps a model answer makes: a ``thought`` (Gemini 3 always thinks), then its output or function calls."""
    parts = merged["candidates"][0]["content"]["parts"]
    steps: list[dict[str, Any]] = [{"type": "thought", "signature": _signature(parts)}]
    for part in parts:
        if "functionCall" in part:
            call = part["functionCall"]
            call_id = "call_" + _signature(call)[:12].replace("/", "_").replace("+", "-")
            steps.append({"type": "function_call", "id": call_id, "name": call["name"], "arguments": call["args"]})
        elif "text" in part:
            steps.append({"type": "model_output", "content": [{"type": "text", "text": part["text"]}]})
    return steps


def _contents(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The text contents of ``generateContent`` turns (what a ``user_input`` step shows)."""
    return [{"type": "text", "text": p["text"]} for t in turns for p in t.get("parts", []) if "text" in p]


def stream_events(resource: dict[str, Any], answer: Planned) -> list[tuple[float, Any]]:
    """The SSE events of a streamed interaction with their offsets in seconds from the request.

    ``interaction.created`` and the thought's ``step.start`` when the model starts (the TTFT before thinking),
    the signature and ``step.stop`` when thinking ends (the first chunk's offset), then the output step: a
    ``function_call`` whole, or ``model_output`` with one ``text`` delta per chunk at that chunk's offset; then
    ``interaction.completed`` (no steps, as the API sends it) and ``[DONE]`` at the last offset.
    """
    timeline, steps = answer.timeline, resource["steps"]
    first, last = timeline[0][0], timeline[-1][0]
    begun = round(max(0.0, first - answer.thoughts / answer.profile.tokens_per_s), 4)
    head = {k: resource[k] for k in ("id", "model", "created", "updated")}
    events: list[tuple[float, Any]] = [
        (begun, {"event_type": "interaction.created", "interaction": {**head, "status": "in_progress"}}),
        (begun, {"event_type": "step.start", "index": 0, "step": {"type": "thought"}}),
        (
            first,
            {
                "event_type": "step.delta",
                "index": 0,
                "delta": {"type": "thought_signature", "signature": steps[0]["signature"]},
            },
        ),
        (first, {"event_type": "step.stop", "index": 0}),
    ]
    for index, step in enumerate(steps[1:], 1):
        if step["type"] == "function_call":
            events.append((first, {"event_type": "step.start", "index": index, "step": step}))
        else:
            events.append((first, {"event_type": "step.start", "index": index, "step": {"type": "model_output"}}))
            for offset, chunk in timeline:
                for part in chunk["candidates"][0]["content"]["parts"]:
                    if part.get("text"):
                        delta = {"type": "text", "text": part["text"]}
                        events.append((offset, {"event_type": "step.delta", "index": index, "delta": delta}))
        events.append((last, {"event_type": "step.stop", "index": index}))
    completed = {**head, "status": resource["status"], "usage": resource["usage"]}
    events.append((last, {"event_type": "interaction.completed", "interaction": completed}))
    events.append((last, DONE))
    return events
