"""Rate limits as the Gemini API applies them: a sliding one-minute window of requests and tokens, per model.

Used by the replay server (``--rpm``, ``--tpm``, :func:`helpers.control.set_limits`); introduced in ``02_async``.

How the real API counts, and what this module does (read 2026-11-22):
- "Your usage is evaluated against each limit, and exceeding any of them will trigger a rate limit error. For
  example, if your RPM limit is 20, making 21 requests within a minute will result in an error" and limits "vary
  depending on the specific model" (ai.google.dev/gemini-api/docs/rate-limits). So: one window per (cassette, model),
  RPM and TPM checked independently, the request that would exceed a limit gets 429 RESOURCE_EXHAUSTED.
- Requests rejected with 429 do not count against the window. Google does not say so in those words; the Cloud
  Quotas overview says that when you "attempt to consume more of a resource than its quota allows, the system blocks
  access to the resource, and the task that you're trying to perform fails" (docs.cloud.google.com/docs/quotas/
  overview), i.e. nothing is consumed, and the Gemini billing FAQ says failed requests are not charged
  (ai.google.dev/gemini-api/docs/billing). A client that keeps retrying therefore succeeds as soon as a slot frees.
- ``countTokens`` is not limited: "Requests to the GetTokens API are not billed, and they don't count against
  inference quota" (ai.google.dev/gemini-api/docs/billing). Only ``generateContent`` and ``streamGenerateContent``
  are model calls here.
- TPM counts each exchange's recorded ``usageMetadata.totalTokenCount`` (the final chunk's, for a stream), known
  before replay starts. The rate-limits page labels TPM "(input)", so the real API may count prompt tokens only; the
  workbook counts the total so that long answers also teach the limit.
- The 429 body carries ``google.rpc.RetryInfo`` with ``retryDelay``: when enough of the window frees up for this
  request, in the client's wall-clock seconds, rounded up to milliseconds (``"1.234s"``: protobuf's JSON form of a
  Duration allows 0, 3, 6 or 9 fractional digits). The real API sends whole seconds like ``"17s"``; at ``--speed``
  100 a window lasts 0.6 s, so whole seconds would be useless.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict, deque
from dataclasses import dataclass, field

from aiohttp import web

from ..cassettes.cassette import Exchange, strip_version
from .api_request import error_response

WINDOW_S = 60.0
"""The window of RPM and TPM limits at ``--speed`` 1, seconds."""

MODEL_CALL = re.compile(r"^models/(?P<model>[^/:]+):(generateContent|streamGenerateContent)$")
"""A version-less API path that rate limits apply to; ``model`` names the window."""

RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"


@dataclass(frozen=True)
class Limits:
    """Requests and tokens a minute; ``None`` means unlimited."""

    rpm: int | None = None
    tpm: int | None = None


def recorded_tokens(exchange: Exchange | None) -> int:
    """The exchange's ``usageMetadata.totalTokenCount`` (the last chunk's, for a stream); 0 when not recorded, and
    for ``None`` (record mode, where a call is admitted before its answer, and its tokens, exist)."""
    if exchange is None:
        return 0
    response = exchange.response
    body = response["chunks"][-1]["data"] if "chunks" in response else response["body"]
    usage = body.get("usageMetadata") if isinstance(body, dict) else None
    return int((usage or {}).get("totalTokenCount", 0))


@dataclass
class RateLimiter:
    """Sliding windows of admitted model calls per (cassette, model), each entry ``(time, tokens)``.

    Attributes:
        window_s: the window's length in seconds of the server's clock (``WINDOW_S / speed``).
        default: the limits of cassettes that have none of their own (``--rpm``, ``--tpm``).
        who: what a 429's message says sets the limit, e.g. the classroom relay's per-seat limits
            (:mod:`helpers.classroom.relay`, which keys its windows by seat instead of cassette).
    """

    window_s: float
    default: Limits = field(default_factory=Limits)
    who: str = (
        "the replay server allows {limit} per minute for {model} (set with --rpm/--tpm or helpers.control.set_limits)"
    )
    _limits: dict[str, Limits] = field(default_factory=dict)
    _windows: dict[tuple[str, str], deque[tuple[float, int]]] = field(default_factory=lambda: defaultdict(deque))

    def set_limits(self, cassette: str, limits: Limits) -> None:
        """Give ``cassette`` its own limits; calls already admitted in the window keep counting."""
        self._limits[cassette] = limits

    def admit(self, cassette: str, path: str, exchange: Exchange | None, now: float) -> web.Response | None:
        """Admit one call at time ``now`` and count it, or return the 429 that refuses it (the call is not counted).

        Args:
            cassette: the cassette the call is for.
            path: the API path, with or without its version segment; calls other than generate are always admitted.
            exchange: the recording that will answer the call (its tokens count against TPM); ``None`` in record
                mode, where only RPM can be enforced.
            now: the server's monotonic clock, seconds.
        """
        match = MODEL_CALL.match(strip_version(path))
        if match is None:
            return None
        limits = self._limits.get(cassette, self.default)
        model = match["model"]
        window = self._windows[(cassette, model)]
        while window and window[0][0] <= now - self.window_s:
            window.popleft()
        tokens = recorded_tokens(exchange)
        if limits.rpm is not None and len(window) >= limits.rpm:
            # The slot this call needs frees when the oldest calls over the limit leave the window.
            return self._refuse(model, f"{limits.rpm} requests", window[len(window) - limits.rpm][0], now)
        if limits.tpm is not None:
            if tokens > limits.tpm:
                return error_response(
                    429,
                    f"This request's recorded {tokens} tokens exceed the replay server's whole limit of {limits.tpm} "
                    f"tokens per minute for {model}; waiting will not help. Raise the limit with "
                    "helpers.control.set_limits(tpm=...) or the server's --tpm.",
                )
            used = sum(t for _, t in window)
            # The tokens this call needs free when enough of the oldest calls leave the window.
            for arrived, spent in window:
                if used + tokens <= limits.tpm:
                    break
                used -= spent
                if used + tokens <= limits.tpm:
                    return self._refuse(model, f"{limits.tpm} tokens", arrived, now)
        window.append((now, tokens))
        return None

    def add_tokens(self, cassette: str, path: str, admitted_at: float, tokens: int) -> None:
        """Count ``tokens`` for the call admitted at ``admitted_at`` (the ``now`` :meth:`admit` was given), when they
        were not known then: a forwarded call's tokens are known once its answer is (``usageMetadata``). Nothing
        happens once the call has left the window."""
        match = MODEL_CALL.match(strip_version(path))
        window = self._windows.get((cassette, match["model"])) if match else None
        for i, (arrived, spent) in enumerate(window or ()):
            if arrived == admitted_at:
                window[i] = (arrived, spent + tokens)  # type: ignore[index]
                return

    def _refuse(self, model: str, limit: str, frees_at: float, now: float) -> web.Response:
        """The 429 for a call that fits once the call admitted at ``frees_at`` leaves the window."""
        delay_s = math.ceil(max(0.0, frees_at + self.window_s - now) * 1000) / 1000
        return error_response(
            429,
            f"You exceeded your current quota: {self.who.format(limit=limit, model=model)}. Please retry in "
            f"{delay_s:.3f}s.",
            details=[{"@type": RETRY_INFO_TYPE, "retryDelay": f"{delay_s:.3f}s"}],
        )
