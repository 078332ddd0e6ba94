"""A seat's side of a classroom room: the few calls a learner's kernel makes to the relay, standard library only.

Used by :func:`helpers.setup` (joining a room), :mod:`helpers.progress` (posting an outcome) and
:mod:`helpers.doctor` (checking the seat). Introduced in ``00_setup``. The relay's routes for seats are under
``/_room/`` (:mod:`.relay`); each call carries the seat's token as the API key, as the SDK sends it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

ROOM_PREFIX = "_room"
"""The first path segment of the relay's own routes; cassette names cannot start with ``_``."""
SEAT_HEADER = "x-goog-api-key"
"""Where a seat's token travels: the header the SDK sends its API key in."""
JOIN_TIMEOUT_S = 10.0
"""How long :func:`helpers.setup` waits for the relay to answer, seconds."""


class RoomError(Exception):
    """A call to the room's relay failed; the message says why.

    Attributes:
        code: the HTTP status the relay answered with, or ``None`` when it could not be reached.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def room_url(room: str) -> str:
    """``room`` as ``http://HOST:PORT`` (no trailing slash).

    Raises:
        RoomError: it is not an ``http://`` or ``https://`` URL with a host.
    """
    parts = urllib.parse.urlsplit(room.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RoomError(
            f"the room address {room!r} is not a URL like http://192.168.1.20:8000: copy it exactly as your "
            "instructor gave it."
        )
    return f"{parts.scheme}://{parts.netloc}"


def error_message(error: urllib.error.HTTPError) -> str:
    """The message of an error reply in the API's JSON shape, or ``HTTP CODE REASON`` when it has none."""
    try:
        return str(json.loads(error.read())["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {error.code} {error.reason}"


def room_request(
    room: str, seat: str, method: str, route: str, payload: Any = None, *, timeout_s: float = JOIN_TIMEOUT_S
) -> Any:
    """Call ``{room}/_room/{route}`` as seat ``seat`` and return the parsed JSON answer.

    Proxy variables are ignored: the relay is on the room's own network.

    Args:
        room: the relay's ``http://HOST:PORT``.
        seat: the seat's token.
        method: ``"GET"`` or ``"POST"``.
        route: e.g. ``"seat"``, ``"session"``, ``"progress"``.
        payload: a JSON body for a POST.
        timeout_s: how long to wait, seconds.

    Raises:
        RoomError: the relay refused the call (its message passed on, with the status) or could not be reached.
    """
    url = f"{room_url(room)}/{ROOM_PREFIX}/{route}"
    data = None if payload is None else json.dumps(payload).encode()
    headers = {SEAT_HEADER: seat, "Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout_s) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        raise RoomError(f"the room refused it ({e.code}): {error_message(e)}", e.code) from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise RoomError(f"could not reach the room at {room_url(room)} ({reason})") from None
