"""Gemini's OpenAI-compatible endpoint: ``{v}/openai/chat/completions`` and ``{v}/openai/models``.

A service (the services layer, ``docs/server.md``), introduced in ``08_protocols``. Gemini serves the OpenAI Chat
Completions protocol at ``https://generativelanguage.googleapis.com/v1beta/openai/``
(ai.google.dev/gemini-api/docs/openai, a stored copy read 2026-12-01), used as
``OpenAI(base_url=".../v1beta/openai/", api_key=GEMINI_API_KEY)``; the key travels as ``Authorization: Bearer``.
A streamed answer (``"stream": true``) is ``data: <chat.completion.chunk>`` events ended by ``data: [DONE]``;
with ``stream_options: {"include_usage": true}`` the last chunk before ``[DONE]`` has empty ``choices`` and the
``usage``.

What this server does with it:

- ``POST /<cassette>/v1beta/openai/chat/completions``: the body must be an object with a ``model`` and a non-empty
  ``messages`` list, else 400. Then it goes to the backend like any model call: replay plays the recording whose turn
  it is (every event at its recorded offset, ``[DONE]`` included: it is a cassette chunk with ``"raw": true``); record
  mode forwards it to ``UPSTREAM/v1beta/openai/chat/completions`` with the client's ``Authorization`` header (the
  recorder never writes headers into a cassette) and records each event as it arrives.
- ``GET /<cassette>/v1beta/openai/models`` and ``.../models/<id>``: answered here in replay, from
  :data:`helpers.models.MODELS` in the endpoint's shape (``{"object": "list", "data": [{"id": "models/...",
  "object": "model", "owned_by": "google"}]}``); forwarded and recorded in record mode.
- Errors: the endpoint sends Gemini's error object inside a JSON *array*, ``[{"error": {"code", "message",
  "status"}}]`` (as users of the endpoint report it, e.g. SuzumiyaAkizuki/ComfyUI-NewBie-LLM-Formatter issue 3,
  2026-01-10); the ``openai`` SDK raises ``openai.NotFoundError`` etc. with that list as ``e.body``. This server's own
  refusals on these routes (no recording, bad body, a rate limit) take that shape too. Faults injected through
  ``helpers.control`` keep the native shape (they strike before any service).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ...models import MODELS
from ..pipeline.api_request import API, Backend, Mode, error_response, json_response

ROOT = "/{cassette}/{version:v1beta}/openai"
"""The routes' common prefix: the cassette, then the API path the real endpoint has."""


def error_list(body: Any) -> Any:
    """An error body in the endpoint's shape: a native ``{"error": ...}`` wrapped in a one-item list; any other
    body (already a list, or not an error) unchanged."""
    return [body] if isinstance(body, dict) and "error" in body else body


def model_entry(model: str) -> dict[str, Any]:
    """One model as ``GET .../openai/models`` lists it (the ``openai`` SDK's ``Model``: id, object, owned_by)."""
    return {"id": f"models/{model}", "object": "model", "created": 0, "owned_by": "google"}


def model_list(models: Any) -> dict[str, Any]:
    """The ``GET .../openai/models`` body for the model ids ``models``."""
    return {"object": "list", "data": [model_entry(m) for m in models]}


def body_problem(body: Any) -> str | None:
    """Why a chat-completions body is not one the endpoint takes (its 400's message), or ``None``."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object with 'model' and 'messages'."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "'model' is required: a model id such as helpers.FLASH."
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty list of {'role', 'content'} objects."
    return None


class OpenAICompatService:
    """The OpenAI-compatible routes (see the module docstring).

    Args:
        mode: replay answers ``models`` here; a record mode forwards it (the catch-all route records it).
        backend: the replay or record backend, which answers chat completions.
    """

    def __init__(self, mode: Mode, backend: Backend) -> None:
        self.mode, self.backend = mode, backend

    def install(self, app: web.Application) -> None:
        """Add the routes; call it before :class:`.models_api.ModelService`'s catch-all."""
        app.router.add_post(ROOT + "/chat/completions", self.chat_completions)
        if not self.mode.records:
            app.router.add_get(ROOT + "/models", self.list_models)
            app.router.add_get(ROOT + "/models/{model:.+}", self.get_model)

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        """Answer one chat completion (streamed or not) through the backend; refusals in the endpoint's shape."""
        api = request[API]
        problem = body_problem(api.body)
        if problem is not None:
            return _as_list(error_response(400, problem))
        response = await self.backend.answer(request, api)
        return _as_list(response) if isinstance(response, web.Response) and response.status >= 400 else response

    async def list_models(self, request: web.Request) -> web.Response:
        """The models the workbook uses, as the endpoint lists them."""
        return json_response(model_list(MODELS))

    async def get_model(self, request: web.Request) -> web.Response:
        """One model, or 404 in the endpoint's shape."""
        model = request.match_info["model"].removeprefix("models/")
        if model not in MODELS:
            message = f"models/{model} is not found; GET .../openai/models lists the models this server knows."
            return _as_list(error_response(404, message))
        return json_response(model_entry(model))


def _as_list(response: web.Response) -> web.Response:
    """``response`` with its JSON error body in the endpoint's list shape (a body that is not JSON stays)."""
    try:
        body = json.loads(response.body) if isinstance(response.body, bytes) else None
    except json.JSONDecodeError:
        return response
    if not isinstance(body, dict) or "error" not in body:
        return response
    headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-type", "content-length")}
    return json_response(error_list(body), status=response.status, headers=headers)
