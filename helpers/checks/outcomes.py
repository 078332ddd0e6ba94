"""What a check concludes and how it says it: the blank ``____``, :class:`Incorrect`, :class:`Outcome`, and the
formatting every message shares (:func:`show`, :func:`describe_error`: no addresses, no random ports)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from google.genai import errors


class Placeholder:
    """The blank in starter code. Its one instance is :data:`____`."""

    def __repr__(self) -> str:
        return "____"


____ = Placeholder()
"""Starter code's blank (``return ____``, ``config = ____``): a check that finds it says "not attempted"."""

PLACEHOLDER_NAME = "____"


class Incorrect(Exception):
    """Raised by :meth:`Problem.verify`: the answer is wrong. The message says what, kindly, without the answer."""


@dataclass(frozen=True)
class Outcome:
    """What a check concluded; prints as the one message the learner sees.

    Attributes:
        status: ``"correct"``, ``"incorrect"`` or ``"unattempted"``.
        message: the explanation, without the status word.
    """

    status: str
    message: str

    def __str__(self) -> str:
        prefix = {"correct": "Correct", "incorrect": "Incorrect", "unattempted": "Not attempted yet"}[self.status]
        return f"{prefix}: {self.message}" if self.message else f"{prefix}."


def show(value: Any, limit: int = 60) -> str:
    """A value as a message shows it: short literals as ``repr`` (long strings cut), anything else by type.

    Never an address or a random port (:func:`steady`), so messages stay deterministic: ``'error'``, ``404``,
    ``None``, ``a GenerateContentResponse``.
    """
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, str):
        text = repr(steady(value))
        return text if len(text) <= limit else text[: limit - 4] + "..." + text[0]  # closed by the quote it opened
    return f"a {type(value).__name__}"


ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
"""A memory address in an object's repr (``<asyncio.locks.Semaphore object at 0x7f...>``): never in a message, which
must read the same on every run."""


LOCAL_PORT = re.compile(r"\b(127\.0\.0\.1|localhost|\[::1\]):\d+")
"""A loopback address with its port (``127.0.0.1:41567``): the port is chosen at random each run, so a message shows
``127.0.0.1:PORT`` instead."""


def steady(text: str) -> str:
    """``text`` as a message may show it: no memory address (:data:`ADDRESS`), no random port (:data:`LOCAL_PORT`)."""
    return LOCAL_PORT.sub(r"\1:PORT", ADDRESS.sub("", text))


def describe_error(error: BaseException, limit: int = 200) -> str:
    """An exception in one line, without a final period: ``NameError: name 'x' is not defined``, or for the API
    ``ClientError 404 NOT_FOUND: models/x is not found ...`` (the first sentence of its message). No memory address
    nor random port (:func:`steady`)."""
    if isinstance(error, errors.APIError):
        text = f"{type(error).__name__} {error.code} {error.status}: {(error.message or '').split('. ')[0]}"
    else:
        text = f"{type(error).__name__}: {error}"
    text = steady(" ".join(text.split())).rstrip(".")
    return text if len(text) <= limit else text[: limit - 3] + "..."
