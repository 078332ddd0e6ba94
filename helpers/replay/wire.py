"""Gemini REST wire format: error bodies, JSON replies and server-sent-event framing, as the real API sends them.

Pure data and bytes, no HTTP library: the layer every other module of the server stands on (``docs/server.md``).
Facts checked against google-genai 3.4.0 (see ``docs/wire.md``): errors are ``{"error": {"code", "message",
"status", "details"?}}``; a stream is ``text/event-stream`` with one ``data: <json>\\r\\n\\r\\n`` event per chunk and no
end marker (the connection closing ends it).
"""

from __future__ import annotations

import json
from typing import Any

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


class ApiError(Exception):
    """A request the server refuses, raised anywhere below the service that answers it and sent as the API's error.

    Attributes:
        code: the HTTP status.
        status: the ``google.rpc.Code`` name (defaults to the canonical one for ``code``).
        details: the error's ``details`` list, if any.
        headers: extra response headers (e.g. ``x-goog-upload-status`` on upload errors).
    """

    def __init__(
        self,
        code: int,
        message: str,
        status: str | None = None,
        details: list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.details = code, message, status, details
        self.headers = headers or {}

    def to_json(self) -> dict[str, Any]:
        """The error body, ``{"error": {...}}``."""
        return error_json(self.code, self.message, self.status, self.details)


def json_bytes(body: Any) -> bytes:
    """A JSON reply's bytes, formatted as the API formats them (two-space indent, UTF-8)."""
    return json.dumps(body, indent=2, ensure_ascii=False).encode()


def sse_event(data: Any, *, event: str | None = None, raw: bool = False) -> bytes:
    """One server-sent event, framed as Gemini frames a ``GenerateContentResponse``: ``data: <json>\\r\\n\\r\\n``.

    Args:
        data: the event's JSON value; with ``raw``, its text as sent (a ``str``, such as the ``[DONE]`` that ends an
            OpenAI-style stream).
        event: the SSE ``event:`` field (an event type), sent on its own line before the data when given.
    """
    head = f"event: {event}\r\n".encode() if event is not None else b""
    text = data if raw else json.dumps(data, ensure_ascii=False, separators=(",", ": "))
    return head + b"data: " + text.encode() + b"\r\n\r\n"


def parse_sse_event(lines: list[bytes]) -> tuple[str | None, Any, bool]:
    """One received server-sent event's ``(event, data, raw)`` from its lines (line endings stripped).

    ``data`` is the JSON value of the event's joined ``data:`` lines; when that text is not JSON (``[DONE]``) it is
    the text itself and ``raw`` is True. ``event`` is the ``event:`` field, or None. Comments and ``id:``/``retry:``
    lines are ignored (no API this server speaks sends them).
    """
    event: str | None = None
    data: list[bytes] = []
    for line in lines:
        field, _, value = line.partition(b":")
        value = value[1:] if value.startswith(b" ") else value
        if field == b"event":
            event = value.decode()
        elif field == b"data":
            data.append(value)
    text = b"\n".join(data).decode()
    try:
        return event, json.loads(text), False
    except json.JSONDecodeError:
        return event, text, True


def camel(name: str) -> str:
    """A proto field name in its JSON spelling: ``generation_config`` -> ``generationConfig`` (camelCase stays).

    Proto JSON accepts both spellings; the SDK sends camelCase, except inside ``fileData`` and an upload's metadata.
    """
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)
