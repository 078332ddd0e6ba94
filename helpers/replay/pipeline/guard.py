"""The replay server's guard: no web page or other account can drive it, and it learns every key it is sent first.

The pipeline layer (``docs/server.md``), the outermost middleware (before :func:`.api_request.parse`). Modelled on
Jupyter Server's checks (``SECURITY.md`` has the threat model). It refuses, in the API's JSON error shape, before
anything is matched, forwarded or written:

- a request whose ``Sec-Fetch-Site`` is ``cross-site`` or ``same-site``, whatever its method: a browser sends that
  header with every request a page of another site or port makes (an ``<img>``, a form, ``fetch``), even a "simple"
  one without ``Origin`` (403 ``PERMISSION_DENIED``); ``same-origin``, ``none`` and clients that send no such header
  (the SDK, ``httpx``, ``curl``) pass;
- a path with ``?`` in it (sent as ``%3F``): a query smuggled into the path, e.g. ``%3Fkey=``, would be forwarded
  upstream and written into a cassette's ``path`` (400 ``INVALID_ARGUMENT``);
- on loopback, a ``Host`` that is not this server's loopback name or address with its port, or that carries
  anything else (``evil@127.0.0.1``): DNS rebinding (403);
- an ``Origin`` other than the server's own: a page of another site, whose browser sends even a "simple" request
  without asking first (403);
- without the server's token, a ``/_control`` call; with ``--require-token`` (how ``helpers.setup`` starts every
  server) or bound to a non-loopback address (``--allow-remote``), every call (403). The token is sent in the
  :data:`.server_token.HEADER` header, or as the API key's suffix, ``KEY.TOKEN``
  (:data:`.defaults.TOKEN_SEPARATOR`), which is how a plain ``genai.Client()`` sends it: ``helpers.setup`` puts it
  in the SDK's own key variable, and the key part alone travels upstream in record mode (:meth:`Guard.unwrapped`).
  An upload's chunks, which the SDK sends to the upload URL with no key, pass on the upload URL's own
  ``upload_id``, handed out only to a call that had the token (:class:`Grants`);
- a ``POST``/``PUT``/``PATCH`` whose ``Content-Type`` is not ``application/json``, except on the ``upload/`` routes,
  where an upload's bytes keep their own type (415): the content types a page can send without a CORS preflight.

An SDK client on loopback with base URL ``http://HOST:PORT/<cassette>/`` and no token passes all of these when the
server runs without ``--require-token`` (the fixed contract of ``python -m helpers.replay serve``).
"""

from __future__ import annotations

import re
import secrets
import urllib.parse

from aiohttp import web
from multidict import CIMultiDict

from ..wire.api_keys import BEARER, SEEN, credentials
from ..wire.defaults import TOKEN_SEPARATOR
from .api_request import CONTROL_PREFIX, UNWRAPPED, UPLOAD_STATUS, Handler, error_response
from .server_token import HEADER, is_loopback
from .socket_server import APP_TOKEN, arrival

BODY_METHODS = {"POST", "PUT", "PATCH"}
"""Methods whose body must be JSON (outside the upload routes)."""
FOREIGN_FETCH_SITES = {"cross-site", "same-site"}
"""``Sec-Fetch-Site`` values of a request made by a page that is not this server's own (Fetch Metadata,
w3.org/TR/fetch-metadata): ``same-site`` is another port of the same host, as ``http://127.0.0.1:8888`` is to
``http://127.0.0.1:PORT``."""
HOST_HEADER = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")
"""A ``Host`` header as RFC 9110 has it, a name or address and a port: no userinfo, path or spaces."""


