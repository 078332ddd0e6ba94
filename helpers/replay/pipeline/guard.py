"""The replay server's guard: no web page can drive it, and it learns every key it is sent before anything else.

The pipeline layer (``docs/server.md``), the outermost middleware (before :func:`.api_request.parse`). Modelled on
Jupyter Server's checks (``SECURITY.md`` has the threat model). It refuses, in the API's JSON error shape:

- a path with ``?`` in it (sent as ``%3F``): a query smuggled into the path, e.g. ``%3Fkey=``, would be forwarded
  upstream and written into a cassette's ``path`` (400 ``INVALID_ARGUMENT``);
- on loopback, a ``Host`` that is not this server's loopback name or address with its port: DNS rebinding
  (403 ``PERMISSION_DENIED``);
- an ``Origin`` other than the server's own: a page of another site, whose browser sends even a "simple" request
  without asking first (403);
- without the server's token (header :data:`.server_token.HEADER`), a ``/_control`` call, and when the server is
  bound to a non-loopback address (``--allow-remote``), every call (403);
- a ``POST``/``PUT``/``PATCH`` whose ``Content-Type`` is not ``application/json``, except on the ``upload/`` routes,
  where an upload's bytes keep their own type (415): the content types a page can send without a CORS preflight.

An SDK client on loopback with base URL ``http://HOST:PORT/<cassette>/`` and no token passes all of these.
"""

from __future__ import annotations

import secrets
import urllib.parse

from aiohttp import web

from ..wire.api_keys import SEEN
from .api_request import CONTROL_PREFIX, UPLOAD_STATUS, Handler, error_response
from .server_token import HEADER, is_loopback
from .socket_server import APP_TOKEN, arrival

BODY_METHODS = {"POST", "PUT", "PATCH"}
"""Methods whose body must be JSON (outside the upload routes)."""


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
    """

    def __init__(self, remote: bool = False, token: str | None = None) -> None:
        self.remote = remote
        self.token = token or secrets.token_urlsafe(32)
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
            return await handler(request)
        arrival(request)  # forgotten, so that the connection's next request gets its own
        if _is_upload(request):
            refusal.headers[UPLOAD_STATUS] = "final"  # the SDK stops retrying an upload
        return refusal

    def refusal(self, request: web.Request) -> web.Response | None:
        """The error reply for ``request``, or ``None`` when it may pass."""
        own = self._own_origin(request)
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
        needs_token = self.remote or request.path.split("/", 2)[1] == CONTROL_PREFIX
        if needs_token and not secrets.compare_digest(request.headers.get(HEADER, ""), self.token):
            where = "every call" if self.remote else "control calls"
            return error_response(
                403,
                f"This replay server needs its token on {where}, in the {HEADER} header. helpers.control sends it by "
                "itself for a server of yours on this machine (it reads the server's runtime file); from elsewhere, "
                f"pass HttpOptions(headers={{'{HEADER}': TOKEN}}) with the token the server printed.",
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

    @staticmethod
    def _own_origin(request: web.Request) -> str:
        """``http://127.0.0.1:PORT``: how this server is reached on loopback (the port it accepted this on)."""
        sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
        port = sockname[1] if sockname else None
        return f"http://127.0.0.1:{port}"

    @staticmethod
    def _loopback_host(host: str, own: str) -> bool:
        """Whether ``host`` (a ``Host`` header) is a loopback name or address with this server's port."""
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
