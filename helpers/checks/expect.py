"""Checks shared by every lesson's exercises: what a learner's call returned (``None``: a forgotten ``return``; the
wrong type), whether a function is ``async def``, the text of a response, a time to first token."""

from __future__ import annotations

import inspect
from typing import Any

from google.genai import types

from .outcomes import Incorrect, show
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


def expect_ttft(call: str, result: Any, took_s: float, rounding_s: float) -> None:
    """Check a time to first token that a learner's ``call`` returned, against how long the call itself took.

    No clock reading taken inside the call can be longer than the call, however busy the machine, so this judges no
    wall-clock gap; a caller compares the value with the server's record (:func:`helpers.control.stats`) besides.

    Args:
        call: the call as the message names it.
        result: what it returned.
        took_s: how long the call took, seconds, timed around it by the check.
        rounding_s: the slack allowed, seconds.

    Raises:
        Incorrect: it is not a number (see :func:`expect_returned`), not above 0, or longer than the call took (in
            milliseconds, when above 1).
    """
    expect_returned(call, result, (int, float), "a number of seconds (a float)")
    if result <= 0:
        raise Incorrect(f"{call} returned {result:g}; a time to first token is more than 0 seconds.")
    if result > took_s + rounding_s:
        if result > 1:
            raise Incorrect(f"{call} returned {result:g}: that looks like milliseconds; return seconds.")
        raise Incorrect(f"{call} returned {result:g} s, longer than the call itself took: return the TTFT.")


def expect_text(call: str, result: Any, seen: list[Watched]) -> None:
    """Check that ``result``, returned by the learner's ``call``, is the text of a response their call received
    (``seen``: the ``generate_content`` calls :func:`~helpers.checks.watching` recorded). Introduced in ``01_sync``.

    Raises:
        Incorrect: naming the likeliest mistake: the response object, ``None``, another type, no SDK call,
            ``str(response)``, or some other string.
    """
    if isinstance(result, types.GenerateContentResponse):
        raise Incorrect(f"{call} returned a GenerateContentResponse; the exercise wants the text of the answer.")
    if result is None:
        raise Incorrect(f"{call} returned None: did you forget `return` (or print the text instead)?")
    expect_returned(call, result, str, "the text of the answer (a str)")
    if not seen:
        raise Incorrect(f"{call} never called client.models.generate_content, so it cannot have the model's answer.")
    if "candidates=" in result:
        raise Incorrect(f"{call} returned the whole response turned into a string; the exercise wants just the text.")
    if result not in [w.result.text for w in seen]:
        raise Incorrect(f"{call} returned {show(result)}, which is not the text of the response it received.")
