"""The Files API offline: resumable uploads, get, list, delete and download, held in the replay server's memory.

A service (the services layer, ``docs/server.md``); introduced in ``04_multimodal``. Routes, after the cassette
segment (``{v}`` is ``v1``, ``v1beta``, ...)::

    POST   upload/{v}/files                  X-Goog-Upload-Command: start -> 200, x-goog-upload-url
    POST   upload/{v}/files?upload_id=...    X-Goog-Upload-Command: upload[, finalize] + X-Goog-Upload-Offset
    GET    {v}/files[?pageSize=&pageToken=]  -> {"files": [...], "nextPageToken"?}
    GET    {v}/files/{id}                    -> the File resource
    DELETE {v}/files/{id}                    -> {}
    GET    {v}/files/{id}:download?alt=media -> the raw bytes

What the server does, and how it compares with the real API (google-genai 3.6.1 source and public outputs, read
2026-11-22):

- A File reports ``name`` (``files/`` + 12 lowercase letters and digits), ``displayName`` (only when given),
  ``mimeType``, ``sizeBytes`` (a string: an int64 in proto JSON), ``createTime``, ``updateTime``,
  ``expirationTime`` (create + 48 h), ``sha256Hash`` (base64 of the hex digest, as the real API reports it),
  ``uri``, ``state`` and ``source`` (``UPLOADED``; ``GENERATED`` with a ``downloadUri`` for batch results).
- ``video/*`` uploads are ``PROCESSING`` for :data:`PROCESSING_S` seconds divided by ``--speed``, then ``ACTIVE``:
  the docs ask you to wait for ``ACTIVE`` for video only ("Video files ... may take time to process",
  ai.google.dev/gemini-api/docs/video-understanding), and PDFs, images and audio come back ``ACTIVE`` at once.
  A ``generateContent`` call (or a batch request) naming a ``PROCESSING`` file gets the real API's 400
  ``FAILED_PRECONDITION`` "The File ... is not in an ACTIVE state and usage is not allowed."
- An unknown file id gets the real API's 403 ``PERMISSION_DENIED`` "You do not have permission to access the File
  ... or it may not exist." (python-genai issue 1218), not a 404.
- Files live in memory, per cassette, until their ``expirationTime`` (48 h after upload, as the real API's), or until
  deleted or the server stops. Memory is bounded (``SECURITY.md``, "Limits"; :class:`FileLimits`): the files held
  and the bytes of unfinished uploads total at most :data:`MAX_STORED_BYTES` (an upload past it gets 429
  ``RESOURCE_EXHAUSTED``), and an upload not continued for :data:`UPLOAD_TTL_S` is forgotten. Unlike the real API,
  uploaded files can be downloaded by name (the SDK refuses only a ``File`` object without ``download_uri``).
- Ids are stable across runs, so recorded ``fileData.fileUri`` values match in replay: an upload whose bytes match
  a recorded upload (same ``sha256Hash``, in cassette order) takes that recording's ``name`` and ``uri``; any other
  gets the first of a fixed series of ids (derived from the cassette, the bytes, the MIME type and the display name)
  that no file holds now, with the ``uri`` the real API would give it. So an upload deleted and made again gets its
  old id back, and calls recorded with it still match: a learner can re-run an upload cell, or a check that uploads
  and deletes, as often as they like (the real API gives every upload a new id).
- Record mode: uploads and downloads are proxied here (the upstream's upload URL is handed to the client rewritten to
  point back at this server); their metadata exchanges are recorded through the recorder (:meth:`.Recorder.keep`),
  never the bytes. Get, list and delete go through the recorder like any other call. With
  ``serve --record --local-files-batches`` (recording from the
  synthetic upstream, which has no Files API) files are held here as in replay, and none of this is recorded.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import heapq
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from ..backends.recorder import FORWARDED_HEADERS, Recorder, not_saved, provenance
from ..cassettes.cassette import CassetteError, JsonReply, RecordedRequest, canonical_query, strip_version
from ..cassettes.matcher import Matcher
from ..cassettes.store import CassetteStore, SaveError
from ..pipeline.api_request import API, UPLOAD_STATUS, ApiRequest, Mode, api_error_response, json_response
from ..pipeline.guard import Grants
from ..pipeline.socket_server import BODY_TIMEOUT, IDLE_TIMEOUT_S
from ..wire.framing import FILE_NOT_ACTIVE, ApiError, camel, error_json, expect

FILE_TTL_S = 48 * 3600.0
"""How long the real API keeps a file: 48 hours (ai.google.dev/gemini-api/docs/files, read 2026-11-22)."""
MAX_FILE_BYTES = 2 * 1024**3
"""The real API's size limit per file: 2 GB (ai.google.dev/gemini-api/docs/files, read 2026-11-22)."""
PROCESSING_S = 2.0
"""Seconds a ``video/*`` upload stays ``PROCESSING`` at ``--speed`` 1 (a teaching choice, not a measurement)."""
PROCESSING_MIME_PREFIXES = ("video/",)
"""MIME types that go through ``PROCESSING`` before ``ACTIVE`` (see the module docstring for why only video)."""
CHUNK_GRANULARITY = 8 * 1024**2
"""Upload chunk granularity announced on start; the SDK uploads in chunks of this size (``CHUNK_SIZE``, 8 MiB)."""
DEFAULT_PAGE_SIZE = 10
"""Items per list page without ``pageSize`` (ai.google.dev/api/rest/v1beta/files/list, read 2026-11-22); batches too."""
MAX_PAGE_SIZE = 100
"""The largest ``pageSize``; larger values are lowered to it (same source and date as :data:`DEFAULT_PAGE_SIZE`)."""
API_HOST = "https://generativelanguage.googleapis.com"
"""The host in the ``uri`` of files this server creates: the value the real API would report, so it is stable."""
_VERSION = r"v\d+(?:alpha|beta)?\d*"
VERSION = "{version:" + _VERSION + "}"
"""The API version segment in a route pattern, captured as ``version``."""
UPLOAD_TTL_S = 3600.0
"""Seconds an unfinished upload session is kept after its last chunk (or its start); then it is forgotten with its
bytes, and a late chunk gets 404 "start the upload again" (``serve --upload-ttl``). The SDK sends its chunks back to
back, so only an abandoned upload ever waits that long."""
MAX_STORED_BYTES = 2 * 1024**3
"""The most bytes the server holds for the Files API, over every cassette: stored files plus unfinished uploads
(``serve --max-stored-bytes``). Past it an upload is refused with 429 ``RESOURCE_EXHAUSTED`` until files are deleted;
2 GiB, one file at the real API's largest."""
MIME_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}(/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126})?")
"""A MIME type as RFC 6838 spells one, ``type/subtype`` in ASCII (parameters left out), or a bare subtype such as the
``jsonl`` of the Batch API docs' upload example: what an upload may declare, since it is sent back as a header on
download."""
DOWNLOAD_CHUNK_BYTES = 64 * 1024
"""A download is written this many bytes at a time, each write waiting until the client has taken the bytes before
(backpressure): a client that requests a file and never reads holds at most about this much of the server's memory,
not a copy of the file."""
FILE_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
"""A file id accepted in ``name`` on upload: up to 40 lowercase letters, digits or dashes, no dash at either end."""
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_T = TypeVar("_T")


