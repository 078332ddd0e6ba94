"""Gemini REST wire format: error bodies, JSON replies and server-sent-event framing, as the real API sends them.

Pure data and bytes, no HTTP library: the layer every other module of the server stands on (``docs/server.md``).
Facts checked against google-genai 3.6.1 (see ``docs/wire.md``): errors are ``{"error": {"code", "message",
"status", "details"?}}``; a stream is ``text/event-stream`` with one ``data: <json>\\r\\n\\r\\n`` event per chunk and no
end marker (the connection closing ends it).
"""

from __future__ import annotations

import json
import re
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
IMPROVISED_HEADER = "x-workbook-improvised"
"""A response header by which replay labels an improvised answer (no recording matched); its JSON is the answer's
provenance (``"source": "improvised"``, the latency model, why it was improvised)."""
UNSCRIPTED_HEADER = "x-workbook-unscripted"
"""Set on a synthetic upstream's answer to a prompt its script lacks, so the recorder does not keep it."""
JSON_CONTENT_TYPE = "application/json; charset=UTF-8"
FILE_NOT_ACTIVE = "is not in an ACTIVE state and usage is not allowed"
"""The real API's words for a call that names a file still ``PROCESSING`` (400 ``FAILED_PRECONDITION``, "The File ID
is not in an ACTIVE state and usage is not allowed."); replay says the same (:mod:`.files_api`)."""


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


MODEL_METHOD = re.compile(r"^models/[^/:]+:(generateContent|streamGenerateContent|countTokens|batchGenerateContent)$")
"""A version-less model-call path; its group is the method, whose body :func:`check_request_body` checks."""


def check_request_body(api_path: str, body: Any) -> None:
    """Refuse a model call's body whose fields have the wrong JSON type, naming the field as the real API does.

    Only the structure every part of the server walks is checked (``contents[].parts[]``, ``systemInstruction``,
    ``generateContentRequest``, ``batch.inputConfig.requests.requests[].request``, the config objects); values are
    the upstream's to judge. Either spelling of a field is read (``system_instruction`` or ``systemInstruction``).

    Args:
        api_path: the path without its version segment, e.g. ``models/gemini-3.8-flash:generateContent``; other
            paths are not checked.
        body: the parsed JSON body, or ``None``.

    Raises:
        ApiError: 400 ``INVALID_ARGUMENT`` "Invalid value at 'contents[0].parts': expected a list of Part objects, got
            5."
    """
    method = MODEL_METHOD.match(api_path)
    if method is None or body is None:
        return
    if method.group(1) == "batchGenerateContent":
        _check_batch(body)
    elif method.group(1) == "countTokens":
        expect(body, dict, "", "a CountTokensRequest object")
        inner = _get(body, "generateContentRequest")
        if inner is not None:
            _check_generate(inner, "generateContentRequest")
        _check_contents(_get(body, "contents"), "contents")
    else:
        _check_generate(body, "")


def _get(obj: dict[str, Any], name: str) -> Any:
    """Field ``name`` (camelCase) of ``obj``, or its snake_case spelling."""
    return obj[name] if name in obj else obj.get(re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower())


def expect(value: Any, kind: type | tuple[type, ...], where: str, what: str) -> None:
    """Refuse ``value`` unless it is a ``kind``.

    Raises:
        ApiError: 400 "Invalid value at '<where>': expected <what>, got <value>." (``where`` empty: the whole body).
    """
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):  # True is an int too
        shown = json.dumps(value)[:60] if not isinstance(value, (dict, list)) else type(value).__name__
        at = f" at '{where}'" if where else ""
        raise ApiError(400, f"Invalid value{at}: expected {what}, got {shown}.")


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _check_generate(body: Any, where: str) -> None:
    expect(body, dict, where, "a GenerateContentRequest object")
    _check_contents(_get(body, "contents"), _join(where, "contents"))
    instruction = _get(body, "systemInstruction")
    if instruction is not None:
        _check_content(instruction, _join(where, "systemInstruction"))
    for name in ("generationConfig", "toolConfig"):
        if _get(body, name) is not None:
            expect(_get(body, name), dict, _join(where, name), "an object")
    for name in ("tools", "safetySettings"):
        if _get(body, name) is not None:
            expect(_get(body, name), list, _join(where, name), "a list")


def _check_contents(contents: Any, where: str) -> None:
    if contents is None:
        return
    expect(contents, list, where, "a list of Content objects")
    for i, content in enumerate(contents):
        _check_content(content, f"{where}[{i}]")


def _check_content(content: Any, where: str) -> None:
    expect(content, dict, where, 'a Content object ({"role": ..., "parts": [...]})')
    if _get(content, "role") is not None:
        expect(_get(content, "role"), str, f"{where}.role", "a string")
    parts = _get(content, "parts")
    if parts is not None:
        expect(parts, list, f"{where}.parts", "a list of Part objects")
        for j, part in enumerate(parts):
            expect(part, dict, f"{where}.parts[{j}]", 'a Part object ({"text": ...}, {"fileData": ...}, ...)')


def _check_batch(body: Any) -> None:
    expect(body, dict, "", 'an object {"batch": {...}}')
    batch = _get(body, "batch")
    if batch is None:
        return
    expect(batch, dict, "batch", "a GenerateContentBatch object")
    config = _get(batch, "inputConfig")
    if config is None:
        return
    expect(config, dict, "batch.inputConfig", 'an InputConfig object ({"requests": {...}} or {"fileName": ...})')
    requests = _get(config, "requests")
    if requests is None:
        return
    where = "batch.inputConfig.requests"
    expect(requests, dict, where, 'an InlinedRequests object ({"requests": [{"request": {...}}, ...]})')
    items = _get(requests, "requests")
    if items is None:
        return
    expect(items, list, f"{where}.requests", "a list of InlinedRequest objects")
    for i, item in enumerate(items):
        expect(item, dict, f"{where}.requests[{i}]", 'an InlinedRequest object ({"request": {...}})')
        if _get(item, "request") is not None:
            _check_generate(_get(item, "request"), f"{where}.requests[{i}].request")
