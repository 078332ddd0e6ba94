"""The Files API offline: resumable uploads, get, list, delete and download, held in the replay server's memory.

Introduced in ``04_multimodal``. Routes, after the cassette segment (``{v}`` is ``v1``, ``v1beta``, ...)::

    POST   upload/{v}/files                  X-Goog-Upload-Command: start -> 200, x-goog-upload-url
    POST   upload/{v}/files?upload_id=...    X-Goog-Upload-Command: upload[, finalize] + X-Goog-Upload-Offset
    GET    {v}/files[?pageSize=&pageToken=]  -> {"files": [...], "nextPageToken"?}
    GET    {v}/files/{id}                    -> the File resource
    DELETE {v}/files/{id}                    -> {}
    GET    {v}/files/{id}:download?alt=media -> the raw bytes

What the server does, and how it compares with the real API (google-genai 3.4.0 source and public outputs, read
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
- Files live in memory, per cassette, for the server's lifetime (they are not expired after 48 h). Unlike the real
  API, uploaded files can be downloaded by name (the SDK refuses only a ``File`` object without ``download_uri``).
- Ids are stable across runs, so recorded ``fileData.fileUri`` values match in replay: an upload whose bytes match
  a recorded upload (same ``sha256Hash``, in cassette order) takes that recording's ``name`` and ``uri``; any other
  gets the first of a fixed series of ids (derived from the cassette, the bytes, the MIME type and the display name)
  that no file holds now, with the ``uri`` the real API would give it. So an upload deleted and made again gets its
  old id back, and calls recorded with it still match: a learner can re-run an upload cell, or a check that uploads
  and deletes, as often as they like (the real API gives every upload a new id).
- Record mode: uploads and downloads are proxied here (the upstream's upload URL is handed to the client rewritten to
  point back at this server); their metadata exchanges are recorded, never the bytes. Get, list and delete go
  through the recorder like any other call. With ``serve --record --local-files-batches`` (recording from the
  synthetic upstream, which has no Files API) files are held here as in replay, and none of this is recorded.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import itertools
import json
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
from aiohttp import web

from ..cassette import CassetteError, canonical_query, strip_version
from .recorder import FORWARDED_HEADERS
from .server import CASSETTE_NAME, ApiRequest
from .wire import FILE_NOT_ACTIVE, error_json, error_response, json_response

if TYPE_CHECKING:
    from .server import ReplayServer

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
UPLOAD_STATUS = "x-goog-upload-status"
_VERSION = r"v\d+(?:alpha|beta)?\d*"
VERSION = "{version:" + _VERSION + "}"
"""The API version segment in a route pattern, captured as ``version``."""
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
        ValueError: ``pageSize`` is not an integer or ``pageToken`` is not one this server gave out; the message
            says so.
    """
    try:
        size = int(query.get("pageSize") or DEFAULT_PAGE_SIZE)
    except ValueError:
        raise ValueError(f"pageSize must be an integer, got {query['pageSize']!r}.") from None
    size = min(size, MAX_PAGE_SIZE) if size > 0 else DEFAULT_PAGE_SIZE
    token = query.get("pageToken") or "0"
    if not token.isdigit() or int(token) > len(items):
        raise ValueError(f"Invalid page token {token!r}: pass the nextPageToken of the previous page.")
    start = int(token)
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


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
            expirationTime=rfc3339(self.created + FILE_TTL_S),
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