def rfc3339(epoch_s: float) -> str:
    """A timestamp as the API writes it: UTC, microseconds, ``Z`` (e.g. ``2026-11-22T10:00:00.123456Z``)."""
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stable_id(length: int, *parts: str) -> str:
    """``length`` lowercase letters and digits derived from ``parts`` (at most 49): the same parts, the same id."""
    n = int.from_bytes(hashlib.sha256("\0".join(parts).encode()).digest(), "big")
    digits = []
    for _ in range(length):
        n, digit = divmod(n, len(_ALPHABET))
        digits.append(_ALPHABET[digit])
    return "".join(digits)


def paginate(items: list[_T], query: dict[str, str]) -> tuple[list[_T], str | None]:
    """One page of ``items`` for a list call's ``pageSize`` and ``pageToken``, and the next page's token (or ``None``).

    Raises:
        ApiError: 400 when ``pageSize`` is not an integer or ``pageToken`` is not one this server gave out; the
            message says so.
    """
    size_text = query.get("pageSize") or str(DEFAULT_PAGE_SIZE)
    if re.fullmatch(r"-?[0-9]{1,9}", size_text) is None:
        raise ApiError(400, f"Invalid value at 'pageSize': expected an integer, got {_shown(size_text)}.")
    size = int(size_text)
    size = min(size, MAX_PAGE_SIZE) if size > 0 else DEFAULT_PAGE_SIZE
    token = query.get("pageToken") or "0"
    if re.fullmatch(r"[0-9]{1,9}", token) is None or int(token) > len(items):
        raise ApiError(
            400,
            f"Invalid value at 'pageToken': {_shown(token)} is not a page token; pass the nextPageToken of the "
            "previous page.",
        )
    start = int(token)
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


def _shown(text: str) -> str:
    """``text`` quoted for a message, cut to 40 characters (a 5000-digit token is not echoed whole)."""
    return repr(text) if len(text) <= 40 else f"{text[:20]!r}... ({len(text)} characters)"


