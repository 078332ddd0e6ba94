"""Cassettes: the recorded exchanges a replay server plays back, one JSON file per notebook.

The format is documented in ``docs/cassettes.md``. In short: ``{"format": 1, "cassette": NAME, "description": ...,
"exchanges": [...]}`` where each exchange holds the ``request`` (method, version-less path, query, JSON body), the
``response`` (status, then either ``offset_s`` + ``body`` or a list of ``chunks`` each with its ``offset_s``) and its
``provenance`` (recorded from the live API, or synthetic and the latency model it follows).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NotRequired, TypedDict, TypeGuard, final

from ...paths import NOTEBOOKS_DIR
from ..wire.framing import camel, json_bytes, sse_event

FORMAT = 1
"""The cassette format version this code reads and writes."""

VERSION_SEGMENT = re.compile(r"^(upload/|download/)?v\d+(alpha|beta)?\d*/")
"""An API version segment at the start of a path, after an optional ``upload/`` or ``download/`` prefix."""

_IGNORED_QUERY = {"key"}

JOURNAL_SUFFIX = ".journal.jsonl"
"""A cassette ``NAME.json`` being recorded has its newest exchanges in ``NAME.journal.jsonl`` beside it (see
:func:`journal_path`)."""
JOURNAL_FORMAT = 1


class CassetteError(Exception):
    """A cassette is missing, unreadable or malformed. The message names the file, the position and the fix."""


class MissingCassetteError(CassetteError):
    """The cassette's file does not exist."""


class UnsavableError(CassetteError):
    """An exchange cannot be written: a string UTF-8 cannot encode (a lone surrogate), or a number JSON cannot hold."""


@final
class RecordedRequest(TypedDict):
    """A recorded request: ``path`` has no version segment, ``query`` no API key, ``body`` is the JSON or ``None``."""

    method: str
    path: str
    query: dict[str, str]
    body: Any


@final
class Chunk(TypedDict):
    """One server-sent event of a stream: its data (a ``GenerateContentResponse`` for generateContent) and when it was
    sent (seconds after the request arrived). ``event`` is the SSE event type, for APIs that send one; ``raw`` marks
    ``data`` as the event's text rather than JSON (the ``[DONE]`` that ends an OpenAI-style stream)."""

    offset_s: float
    data: Any
    event: NotRequired[str]
    raw: NotRequired[bool]


@final
class JsonReply(TypedDict):
    """A single JSON reply, sent ``offset_s`` seconds after the request arrived."""

    status: int
    offset_s: float
    body: Any


@final
class StreamReply(TypedDict):
    """A server-sent-events stream of chunks."""

    status: int
    chunks: list[Chunk]


Reply = JsonReply | StreamReply


def journal_path(path: Path) -> Path:
    """The recording journal of the cassette file at ``path``.

    A recorder never writes a cassette file in place: it replaces it whole (atomically) when a run begins, then
    appends each new exchange to the journal, one JSON line each, after a first line naming the cassette file it
    continues (``{"journal": 1, "sha256": <the file's hash>}``), and merges the journal back into the file when it
    stops. A crash at any moment therefore leaves the file whole, and the journal whole but for a last line cut
    short, which :meth:`Cassette.load` leaves out: every exchange a client was answered for is still there. A line
    is ``{"refresh": bool, "exchange": {...}}``; ``refresh`` drops the earlier recordings of the same request, as the
    first recording of a request in a run does. A journal whose first line names another version of the file (the
    file was rewritten after it) is stale and ignored.
    """
    return path.with_name(path.stem + JOURNAL_SUFFIX)


def journal_header(data: bytes) -> str:
    """The first line of a journal continuing the cassette file whose bytes are ``data``."""
    return json.dumps({"journal": JOURNAL_FORMAT, "sha256": hashlib.sha256(data).hexdigest()}) + "\n"