class FileError(ValueError):
    """A Files API call the server refuses: ``code`` is the HTTP status, the message says what to fix."""

    def __init__(self, code: int, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.code, self.status = code, status


class FileService:
    """The Files API of one replay server: its routes and the files of every cassette."""

    def __init__(self, server: ReplayServer) -> None:
        self.server = server
        self.files: dict[str, dict[str, StoredFile]] = defaultdict(dict)
        self._uploads: dict[str, Upload] = {}
        self._seen: Counter[tuple[str, str]] = Counter()

    def install(self, app: web.Application) -> None:
        """Add the Files routes (before any catch-all route).

        When record mode forwards files upstream, only uploads and downloads are ours.
        """
        base = "/{cassette}/" + VERSION
        app.router.add_post("/{cassette}/upload/" + VERSION + "/files", self.upload)
        app.router.add_get(base + "/files/{file:[^/:]+}:download", self.download)
        if self.server.forwards_files_batches:
            return
        app.router.add_get(base + "/files", self.list_files)
        app.router.add_get(base + "/files/{file:[^/:]+}", self.get_file)
        app.router.add_delete(base + "/files/{file:[^/:]+}", self.delete_file)
        generate = "{path:" + _VERSION + "/models/[^/:]+:(?:generateContent|streamGenerateContent)}"
        app.router.add_post("/{cassette}/" + generate, self.generate)

    def lookup(self, cassette: str, name: str) -> StoredFile:
        """The file ``name`` (``files/ID`` or ``ID``) of ``cassette``.

        Raises:
            FileError: 403 PERMISSION_DENIED, the real API's answer for a file that does not exist.
        """
        file_id = name.removeprefix("files/")
        stored = self.files[cassette].get(file_id)
        if stored is None:
            raise FileError(
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
        delay = PROCESSING_S / self.server.speed if mime_type.startswith(PROCESSING_MIME_PREFIXES) else 0.0
        download_uri = f"{API_HOST}/download/{version}/files/{file_id}:download?alt=media" if generated else None
        uri = uri or f"{API_HOST}/{version}/files/{file_id}"
        stored = StoredFile(
            file_id, data, mime_type, display_name, now, now + delay, uri, sha256_hash(data), download_uri
        )
        self.files[cassette][file_id] = stored
        return stored

    def precondition_error(self, cassette: str, body: Any) -> dict[str, Any] | None:
        """The API's 400 FAILED_PRECONDITION error JSON if ``body`` names a file still ``PROCESSING``, else ``None``."""
        now = time.time()
        for uri in file_uris(body):
            match = re.search(r"files/([a-z0-9-]+)", uri)
            stored = self.files[cassette].get(match.group(1)) if match else None
            if stored is not None and stored.state(now) == "PROCESSING":
                return error_json(
                    400,
                    f"The File {stored.id} {FILE_NOT_ACTIVE}. (Wait until files.get() reports state ACTIVE.)",
                    "FAILED_PRECONDITION",
                )
        return None

    # Routes -------------------------------------------------------------------------------------------------------

    async def generate(self, request: web.Request) -> web.StreamResponse:
        """A model call: refused with 400 FAILED_PRECONDITION if it uses a file still processing, else replayed."""
        try:
            body = json.loads(await request.read() or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError):
            body = None  # the replay handler answers malformed JSON
        error = self.precondition_error(request.match_info["cassette"], body)
        if error is not None:
            return json_response(error, status=400)
        return await self.server.handle(request)

    async def upload(self, request: web.Request) -> web.StreamResponse:
        """Start a resumable upload, or take one of its chunks (``upload`` or ``upload, finalize``)."""
        start = asyncio.get_running_loop().time()
        cassette, version = request.match_info["cassette"], request.match_info["version"]
        commands = {c.strip() for c in request.headers.get("X-Goog-Upload-Command", "").lower().split(",")}
        try:
            if not CASSETTE_NAME.match(cassette):
                raise FileError(404, f"'{cassette}' is not a cassette name; use http://HOST:PORT/<cassette>/.")
            if "start" in commands:
                raw = await request.read()
                if self.server.forwards_files_batches:
                    return await self._record_start(request, Upload("", cassette, version), raw, start)
                return self._start(request, Upload("", cassette, version), _start_metadata(raw))
            upload = self._uploads.get(request.query.get("upload_id", ""))
            if upload is None:
                raise FileError(404, "No upload session with this upload_id: start the upload again.", "NOT_FOUND")
            if "upload" not in commands:
                raise FileError(
                    400, "X-Goog-Upload-Command must be 'start', 'upload' or 'upload, finalize' (what the SDK sends)."
                )
            if upload.upstream_url is not None:
                return await self._record_chunk(request, upload, start)
            return await self._chunk(request, upload, "finalize" in commands)
        except FileError as e:
            # The upload status header tells the SDK to stop retrying; the status code makes it raise.
            return error_response(e.code, str(e), e.status, headers={UPLOAD_STATUS: "final"})
        except aiohttp.ClientError as e:
            return self._unreachable(e, {UPLOAD_STATUS: "final"})

    def _start(self, request: web.Request, upload: Upload, meta: dict[str, Any] | None) -> web.Response:
        if request.headers.get("X-Goog-Upload-Protocol", "").lower() != "resumable":
            raise FileError(400, "Only resumable uploads are served: send X-Goog-Upload-Protocol: resumable.")
        upload.mime_type = request.headers.get("X-Goog-Upload-Header-Content-Type") or _field(meta, "mime_type") or ""
        if not upload.mime_type:
            raise FileError(400, "The upload has no MIME type: pass config={'mime_type': ...} to files.upload().")
        size = request.headers.get("X-Goog-Upload-Header-Content-Length", _field(meta, "size_bytes"))
        try:
            upload.size = int(size)
        except (TypeError, ValueError):
            raise FileError(
                400, f"X-Goog-Upload-Header-Content-Length must be the size in bytes, got {size!r}."
            ) from None
        if not 0 <= upload.size <= MAX_FILE_BYTES:
            raise FileError(400, f"File size {upload.size} bytes is outside 0 to {MAX_FILE_BYTES} (2 GB) bytes.")
        upload.display_name = _field(meta, "display_name")
        upload.name = _field(meta, "name")
        if upload.name is not None:
            file_id = upload.name.removeprefix("files/")
            if not FILE_ID.match(file_id):
                raise FileError(
                    400,
                    f"Invalid file name {upload.name!r}: up to 40 lowercase letters, digits or dashes after 'files/', "
                    "not starting or ending with a dash.",
                )
            if file_id in self.files[upload.cassette]:
                raise FileError(409, f"A file named files/{file_id} already exists.", "ALREADY_EXISTS")
        return self._open(request, upload, "active")

    def _open(self, request: web.Request, upload: Upload, status: str) -> web.Response:
        """Register ``upload`` and answer its start request with an upload URL naming this server's host and port."""
        upload.id = uuid.uuid4().hex
        self._uploads[upload.id] = upload
        url = (
            f"{request.scheme}://{request.host}/{upload.cassette}/upload/{upload.version}/files"
            f"?upload_id={upload.id}&upload_protocol=resumable"
        )
        headers = {UPLOAD_STATUS: status, "x-goog-upload-url": url}
        headers["x-goog-upload-chunk-granularity"] = str(CHUNK_GRANULARITY)
        return web.Response(status=200, headers=headers)

    async def _chunk(self, request: web.Request, upload: Upload, finalize: bool) -> web.Response:
        offset = request.headers.get("X-Goog-Upload-Offset", "")
        if offset != str(len(upload.data)):
            raise FileError(
                400, f"X-Goog-Upload-Offset {offset!r} does not match the {len(upload.data)} bytes received so far."
            )
        upload.data += await request.read()
        if len(upload.data) > upload.size or (finalize and len(upload.data) != upload.size):
            del self._uploads[upload.id]
            raise FileError(
                400, f"Received {len(upload.data)} bytes for an upload declared as {upload.size} bytes; start again."
            )
        if not finalize:
            return web.Response(status=200, headers={UPLOAD_STATUS: "active"})
        del self._uploads[upload.id]
        if upload.name is not None and upload.name.removeprefix("files/") in self.files[upload.cassette]:
            raise FileError(409, f"A file named {upload.name} already exists.", "ALREADY_EXISTS")
        file_id, uri = self._identity(upload)
        stored = self.add(
            upload.cassette,
            file_id,
            bytes(upload.data),
            upload.mime_type,
            version=upload.version,
            display_name=upload.display_name,
            uri=uri,
        )
        return json_response({"file": stored.resource(time.time())}, headers={UPLOAD_STATUS: "final"})

    def _identity(self, upload: Upload) -> tuple[str, str | None]:
        """The id and ``uri`` of a finished upload: the requested name, a recorded one, or a stable fresh id."""
        if upload.name is not None:
            return upload.name.removeprefix("files/"), None
        digest = sha256_hash(bytes(upload.data))
        turn = self._seen[(upload.cassette, digest)]
        self._seen[(upload.cassette, digest)] += 1
        recorded = self._recorded_uploads(upload.cassette, digest)
        if recorded:
            name, uri = recorded[turn % len(recorded)]
            if name.removeprefix("files/") not in self.files[upload.cassette]:
                return name.removeprefix("files/"), uri
        series = (
            stable_id(12, upload.cassette, digest, upload.mime_type, upload.display_name or "", str(slot))
            for slot in itertools.count()
        )
        return next(i for i in series if i not in self.files[upload.cassette]), None

    def _recorded_uploads(self, cassette: str, digest: str) -> list[tuple[str, str | None]]:
        """``(name, uri)`` of the cassette's recorded finished uploads of these bytes, in recorded order."""
        try:
            recorded, _ = self.server.store.get(cassette)
        except CassetteError:
            return []
        found = []
        for exchange in recorded.exchanges:
            body = exchange.response.get("body")
            meta = body.get("file") if isinstance(body, dict) else None
            if (
                strip_version(exchange.request["path"]) == "upload/files"
                and isinstance(meta, dict)
                and meta.get("sha256Hash") == digest
                and isinstance(meta.get("name"), str)
            ):
                found.append((meta["name"], meta.get("uri")))
        return found

    async def get_file(self, request: web.Request) -> web.Response:
        """``GET {v}/files/{id}``: the File resource."""
        try:
            stored = self.lookup(request.match_info["cassette"], request.match_info["file"])
        except FileError as e:
            return error_response(e.code, str(e), e.status)
        return json_response(stored.resource(time.time()))

    async def list_files(self, request: web.Request) -> web.Response:
        """``GET {v}/files``: the cassette's files, oldest first, a page at a time (an empty page is ``{}``)."""
        now = time.time()
        files = sorted(self.files[request.match_info["cassette"]].values(), key=lambda f: f.created)
        try:
            page, token = paginate(files, dict(request.query))
        except ValueError as e:
            return error_response(400, str(e))
        body: dict[str, Any] = {"files": [f.resource(now) for f in page]} if page else {}
        if token:
            body["nextPageToken"] = token
        return json_response(body)

    async def delete_file(self, request: web.Request) -> web.Response:
        """``DELETE {v}/files/{id}``: forget the file; answers ``{}``."""
        cassette = request.match_info["cassette"]
        try:
            stored = self.lookup(cassette, request.match_info["file"])
        except FileError as e:
            return error_response(e.code, str(e), e.status)
        del self.files[cassette][stored.id]
        return json_response({})

    async def download(self, request: web.Request) -> web.StreamResponse:
        """``GET {v}/files/{id}:download?alt=media``: the file's bytes (proxied, not recorded, in record mode)."""
        if self.server.forwards_files_batches:
            return await self._record_download(request)
        if request.query.get("alt") != "media":
            return error_response(400, "A download needs ?alt=media (client.files.download() sends it).")
        try:
            stored = self.lookup(request.match_info["cassette"], request.match_info["file"])
        except FileError as e:
            return error_response(e.code, str(e), e.status)
        return web.Response(body=stored.data, content_type=stored.mime_type)

    # Record mode --------------------------------------------------------------------------------------------------

    async def _record_start(self, request: web.Request, upload: Upload, raw: bytes, start: float) -> web.Response:
        """Forward an upload start upstream; hand the client an upload URL of ours; record the metadata exchange."""
        path = f"upload/{upload.version}/files"
        async with self._upstream(request, "POST", path, raw) as upstream:
            body = await upstream.read()
            upload.upstream_url = upstream.headers.get("x-goog-upload-url")
            status = upstream.headers.get(UPLOAD_STATUS, "final")
            self._record(request, upload.cassette, path, _start_metadata(raw), upstream, body, start)
        if upstream.status != 200 or upload.upstream_url is None:
            return web.Response(status=upstream.status, body=body, headers={UPLOAD_STATUS: status})
        upload.user_agent = request.headers.get("user-agent", "")
        return self._open(request, upload, status)

    async def _record_chunk(self, request: web.Request, upload: Upload, start: float) -> web.Response:
        """Forward a chunk to the upstream's upload URL; record the finished upload's File (never the bytes)."""
        assert upload.upstream_url is not None
        headers = {h: request.headers[h] for h in ("X-Goog-Upload-Command", "X-Goog-Upload-Offset")}
        data = await request.read()
        async with self.server.recorder.session.post(upload.upstream_url, data=data, headers=headers) as upstream:
            body = await upstream.read()
            status = upstream.headers.get(UPLOAD_STATUS, "final")
            if status != "active":
                del self._uploads[upload.id]
                client = {"user-agent": upload.user_agent}
                path = f"upload/{upload.version}/files"
                self._record(request, upload.cassette, path, None, upstream, body, start, client)
        return web.Response(status=upstream.status, body=body, headers={UPLOAD_STATUS: status})

    async def _record_download(self, request: web.Request) -> web.Response:
        """Proxy a download; record that it happened (status and timing, an error's JSON), never the bytes."""
        start = asyncio.get_running_loop().time()
        cassette, version = request.match_info["cassette"], request.match_info["version"]
        path = f"{version}/files/{request.match_info['file']}:download"
        try:
            async with self._upstream(request, "GET", path, None) as upstream:
                body = await upstream.read()
                self._record(request, cassette, path, None, upstream, body if upstream.status != 200 else b"", start)
                content_type = upstream.content_type
        except aiohttp.ClientError as e:
            return self._unreachable(e)
        return web.Response(status=upstream.status, body=body, content_type=content_type)

    def _unreachable(self, error: aiohttp.ClientError, headers: dict[str, str] | None = None) -> web.Response:
        """The 502 a client gets when record mode cannot reach the upstream."""
        message = f"record mode could not reach the upstream {self.server.recorder.upstream}: {error}."
        return error_response(502, f"{message} Check the network and --upstream.", headers=headers)

    def _upstream(
        self, request: web.Request, method: str, path: str, data: bytes | None
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """``request`` sent to the recorder's upstream at ``path``, with the headers the recorder forwards plus the
        ``X-Goog-Upload-*`` ones."""
        recorder = self.server.recorder
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() in FORWARDED_HEADERS or name.lower().startswith("x-goog-upload-")
        }
        return recorder.session.request(
            method,
            f"{recorder.upstream.rstrip('/')}/{path}",
            params=canonical_query(dict(request.query)),
            data=data or None,
            headers=headers,
        )

    def _record(
        self,
        request: web.Request,
        cassette: str,
        path: str,
        body: Any,
        upstream: aiohttp.ClientResponse,
        reply: bytes,
        start: float,
        client: dict[str, str] | None = None,
    ) -> None:
        """Write one metadata exchange: ``body`` is the JSON request body, ``reply`` the upstream's (JSON or empty),
        ``client`` the request headers naming the SDK (``request``'s by default)."""
        recorder = self.server.recorder
        try:
            parsed = json.loads(reply) if reply else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            parsed = None
        response = {
            "status": upstream.status,
            "offset_s": round(asyncio.get_running_loop().time() - start, 4),
            "body": parsed,
        }
        query = {k: v for k, v in canonical_query(dict(request.query)).items() if k != "upload_id"}
        api = ApiRequest(cassette, request.method, path, query, b"", body)
        key = request.headers.get("x-goog-api-key") or request.query.get("key") or ""
        provenance = recorder.provenance(client or request.headers, upstream, response)
        recorder.save(api, response, provenance, key)


def _start_metadata(raw: bytes) -> dict[str, Any] | None:
    """The JSON body of an upload start request (``{"file": {...}}``), or ``None`` when it has none.

    Raises:
        FileError: 400 when the body is not JSON.
    """
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FileError(400, f"Invalid JSON payload received. {e}.") from None


def _field(meta: dict[str, Any] | None, snake: str) -> Any:
    """A field of the start body's ``file`` object, spelt ``snake_case`` (as the SDK sends it) or ``camelCase``."""
    file = (meta or {}).get("file") or {}
    head, *rest = snake.split("_")
    return file.get(snake, file.get(head + "".join(w.title() for w in rest)))
