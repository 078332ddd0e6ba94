"""Watching a learner's code run: the SDK calls it makes (:func:`watching`), how many are in progress at once
(:func:`counting_calls`), and the ``time.sleep`` calls it asks for (:func:`watching_sleep`)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, SupportsIndex

from .bounded import LEARNER_THREAD, StoppedByCheck
from .code import function_of
from .outcomes import Incorrect


@dataclass(frozen=True)
class Watched:
    """One call seen by :func:`watching`: its arguments and what it returned."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    result: Any


@contextlib.contextmanager
def watching(obj: Any, method: str, *, then: Callable[[list[Watched]], None] | None = None) -> Iterator[list[Watched]]:
    """Record every successful call of ``obj.method`` made inside the block (e.g. the learner's SDK calls).

    For the block, ``obj.method`` is shadowed by an instance attribute that calls the original and records the
    call; the original is restored afterwards, even on error. Lets a check compare a learner's return value with the
    response their own call received, which holds live as well as in replay::

        with watching(client.models, "generate_content") as seen:
            text = ask("Name three primary colours.")
        assert text in [w.result.text for w in seen]

    ``then(seen)`` runs after each recorded call; an exception it raises reaches the caller instead of the result,
    which stops a learner's loop that would never end (``05_batch``: polling a job that has already ended).

    Yields:
        The list of :class:`Watched` calls, filled as they return.
    """
    original = getattr(obj, method)
    seen: list[Watched] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        seen.append(Watched(args, kwargs, result))
        if then is not None:
            then(seen)
        return result

    with _shadowing(obj, method, spy):
        yield seen


@contextlib.contextmanager
def _shadowing(obj: Any, method: str, spy: Callable[..., Any]) -> Iterator[None]:
    """Put ``spy`` in place of ``obj.method`` for the block, as an instance attribute; afterwards, even on error,
    restore what was there (an instance attribute the object already had, or nothing, so the class's shows again)."""
    own = vars(obj)
    shadowed, original = method in own, own.get(method)
    setattr(obj, method, spy)
    try:
        yield
    finally:
        if shadowed:
            setattr(obj, method, original)
        else:
            delattr(obj, method)


@dataclass
class InFlight:
    """What :func:`counting_calls` saw: how many calls were made, and the most in progress at once."""

    calls: int = 0
    now: int = 0
    peak: int = 0


@contextlib.contextmanager
def counting_calls(obj: Any, method: str) -> Iterator[InFlight]:
    """Count the calls of the async method ``obj.method`` made inside the block, and the most in progress at once
    (started and not yet returned or raised), e.g. the learner's ``client.aio.models.generate_content``.

    A count, which no machine speed changes: requests the learner's code runs together are in progress together,
    however late a busy machine sends them (``02_async``). Shadows the method as :func:`watching` does.

    Yields:
        The :class:`InFlight` counts, updated as calls start and end.
    """
    original = getattr(obj, method)
    counts = InFlight()

    async def spy(*args: Any, **kwargs: Any) -> Any:
        counts.calls += 1
        counts.now += 1
        counts.peak = max(counts.peak, counts.now)
        try:
            return await original(*args, **kwargs)
        finally:
            counts.now -= 1

    with _shadowing(obj, method, spy):
        yield counts


@dataclass(frozen=True)
class Slept:
    """One ``time.sleep`` call seen by :func:`watching_sleep`: the seconds asked for (not measured)."""

    seconds: float


@contextlib.contextmanager
def watching_sleep(
    fn: Callable[..., Any], *, then: Callable[[list[Slept]], None] | None = None
) -> Iterator[list[Slept]]:
    """Record the ``time.sleep`` calls that the learner's function makes inside the block (it runs in a thread of its
    own, :func:`run_bounded`), with the seconds each asked for. Other threads' sleeps (a kernel's, the SDK's) are let
    through unrecorded.

    A check judges a poll loop by the delays the learner's code asked for, which no busy machine changes, rather than
    by clock readings. Shadows ``time.sleep`` and every name in ``fn``'s globals bound to it (``from time import
    sleep``) for the block. ``then(slept)`` runs before each sleep; an exception it raises reaches the learner's code
    instead of the sleep (so a check can stop a loop that would never end).

    Yields:
        The list of :class:`Slept`, filled as the calls are made.
    """
    original = time.sleep
    slept: list[Slept] = []

    def spy(seconds: float | SupportsIndex) -> None:
        if threading.current_thread().name.startswith(LEARNER_THREAD):
            slept.append(Slept(float(seconds)))
            if then is not None:
                then(slept)
        original(seconds)

    function = function_of(fn)  # a functools.partial's function holds the globals
    namespace = function.__globals__ if function is not None else {}
    aliases = [name for name, value in namespace.items() if value is original]
    time.sleep = spy
    for name in aliases:
        namespace[name] = spy
    try:
        yield slept
    finally:
        time.sleep = original
        for name in aliases:
            namespace[name] = original


BLOCKING_SLEEP = (
    "{name} called time.sleep, which blocks the event loop: while one call sleeps, no other call can send, wait or "
    "read anything. Wait with `await asyncio.sleep(seconds)`."
)
"""What :func:`forbidding_sleep` says, ``{name}`` filled in."""


def _stop(slept: list[Slept]) -> None:
    raise StoppedByCheck


@contextlib.contextmanager
def forbidding_sleep(fn: Callable[..., Any], name: str) -> Iterator[list[Slept]]:
    """Stop the learner's async ``fn`` at its first blocking ``time.sleep`` (:func:`watching_sleep`), and say so.

    A blocking sleep in ``async def`` code stalls every other task on the loop; it may still give the right answer,
    so the check looks for it rather than for a wrong result. A sleep in another thread (``asyncio.to_thread``) does
    not block the loop and is let through. Introduced in ``02_async``.

    Yields:
        The sleeps seen (none, when the block ends normally).

    Raises:
        Incorrect: when the block ends, naming the blocking call (:data:`BLOCKING_SLEEP`), if ``fn`` slept.
    """
    with watching_sleep(fn, then=_stop) as slept:
        try:
            yield slept
        except StoppedByCheck:
            if not slept:
                raise
    if slept:
        raise Incorrect(BLOCKING_SLEEP.format(name=name))
