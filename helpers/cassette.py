"""Cassettes: the recorded exchanges a replay server plays back, one JSON file per notebook.

The format is documented in ``docs/cassettes.md``. In short: ``{"format": 1, "cassette": NAME, "description": ...,
"exchanges": [...]}`` where each exchange holds the ``request`` (method, version-less path, query, JSON body), the
``response`` (status, then either ``offset_s`` + ``body`` or a list of ``chunks`` each with its ``offset_s``) and its
``provenance`` (recorded from the live API, or synthetic and the latency model it follows).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = 1
"""The cassette format version this code reads and writes."""

VERSION_SEGMENT = re.compile(r"^(upload/|download/)?v\d+(alpha|beta)?\d*/")
"""An API version segment at the start of a path, after an optional ``upload/`` or ``download/`` prefix."""

_IGNORED_QUERY = {"key"}


class CassetteError(Exception):
    """A cassette is missing, unreadable or malformed. The message names the file, the position and the fix."""


def default_dir() -> Path:
    """The workbook's own recordings folder, ``notebooks/cassettes`` (or ``$WORKBOOK_CASSETTES`` when set)."""
    env = os.environ.get("WORKBOOK_CASSETTES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "notebooks" / "cassettes"


def strip_version(path: str) -> str:
    """``v1beta/models/m:generateContent`` -> ``models/m:generateContent``; ``upload/v1/files`` -> ``upload/files``.

    Recordings match across API versions, since the SDK's default version changed between releases (v1beta in 2.x,
    v1 in 3.x) while the requests and responses did not.
    """
    path = path.lstrip("/")
    match = VERSION_SEGMENT.match(path)
    if not match:
        return path
    return (match.group(1) or "") + path[match.end() :]


def canonical_query(query: dict[str, str]) -> dict[str, str]:
    """The query parameters that matter for matching: all but the API key, sorted by name."""
    return {k: query[k] for k in sorted(query) if k not in _IGNORED_QUERY}


MODEL_IN_PATH = re.compile(r"models/([^/:]+)")
"""A model id in a request path, e.g. ``models/gemini-3.8-flash:generateContent``."""


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: two bodies that mean the same serialise to the same string."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_key(method: str, path: str, query: dict[str, str], body: Any) -> str:
    """The string two requests share exactly when a recording of one answers the other.

    Args:
        method: HTTP method, any case.
        path: request path, with or without its version segment.
        query: query parameters (the API key is ignored).
        body: the parsed JSON body, or ``None``.
    """
    return canonical_json([method.upper(), strip_version(path), canonical_query(query), body])


@dataclass
class Exchange:
    """One recorded request and its response, with where it came from.

    Attributes:
        request: ``{"method", "path", "query", "body"}``; ``path`` has no version segment.
        response: ``{"status", "headers", "offset_s", "body"}`` for a single reply, or
            ``{"status", "headers", "chunks": [{"offset_s", "data"}, ...]}`` for a server-sent-events stream.
            Offsets are seconds from the moment the request arrived.
        provenance: ``{"source": "recorded", "date", "sdk", "model_version"}`` or
            ``{"source": "synthetic", "date", "latency_model", "based_on"}``.
    """

    request: dict[str, Any]
    response: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """This exchange's :func:`request_key`."""
        r = self.request
        return request_key(r["method"], r["path"], r.get("query") or {}, r.get("body"))

    @property
    def is_stream(self) -> bool:
        """True when the response is a list of server-sent-event chunks."""
        return "chunks" in self.response

    def to_json(self) -> dict[str, Any]:
        """The exchange as it is written in the cassette file."""
        return {"provenance": self.provenance, "request": self.request, "response": self.response}


@dataclass
class Cassette:
    """The exchanges of one notebook, as loaded from (or about to be written to) ``path``."""

    name: str
    path: Path
    exchanges: list[Exchange] = field(default_factory=list)
    description: str = ""

    @classmethod
    def load(cls, path: Path) -> Cassette:
        """Read and validate a cassette file.

        Raises:
            CassetteError: the file is missing, is not JSON (line and column named) or does not follow the format
                (the exchange and field named).
        """
        name = path.stem
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CassetteError(
                f"no cassette '{name}': {path} does not exist. Record it with WORKBOOK_MODE=record, or author a "
                f"synthetic one with `python -m helpers.replay author {name} ...`."
            ) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise CassetteError(
                f"cassette {path} is not valid JSON at line {e.lineno} column {e.colno}: {e.msg}. "
                f"Fix the file by hand or restore it with `git checkout -- {path}`."
            ) from None
        return cls.from_json(data, path)

    @classmethod
    def from_json(cls, data: Any, path: Path) -> Cassette:
        """Build a cassette from its parsed JSON, checking every exchange (see :meth:`load` for the errors)."""

        def bad(where: str, what: str) -> CassetteError:
            return CassetteError(
                f"cassette {path} is malformed at {where}: {what}. "
                f"Fix the file by hand or restore it with `git checkout -- {path}`."
            )

        if not isinstance(data, dict) or not isinstance(data.get("exchanges"), list):
            raise bad("the top level", 'expected an object with an "exchanges" list')
        if data.get("format") != FORMAT:
            raise bad('"format"', f"expected {FORMAT}, found {data.get('format')!r}")
        exchanges = []
        for i, raw in enumerate(data["exchanges"]):
            where = f"exchanges[{i}]"
            if not isinstance(raw, dict):
                raise bad(where, "expected an object")
            req, resp = raw.get("request"), raw.get("response")
            if (
                not isinstance(req, dict)
                or not isinstance(req.get("method"), str)
                or not isinstance(req.get("path"), str)
            ):
                raise bad(f"{where}.request", 'expected an object with "method" and "path" strings')
            if not isinstance(resp, dict) or not isinstance(resp.get("status"), int):
                raise bad(f"{where}.response", 'expected an object with an integer "status"')
            if "chunks" in resp:
                chunks = resp["chunks"]
                if not isinstance(chunks, list) or not chunks:
                    raise bad(f"{where}.response.chunks", "expected a non-empty list")
                last = 0.0
                for j, chunk in enumerate(chunks):
                    offset = chunk.get("offset_s") if isinstance(chunk, dict) else None
                    if not isinstance(offset, (int, float)) or offset < last or "data" not in chunk:
                        raise bad(
                            f"{where}.response.chunks[{j}]",
                            'expected {"offset_s": seconds, not before the previous chunk, "data": {...}}',
                        )
                    last = offset
            elif not isinstance(resp.get("offset_s"), (int, float)) or resp["offset_s"] < 0 or "body" not in resp:
                raise bad(f"{where}.response", 'expected "offset_s" (seconds, >= 0) and "body", or "chunks"')
            exchanges.append(Exchange(req, resp, raw.get("provenance") or {}))
        return cls(data.get("cassette", path.stem), path, exchanges, data.get("description", ""))

    def to_json(self) -> dict[str, Any]:
        """The cassette as it is written to disk."""
        return {
            "format": FORMAT,
            "cassette": self.name,
            "description": self.description,
            "exchanges": [e.to_json() for e in self.exchanges],
        }

    def save(self) -> None:
        """Write the cassette atomically (a crash mid-write leaves the previous file intact)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = dumps(self.to_json())
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, self.path)

    def models(self) -> list[str]:
        """The model ids the recorded requests name (``models/<id>:...`` in their paths), sorted."""
        found = {m.group(1) for e in self.exchanges if (m := MODEL_IN_PATH.search(str(e.request.get("path", ""))))}
        return sorted(found)

    def sources(self) -> str:
        """``"synthetic"``, ``"recorded"``, ``"recorded and synthetic"`` or ``"empty"``: what the exchanges are."""
        kinds = {e.provenance.get("source", "unlabelled") for e in self.exchanges}
        if not kinds:
            return "empty"
        return " and ".join(sorted(kinds))


def dumps(data: dict[str, Any]) -> str:
    """Cassette JSON: indented for review, except each stream chunk, which takes one line (one chunk, one diff line)."""
    chunks: list[str] = []

    def mark(exchange: dict[str, Any]) -> dict[str, Any]:
        response = exchange["response"]
        if "chunks" not in response:
            return exchange
        marked = []
        for chunk in response["chunks"]:
            chunks.append(json.dumps(chunk, ensure_ascii=False, separators=(", ", ": ")))
            marked.append(f"\0{len(chunks) - 1}\0")
        return {**exchange, "response": {**response, "chunks": marked}}

    text = json.dumps({**data, "exchanges": [mark(e) for e in data["exchanges"]]}, indent=1, ensure_ascii=False)
    return re.sub(r'"\\u0000(\d+)\\u0000"', lambda m: chunks[int(m.group(1))], text) + "\n"


def json_differences(recorded: Any, actual: Any, where: str = "") -> list[str]:
    """Where two JSON values differ, as readable lines like ``contents[0].parts[0].text: 'a' recorded, 'b' sent``.

    Args:
        recorded: the value in the recording.
        actual: the value in the request.
        where: the path prefix for the lines (used in recursion).

    Returns:
        One line per differing leaf, in document order; empty when the values are equal.
    """
    if isinstance(recorded, dict) and isinstance(actual, dict):
        out: list[str] = []
        for k in list(recorded) + [k for k in actual if k not in recorded]:
            sub = f"{where}.{k}" if where else k
            if k not in actual:
                out.append(f"{sub}: recorded {_short(recorded[k])}, missing from the request")
            elif k not in recorded:
                out.append(f"{sub}: sent {_short(actual[k])}, not in the recording")
            else:
                out.extend(json_differences(recorded[k], actual[k], sub))
        return out
    if isinstance(recorded, list) and isinstance(actual, list):
        out = []
        for i in range(max(len(recorded), len(actual))):
            sub = f"{where}[{i}]"
            if i >= len(actual):
                out.append(f"{sub}: recorded {_short(recorded[i])}, missing from the request")
            elif i >= len(recorded):
                out.append(f"{sub}: sent {_short(actual[i])}, not in the recording")
            else:
                out.extend(json_differences(recorded[i], actual[i], sub))
        return out
    if recorded != actual:
        return [f"{where or 'body'}: recorded {_short(recorded)}, sent {_short(actual)}"]
    return []


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."