def file_uris(value: Any) -> Iterator[str]:
    """Every ``fileUri`` (or ``file_uri``) string anywhere in a request body."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("fileUri", "file_uri") and isinstance(item, str):
                yield item
            else:
                yield from file_uris(item)
    elif isinstance(value, list):
        for item in value:
            yield from file_uris(item)


def file_ids(body: Any) -> Iterator[str]:
    """The id of every Files API file a request body names (a ``fileUri`` ending ``files/ID``); other URIs (a
    YouTube video's) name none."""
    for uri in file_uris(body):
        match = re.search(r"files/([a-z0-9-]+)", uri)
        if match:
            yield match.group(1)


@dataclass(frozen=True)
class FileLimits:
    """How much the Files service holds (see :data:`UPLOAD_TTL_S`, :data:`MAX_STORED_BYTES`, :data:`FILE_TTL_S`)."""

    upload_ttl_s: float = UPLOAD_TTL_S
    max_stored_bytes: int = MAX_STORED_BYTES
    file_ttl_s: float = FILE_TTL_S


@dataclass
class StoredFile:
    """A file in the server's memory.

    Attributes:
        id: the id after ``files/``.
        data: the bytes.
        mime_type: as declared on upload.
        display_name: as declared on upload, or ``None``.
        created: when the upload finished, seconds since the epoch.
        ready: when it turns ``ACTIVE``, seconds since the epoch (``created`` unless it needs processing).
        uri: the ``uri`` reported.
        sha256_hash: the API's hash of ``data`` (:func:`sha256_hash`).
        download_uri: set for files the server made (batch results), whose ``source`` is ``GENERATED``.
        expires: when it is deleted, seconds since the epoch (its ``expirationTime``).
    """

    id: str
    data: bytes
    mime_type: str
    display_name: str | None
    created: float
    ready: float
    uri: str
    sha256_hash: str
    download_uri: str | None = None
    expires: float = 0.0
    series: tuple[str, int] | None = None
    """For an id of the stable series (:meth:`FileService._identity`): the series and the slot it took."""

    def state(self, now: float) -> str:
        """``"PROCESSING"`` until :attr:`ready`, then ``"ACTIVE"``."""
        return "ACTIVE" if now >= self.ready else "PROCESSING"

    def resource(self, now: float) -> dict[str, Any]:
        """The File resource as the API reports it at time ``now`` (seconds since the epoch)."""
        resource: dict[str, Any] = {"name": f"files/{self.id}"}
        if self.display_name:
            resource["displayName"] = self.display_name
        resource.update(
            mimeType=self.mime_type,
            sizeBytes=str(len(self.data)),
            createTime=rfc3339(self.created),
            updateTime=rfc3339(self.ready if now >= self.ready else self.created),
            expirationTime=rfc3339(self.expires),
            sha256Hash=self.sha256_hash,
            uri=self.uri,
        )
        if self.download_uri:
            resource["downloadUri"] = self.download_uri
        resource.update(state=self.state(now), source="GENERATED" if self.download_uri else "UPLOADED")
        return resource


def sha256_hash(data: bytes) -> str:
    """The API's ``sha256Hash`` of ``data``: base64 of the hexadecimal SHA-256 digest."""
    return base64.b64encode(hashlib.sha256(data).hexdigest().encode()).decode()


@dataclass
class Upload:
    """A resumable upload in progress.

    Attributes:
        id: the ``upload_id`` in the upload URL.
        cassette, version: where it was started.
        mime_type, display_name, name: from the start request (``name`` is a requested ``files/...`` or ``None``).
        size: the declared size in bytes.
        data: the bytes received so far.
        upstream_url: in record mode, the upstream's upload URL the chunks are forwarded to.
        user_agent: in record mode, the start request's (the SDK sends none with the chunks), for provenance.
        touched: when it last moved (started, or took a chunk), seconds of the monotonic clock.
    """

    id: str
    cassette: str
    version: str
    mime_type: str = ""
    display_name: str | None = None
    name: str | None = None
    size: int = 0
    data: bytearray = field(default_factory=bytearray)
    upstream_url: str | None = None
    user_agent: str = ""
    touched: float = field(default_factory=time.monotonic)


class FileService:
    """The Files API of one replay server: its routes and the files of every cassette.

    Args:
        mode: the server's mode; when it forwards files upstream, only uploads and downloads are served here
            (proxied and recorded through ``recorder``).
        speed: the server's ``--speed`` (a video's processing time is divided by it).
        store: the cassettes (recorded uploads give an upload its id).
        matcher: the server's matcher, whose turns pick among recorded uploads of the same bytes.
        recorder: the record backend, in record mode.
        limits: how long uploads and files are kept and how many bytes are held (:class:`FileLimits`).
    """

    def __init__(
        self,
        mode: Mode,
        speed: float,
        store: CassetteStore,
        matcher: Matcher,
        recorder: Recorder | None,
        limits: FileLimits = FileLimits(),
        grants: Grants | None = None,
    ) -> None:
        self.mode, self.speed, self.store, self.matcher, self.recorder = mode, speed, store, matcher, recorder
        self.limits = limits
        self.grants = grants if grants is not None else Grants()
        self.files: dict[str, dict[str, StoredFile]] = {}
        """Each cassette's files, by id; a cassette holds an entry only while it has files (:meth:`held`)."""
        self._uploads: dict[str, Upload] = {}
        # Constant work per upload however many were made: a running count of the bytes held, the files by when they
        # expire and the uploads by when they were last touched (heaps, checked at their top), the free slots of
        # each stable id series, and each cassette's recorded uploads by hash.
        self._held_bytes = 0
        self._file_expiry: list[tuple[float, str, str]] = []
        self._upload_expiry: list[tuple[float, str]] = []
        self._series: dict[tuple[str, ...], tuple[int, list[int]]] = {}
        self._recorded: dict[str, tuple[int, int, dict[str, list[tuple[str, str | None]]]]] = {}

    def install(self, app: web.Application) -> None:
        """Add the Files routes (before any catch-all route).

        When record mode forwards files upstream, only uploads and downloads are ours.
        """
        base = "/{cassette}/" + VERSION
        app.router.add_post("/{cassette}/upload/" + VERSION + "/files", self.upload)
        app.router.add_get(base + "/files/{file:[^/:]+}:download", self.download)
        if self.mode.forwards_files_batches:
            return
        app.router.add_get(base + "/files", self.list_files)
        app.router.add_get(base + "/files/{file:[^/:]+}", self.get_file)
        app.router.add_delete(base + "/files/{file:[^/:]+}", self.delete_file)

    def held(self, cassette: str) -> dict[str, StoredFile]:
        """The files of ``cassette`` by id, to read: empty (and not kept) for a cassette with none; expired files
        and abandoned uploads are let go first."""
        self._expire()
        return self.files.get(cassette, {})

    def unheld(self, cassette: str, body: Any) -> list[str]:
        """The Files API names (``files/ID``) that ``body`` refers to and ``cassette`` does not hold: never uploaded
        in this run, deleted, or expired. Replay's improviser refuses a call that names one (:mod:`.improviser`)."""
        held = self.held(cassette)
        return [f"files/{file_id}" for file_id in file_ids(body) if file_id not in held]

    def held_bytes(self) -> int:
        """The bytes held now: every stored file's and every unfinished upload's received bytes."""
        return self._held_bytes

    def _expire(self) -> None:
        """Forget files past their ``expirationTime`` and uploads idle for longer than the upload TTL (their bytes
        go with them); the work done is that of what expires."""
        now, idle_since = time.time(), time.monotonic() - self.limits.upload_ttl_s
        while self._upload_expiry and self._upload_expiry[0][0] <= idle_since:
            _touched, upload_id = heapq.heappop(self._upload_expiry)
            upload = self._uploads.get(upload_id)
            if upload is not None and upload.touched <= idle_since:
                self._forget_upload(upload)
            elif upload is not None:
                heapq.heappush(self._upload_expiry, (upload.touched, upload_id))  # touched since: later
        while self._file_expiry and self._file_expiry[0][0] <= now:
            expires, cassette, file_id = heapq.heappop(self._file_expiry)
            stored = self.files.get(cassette, {}).get(file_id)
            if stored is not None and stored.expires == expires:
                self.remove(cassette, file_id)

    def remove(self, cassette: str, file_id: str) -> None:
        """Forget a file and its bytes (deleted, or expired); its stable id slot is free again."""
        files = self.files[cassette]
        stored = files.pop(file_id)
        self._held_bytes -= len(stored.data)
        if not files:
            del self.files[cassette]
        if stored.series is not None:
            series, slot = stored.series
            key = (cassette, series)
            if key in self._series:
                heapq.heappush(self._series[key][1], slot)

    def _forget_upload(self, upload: Upload) -> None:
        """Forget an unfinished upload and its bytes; its upload URL stops working."""
        del self._uploads[upload.id]
        self._held_bytes -= len(upload.data)
        self.grants.revoke(upload.id)

    def _make_room(self, more: int) -> None:
        """Refuse ``more`` bytes that would take the bytes held past the cap.

        Raises:
            ApiError: 429 RESOURCE_EXHAUSTED, saying how much is held and what to do.
        """
        self._expire()
        held, cap = self.held_bytes(), self.limits.max_stored_bytes
        if held + more > cap:
            raise ApiError(
                429,
                f"The replay server holds {held} bytes of files and unfinished uploads; {more} more would pass its "
                f"limit of {cap} bytes (serve --max-stored-bytes). Delete files you no longer need "
                "(client.files.delete) and upload again.",
                "RESOURCE_EXHAUSTED",
            )

    def lookup(self, cassette: str, name: str) -> StoredFile:
        """The file ``name`` (``files/ID`` or ``ID``) of ``cassette``.

        Raises:
            ApiError: 403 PERMISSION_DENIED, the real API's answer for a file that does not exist.
        """
        file_id = name.removeprefix("files/")
        stored = self.held(cassette).get(file_id)
        if stored is None:
            raise ApiError(
                403,
                f"You do not have permission to access the File {file_id} or it may not exist. (Replay: files live "
                "in this server's memory, per cassette, from their upload until the server stops.)",
                "PERMISSION_DENIED",
            )
        return stored

    def add(
        self,
        cassette: str,
        file_id: str,
        data: bytes,
        mime_type: str,
        *,
        version: str,
        display_name: str | None = None,
        uri: str | None = None,
        generated: bool = False,
    ) -> StoredFile:
        """Store a file under ``cassette`` and return it.

        Args:
            cassette: the cassette it belongs to.
            file_id: the id after ``files/``.
            data: its bytes.
            mime_type: its MIME type; ``video/*`` starts ``PROCESSING`` (see the module docstring).
            version: the API version of the call that made it (``v1``, ``v1beta``), for its ``uri``.
            display_name: shown as ``displayName`` when given.
            uri: its ``uri``; by default the one the real API would give it.
            generated: made by the server (batch results): ``source`` ``GENERATED``, with a ``downloadUri``.
        """
        now = time.time()
        delay = PROCESSING_S / self.speed if mime_type.startswith(PROCESSING_MIME_PREFIXES) else 0.0
        download_uri = f"{API_HOST}/download/{version}/files/{file_id}:download?alt=media" if generated else None
        uri = uri or f"{API_HOST}/{version}/files/{file_id}"
        stored = StoredFile(
            file_id,
            data,
            mime_type,
            display_name,
            now,
            now + delay,
            uri,
            sha256_hash(data),
            download_uri,
            now + self.limits.file_ttl_s,
        )
        held = self.files.setdefault(cassette, {})
        if file_id in held:
            self.remove(cassette, file_id)
            held = self.files.setdefault(cassette, {})
        held[file_id] = stored
        self._held_bytes += len(data)
        heapq.heappush(self._file_expiry, (stored.expires, cassette, file_id))
        return stored

    def precondition_error(self, cassette: str, body: Any) -> dict[str, Any] | None:
        """The API's 400 FAILED_PRECONDITION error JSON if ``body`` names a file still ``PROCESSING``, else ``None``.

        The model service asks this before a model call is answered (:class:`.models.ModelService`), batches before
        each request."""
        now = time.time()
        for file_id in file_ids(body):
            stored = self.held(cassette).get(file_id)
            if stored is not None and stored.state(now) == "PROCESSING":
                return error_json(
                    400,
                    f"The File {stored.id} {FILE_NOT_ACTIVE}. (Wait until files.get() reports state ACTIVE.)",
                    "FAILED_PRECONDITION",
                )
        return None

    # Routes -------------------------------------------------------------------------------------------------------

    async def upload(self, request: web.Request) -> web.StreamResponse:
        """Start a resumable upload, or take one of its chunks (``upload`` or ``upload, finalize``)."""
        api = request[API]
        commands = {c.strip() for c in request.headers.get("X-Goog-Upload-Command", "").lower().split(",")}
        try:
            if "start" in commands:
                upload = Upload("", api.cassette, api.version)
                if self.recorder is not None and self.mode.forwards_files_batches:
                    return await self._record_start(request, api, upload, self.recorder)
                return self._start(request, upload, api.body)
            self._expire()
            found = self._uploads.get(request.query.get("upload_id", ""))
            if found is None:
                raise ApiError(404, "No upload session with this upload_id: start the upload again.", "NOT_FOUND")
            upload = found
            if "upload" not in commands:
                raise ApiError(
                    400, "X-Goog-Upload-Command must be 'start', 'upload' or 'upload, finalize' (what the SDK sends)."
                )
            if upload.upstream_url is not None and self.recorder is not None:
                return await self._record_chunk(api, upload, self.recorder)
            return self._chunk(request, api, upload, "finalize" in commands)
        except ApiError as e:
            # The upload status header tells the SDK to stop retrying; the status code makes it raise.
            e.headers[UPLOAD_STATUS] = "final"
            return api_error_response(e)
        except aiohttp.ClientError as e:
            assert self.recorder is not None, "only record mode reaches an upstream"
            return self.recorder.unreachable(e, {UPLOAD_STATUS: "final"})

    def _start(self, request: web.Request, upload: Upload, meta: Any) -> web.Response:
        if request.headers.get("X-Goog-Upload-Protocol", "").lower() != "resumable":
            raise ApiError(400, "Only resumable uploads are served: send X-Goog-Upload-Protocol: resumable.")
        upload.mime_type = request.headers.get("X-Goog-Upload-Header-Content-Type") or _field(meta, "mime_type") or ""
        if not upload.mime_type:
            raise ApiError(400, "The upload has no MIME type: pass config={'mime_type': ...} to files.upload().")
        if MIME_TYPE.fullmatch(upload.mime_type) is None:
            raise ApiError(
                400,
                f"Invalid value at 'file.mime_type': {_shown(upload.mime_type)} is not a MIME type (type/subtype in "
                "ASCII letters, digits and +.-_, such as 'text/plain' or 'image/png').",
            )
        size = request.headers.get("X-Goog-Upload-Header-Content-Length", _field(meta, "size_bytes", (int, str)))
        try:
            upload.size = int(size)
        except (TypeError, ValueError):
            raise ApiError(
                400, f"X-Goog-Upload-Header-Content-Length must be the size in bytes, got {size!r}."
            ) from None
        if not 0 <= upload.size <= MAX_FILE_BYTES:
            raise ApiError(400, f"File size {upload.size} bytes is outside 0 to {MAX_FILE_BYTES} (2 GB) bytes.")
        self._make_room(upload.size)  # one that cannot fit is refused now, not after its bytes were sent
        upload.display_name = _field(meta, "display_name")
        upload.name = _field(meta, "name")
        if upload.name is not None:
            file_id = upload.name.removeprefix("files/")
            if not FILE_ID.match(file_id):
                raise ApiError(
                    400,
                    f"Invalid file name {upload.name!r}: up to 40 lowercase letters, digits or dashes after 'files/', "
                    "not starting or ending with a dash.",
                )
            if file_id in self.held(upload.cassette):
                raise ApiError(409, f"A file named files/{file_id} already exists.", "ALREADY_EXISTS")
        return self._open(request, upload, "active")

    def _open(self, request: web.Request, upload: Upload, status: str) -> web.Response:
        """Register ``upload`` and answer its start request with an upload URL naming this server's host and port."""
        upload.id = uuid.uuid4().hex
        self._uploads[upload.id] = upload
        self.grants.grant(upload.id)
        heapq.heappush(self._upload_expiry, (upload.touched, upload.id))
        url = (
            f"{request.scheme}://{request.host}/{upload.cassette}/upload/{upload.version}/files"
            f"?upload_id={upload.id}&upload_protocol=resumable"
        )
        headers = {UPLOAD_STATUS: status, "x-goog-upload-url": url}
        headers["x-goog-upload-chunk-granularity"] = str(CHUNK_GRANULARITY)
        return web.Response(status=200, headers=headers)

    def _chunk(self, request: web.Request, api: ApiRequest, upload: Upload, finalize: bool) -> web.Response:
        offset = request.headers.get("X-Goog-Upload-Offset", "")
        if offset != str(len(upload.data)):
            raise ApiError(
                400, f"X-Goog-Upload-Offset {offset!r} does not match the {len(upload.data)} bytes received so far."
            )
        self._make_room(len(api.raw_body))
        upload.data += api.raw_body
        self._held_bytes += len(api.raw_body)
        upload.touched = time.monotonic()
        if len(upload.data) > upload.size or (finalize and len(upload.data) != upload.size):
            self._forget_upload(upload)
            raise ApiError(
                400, f"Received {len(upload.data)} bytes for an upload declared as {upload.size} bytes; start again."
            )
        if not finalize:
            return web.Response(status=200, headers={UPLOAD_STATUS: "active"})
        self._forget_upload(upload)
        if upload.name is not None and upload.name.removeprefix("files/") in self.held(upload.cassette):
            raise ApiError(409, f"A file named {upload.name} already exists.", "ALREADY_EXISTS")
        file_id, uri, series = self._identity(upload)
        stored = self.add(
            upload.cassette,
            file_id,
            bytes(upload.data),
            upload.mime_type,
            version=upload.version,
            display_name=upload.display_name,
            uri=uri,
        )
        stored.series = series
        return json_response({"file": stored.resource(time.time())}, headers={UPLOAD_STATUS: "final"})

    def _identity(self, upload: Upload) -> tuple[str, str | None, tuple[str, int] | None]:
        """The id and ``uri`` of a finished upload (the requested name, a recorded one, or a stable fresh id), and for
        a stable id its series and slot.

        A stable id is the first of its series (derived from the cassette, the bytes, the MIME type and the display
        name) that no file holds: the lowest slot freed by a delete, else the next one never used, so the work is
        the same for the first upload of some bytes and the thousandth.
        """
        if upload.name is not None:
            return upload.name.removeprefix("files/"), None, None
        digest = sha256_hash(bytes(upload.data))
        turn = self.matcher.turn(upload.cassette, f"upload sha256Hash {digest}")
        recorded = self._recorded_uploads(upload.cassette, digest)
        held = self.held(upload.cassette)
        if recorded:
            name, uri = recorded[turn % len(recorded)]
            if name.removeprefix("files/") not in held:
                return name.removeprefix("files/"), uri, None
        series = "\0".join((digest, upload.mime_type, upload.display_name or ""))
        next_slot, free = self._series.get((upload.cassette, series), (0, []))
        while True:
            if free:
                slot = heapq.heappop(free)
            else:
                slot, next_slot = next_slot, next_slot + 1
            file_id = stable_id(12, upload.cassette, digest, upload.mime_type, upload.display_name or "", str(slot))
            if file_id not in held:
                self._series[(upload.cassette, series)] = (next_slot, free)
                return file_id, None, (series, slot)

    def _recorded_uploads(self, cassette: str, digest: str) -> list[tuple[str, str | None]]:
        """``(name, uri)`` of the cassette's recorded finished uploads of these bytes, in recorded order (indexed once
        per version of the cassette)."""
        try:
            recorded = self.store.get(cassette)
        except CassetteError:
            return []
        cached = self._recorded.get(cassette)
        if cached is None or cached[:2] != (id(recorded), recorded.revision):
            index: dict[str, list[tuple[str, str | None]]] = {}
            for exchange in recorded.exchanges:
                body = exchange.response.get("body")
                meta = body.get("file") if isinstance(body, dict) else None
                if (
                    strip_version(exchange.request["path"]) == "upload/files"
                    and isinstance(meta, dict)
                    and isinstance(meta.get("sha256Hash"), str)
                    and isinstance(meta.get("name"), str)
                ):
                    index.setdefault(meta["sha256Hash"], []).append((meta["name"], meta.get("uri")))
            cached = self._recorded[cassette] = (id(recorded), recorded.revision, index)
        return cached[2].get(digest, [])

    async def get_file(self, request: web.Request) -> web.Response:
        """``GET {v}/files/{id}``: the File resource."""
        try:
            stored = self.lookup(request[API].cassette, request.match_info["file"])
        except ApiError as e:
            return api_error_response(e)
        return json_response(stored.resource(time.time()))

    async def list_files(self, request: web.Request) -> web.Response:
        """``GET {v}/files``: the cassette's files, oldest first, a page at a time (an empty page is ``{}``)."""
        now = time.time()
        files = sorted(self.held(request[API].cassette).values(), key=lambda f: f.created)
        try:
            page, token = paginate(files, dict(request.query))
        except ApiError as e:
            return api_error_response(e)
        body: dict[str, Any] = {"files": [f.resource(now) for f in page]} if page else {}
        if token:
            body["nextPageToken"] = token
        return json_response(body)

    async def delete_file(self, request: web.Request) -> web.Response:
        """``DELETE {v}/files/{id}``: forget the file; answers ``{}``."""
        cassette = request[API].cassette
        try:
            stored = self.lookup(cassette, request.match_info["file"])
        except ApiError as e:
            return api_error_response(e)
        self.remove(cassette, stored.id)
        return json_response({})

    async def download(self, request: web.Request) -> web.StreamResponse:
        """``GET {v}/files/{id}:download?alt=media``: the file's bytes (proxied, not recorded, in record mode)."""
        api = request[API]
        if self.recorder is not None and self.mode.forwards_files_batches:
            return await self._record_download(request, api, self.recorder)
        try:
            if api.query.get("alt") != "media":
                raise ApiError(400, "A download needs ?alt=media (client.files.download() sends it).")
            stored = self.lookup(api.cassette, request.match_info["file"])
        except ApiError as e:
            return api_error_response(e)
        response = web.StreamResponse(headers=download_headers(stored.id))
        response.content_type = stored.mime_type
        response.content_length = len(stored.data)
        await send_bytes(request, response, stored.data)
        return response

    # Record mode --------------------------------------------------------------------------------------------------

    async def _record_start(
        self, request: web.Request, api: ApiRequest, upload: Upload, recorder: Recorder
    ) -> web.Response:
        """Forward an upload start upstream; hand the client an upload URL of ours; record the metadata exchange."""
        async with recorder.send("POST", api.path, api.query, api.raw_body or None, _upload_headers(api)) as upstream:
            body = await upstream.read()
            upload.upstream_url = upstream.headers.get("x-goog-upload-url")
            status = upstream.headers.get(UPLOAD_STATUS, "final")
            refusal = await self._record(recorder, api, api.body, upstream, body)
        if refusal is not None:
            return refusal
        if upstream.status != 200 or upload.upstream_url is None:
            return web.Response(status=upstream.status, body=body, headers={UPLOAD_STATUS: status})
        upload.user_agent = api.headers.get("user-agent", "")
        return self._open(request, upload, status)

    async def _record_chunk(self, api: ApiRequest, upload: Upload, recorder: Recorder) -> web.Response:
        """Forward a chunk to the upstream's upload URL; record the finished upload's File (never the bytes)."""
        assert upload.upstream_url is not None
        upload.touched = time.monotonic()
        headers = {h: api.headers[h] for h in ("X-Goog-Upload-Command", "X-Goog-Upload-Offset")}
        async with recorder.session.post(upload.upstream_url, data=api.raw_body, headers=headers) as upstream:
            body = await upstream.read()
            status = upstream.headers.get(UPLOAD_STATUS, "final")
            if status != "active":
                self._forget_upload(upload)
                refusal = await self._record(recorder, api, None, upstream, body, {"user-agent": upload.user_agent})
                if refusal is not None:
                    return refusal
        return web.Response(status=upstream.status, body=body, headers={UPLOAD_STATUS: status})

    async def _record_download(self, request: web.Request, api: ApiRequest, recorder: Recorder) -> web.StreamResponse:
        """Proxy a download, relayed a chunk at a time as the client takes it (:func:`send_bytes`); record that it
        happened (status and timing, an error's JSON), never the bytes."""
        try:
            async with recorder.send("GET", api.path, api.query, None, _upload_headers(api)) as upstream:
                if upstream.status != 200:
                    body = await upstream.read()
                    refusal = await self._record(recorder, api, None, upstream, body)
                    return refusal or web.Response(
                        status=upstream.status, body=body, content_type=upstream.content_type
                    )
                refusal = await self._record(recorder, api, None, upstream, b"")
                if refusal is not None:
                    return refusal
                file_id = request.match_info["file"]
                response = web.StreamResponse(headers=download_headers(file_id))
                response.content_type = upstream.content_type
                if upstream.content_length is not None:
                    response.content_length = upstream.content_length
                await send_bytes(request, response, upstream.content.iter_chunked(DOWNLOAD_CHUNK_BYTES))
                return response
        except aiohttp.ClientError as e:
            return recorder.unreachable(e)

    @staticmethod
    async def _record(
        recorder: Recorder,
        api: ApiRequest,
        body: Any,
        upstream: aiohttp.ClientResponse,
        reply: bytes,
        client: dict[str, str] | None = None,
    ) -> web.Response | None:
        """Write one metadata exchange: ``body`` is the JSON request body, ``reply`` the upstream's (JSON or empty),
        ``client`` the request headers naming the SDK (``api``'s by default). Returns the 500 to answer with when
        the exchange could not be written, else ``None``."""
        try:
            parsed = json.loads(reply) if reply else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            parsed = None
        response = JsonReply(status=upstream.status, offset_s=round(time.monotonic() - api.start, 4), body=parsed)
        query = {k: v for k, v in canonical_query(api.query).items() if k != "upload_id"}
        request = RecordedRequest(method=api.method, path=strip_version(api.path), query=query, body=body)
        try:
            await recorder.keep(api, request, response, provenance(client or api.headers, upstream, response))
        except SaveError as e:
            return api_error_response(ApiError(500, not_saved(e), headers={UPLOAD_STATUS: "final"}))
        return None


def download_headers(file_id: str) -> dict[str, str]:
    """The headers of a download beside its type: ``nosniff`` and ``attachment``, so that a browser never renders an
    upload's bytes (declared ``text/html`` by whoever uploaded them) as a page of this server's origin."""
    return {"X-Content-Type-Options": "nosniff", "Content-Disposition": f'attachment; filename="{file_id}"'}


async def send_bytes(request: web.Request, response: web.StreamResponse, data: Any) -> None:
    """Send ``data`` (bytes, or an async iterator of them) as ``response``'s body, :data:`DOWNLOAD_CHUNK_BYTES` at a
    time, each write waiting for the client to take the bytes before it (aiohttp's drain). A client that takes
    nothing for the server's idle timeout (``serve --idle-timeout``) has its connection closed, and what was held
    for it goes."""
    limit_s = request.app.get(BODY_TIMEOUT, IDLE_TIMEOUT_S)
    await response.prepare(request)

    async def pieces() -> Any:
        if isinstance(data, (bytes, bytearray)):
            view = memoryview(data)
            for start in range(0, len(view), DOWNLOAD_CHUNK_BYTES):
                yield view[start : start + DOWNLOAD_CHUNK_BYTES]
        else:
            async for piece in data:
                yield piece

    try:
        async for piece in pieces():
            async with asyncio.timeout(limit_s):
                await response.write(piece)
        await response.write_eof()
    except (TimeoutError, ConnectionError):
        if request.transport is not None:
            request.transport.abort()  # a reader that stalled (or left): let go of its connection and buffers


def _upload_headers(api: ApiRequest) -> dict[str, str]:
    """The headers the recorder forwards, plus the ``X-Goog-Upload-*`` ones."""
    return {
        name: value
        for name, value in api.headers.items()
        if name.lower() in FORWARDED_HEADERS or name.lower().startswith("x-goog-upload-")
    }


def _field(meta: Any, snake: str, kind: type | tuple[type, ...] = str) -> Any:
    """A field of the start body's ``file`` object, spelt ``snake_case`` (as the SDK sends it) or ``camelCase``;
    ``None`` when absent.

    Raises:
        ApiError: 400 naming the field when the body is not ``{"file": {...}}`` or the field is not a ``kind``.
    """
    if meta is None:
        return None
    expect(meta, dict, "", 'upload metadata {"file": {"mime_type": ..., "display_name": ...}}')
    file = meta.get("file")
    if file is None:
        return None
    expect(file, dict, "file", 'a File object ({"mime_type": ..., "display_name": ...})')
    value = file.get(snake, file.get(camel(snake)))
    if value is not None:
        expect(value, kind, f"file.{snake}", "a string" if kind is str else "a size in bytes")
    return value
