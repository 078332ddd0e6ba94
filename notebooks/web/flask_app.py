"""Lesson 07_web's SSE endpoint in Flask: the same ``GET /stream`` as ``app.py``, as a sync generator.

Run it from the repository's root (``flask run`` serves each request in a thread of its own)::

    python -m flask --app notebooks/web/flask_app.py run --port 8001

Like ``app.py`` it reads ``GEMINI_API_KEY`` and ``GOOGLE_GEMINI_BASE_URL`` from the environment, and sends one event
per model chunk (``{"text": ...}``), then ``done`` with the usage metadata, or ``error`` with a message.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2
from flask import Flask, Response, request, stream_with_context
from google import genai
from google.genai import errors

from helpers.models import FLASH

MODEL = FLASH
RETRY_MS = 1000
STREAM_BROKE = (errors.APIError, httpx2.TransportError)
"""What a sync model stream raises when it fails: an API error, or a dropped or timed-out connection."""

client = genai.Client()
app = Flask(__name__)


def sse(data: Any, event: str | None = None, id: str | None = None) -> str:
    """One server-sent event: an optional ``event:`` and ``id:`` line, ``data:`` as JSON, then a blank line."""
    fields = [("event", event), ("id", id), ("data", json.dumps(data))]
    return "".join(f"{name}: {value}\n" for name, value in fields if value is not None) + "\n"


@app.get("/stream")
def stream() -> Response:
    """Forward the model's stream for ``?prompt=`` as server-sent events."""
    prompt = request.args.get("prompt", "")
    if not prompt:
        return Response(sse({"message": "Send a prompt: /stream?prompt=..."}, event="error"), status=400)

    def events() -> Iterator[str]:
        yield f"retry: {RETRY_MS}\n\n"  # no data, so no event in the page: it sets the reconnection delay
        started = time.perf_counter()
        ttft_s, last, n = None, None, 0
        try:
            for chunk in client.models.generate_content_stream(model=MODEL, contents=prompt):
                last = chunk
                if chunk.text:
                    if ttft_s is None:
                        ttft_s = time.perf_counter() - started
                    n += 1
                    yield sse({"text": chunk.text}, id=str(n))
        except STREAM_BROKE as e:
            yield sse({"message": str(e)}, event="error")
            return
        usage = last.usage_metadata.model_dump(mode="json", exclude_none=True) if last and last.usage_metadata else {}
        server = {"ttft_s": ttft_s, "ttlt_s": time.perf_counter() - started, "threads": threading.active_count()}
        yield sse({"usage_metadata": usage, "server": server}, event="done")

    # Flask adds neither header: no-cache keeps caches from storing the stream, X-Accel-Buffering stops nginx buffering.
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return Response(stream_with_context(events()), mimetype="text/event-stream", headers=headers)
