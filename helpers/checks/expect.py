"""Checks shared by every lesson's exercises: what a learner's call returned (``None``: a forgotten ``return``; the
wrong type), whether a function is ``async def``, the answer to a prompt (by the server's record), a time to first
token."""

from __future__ import annotations

import inspect
import math
from typing import Any

from google.genai import types

from .outcomes import Incorrect, show
from .record import Record
from .watching import Watched


def expect_returned(call: str, result: Any, kind: type | tuple[type, ...], what: str) -> None:
    """Check what a learner's ``call`` returned: a ``kind`` (a bool never counts as a number).

    Args:
        call: the call as the message names it, e.g. ``"mask('AIza...')"``.
        result: what it returned.
        kind: the type or types the exercise wants.
        what: the wanted value in words, e.g. ``"a number of seconds (a float)"``.

    Raises:
        Incorrect: it returned ``None`` (a forgotten ``return``), or something not a ``kind``.
    """
    if result is None:
        raise Incorrect(f"{call} returned None: did you forget `return`?")
    if isinstance(result, bool) or not isinstance(result, kind):
        raise Incorrect(f"{call} returned {show(result)}; the exercise wants {what}.")


def expect_async(fn: Any, name: str) -> None:
    """Check that the learner's ``fn`` is an ``async def`` function.

    Raises:
        Incorrect: it is not.
    """
    if not inspect.iscoroutinefunction(fn):
        raise Incorrect(f"Define {name} with `async def`, so that calling it gives a coroutine to await.")


def expect_seconds(call: str, result: Any) -> float:
    """Check that a learner's ``call`` returned a finite number of seconds above 0; return it as a float.

    Raises:
        Incorrect: ``None``, not a number (a bool is not one), NaN or infinite, or not above 0.
    """
    expect_returned(call, result, (int, float), "a number of seconds (a float)")
    if not math.isfinite(result):
        raise Incorrect(f"{call} returned {result}, which is not a number of seconds: return the time you measured.")
    if result <= 0:
        raise Incorrect(f"{call} returned {result:g}; a time is more than 0 seconds.")
    return float(result)


def expect_ttft(
    call: str, result: Any, took_s: float, rounding_s: float, server_first_text_s: float | None = None
) -> None:
    """Check a time to first token that a learner's ``call`` returned, bounded on both sides.

    Below by the server's own record when given (``server_first_text_s``: from the request's arrival to its first
    chunk with text going out; the client sent the request before it arrived and had the chunk after it went out, so
    no true TTFT is shorter). Above by the call itself (``took_s``, timed around it by the check: no clock reading
    taken inside a call can span more than the call, however busy the machine). Neither bound can fail a right
    answer on a busy machine; a caller holding the stream back (:func:`~helpers.checks.holding_stream`) makes the
    upper bound tight.

    Args:
        call: the call as the message names it.
        result: what it returned.
        took_s: how long the call took, seconds.
        rounding_s: the slack allowed, seconds.
        server_first_text_s: the server's time to first text for the same request, seconds, or ``None`` (live).

    Raises:
        Incorrect: not a finite number above 0 (:func:`expect_seconds`), shorter than the server took to send the
            first text, or longer than the call took (called milliseconds when a thousandth of it fits the bounds).
    """
    seconds = expect_seconds(call, result)
    lower = 0.0 if server_first_text_s is None else server_first_text_s - rounding_s
    if seconds > took_s + rounding_s:
        if lower <= seconds / 1000 <= took_s + rounding_s:
            raise Incorrect(f"{call} returned {seconds:g}: that looks like milliseconds; return seconds.")
        raise Incorrect(
            f"{call} returned {seconds:g} s, longer than the call itself took: return the time from sending the "
            "request to the first chunk with text, as you measured it."
        )
    if seconds < lower:
        raise Incorrect(
            f"{call} returned less than the server took to send the first text: start the clock before the request "
            "goes out (before the loop), not when the first chunk arrives."
        )


def expect_text_shape(call: str, result: Any) -> str:
    """Check that the learner's ``call`` returned text, the way a ``response.text`` looks; return it.

    Raises:
        Incorrect: naming the likeliest mistake: the response object, ``None`` (a forgotten ``return``, or a
            ``print``), another type, or the whole response turned into a string.
    """
    if isinstance(result, types.GenerateContentResponse):
        raise Incorrect(f"{call} returned a GenerateContentResponse; the exercise wants the text of the answer.")
    if result is None:
        raise Incorrect(f"{call} returned None: did you forget `return` (or print the text instead)?")
    expect_returned(call, result, str, "the text of the answer (a str)")
    if "candidates=" in result:
        raise Incorrect(f"{call} returned the whole response turned into a string; the exercise wants just the text.")
    return str(result)


def expect_text(call: str, result: Any, seen: list[Watched]) -> None:
    """Check that ``result``, returned by the learner's ``call``, is the text of a response their call received
    (``seen``: the ``generate_content`` calls :func:`~helpers.checks.watching` recorded). Introduced in ``01_sync``.

    Raises:
        Incorrect: see :func:`expect_text_shape`; or no SDK call, or some other string.
    """
    expect_text_shape(call, result)
    if not seen:
        raise Incorrect(f"{call} never called client.models.generate_content, so it cannot have the model's answer.")
    if result not in [w.result.text for w in seen]:
        raise Incorrect(f"{call} returned {show(result)}, which is not the text of the response it received.")


def expect_answer(call: str, result: Any, prompt: str, record: Record, seen: list[Watched]) -> None:
    """Check that ``result``, returned by the learner's ``call``, is the answer to ``prompt``: the text the server
    sent for a request whose prompt was ``prompt`` (its own record, :func:`~helpers.checks.recording`), so an answer
    that ignores its prompt, hard-codes one, or never asks fails, however it called the model (a chat too). Live,
    with no record: the text of a response the learner's ``generate_content`` calls received (``seen``).
    Introduced in ``01_sync``.

    Raises:
        Incorrect: see :func:`expect_text_shape`; or no model call, a call that sent another prompt, or a text the
            server did not send for it.
    """
    if record.calls is None:
        expect_text(call, result, seen)
        return
    expect_text_shape(call, result)
    if not record.calls:
        raise Incorrect(f"{call} never called the model, so it cannot have the model's answer.")
    asked = record.asked(prompt)
    if not asked:
        sent = record.calls[-1].prompt
        raise Incorrect(
            f"{call} sent {show(sent)} to the model, not the prompt it was given: send the function's argument."
        )
    if result not in [r.text for r in asked]:
        raise Incorrect(f"{call} returned {show(result)}, which is not the text the server sent for that prompt.")
