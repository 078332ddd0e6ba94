"""What each seat may spend and has spent: per-seat rate limits, the budget, and tokens and cost read off answers.

The relay's limits glue (``serve --rpm/--tpm/--budget-usd``). Rate limits are the replay server's own
(:class:`.rate_limits.RateLimiter`, the sliding minute of lesson ``02_async``, its 429 with ``RetryInfo``), with one
window per seat and model instead of per cassette and model. A call's tokens are known only once its answer is (as in
record mode), so TPM counts them when the answer ends (:meth:`Meter.settle`): a seat can go over its TPM by the calls
it has in flight, then waits until the window has room again.

Every kind of model call counts, under the model it names: ``generateContent`` and ``streamGenerateContent``, the
Interactions API (``POST interactions``) and the OpenAI-compatible endpoint (``POST openai/chat/completions``, whose
``model`` is in the body). Tokens come from ``usageMetadata`` (Gemini), ``usage`` (OpenAI: ``prompt_tokens``,
``total_tokens``; Interactions: ``total_input_tokens``, ``total_tokens``), the last one a stream carries. Cost is
:func:`helpers.prices.cost_usd` with output = total - prompt (thinking billed as output, as Gemini 3 bills it); a model
the price table lacks is priced at the table's dearest, so a budget is never under-counted. Batch jobs are not
metered (their usage arrives in result files the relay does not read): ``docs/classroom.md`` says so.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .. import prices
from ..replay.pipeline.api_request import error_response
from ..replay.pipeline.rate_limits import MODEL_CALL, WINDOW_S, Limits, RateLimiter
from .seats import Seat

NAMED_MODEL_PATHS = re.compile(r"^(interactions|openai/chat/completions)$")
"""Version-less paths of model calls whose model is named in the body, not the path."""
MAX_EVENT_BYTES = 1024**2
"""An SSE event longer than this is not read for usage (it is still passed on whole)."""


def limited_path(api_path: str, method: str, body: Callable[[], Any]) -> str | None:
    """The path a call counts under: ``models/M:generateContent``-like for every model call (see the module
    docstring), ``None`` for calls that are not model calls (files, batches' polling, ``countTokens``, ``models.get``).

    Args:
        api_path: the path without its version segment, e.g. ``models/gemini-3.8-flash:streamGenerateContent``.
        method: the HTTP method.
        body: gives the parsed JSON body, or ``None``; called only for the calls whose model is in the body.
    """
    if MODEL_CALL.match(api_path):
        return api_path
    if method == "POST" and NAMED_MODEL_PATHS.match(api_path) and isinstance(parsed := body(), dict):
        model = parsed.get("model")
        if isinstance(model, str) and model and "/" not in model.removeprefix("models/"):
            return f"models/{model.removeprefix('models/')}:generateContent"
    return None


def find_usage(value: Any) -> tuple[int, int] | None:
    """``(prompt tokens, total tokens)`` from an answer or stream event, or ``None`` when it reports none."""
    if not isinstance(value, dict):
        return None
    gemini = value.get("usageMetadata")
    if isinstance(gemini, dict) and "totalTokenCount" in gemini:
        return _ints(gemini.get("promptTokenCount", 0), gemini["totalTokenCount"])
    other = value.get("usage")
    if isinstance(other, dict) and "total_tokens" in other:
        prompt = other.get("prompt_tokens", other.get("total_input_tokens", 0))
        return _ints(prompt, other["total_tokens"])
    for key in ("interaction", "response"):  # an Interactions stream event wraps its resource
        found = find_usage(value.get(key))
        if found is not None:
            return found
    return None


def _ints(prompt: Any, total: Any) -> tuple[int, int] | None:
    if isinstance(prompt, int) and isinstance(total, int) and 0 <= prompt <= total:
        return prompt, total
    return None


def estimate_usd(model: str, prompt: int, total: int) -> float:
    """The estimated cost of a call, US dollars (see the module docstring)."""
    usage = {"promptTokenCount": prompt, "candidatesTokenCount": total - prompt}
    try:
        return prices.cost_usd(usage, model)
    except KeyError:
        return max(prices.cost_usd(usage, known) for known in prices.PRICES)


class StreamUsage:
    """Reads the usage a server-sent-events stream reports, from its bytes as they pass (:meth:`feed`), without
    holding the stream back: it keeps the last event that mentions usage and parses only that one, at the end
    (:attr:`usage`)."""

    def __init__(self) -> None:
        self._pending = b""
        self._last = b""

    def feed(self, data: bytes) -> None:
        """Take the next bytes of the stream."""
        self._pending += data
        *events, self._pending = re.split(rb"\r?\n\r?\n", self._pending)
        if len(self._pending) > MAX_EVENT_BYTES:
            self._pending = b""
        for event in events:
            if b"usage" in event:  # a Gemini chunk's usageMetadata, an OpenAI or Interactions usage
                self._last = event

    @property
    def usage(self) -> tuple[int, int] | None:
        """``(prompt tokens, total tokens)`` the stream reported last, or ``None``."""
        lines = [line[5:].strip() for line in self._last.splitlines() if line.startswith(b"data:")]
        try:
            return find_usage(json.loads(b"\n".join(lines))) if lines else None
        except ValueError:
            return None


@dataclass
class Meter:
    """The room's per-seat limits and budget.

    Attributes:
        limits: ``--rpm``/``--tpm``, per seat and model (``None``: no limit).
        budget_usd: ``--budget-usd``, per seat (``None``: no budget).
    """

    limits: Limits
    budget_usd: float | None = None

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(
            WINDOW_S, self.limits, who="this room allows each seat {limit} per minute for {model} (the relay's limit)"
        )

    def admit(self, seat: Seat, path: str) -> tuple[web.Response | None, float]:
        """Admit one model call of ``seat`` (``path`` from :func:`limited_path`) and count it, or refuse it.

        Returns:
            ``(refusal, admitted_at)``: the 429 to send (``None`` when admitted; a refused call is not counted), and
            the time to pass to :meth:`settle`.
        """
        now = time.monotonic()
        if self.budget_usd is not None and seat.cost_usd >= self.budget_usd:
            return error_response(
                429,
                f"{seat.label} has used its budget for this workshop: an estimated ${seat.cost_usd:.4f} of "
                f"${self.budget_usd:g} (the relay's --budget-usd); waiting will not help. Ask your instructor.",
            ), now
        return self.limiter.admit(seat.label, path, None, now), now

    def settle(self, seat: Seat, path: str, admitted_at: float, usage: tuple[int, int] | None) -> None:
        """Count a finished call's ``usage`` (``(prompt, total)`` tokens) against ``seat``'s TPM, tokens and cost."""
        if usage is None:
            return
        prompt, total = usage
        self.limiter.add_tokens(seat.label, path, admitted_at, total)
        seat.tokens += total
        model = MODEL_CALL.match(path)
        if model is not None:
            seat.cost_usd += estimate_usd(model["model"], prompt, total)
