"""Which recording answers a request: the server's one matcher and its one cursor policy, for every endpoint.

The cassette layer of the server (``docs/server.md``). A request matches an exchange when their
:func:`.cassette.request_key` is equal (method, version-less path, query minus the key, normalised JSON body).
Identical requests take the recordings in recorded order, and cycle when more arrive than were recorded; the turn is
kept per cassette and key, whichever service asks (a model call, a batch's request, an upload's identity).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

from .cassette import Cassette, Exchange, canonical_query, json_differences, normalized_body, strip_version


class Matcher:
    """Exchanges indexed by request key, per cassette, and the turn each key has reached."""

    def __init__(self) -> None:
        self._index: dict[str, tuple[Cassette, int, dict[str, list[Exchange]]]] = {}
        self._turns: Counter[tuple[str, str]] = Counter()

    def recordings(self, cassette: Cassette, key: str) -> list[Exchange]:
        """The exchanges of ``cassette`` recorded for requests with ``key``, in recorded order."""
        cached = self._index.get(cassette.name)
        if cached is None or cached[0] is not cassette or cached[1] != cassette.revision:
            index: dict[str, list[Exchange]] = defaultdict(list)
            for exchange in cassette.exchanges:
                index[exchange.key].append(exchange)
            cached = self._index[cassette.name] = (cassette, cassette.revision, index)
        return cached[2].get(key, [])

    def next(self, cassette: Cassette, key: str, *, take: bool = True) -> Exchange | None:
        """The recording whose turn it is for ``key`` (``None`` when there is none); ``take`` uses the turn up.

        Call with ``take=False`` to look first (a rate limit may refuse the call, which must not cost its turn),
        then :meth:`advance`.
        """
        recorded = self.recordings(cassette, key)
        if not recorded:
            return None
        exchange = recorded[self._turns[(cassette.name, key)] % len(recorded)]
        if take:
            self.advance(cassette.name, key)
        return exchange

    def advance(self, cassette: str, key: str) -> None:
        """Use up ``key``'s turn in ``cassette``."""
        self._turns[(cassette, key)] += 1

    def turn(self, cassette: str, key: str) -> int:
        """Take the next turn of a key that is not a request's (an upload's content hash) and return its number."""
        number = self._turns[(cassette, key)]
        self._turns[(cassette, key)] += 1
        return number


def summary(method: str, path: str, body: Any) -> str:
    """``POST models/m:generateContent ("first words of the prompt...")``, for error messages; an interaction also
    names the interaction it continues (``POST interactions ("...", continuing v1_...)``)."""
    text = _first_text(body) or _input_text(body)
    prompt = json.dumps(text[:60] + ("..." if len(text) > 60 else "")) if text else ""
    previous = body.get("previous_interaction_id") if isinstance(body, dict) else None
    details = [d for d in (prompt, f"continuing {previous}" if previous else "") if d]
    return f"{method} {strip_version(path)}" + (f" ({', '.join(details)})" if details else "")


def _input_text(body: Any) -> str:
    """The first text of an interaction's ``input`` (a string, a content, or a list of contents or steps), or ``""``."""
    value = body.get("input") if isinstance(body, dict) else None
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str):
            return item
        if isinstance(item, dict):
            if isinstance(item.get("text"), str):
                return item["text"]
            if item.get("type") == "function_result":
                return f"function_result for {item.get('name') or item.get('call_id')}"
            found = _input_text({"input": item.get("content")})
            if found:
                return found
    return ""


def _first_text(body: Any) -> str:
    """The last user turn's first text part of a generate/countTokens body, or the last user message's text of a
    chat-completions body (the OpenAI-compatible endpoint), or ``""``."""
    if not isinstance(body, dict):
        return ""
    if isinstance(body.get("messages"), list):
        return _last_user_message(body["messages"])
    contents = body.get("contents") or body.get("generateContentRequest", {}).get("contents") or []
    for content in reversed(contents):
        for part in content.get("parts", []) if isinstance(content, dict) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                return part["text"]
    return ""


def _last_user_message(messages: list[Any]) -> str:
    """The text of the last ``"role": "user"`` message: its ``content`` string, or its first text part."""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                return part["text"]
    return ""


def unmatched_message(cassette: Cassette, method: str, path: str, query: dict[str, str], body: Any) -> str:
    """What to tell a client whose request has no recording: which cassette, the request, the nearest miss, the fix."""
    same_path = [e for e in cassette.exchanges if strip_version(e.request["path"]) == strip_version(path)]
    lines = [f"No recording in cassette '{cassette.name}' for {summary(method, path, body)}."]
    if same_path:
        sent = normalized_body(body)  # so that the nearest-miss report shows real differences only
        best, diffs = min(
            ((e, json_differences(normalized_body(e.request.get("body")), sent)) for e in same_path),
            key=lambda pair: len(pair[1]),
        )
        diffs = diffs or json_differences(best.request.get("query") or {}, canonical_query(query))
        index = cassette.exchanges.index(best)
        shown = "; ".join(diffs[:3]) + (f"; and {len(diffs) - 3} more" if len(diffs) > 3 else "")
        lines.append(f"Nearest recording (exchange {index}) differs at {shown}.")
    else:
        paths = sorted({strip_version(e.request["path"]) for e in cassette.exchanges})
        lines.append(f"Nothing was recorded for that path; this cassette has: {', '.join(paths[:6]) or 'nothing'}.")
    lines.append(
        "Run the cell exactly as the notebook has it, or record this request: set GEMINI_API_KEY and "
        f"WORKBOOK_MODE=record and re-run the notebook (it refreshes {cassette.path.name})."
    )
    return " ".join(lines)
