"""Every API key the replay server has been sent, and the one check that keeps them out of what it writes.

The wire layer (``docs/server.md``), no dependencies. :func:`.guard.Guard.middleware` notes the key of every
request (``x-goog-api-key``, ``?key=``, ``Authorization: Bearer``) before anything else looks at it, and the server's
own token too. Two writers consult :data:`SEEN`: the cassette writer (:mod:`.store`) refuses an exchange whose final
serialised text contains a key, and the server's log (its standard error, :class:`RedactingStream`) has each key
replaced by :data:`REDACTED`. ``SECURITY.md`` lists the routes a key was found to leak by, each now closed.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Any, TextIO

from .defaults import TOKEN_SEPARATOR

MIN_KEY_LENGTH = 20
"""Keys shorter than this are test placeholders (a real Gemini API key is 39 characters) and may occur anywhere."""

REDACTED = "[redacted]"
"""What a key is replaced by in the server's log."""

KEY_SHAPE = re.compile(r"AIza[0-9A-Za-z_\-]{35}")
"""What a Gemini API key looks like (``AIza`` and 35 more characters): found in any header value, it is noted."""
BEARER = re.compile(r"\s*bearer\s+(\S+)\s*", re.IGNORECASE)
"""``Authorization: Bearer KEY``, whatever whitespace separates the scheme and the key (a tab is as good as a
space to the upstream, so it must be to this check too)."""


def credentials(headers: Mapping[str, str], query: Mapping[str, str]) -> list[str]:
    """The keys a request presents, where the API and its OpenAI-compatible endpoint read them: the
    ``x-goog-api-key`` header, ``?key=``, and ``Authorization: Bearer KEY``; empty ones left out."""
    found = [headers.get("x-goog-api-key", "").strip(), query.get("key", "").strip()]
    bearer = BEARER.fullmatch(headers.get("authorization", ""))
    if bearer:
        found.append(bearer.group(1))
    return [key for key in found if key]


class KeyRing:
    """A set of secrets (API keys, tokens) that must never be written; safe to use from any thread."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def note(self, secret: str) -> None:
        """Remember ``secret`` (ignored when shorter than :data:`MIN_KEY_LENGTH`)."""
        secret = secret.strip()
        if len(secret) >= MIN_KEY_LENGTH and secret not in self._secrets:
            with self._lock:
                self._secrets.add(secret)

    def note_request(self, headers: Mapping[str, str], query: Mapping[str, str]) -> None:
        """Remember the keys a request carries (:func:`credentials`), and anything shaped like a Gemini key
        (:data:`KEY_SHAPE`) in any header value or query parameter: a key sent in a header no API reads (a proxy's,
        a ``User-Agent``) must not reach a cassette either."""
        for key in credentials(headers, query):
            self.note(key)
            own, dot, _token = key.rpartition(TOKEN_SEPARATOR)
            if dot:
                self.note(own)  # a key wrapped with a server's token (KEY.TOKEN): the learner's own key
        for value in [*headers.values(), *query.values()]:
            for shaped in KEY_SHAPE.findall(value):
                self.note(shaped)

    def _forms(self) -> list[str]:
        """Each secret as it may appear in text: as sent, JSON-escaped, percent-encoded."""
        with self._lock:
            secrets = list(self._secrets)
        forms = {form for s in secrets for form in (s, json.dumps(s)[1:-1], urllib.parse.quote(s, safe=""))}
        return sorted(forms, key=len, reverse=True)

    def find(self, text: str) -> bool:
        """Whether ``text`` contains any remembered secret (in any form of :meth:`_forms`)."""
        return any(form in text for form in self._forms())

    def redact(self, text: str) -> str:
        """``text`` with every remembered secret replaced by :data:`REDACTED`."""
        for form in self._forms():
            text = text.replace(form, REDACTED)
        return text


SEEN = KeyRing()
"""Every key this process's replay server has been sent (one server a process, as ``python -m helpers.replay serve``
runs it; servers run inside one test process share it, which only widens what is kept out)."""


class RedactingStream:
    """A text stream that writes to ``inner`` with every key in :data:`SEEN` redacted: the server's log.

    Installed as ``sys.stderr`` by ``python -m helpers.replay serve``, so a traceback, aiohttp's log or a message
    of the recorder cannot carry a key into ``helpers.setup``'s log file.
    """

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        self.inner.write(SEEN.redact(text))
        return len(text)

    def flush(self) -> None:
        self.inner.flush()

    def fileno(self) -> int:
        return self.inner.fileno()

    def isatty(self) -> bool:
        return self.inner.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # the rest of a text stream (encoding, errors, ...) is the inner one's