class Grants:
    """Upload ids handed out to calls that had the token: an upload's chunks carry no key (the SDK sends them to the
    upload URL alone), so the unguessable id (``uuid4``, 122 random bits) in that URL is their credential, as the
    real API's upload URLs are. The Files service grants one when an upload starts and revokes it when the upload
    ends or is forgotten."""

    def __init__(self) -> None:
        self._ids: set[str] = set()

    def grant(self, upload_id: str) -> None:
        """Let chunks naming ``upload_id`` through."""
        self._ids.add(upload_id)

    def revoke(self, upload_id: str) -> None:
        """Stop letting chunks naming ``upload_id`` through."""
        self._ids.discard(upload_id)

    def __contains__(self, upload_id: object) -> bool:
        return upload_id in self._ids


def split_host(value: str) -> tuple[str, int | None]:
    """``(hostname, port)`` of a ``Host`` header or an origin's ``host[:port]``; hostname lowercased, IPv6 without
    brackets, port ``None`` when absent or not a number."""
    parsed = urllib.parse.urlsplit(f"//{value}")
    try:
        port = parsed.port
    except ValueError:
        port = None
    return (parsed.hostname or ""), port


def _is_upload(request: web.Request) -> bool:
    """Whether ``request`` is on an ``upload/`` route: ``/<cassette>/upload/...``."""
    return request.path.split("/", 3)[2:3] == ["upload"]


