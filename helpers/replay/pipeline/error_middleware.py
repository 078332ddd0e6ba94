"""One error middleware: whatever goes wrong below it, the client gets the API's JSON error, never a traceback.

The pipeline layer (``docs/server.md``), the outermost middleware of the replay server and of the synthetic
upstream. The services refuse bad input themselves, with a message that names the field (:class:`.framing.ApiError`,
:func:`.api_request.parse`); this is the net under them:

- :class:`.framing.ApiError` raised anywhere becomes its error reply;
- an aiohttp HTTP error (no route 404, 405, a body over the size limit 413) becomes the same status in the API's shape;
- a body nested too deeply for Python (``RecursionError``) is a 400 that says so;
- anything else is a 500 ``INTERNAL`` that says the replay server failed (a bug to report), with the traceback in the
  server's log (stderr), not in the reply. The message names no part of the request (it may carry a key).

A failure after a response has begun (a stream cut by a bug) cannot become a new reply: it is logged and the
connection closed, as a dropped stream looks to the client.
"""

from __future__ import annotations

import sys
import traceback

from aiohttp import web

from ..wire.framing import ApiError
from .api_request import Handler, api_error_response, error_response

STARTED = web.RequestKey("workbook_response_started", bool)
"""Set once a response to the request has begun (its status line is out): no error reply can follow it."""

BUG_MESSAGE = (
    "The replay server failed while answering this call ({kind}). This is a bug in the workbook's replay server, "
    "not in your code: its log (stderr) has the traceback; please report it."
)


def install(app: web.Application) -> None:
    """Make :func:`middleware` the app's outermost middleware; call before the app starts."""
    app.middlewares.insert(0, middleware)
    app.on_response_prepare.append(_started)


async def _started(request: web.Request, response: web.StreamResponse) -> None:
    request[STARTED] = True


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every failure of ``handler`` in the API's error shape (see the module docstring)."""
    try:
        return await handler(request)
    except ApiError as e:
        if request.get(STARTED):
            raise
        return api_error_response(e)
    except web.HTTPException as e:
        if e.status < 400 or request.get(STARTED):
            raise
        return error_response(e.status, _http_message(e), headers=_kept_headers(e))
    except RecursionError:
        if request.get(STARTED):
            raise
        return error_response(400, "Invalid JSON payload received. The body is nested too deeply to read.")
    except Exception as e:
        print(f"replay server: {request.method} failed:", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        if request.get(STARTED):
            raise
        return error_response(500, BUG_MESSAGE.format(kind=type(e).__name__))


def _http_message(e: web.HTTPException) -> str:
    if isinstance(e, web.HTTPRequestEntityTooLarge):
        return f"The request body is larger than this server accepts: {e.text}."
    if isinstance(e, web.HTTPNotFound):
        return "No such route: use http://HOST:PORT/<cassette>/ as the SDK's base URL (see docs/server.md)."
    if isinstance(e, web.HTTPMethodNotAllowed):
        return f"{e.method} is not allowed here; this route takes {', '.join(sorted(e.allowed_methods))}."
    return e.reason


def _kept_headers(e: web.HTTPException) -> dict[str, str]:
    return {"Allow": e.headers["Allow"]} if "Allow" in e.headers else {}
