"""Gemini REST wire format: error bodies, JSON replies and server-sent-event framing, as the real API sends them.

Facts checked against google-genai 3.4.0 (see ``docs/wire.md``): errors are ``{"error": {"code", "message",
"status", "details"?}}``; a stream is ``text/event-stream`` with one ``data: <json>\\r\\n\\r\\n`` event per chunk and no
end marker (the connection closing ends it).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
"""The canonical ``google.rpc.Code`` name the API reports with each HTTP status."""

SSE_CONTENT_TYPE = "text/event-stream"
SYNTHETIC_HEADER = "x-workbook-synthetic"
"""A response header by which a synthetic upstream labels its answers; its JSON becomes the exchange's provenance."""
UNSCRIPTED_HEADER = "x-workbook-unscripted"
"""Set on a synthetic upstream's answer to a prompt its script lacks, so the recorder does not keep it."""
JSON_CONTENT_TYPE = "application/json; charset=UTF-8"
FILE_NOT_ACTIVE = "is not in an ACTIVE state and usage is not allowed"
"""The real API's words for a call that names a file still ``PROCESSING`` (400 ``FAILED_PRECONDITION``, "The File ID
is not in an ACTIVE state and usage is not allowed."); replay says the same (:mod:`.files`)."""


def error_json(code: int, message: str, status: str | None = None, details: list[Any] | None = None) -> dict:
    """The API's error body. ``status`` defaults to the canonical name for ``code`` (e.g. 429 RESOURCE_EXHAUSTED)."""
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "status": status or STATUS_NAMES.get(code, "UNKNOWN"),
    }
    if details:
        error["details"] = details
    return {"error": error}


def error_response(
    code: int,
    message: str,
    status: str | None = None,
    details: list[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An HTTP error reply in the API's JSON shape; the SDK raises ``errors.ClientError`` (4xx) or ``ServerError``."""
    return json_response(error_json(code, message, status, details), status=code, headers=headers)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON reply formatted as the API formats it (two-space indent)."""
    return web.Response(
        status=status,
        body=json.dumps(body, indent=2, ensure_ascii=False).encode(),
        headers={"Content-Type": JSON_CONTENT_TYPE, **(headers or {})},
    )


def sse_event(data: Any) -> bytes:
    """One server-sent event carrying one ``GenerateContentResponse`` chunk, framed as the API frames it."""
    return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ": ")).encode() + b"\r\n\r\n"