def journal_line(exchange: Exchange, refresh: bool) -> str:
    """One journal line (see :func:`journal_path`).

    Raises:
        UnsavableError: the exchange cannot be written (see :attr:`Exchange.text`).
    """
    exchange.text  # noqa: B018 -- rendered (and checked) once, for the file the journal is merged into
    record = {"refresh": refresh, "exchange": exchange.to_json()}
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"


def default_dir() -> Path:
    """The workbook's own recordings folder, ``notebooks/cassettes`` (or ``$WORKBOOK_CASSETTES`` when set)."""
    env = os.environ.get("WORKBOOK_CASSETTES")
    if env:
        return Path(env)
    return NOTEBOOKS_DIR / "cassettes"


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


def normalized_body(body: Any) -> Any:
    """A JSON body in the one spelling requests are compared in.

    Field names in camelCase (proto JSON accepts ``generation_config`` and ``generationConfig`` alike, and a batch's
    JSONL lines may use either; keys inside free-form objects such as function arguments are converted too, on both
    sides alike), integral floats as ints (``0.0`` and ``0`` mean the same), a ``role`` of ``"user"`` on
    ``contents`` and ``systemInstruction`` entries without one (the SDK always sends one; the API assumes it), and no
    empty ``generationConfig`` (a chat, or a config holding only a system instruction, sends ``{}``, which asks for
    the defaults as its absence does).
    """
    body = camel_case(body)
    if isinstance(body, dict) and body.get("generationConfig") == {}:
        del body["generationConfig"]
    if isinstance(body, dict):
        contents = body.get("contents")
        entries: list[Any] = contents if isinstance(contents, list) else []
        for entry in [*entries, body.get("systemInstruction")]:
            if isinstance(entry, dict):
                entry.setdefault("role", "user")
    return body


