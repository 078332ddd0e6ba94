"""Lesson 07_web's app: a page that streams Gemini's answer into the browser, and the SSE endpoint behind it.

Run it from the repository's root and open http://127.0.0.1:8000/::

    python -m uvicorn app:app --app-dir notebooks/web --port 8000

``genai.Client()`` reads ``GEMINI_API_KEY`` and ``GOOGLE_GEMINI_BASE_URL`` from the environment, as the notebook's
setup cell sets them: a replay server's base URL (``http://HOST:PORT/07_web/``) plays the lesson's recording; a key
and no base URL call the live API.

Routes:
    GET /                    the page: ``#prompt`` (pre-filled), ``#start``, ``#answer``.
    GET /stream?prompt=...   ``text/event-stream``: ``retry: 1000``; one event per model chunk, data
                             ``{"text": ...}``, ``id`` the chunk's number; then an event ``done`` with data
                             ``{"usage_metadata": {...}, "server": {"ttft_s", "ttlt_s", "threads"}}``, or an event
                             ``error`` with data ``{"message": ...}``.
"""

from __future__ import annotations

import asyncio
import html
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import aiohttp
from fastapi import FastAPI, Header, Query
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from google import genai
from google.genai import errors

from helpers.models import FLASH

HERE = Path(__file__).resolve().parent
DEFAULT_PROMPT = "Explain how a rainbow forms, in two short paragraphs."
"""The prompt the page starts with; its stream is recorded in ``notebooks/cassettes/07_web.json``."""
MODEL = FLASH
RETRY_MS = 1000
"""Sent as ``retry:`` first thing: how long a browser waits before it reconnects a dropped stream (its own default is
about 3 s)."""
MAX_PROMPT_CHARS = 2000
STREAM_BROKE = (errors.APIError, aiohttp.ClientError, asyncio.TimeoutError)
"""What a model stream raises when it fails: an API error (before or during the stream), or a dropped connection."""

try:
    client = genai.Client()
except ValueError as e:  # no key anywhere: say what to set rather than fail deep inside the SDK
    raise SystemExit(
        f"app.py: {e} Set GEMINI_API_KEY (and GOOGLE_GEMINI_BASE_URL for a replay server), as 07_web's setup cell does."
    ) from None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await client.aio.aclose()


app = FastAPI(title="07_web: stream Gemini to a browser", lifespan=lifespan)


@app.get("/", response_class=HTMLResponse)
async def page() -> str:
    """The page, with the default prompt in ``#prompt``."""
    return (HERE / "index.html").read_text(encoding="utf-8").replace("{{prompt}}", html.escape(DEFAULT_PROMPT))


@app.get("/stream.js")
async def script() -> FileResponse:
    """The page's EventSource client."""
    return FileResponse(HERE / "stream.js", media_type="text/javascript")


@app.get("/stream", response_class=EventSourceResponse)
async def stream(
    prompt: Annotated[str, Query(min_length=1, max_length=MAX_PROMPT_CHARS)],
    last_event_id: Annotated[str | None, Header()] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Forward the model's stream for ``prompt`` as server-sent events (see the module docstring).

    EventSourceResponse adds ``Cache-Control: no-cache`` and ``X-Accel-Buffering: no`` (no proxy buffering). When the
    browser goes away, FastAPI cancels this generator, and the cancellation closes the model stream.

    A request with ``Last-Event-ID`` is a browser reconnecting after the connection dropped: that stream was cancelled
    with its connection, so it gets an ``error`` event instead of a second, paid, answer appended to the first.
    """
    yield ServerSentEvent(retry=RETRY_MS)  # no data, so no event in the page: it sets the reconnection delay
    if last_event_id is not None:
        yield ServerSentEvent(
            event="error",
            data={"message": f"The connection dropped after chunk {last_event_id}. Press Start to ask again."},
        )
        return
    started = time.perf_counter()
    ttft_s = None
    last = None
    n = 0
    try:
        async for chunk in await client.aio.models.generate_content_stream(model=MODEL, contents=prompt):
            last = chunk
            if chunk.text:
                if ttft_s is None:
                    ttft_s = time.perf_counter() - started
                n += 1
                yield ServerSentEvent(data={"text": chunk.text}, id=str(n))
    except STREAM_BROKE as e:
        yield ServerSentEvent(event="error", data={"message": describe(e)})
        return
    usage = last.usage_metadata.model_dump(mode="json", exclude_none=True) if last and last.usage_metadata else {}
    server = {"ttft_s": ttft_s, "ttlt_s": time.perf_counter() - started, "threads": threading.active_count()}
    yield ServerSentEvent(event="done", data={"usage_metadata": usage, "server": server})


def describe(error: BaseException) -> str:
    """An error as the page shows it: ``503 UNAVAILABLE: ...`` for the API's errors, else its class and message."""
    if isinstance(error, errors.APIError):
        return f"{error.code} {error.status}: {error.message}"
    return f"the model stream broke ({type(error).__name__}: {error or 'no details'})"