class Guard:
    """The guard of one replay server.

    Args:
        remote: the server is bound to a non-loopback address (``--allow-remote``): any ``Host`` is accepted, and
            every call needs the token.
        token: the per-server token; a fresh random one (``secrets.token_urlsafe(32)``) by default.
        require_token: every call needs the token, on loopback too (``serve --require-token``).
        grants: the upload ids whose chunks pass without the token (:class:`Grants`).
    """

    def __init__(
        self,
        remote: bool = False,
        token: str | None = None,
        require_token: bool = False,
        grants: Grants | None = None,
    ) -> None:
        self.remote, self.require_token = remote, require_token
        self.token = token or secrets.token_urlsafe(32)
        self.grants = grants if grants is not None else Grants()
        SEEN.note(self.token)  # a token is a secret too: never in a cassette or the log

    def install(self, app: web.Application) -> None:
        """Hand the token to :func:`.socket_server.running` (which publishes it); :meth:`middleware` is the app's to
        place, first."""
        app[APP_TOKEN] = self.token

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Note the request's key (:data:`.api_keys.SEEN`), then refuse it (see the module docstring) or pass it on."""
        SEEN.note_request(request.headers, request.query)
        refusal = self.refusal(request)
        if refusal is None:
            unwrapped = self.unwrapped(request)
            if unwrapped is not None:
                request[UNWRAPPED] = unwrapped
            return await handler(request)
        arrival(request)  # forgotten, so that the connection's next request gets its own
        if _is_upload(request):
            refusal.headers[UPLOAD_STATUS] = "final"  # the SDK stops retrying an upload
        return refusal

    def refusal(self, request: web.Request) -> web.Response | None:
        """The error reply for ``request``, or ``None`` when it may pass."""
        own = self._own_origin(request)
        if request.headers.get("Sec-Fetch-Site", "").strip().lower() in FOREIGN_FETCH_SITES:
            return error_response(
                403,
                "Requests made by web pages of other sites or ports are refused (Sec-Fetch-Site: "
                f"{request.headers['Sec-Fetch-Site']}): call the replay server from Python (the SDK), or from your web "
                "app's server side.",
            )
        if "?" in request.path:
            return error_response(
                400,
                "The URL path contains '?' (sent encoded as %3F): put query parameters after a literal '?', and the "
                "API key in the x-goog-api-key header, as the SDK does.",
            )
        if not self.remote and not self._loopback_host(request.host, own):
            return error_response(
                403,
                f"This replay server answers only requests addressed to it on this machine ({own}); the Host header "
                "named another server, as a web page using DNS rebinding would. Use the base URL helpers.setup() "
                "printed.",
            )
        origin = request.headers.get("Origin")
        if origin is not None and not self._own(origin, request):
            return error_response(
                403,
                "Calls from web pages of other sites are refused (the Origin header names another site): call the "
                f"replay server from Python (the SDK), or from your web app's server side. Its own origin is {own}.",
            )
        control = request.path.split("/", 2)[1] == CONTROL_PREFIX
        if (self.remote or self.require_token or control) and not self._has_token(request):
            where = "control calls" if not (self.remote or self.require_token) else "every call"
            return error_response(
                403,
                f"This replay server needs its token on {where}: in the {HEADER} header, or after the API key as "
                f"KEY{TOKEN_SEPARATOR}TOKEN. helpers.setup() and helpers.control send it by themselves for a server of "
                "yours on this machine; from elsewhere, pass HttpOptions(headers="
                f"{{'{HEADER}': TOKEN}}) with the token the server printed.",
            )
        if request.method in BODY_METHODS and not _is_upload(request) and request.content_type != "application/json":
            return error_response(
                415,
                f"Content-Type must be application/json for {request.method} calls (got "
                f"{request.headers.get('Content-Type', 'none')!r}); only uploads send other types, to the upload/ "
                "routes. The SDK sends it.",
                "INVALID_ARGUMENT",
            )
        return None

    def _has_token(self, request: web.Request) -> bool:
        """Whether ``request`` carries this server's token (see the module docstring), or is the chunk of an upload
        a call with the token started."""
        if secrets.compare_digest(request.headers.get(HEADER, ""), self.token):
            return True
        if any(self._key_of(key) is not None for key in credentials(request.headers, request.query)):
            return True
        upload_id = request.query.get("upload_id")
        return _is_upload(request) and upload_id is not None and upload_id in self.grants

    def unwrapped(self, request: web.Request) -> tuple[CIMultiDict[str], dict[str, str]] | None:
        """``request``'s headers and query with every ``KEY.TOKEN`` credential of this server's token cut down to
        ``KEY`` (left out when only the token was sent): what record mode forwards upstream. ``None`` when the
        request carries no such credential."""
        headers, query = CIMultiDict(request.headers), dict(request.query)
        changed = False
        key = self._key_of(headers.get("x-goog-api-key", ""))
        if key is not None:
            changed = True
            headers.popall("x-goog-api-key")
            if key:
                headers["x-goog-api-key"] = key
        bearer = BEARER.fullmatch(headers.get("authorization", ""))
        key = self._key_of(bearer.group(1)) if bearer else None
        if key is not None:
            changed = True
            headers.popall("authorization")
            if key:
                headers["authorization"] = f"Bearer {key}"
        key = self._key_of(query.get("key", ""))
        if key is not None:
            changed = True
            del query["key"]
            if key:
                query["key"] = key
        return (headers, query) if changed else None

    def _key_of(self, credential: str) -> str | None:
        """The key part of ``credential`` when it carries this server's token (``""`` for the token alone), else
        ``None``."""
        key, _dot, token = credential.strip().rpartition(TOKEN_SEPARATOR)
        return key if token and secrets.compare_digest(token, self.token) else None

    @staticmethod
    def _own_origin(request: web.Request) -> str:
        """``http://127.0.0.1:PORT``: how this server is reached on loopback (the port it accepted this on)."""
        sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
        port = sockname[1] if sockname else None
        return f"http://127.0.0.1:{port}"

    @staticmethod
    def _loopback_host(host: str, own: str) -> bool:
        """Whether ``host`` (a ``Host`` header) is a loopback name or address with this server's port."""
        if HOST_HEADER.fullmatch(host) is None:
            return False
        name, port = split_host(host)
        return is_loopback(name) and port is not None and port == urllib.parse.urlsplit(own).port

    def _own(self, origin: str, request: web.Request) -> bool:
        """Whether ``origin`` is this server's own: ``http://`` and the request's own ``Host``, or (on loopback)
        any loopback name with this server's port."""
        parsed = urllib.parse.urlsplit(origin)
        if parsed.scheme != "http" or not parsed.netloc:
            return False  # "null" (a sandboxed page, a file), https, or garbage
        if parsed.netloc.lower() == request.host.lower():
            return True
        return not self.remote and self._loopback_host(parsed.netloc, self._own_origin(request))