def camel_case(value: Any) -> Any:
    """``value`` with every key in camelCase and integral floats as ints (``0.0`` and ``0`` mean the same), as the
    API reads JSON that spells a field either way (the SDK sends some nested fields in snake_case)."""
    if isinstance(value, dict):
        return {camel(k): camel_case(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel_case(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def request_key(method: str, path: str, query: dict[str, str], body: Any) -> str:
    """The string two requests share exactly when a recording of one answers the other: the one matching rule of
    the replay server, for every endpoint (batches too).

    Args:
        method: HTTP method, any case.
        path: request path, with or without its version segment.
        query: query parameters (the API key is ignored).
        body: the parsed JSON body, or ``None``; compared after :func:`normalized_body`.
    """
    return canonical_json([method.upper(), strip_version(path), canonical_query(query), normalized_body(body)])


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

    request: RecordedRequest
    response: Reply
    provenance: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def key(self) -> str:
        """This exchange's :func:`request_key`, computed once."""
        r = self.request
        return request_key(r["method"], r["path"], r.get("query") or {}, r.get("body"))

    @property
    def is_stream(self) -> bool:
        """True when the response is a list of server-sent-event chunks."""
        return "chunks" in self.response

    @cached_property
    def frames(self) -> list[tuple[float, bytes]]:
        """A stream's chunks as ``(offset_s, bytes of the SSE event)``, encoded once; empty for a JSON reply."""
        response = self.response
        if "chunks" not in response:
            return []
        return [
            (chunk["offset_s"], sse_event(chunk["data"], event=chunk.get("event"), raw=chunk.get("raw", False)))
            for chunk in response["chunks"]
        ]

    @cached_property
    def body_bytes(self) -> bytes:
        """A JSON reply's body as sent, encoded once; empty for a stream."""
        response = self.response
        return b"" if "chunks" in response else json_bytes(response["body"])

    @cached_property
    def text(self) -> str:
        """The exchange as it stands in the cassette file (indented for an item of ``exchanges``), rendered once.

        Raises:
            UnsavableError: it holds a string UTF-8 cannot encode, or a NaN or infinite number.
        """
        try:
            text = "  " + _render(self.to_json(), 2)
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            bad = e.object[e.start : e.end].encode("unicode_escape").decode()
            raise UnsavableError(
                f"the exchange holds {bad!r}, half of a surrogate pair, which UTF-8 cannot encode (a prompt built "
                "by slicing an emoji in two?); it was not recorded. Send whole characters."
            ) from None
        except ValueError as e:
            raise UnsavableError(f"the exchange holds a number JSON cannot hold ({e}); it was not recorded.") from None
        return text

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
    revision: int = field(default=0, compare=False)
    """Counts changes made in memory (a recorder's), so that indexes of the exchanges know when to rebuild."""

    @classmethod
    def load(cls, path: Path) -> Cassette:
        """Read and validate a cassette file.

        Raises:
            MissingCassetteError: the file does not exist.
            CassetteError: it cannot be read (a folder, no permission), is not UTF-8 (the byte offset named), is not
                JSON or holds NaN, Infinity, a too-long integer or too-deep nesting (line and column named), or does
                not follow the format (the exchange and field named). Every message says how to restore the file.
        """
        name = path.stem
        restore = f"Fix the file by hand or restore it with `git checkout -- {path}`."
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise MissingCassetteError(
                f"no cassette '{name}': {path} does not exist. Record it with WORKBOOK_MODE=record, or author a "
                f"synthetic one with `python -m helpers.replay author {name} ...`."
            ) from None
        except IsADirectoryError:
            raise CassetteError(
                f"cassette {path} is a folder, not a file. Move it away, or restore the file with "
                f"`git checkout -- {path}`."
            ) from None
        except OSError as e:
            raise CassetteError(f"cassette {path} cannot be read ({e.strerror}). {restore}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            raise CassetteError(
                f"cassette {path} is not UTF-8 text: byte {data[e.start]:#04x} at offset {e.start} (line {line}) is "
                f"not valid UTF-8 (a binary file?). {restore}"
            ) from None
        try:
            parsed = json.loads(text, parse_constant=_refuse_constant)
        except json.JSONDecodeError as e:
            raise CassetteError(
                f"cassette {path} is not valid JSON at line {e.lineno} column {e.colno}: {e.msg}. {restore}"
            ) from None
        except _ConstantError as e:
            raise CassetteError(
                f"cassette {path} holds {e.constant} at {_position(text, _CONSTANT, e.constant)}, which JSON does "
                f"not allow (a time or number must be finite). {restore}"
            ) from None
        except RecursionError:
            raise CassetteError(
                f"cassette {path} nests lists or objects too deeply to read (from {_position(text, _DEEP)}). {restore}"
            ) from None
        except ValueError:  # an integer longer than Python converts (4300 digits)
            raise CassetteError(
                f"cassette {path} holds an integer of over 4300 digits, too long to read, at "
                f"{_position(text, _LONG_INTEGER)}. {restore}"
            ) from None
        cassette = cls.from_json(parsed, path)
        cassette._merge_journal(data)
        return cassette

    def _merge_journal(self, data: bytes) -> None:
        """Add the exchanges of the recording journal that continues this file, whose bytes are ``data``
        (:func:`journal_path`): all but a last line cut short by a crash.

        Raises:
            CassetteError: a complete line of the journal is not a journal record.
        """
        journal = journal_path(self.path)
        try:
            lines = journal.read_bytes().split(b"\n")
        except OSError:
            return
        if lines[0].decode("utf-8", "replace") + "\n" != journal_header(data):
            return  # no journal, a stale one (the file was rewritten after it), or one cut short in its first line
        for number, line in enumerate(lines[1:-1], 2):  # the last item is empty, or a line cut short: left out
            try:
                record = json.loads(line, parse_constant=_refuse_constant)
                if not isinstance(record, dict) or not isinstance(record.get("refresh"), bool):
                    raise ValueError('expected {"refresh": true or false, "exchange": {...}}')
                (exchange,) = Cassette.from_json(
                    {"format": FORMAT, "exchanges": [record.get("exchange")]}, journal
                ).exchanges
            except (ValueError, RecursionError, CassetteError) as e:
                raise CassetteError(
                    f"the recording journal {journal} is corrupt at line {number} ({e}). Move it away to keep "
                    f"{self.path} as it was before that recording run."
                ) from None
            if record["refresh"]:
                self.exchanges = [e for e in self.exchanges if e.key != exchange.key]
            self.exchanges.append(exchange)

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
            status = resp.get("status") if isinstance(resp, dict) else None
            if not isinstance(resp, dict) or not isinstance(status, int) or isinstance(status, bool):
                raise bad(f"{where}.response", 'expected an object with an integer "status"')
            if not 100 <= status <= 599:
                raise bad(f"{where}.response.status", f"expected an HTTP status from 100 to 599, found {status}")
            if not isinstance(raw.get("provenance", {}), dict):
                raise bad(f"{where}.provenance", "expected an object")
            if not isinstance(req.get("query") or {}, dict):
                raise bad(f"{where}.request.query", "expected an object of strings")
            if "chunks" in resp:
                chunks = resp["chunks"]
                if not isinstance(chunks, list) or not chunks:
                    raise bad(f"{where}.response.chunks", "expected a non-empty list")
                last = 0.0
                for j, chunk in enumerate(chunks):
                    offset = chunk.get("offset_s") if isinstance(chunk, dict) else None
                    if not _seconds(offset) or offset < last or "data" not in chunk:
                        raise bad(
                            f"{where}.response.chunks[{j}]",
                            'expected {"offset_s": seconds, not before the previous chunk, "data": {...}}',
                        )
                    as_text = chunk.get("raw", False)
                    raw_ok = as_text is False or (as_text is True and isinstance(chunk["data"], str))
                    if not isinstance(chunk.get("event", ""), str) or not raw_ok:
                        raise bad(
                            f"{where}.response.chunks[{j}]",
                            'expected "event" to be a string and "raw": true only with a string "data"',
                        )
                    last = offset
            elif not _seconds(resp.get("offset_s")) or "body" not in resp:
                raise bad(f"{where}.response", 'expected "offset_s" (seconds, >= 0) and "body", or "chunks"')
            request = RecordedRequest(
                method=req["method"], path=req["path"], query=req.get("query") or {}, body=req.get("body")
            )
            exchanges.append(Exchange(request, resp, raw.get("provenance") or {}))  # type: ignore[arg-type]
        return cls(data.get("cassette", path.stem), path, exchanges, data.get("description", ""))

    def to_json(self) -> dict[str, Any]:
        """The cassette as it is written to disk."""
        return {
            "format": FORMAT,
            "cassette": self.name,
            "description": self.description,
            "exchanges": [e.to_json() for e in self.exchanges],
        }

    def head(self) -> str:
        """The file's text before its first exchange (after ``"exchanges": [``)."""
        top = {"format": FORMAT, "cassette": self.name, "description": self.description}
        return _render(top, 0)[:-2] + ',\n "exchanges": ['

    def text(self) -> str:
        """The whole file's text (each exchange's :attr:`Exchange.text`, rendered once, joined).

        Raises:
            UnsavableError: an exchange cannot be written (see :attr:`Exchange.text`).
        """
        if not self.exchanges:
            return self.head() + "]\n}\n"
        return self.head() + "\n" + ",\n".join(e.text for e in self.exchanges) + TAIL

    def save(self) -> None:
        """Write the cassette atomically: a crash or a failed write leaves the previous file intact, and no temp file.

        Raises:
            UnsavableError: an exchange cannot be written (nothing is written then).
            OSError: the folder is not writable, the disk is full, ...
        """
        write_atomically(self.path, self.text().encode("utf-8"))

    def models(self) -> list[str]:
        """The model ids that answered a recorded request (``models/<id>:...`` in its path, a 2xx status), sorted.

        A model only ever refused (the 404 of a model that does not exist, ``01_sync``'s fixture) answered nothing:
        the setup line does not list it as a model the cassette replays."""
        answered = [e for e in self.exchanges if 200 <= int(e.response.get("status", 0)) < 300]
        found = {m.group(1) for e in answered if (m := MODEL_IN_PATH.search(str(e.request.get("path", ""))))}
        return sorted(found)

    def sources(self) -> str:
        """``"synthetic"``, ``"recorded"``, ``"recorded and synthetic"`` or ``"empty"``: what the exchanges are."""
        kinds = {e.provenance.get("source", "unlabelled") for e in self.exchanges}
        if not kinds:
            return "empty"
        return " and ".join(sorted(kinds))


TAIL = "\n ]\n}\n"
"""How a cassette file with exchanges ends; a recorder appends an exchange by writing over it."""


def _seconds(value: Any) -> TypeGuard[float]:
    """Whether ``value`` is a recorded offset: a finite number of seconds, at least 0 (not a bool, NaN or Infinity)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


class _ConstantError(ValueError):
    def __init__(self, constant: str) -> None:
        super().__init__(constant)
        self.constant = constant


def _refuse_constant(constant: str) -> Any:
    """``json.loads``'s hook for ``NaN``, ``Infinity`` and ``-Infinity``, which Python reads and JSON forbids."""
    raise _ConstantError(constant)


_CONSTANT = r"(?<![\w\"])-?{}(?![\w\"])"
_LONG_INTEGER = r"\d{4300,}"
_DEEP = r"[\[{]\s*(?:[\[{]\s*){200}"


def _position(text: str, pattern: str, constant: str = "") -> str:
    """``line L column C`` of the first match of ``pattern`` (``{}`` in it stands for ``constant``) in ``text``."""
    match = re.search(pattern.replace("{}", re.escape(constant)) if constant else pattern, text)
    if match is None:
        return "an unknown place"
    start = match.start()
    return f"line {text.count(chr(10), 0, start) + 1} column {start - text.rfind(chr(10), 0, start)}"


def check_writable(folder: Path) -> None:
    """Make sure recordings can be written into ``folder`` (created if missing), by writing and removing a file.

    Called before a record mode starts (``helpers.setup``, ``serve --record``), so that a read-only folder is one
    message before anything is sent upstream, not a 500 after the first call was billed.

    Raises:
        CassetteError: it cannot be created or written; the message names it and the reason.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as e:
        raise CassetteError(
            f"record mode cannot write recordings into {folder} ({e.strerror or e}): nothing was sent upstream. "
            "Make the folder writable, or point WORKBOOK_CASSETTES (serve --cassettes) at a folder you can write."
        ) from None


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path``'s content with ``data`` through a temp file in the same folder, removed if anything fails.

    Raises:
        OSError: the folder is not writable, the disk is full, ...
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _render(value: Any, level: int, *, chunks: bool = False, parent: str = "") -> str:
    """``json.dumps(value, indent=1, ensure_ascii=False)``, except that a ``response``'s ``chunks`` list puts each
    chunk on one line. No markers are substituted afterwards, so no text in a cassette can collide with one."""
    if isinstance(value, dict) and value:
        inner = " " * (level + 1)
        items = [
            f"{inner}{json.dumps(k, ensure_ascii=False)}: "
            + _render(v, level + 1, chunks=k == "chunks" and parent == "response" and level == 3, parent=k)
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + " " * level + "}"
    if isinstance(value, list) and value:
        inner = " " * (level + 1)
        if chunks:
            lines = [inner + json.dumps(c, ensure_ascii=False, separators=(", ", ": "), allow_nan=False) for c in value]
        else:
            lines = [inner + _render(v, level + 1) for v in value]
        return "[\n" + ",\n".join(lines) + "\n" + " " * level + "]"
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


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
