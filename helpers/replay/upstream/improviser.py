"""Replay's improviser: a request no recording matches, answered by a labelled offline stand-in.

Introduced in ``00_setup``. With ``serve --unmatched improvise`` (what ``helpers.setup`` chooses in JupyterLab;
never under tests, nbval or CI), the replay backend (:class:`helpers.replay.backends.playback.Replayer`) asks
:meth:`Improviser.improvise` for an exchange when nothing in the cassette matches a request, and plays it like a
recording. The answer comes from the synthetic upstream's own planning (:meth:`.synthetic.SyntheticUpstream.respond`,
:meth:`.synthetic_interactions.InteractionsUpstream.respond`, :meth:`.synthetic_openai.OpenAIUpstream.respond`), so it
is in the API's exact wire shape and follows the requested model's latency profile (:data:`helpers.models.PROFILES`:
TTFT, thinking tokens per ``thinking_level``, output speed), with ``usage_metadata`` counted as the synthetic upstream
counts tokens. What is improvised:

- ``generateContent``, ``streamGenerateContent`` and ``countTokens``; ``interactions.create`` (streamed or not, and
  continuing an interaction the cassette recorded or a stand-in made), and ``get``, ``cancel`` and ``delete`` of a
  stand-in's interaction; chat completions of the OpenAI-compatible endpoint (streamed or not).
- Its text starts, every time, with :data:`helpers.replay.wire.defaults.STAND_IN_LABEL`, then says in a sentence
  what it is and how to record the real answer; filler sentences (numbered, saying what they are) make it up to a
  length drawn for the prompt (log-normal, median :data:`MEDIAN_TOKENS` tokens: an assumption, a short answer's
  length, not a figure Google publishes). ``maxOutputTokens`` and ``stopSequences`` cut it as they cut any answer.
- Deterministic: the same request gets the same text, chunks, usage and offsets every time (its draws are seeded by
  the canonical request, as a ``seed`` pins a synthetic answer). Interaction ids still differ per create.
- The API's own refusals stay refusals: an unknown model is the API's 404 ``NOT_FOUND``, a thinking level the model
  does not take its 400 (:func:`.synthetic.invalid_request`).

Refused, with the 404 ``NOT_FOUND`` that names the nearest recording plus the reason (:meth:`Improviser.improvise`
returns it): a call naming a Files API file the server does not hold (no text about a file nobody uploaded is
honest), a background interaction (nothing would run it), and any other route (uploads, batches, model lists). The
Files and Batch services refuse unknown files and batches before any of this, as they always have.

Nothing improvised is written anywhere: replay never writes a cassette. What the improviser keeps is bounded: at most
:data:`MAX_INTERACTIONS` stand-in interactions per cassette, the oldest forgotten first.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import time
from collections.abc import Collection
from typing import Any

from aiohttp import web

from ..cassettes.cassette import (
    Cassette,
    Exchange,
    RecordedRequest,
    Reply,
    camel_case,
    canonical_json,
    canonical_query,
)
from ..pipeline.api_request import ApiRequest, Timed
from ..services.files_api import FileService
from ..services.interactions_api import PATH, exchange_ids
from ..wire.defaults import STAND_IN_LABEL
from ..wire.framing import SYNTHETIC_HEADER
from .synthetic import CHARS_PER_TOKEN, Script, ScriptEntry, SyntheticUpstream, provenance
from .synthetic_interactions import InteractionsUpstream, generate_body, turns
from .synthetic_openai import OpenAIUpstream

MODEL_CALL = re.compile(r"^models/([^/:]+):(generateContent|streamGenerateContent|countTokens)$")
"""A version-less path the improviser answers through the synthetic ``generateContent``; groups: model, method."""
MEDIAN_TOKENS = 160
"""The median length of a stand-in answer, tokens (an assumption: a short answer's length)."""
LENGTH_SIGMA = 0.3
"""The log-normal shape of a stand-in's drawn length."""
MAX_INTERACTIONS = 256
"""Stand-in interactions kept per cassette (for ``get`` and continuing); the oldest go first."""
SURFACES = (
    "only generateContent, streamGenerateContent, countTokens, the Interactions API and chat completions are "
    "improvised, and this is none of them"
)


def stand_in_text(model: str, prompt: str) -> str:
    """The text of the stand-in answer to ``prompt`` on ``model``: :data:`STAND_IN_LABEL` first, one sentence on what
    it is and how to record the real answer, then numbered filler sentences up to a length drawn for the prompt
    (log-normal around :data:`MEDIAN_TOKENS` tokens at 4 characters a token). The same arguments give the same text."""
    rng = random.Random(int(hashlib.sha256(canonical_json([model, prompt]).encode()).hexdigest(), 16))
    target = CHARS_PER_TOKEN * MEDIAN_TOKENS * rng.lognormvariate(0.0, LENGTH_SIGMA)
    head = (
        f"{STAND_IN_LABEL} The replay server wrote this text in place of {model}'s answer: it arrives with the "
        "model's modelled timing and is counted as the workbook counts tokens, but its words are not the model's. "
        "To get the real answer, record it: start Jupyter with GEMINI_API_KEY set and WORKBOOK_MODE=record, and run "
        "the cell again (00_setup shows how)."
    )
    filler = "Filler sentence {} of {} stands in for the rest of a typical answer."
    count = max(0, math.ceil((target - len(head)) / (len(filler) + 1)))
    return " ".join([head, *(filler.format(i, count) for i in range(1, count + 1))])


class StandInScript(Script):
    """A script with an entry for every prompt: its :func:`stand_in_text`."""

    def find(self, model: str, prompt: str) -> ScriptEntry:
        return ScriptEntry(prompt, [stand_in_text(model, prompt)], model)


def _recorded_steps(response: Any) -> list[dict[str, Any]]:
    """The model's steps in a recorded ``interactions.create`` answer: a JSON reply's ``steps``, or the steps a
    stream's ``step.start`` and ``step.delta`` (text) events build, each step's text deltas joined."""
    if "chunks" not in response:
        body = response.get("body")
        return list(body.get("steps") or []) if isinstance(body, dict) else []
    steps: dict[int, dict[str, Any]] = {}
    for chunk in response["chunks"]:
        event = chunk.get("data")
        kind = event.get("event_type") if isinstance(event, dict) else None
        if kind == "step.start":
            steps[event["index"]] = {**event["step"]}
        elif kind == "step.delta" and (event.get("delta") or {}).get("type") == "text":
            step = steps.setdefault(event["index"], {"type": "model_output"})
            content = step.setdefault("content", [{"type": "text", "text": ""}])
            content[-1]["text"] += event["delta"]["text"]  # the deltas of one step are one text, as a reply has it
    return [steps[i] for i in sorted(steps)]


def recorded_conversation(cassette: Cassette, interaction_id: str, depth: int = 0) -> list[dict[str, Any]] | None:
    """The conversation (``generateContent`` contents) after the recorded interaction ``interaction_id``: its own
    input and answer after those of the interactions it continued. ``None`` when the cassette did not record its
    creation. Follows at most 100 links of ``previous_interaction_id``."""
    for exchange in cassette.exchanges:
        request = exchange.request
        if request["method"] != "POST" or request["path"] != PATH or interaction_id not in exchange_ids(exchange):
            continue
        body = request["body"] if isinstance(request["body"], dict) else {}
        previous = body.get("previous_interaction_id")
        history = (recorded_conversation(cassette, str(previous), depth + 1) if previous and depth < 100 else []) or []
        steps = _recorded_steps(exchange.response)
        return [*generate_body(body, history)["contents"], *(turns(steps) if steps else [])]
    return None


class Improviser:
    """Replay's stand-in for requests no recording matches (see the module docstring); a
    :class:`helpers.replay.backends.playback.Improviser`.

    Args:
        files: the server's Files service: a call naming a file it does not hold is not improvised.
    """

    def __init__(self, files: FileService) -> None:
        self.files = files
        self.upstream = SyntheticUpstream(StandInScript(), redraw=False)
        self.openai = OpenAIUpstream(self.upstream)
        self._interactions: dict[str, InteractionsUpstream] = {}

    def interaction_ids(self, cassette: str) -> Collection[str]:
        """The ids of the stand-in interactions of ``cassette`` still kept."""
        found = self._interactions.get(cassette)
        return found.interactions.keys() if found is not None else ()

    def improvise(self, cassette: Cassette, api: ApiRequest) -> Exchange | str:
        """A labelled stand-in exchange answering ``api`` (see the module docstring), or why it is refused."""
        answer = self._answer(cassette, api)
        if isinstance(answer, str):
            return answer
        if isinstance(answer, web.Response):
            body = answer.body if isinstance(answer.body, bytes) else b"null"
            reply: Reply = {"status": answer.status, "offset_s": 0.0, "body": json.loads(body)}
            made = provenance(None)
        else:
            reply, made = answer.reply, json.loads(answer.headers[SYNTHETIC_HEADER])
        why = f"no recording in cassette '{cassette.name}' matches this request"
        request = RecordedRequest(method=api.method, path=api.api_path, query=canonical_query(api.query), body=api.body)
        return Exchange(request, reply, {**made, "source": "improvised", "why": why})

    def _answer(self, cassette: Cassette, api: ApiRequest) -> web.Response | Timed | str:
        path, body = api.api_path, api.body
        unheld = self.files.unheld(cassette.name, body)
        if unheld:
            return (
                f"it names {', '.join(unheld)}, which this server does not hold (never uploaded in this run, deleted "
                "or expired): upload the file first and pass the File that client.files.upload returns."
            )
        call = MODEL_CALL.match(path)
        if call is not None and api.method == "POST":
            model, method = call.groups()
            return self.upstream.respond(model, method, camel_case(body or {}), api.version)
        if path == "openai/chat/completions" and api.method == "POST":
            return self.openai.respond(body)
        if path == PATH and api.method == "POST":
            if isinstance(body, dict) and body.get("background") is True:
                return "a background interaction runs on the server, and nothing would run a stand-in; record it."
            interactions = self._interactions.setdefault(
                cassette.name, InteractionsUpstream(self.upstream.plan, keep=MAX_INTERACTIONS)
            )
            interactions.earlier = lambda interaction_id: recorded_conversation(cassette, interaction_id)
            return interactions.respond(body, api.version, time.monotonic())
        if path.startswith(PATH + "/"):
            return self._by_id(cassette.name, api)
        return SURFACES

    def _by_id(self, cassette: str, api: ApiRequest) -> web.Response | str:
        """``get``, ``cancel`` or ``delete`` of a stand-in interaction; a recorded one's is refused (it was recorded
        and this call on it was not)."""
        interaction_id, _, action = api.api_path.removeprefix(PATH + "/").partition("/")
        if interaction_id not in self.interaction_ids(cassette):
            return "that interaction was recorded and this call on it was not; record it."
        if api.method == "POST" and action == "cancel":
            return self._interactions[cassette].by_id(interaction_id, "cancel", time.monotonic())
        if api.method in ("GET", "DELETE") and not action:
            return self._interactions[cassette].by_id(interaction_id, api.method.lower(), time.monotonic())
        return SURFACES
