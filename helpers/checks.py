"""Exercise checks in the style of Kaggle's learntools: ``q1.check()``, ``q1.hint()``, ``q1.solution()``.

A lesson's exercises live in ``helpers/exercises/exNN_name.py``: one :class:`Problem` subclass per exercise, whose
:meth:`Problem.verify` raises :class:`Incorrect` with one friendly message naming what is wrong (never the answer).
The learner's starter code uses the placeholder :data:`____`; while it is there the check says "not attempted".

Checks read the learner's names from the namespace of the cell that calls ``check()`` (in a notebook, the
kernel's user namespace), call the learner's functions against the current session's server (see
:func:`helpers.setup`), and judge what comes back; a later lesson's check may also read the replay server's stats
(``helpers.control``) around the call. Output is plain text with no addresses or timings, so nbval compares it.
A learner's function runs under a time limit (:func:`run_bounded`): one that never returns is stopped, and the check
says where it was, so a check never hangs the kernel. Introduced in ``01_sync``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import inspect
import linecache
import re
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar, SupportsIndex

from google import genai
from google.genai import errors

from . import control
from .models import FLASH
from .workbook import WorkbookError, current_session


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


def code_names(code: Any) -> set[str]:
    """Every global or attribute name a code object (and the functions and comprehensions inside it) refers to."""
    names = set(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            names |= code_names(const)
    return names


def uses_placeholder(value: Any) -> bool:
    """True when ``value`` is :data:`____`, or a function whose code still refers to ``____``."""
    code = getattr(value, "__code__", None)
    return value is ____ or (code is not None and PLACEHOLDER_NAME in code_names(code))


def global_values(fn: Any) -> dict[str, Any]:
    """The module globals that ``fn``'s code (and the functions and comprehensions inside it) refers to, by name:
    e.g. a ``semaphore`` made outside the function, or the helper function it calls. Empty for a non-function."""
    code, namespace = getattr(fn, "__code__", None), getattr(fn, "__globals__", {})
    if code is None:
        return {}
    return {name: namespace[name] for name in code_names(code) if name in namespace}


def lesson_context(
    fresh: Mapping[str, Callable[[dict[str, Any]], Any]] | None = None, **names: Any
) -> Callable[[], dict[str, Any]]:
    """Declare what a lesson's setup cells leave in the notebook; returns the ``context`` for its problems.

    Each namespace it builds has ``client`` (a new ``genai.Client()``, which the current session points at its
    server), ``MODEL`` (:data:`helpers.models.FLASH`), ``genai``, the blank :data:`____`, then ``names`` as given
    (modules, constants) and ``fresh``'s values, each computed anew from the namespace so far (a first response).

    Raises (when called):
        helpers.WorkbookError: ``helpers.setup(...)`` has not run in this kernel.
    """

    def context() -> dict[str, Any]:
        current_session()
        ns: dict[str, Any] = {"client": genai.Client(), "MODEL": FLASH, "genai": genai, "____": ____, **names}
        for name, make in (fresh or {}).items():
            ns[name] = make(ns)
        return ns

    return context


def show(value: Any, limit: int = 60) -> str:
    """A value as a message shows it: short literals as ``repr`` (long strings cut), anything else by type.

    Never an address, so messages stay deterministic: ``'error'``, ``404``, ``None``, ``a GenerateContentResponse``.
    """
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= limit else text[: limit - 4] + "..." + text[0]  # closed by the quote it opened
    return f"a {type(value).__name__}"


ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
"""A memory address in an object's repr (``<asyncio.locks.Semaphore object at 0x7f...>``): never in a message, which
must read the same on every run."""


def describe_error(error: BaseException, limit: int = 200) -> str:
    """An exception in one line, without a final period: ``NameError: name 'x' is not defined``, or for the API
    ``ClientError 404 NOT_FOUND: models/x is not found ...`` (the first sentence of its message)."""
    if isinstance(error, errors.APIError):
        text = f"{type(error).__name__} {error.code} {error.status}: {(error.message or '').split('. ')[0]}"
    else:
        text = f"{type(error).__name__}: {error}"
    text = ADDRESS.sub("", " ".join(text.split())).rstrip(".")
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


TIME_LIMIT_S = 30.0
"""How long, in seconds, a learner's function may run under a check in replay before it is stopped. Replayed calls
answer in about a second; a function still running after this long is stuck (a loop whose condition never changes)."""
LIVE_TIME_LIMIT_S = 300.0
"""The same limit live (``WORKBOOK_MODE=live``): real calls can take tens of seconds, a video minutes to process."""
STOP_GRACE_S = 2.0
"""How long a stopped function gets to unwind (its ``finally`` blocks, closing its connections) before the check
moves on without it."""


class StoppedByCheck(BaseException):
    """Raised inside a learner's function that ran past its time limit, to stop it.

    A ``BaseException``, like ``KeyboardInterrupt``, so that ``except Exception`` in the learner's code (a retry loop)
    does not swallow it.
    """


class TimeLimitExceeded(Exception):
    """A function run by :func:`run_bounded` did not return within its limit, and was stopped.

    Attributes:
        limit_s: the limit, seconds.
        where: where the function was when it was stopped, e.g. ``"line 6 of wait(): `time.sleep(delay)`"``, or
            ``""`` when no frame of the learner's code was running.
    """

    def __init__(self, limit_s: float, where: str) -> None:
        super().__init__(f"did not return within {limit_s:g} s" + (f" (at {where})" if where else ""))
        self.limit_s = limit_s
        self.where = where


_LIBRARY_PREFIXES = tuple(
    {str(Path(p).resolve()) for p in (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"])}
    | {str(Path(__file__).resolve().parent)}
)
"""Where code that is not the learner's lives: the standard library, installed packages and ``helpers``."""


def _is_learners(frame: FrameType) -> bool:
    filename = frame.f_code.co_filename
    if filename.startswith("<"):
        return not filename.startswith("<frozen")  # exec'ed code such as "<q2 cell>" is the learner's
    return not str(Path(filename).resolve()).startswith(_LIBRARY_PREFIXES)


def describe_frames(frames: list[FrameType]) -> str:
    """Where the innermost learner's frame of ``frames`` (outermost first) is: ``line 6 of wait(): `time.sleep(d)```.

    Learner's code is any not in the standard library, installed packages or ``helpers`` (a notebook cell, a test's
    exec'ed cell). The source line is shown when :mod:`linecache` has it (IPython registers every cell). Returns
    ``""`` when no frame is the learner's.
    """
    for frame in reversed(frames):
        if _is_learners(frame):
            code, line = frame.f_code, frame.f_lineno
            source = linecache.getline(code.co_filename, line).strip()
            return f"line {line} of {code.co_name}()" + (f": `{source}`" if source else "")
    return ""


def _thread_frames(thread: threading.Thread) -> list[FrameType]:
    """The frames ``thread`` is running, outermost first."""
    frame = sys._current_frames().get(thread.ident or -1)
    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    return frames[::-1]


def _coroutine_frames(coro: Any) -> list[FrameType]:
    """The frames of a suspended coroutine and of what it awaits, outermost first."""
    frames = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            frames.append(frame)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return frames


def _stop_thread(thread: threading.Thread) -> None:
    """Raise :class:`StoppedByCheck` in ``thread`` at its next Python instruction (CPython's asynchronous exception;
    a thread blocked in C, e.g. in ``time.sleep``, gets it when the call returns)."""
    if thread.ident is not None and thread.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(StoppedByCheck))


@dataclass
class _Run:
    """What a bounded run's worker thread hands back."""

    result: Any = None
    error: BaseException | None = None
    awaiting: bool = False
    """Set once ``fn`` has returned a coroutine, which then runs on the thread's own event loop."""
    where: str | None = None
    """Set when the coroutine was stopped at its limit: where it was."""


async def _await_bounded(coro: Coroutine[Any, Any, Any], deadline: float, run: _Run) -> Any:
    task = asyncio.ensure_future(coro)
    done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))
    if done:
        return task.result()
    run.where = describe_frames(_coroutine_frames(coro))
    task.cancel()  # a clean stop: its `async with` and `finally` blocks run, its connections close
    await asyncio.wait({task}, timeout=STOP_GRACE_S)
    return None


LEARNER_THREAD = "check: "
"""The name prefix of the thread :func:`run_bounded` runs a learner's function in."""


def run_bounded(
    fn: Callable[..., Any],
    *args: Any,
    limit_s: float,
    nudge: tuple[float, Callable[[], None]] | None = None,
) -> Any:
    """Call ``fn(*args)`` (and await it, if it returns a coroutine) with a time limit; return its result.

    It runs in a daemon thread of its own, a coroutine on a fresh event loop there (google-genai 3.6 keeps one
    connection pool per loop, so ``client.aio`` works; objects bound to the notebook's loop, such as an
    ``asyncio.Semaphore`` it has used, cannot be shared). The calling thread waits at most ``limit_s`` seconds. A
    coroutine still running then is cancelled; a sync function gets :class:`StoppedByCheck` raised inside it. The
    thread left behind is a daemon: it never keeps the kernel or process from exiting. ``KeyboardInterrupt`` (the
    notebook's stop button) stops the function the same way, then propagates.

    Args:
        fn: the learner's function.
        args: its arguments.
        limit_s: seconds before it is stopped.
        nudge: ``(seconds, callback)``: if ``fn`` is still running after ``seconds``, call ``callback()`` (from the
            calling thread) and keep waiting, e.g. to let a stream that a check holds back go on.

    Raises:
        TimeLimitExceeded: ``fn`` did not return within ``limit_s``; says where it was.
        Exception: whatever ``fn`` raised, as it raised it.
    """
    deadline = time.monotonic() + limit_s
    run = _Run()

    def work() -> None:
        try:
            result = fn(*args)
            if inspect.iscoroutine(result):
                run.awaiting = True
                result = asyncio.run(_await_bounded(result, deadline, run))
            run.result = result
        except BaseException as e:  # handed to the calling thread, which raises it
            run.error = e

    thread = threading.Thread(target=work, name=f"{LEARNER_THREAD}{getattr(fn, '__name__', 'function')}", daemon=True)
    thread.start()
    try:
        if nudge is not None:
            thread.join(max(0.0, min(nudge[0], limit_s)))
            if thread.is_alive():
                nudge[1]()
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive() and run.awaiting:
            thread.join(STOP_GRACE_S)  # the loop is cancelling the coroutine at its deadline
        if thread.is_alive():
            # A sync function, or a coroutine that blocks its own event loop (e.g. time.sleep in an async def).
            where = run.where if run.where is not None else describe_frames(_thread_frames(thread))
            _stop_thread(thread)
            thread.join(STOP_GRACE_S)
            raise TimeLimitExceeded(limit_s, where)
    except BaseException as e:
        if not isinstance(e, TimeLimitExceeded):
            _stop_thread(thread)  # e.g. KeyboardInterrupt: the learner's code stops too
        raise
    if run.where is not None:
        raise TimeLimitExceeded(limit_s, run.where)
    if run.error is not None:
        raise run.error
    return run.result


def run_coroutine(
    coro: Coroutine[Any, Any, Any],
    limit_s: float = TIME_LIMIT_S,
    nudge: tuple[float, Callable[[], None]] | None = None,
) -> Any:
    """Run a coroutine to completion from sync code, also inside a notebook whose event loop is running, within
    ``limit_s`` seconds (:func:`run_bounded`, which runs it on a fresh loop in a thread of its own; also for
    ``nudge``).

    Raises:
        TimeLimitExceeded: it ran longer and was cancelled.
    """
    return run_bounded(lambda: coro, limit_s=limit_s, nudge=nudge)


HOLD_S = 5.0
"""How long a check holds a replayed stream back after its first text (:func:`holding_stream`) while it waits for
the learner's code to show it has that text: a function to return, a script to print, an endpoint to send an event.
Code that waits for the rest instead is released after this long; right code does its part within milliseconds."""


@dataclass
class StreamHold:
    """The hold of :func:`holding_stream`.

    Attributes:
        active: whether the stream is held (replay only; record mode relays streams as they come, live has no
            server to ask).
        released: whether :meth:`release` let it go before the block ended.
    """

    active: bool
    released: bool = False

    def release(self) -> None:
        """Let the held stream go on (once; nothing when not :attr:`active`)."""
        if self.active and not self.released:
            self.released = True
            control.release_stream()

    @property
    def nudge(self) -> tuple[float, Callable[[], None]] | None:
        """For :func:`run_bounded`: release the stream if the learner's code is still running after :data:`HOLD_S`."""
        return (HOLD_S, self.release) if self.active else None


@contextlib.contextmanager
def holding_stream() -> Iterator[StreamHold]:
    """Hold the cassette's next replayed stream back after its first text for the block, released at the latest
    when it ends (``helpers.control.hold_stream``).

    While the stream is held, its last chunk does not exist yet: code that shows it has the first text meanwhile
    (returns a TTFT, prints, sends an event) cannot have waited for the whole answer, however busy the machine. That
    is causality, not a clock, so a check can judge streaming without timing it.

    Yields:
        The :class:`StreamHold`.
    """
    hold = StreamHold(active=current_session().mode == "replay")
    if hold.active:
        control.hold_stream(after_text_chunks=1)
    try:
        yield hold
    finally:
        if hold.active:
            control.release_stream()  # also drops a hold that no stream took


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

    namespace = getattr(fn, "__globals__", {})
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


class Problem:
    """One exercise. Subclass it, fill in the class attributes and :meth:`verify`; instantiate it as ``qN``.

    Class attributes:
        title: the exercise's heading, e.g. ``"Return just the text"``.
        variables: the names the learner defines (``("ask",)``); read from the notebook's namespace.
        needs: names the notebook's setup cells define and the check uses (``("client", "MODEL")``).
        hints: one or more hints, mildest first.
        solution_code: the reference solution, a cell's worth of code; shown by :meth:`solution`, run by
            :meth:`check_reference`.
        starter: the starter cell's code (with :data:`____`) that lessons paste; "not attempted" as it stands.
        correct_message: what :meth:`check` adds after "Correct:".
        time_limit_s: how long the learner's function may run before :meth:`call` stops it, in replay (live:
            :data:`LIVE_TIME_LIMIT_S`, or this if longer).

    A check that judges behaviour through the replay server's stats (``helpers.control``, lesson ``02_async``)::

        def verify(self, ns):
            control.reset_stats()
            self.call("ask_all", ns["ask_all"], PROMPTS)
            if (peak := control.stats().peak_in_flight) > 2:
                raise Incorrect(f"{peak} requests were in flight at once; the limit was 2.")

    Args:
        name: the variable the lesson binds it to (``"q1"``), for messages such as "run q1.hint(2)".
        context: builds a fresh namespace like the notebook's after its setup cells (``client``, ``MODEL``, ...),
            for :meth:`namespace`. It may raise :class:`helpers.WorkbookError` when ``helpers.setup`` has not run.
    """

    title: ClassVar[str] = ""
    variables: ClassVar[tuple[str, ...]] = ()
    needs: ClassVar[tuple[str, ...]] = ()
    hints: ClassVar[tuple[str, ...]] = ()
    solution_code: ClassVar[str] = ""
    starter: ClassVar[str] = ""
    correct_message: ClassVar[str] = ""
    time_limit_s: ClassVar[float] = TIME_LIMIT_S

    def __init__(self, name: str, context: Callable[[], dict[str, Any]]) -> None:
        self.name = name
        self.context = context

    def __repr__(self) -> str:
        n = self.name
        return f"{n}: {self.title} · {n}.check() · {n}.hint() · {n}.solution()"

    # --- what subclasses write ----------------------------------------------------------------------------------

    def verify(self, ns: Mapping[str, Any]) -> None:
        """Judge the learner's work in ``ns``; return if it is right.

        Raises:
            Incorrect: it is wrong; the message says what.
        """
        raise NotImplementedError

    def explain(self, error: Exception, fn: Callable[..., Any]) -> str:
        """Advice (whole sentences) to add when the learner's ``fn`` raised ``error``; empty unless overridden."""
        return ""

    def explain_timeout(self, fn: Callable[..., Any]) -> str:
        """The likely mistake (whole sentences) when the learner's ``fn`` ran past its time limit; a general one
        unless overridden."""
        return "Look for a loop whose condition never changes, or a wait that nothing ends."

    def limit_s(self) -> float:
        """The time limit of the learner's function, seconds: :attr:`time_limit_s` in replay, longer live."""
        try:
            live = current_session().server_url is None
        except WorkbookError:
            live = False  # no setup cell: nothing to call but the learner's own code
        return max(self.time_limit_s, LIVE_TIME_LIMIT_S) if live else self.time_limit_s

    def call(
        self, name: str, fn: Callable[..., Any], *args: Any, nudge: tuple[float, Callable[[], None]] | None = None
    ) -> Any:
        """Call the learner's function as ``name(*args)`` and return the result (awaited if it is a coroutine), within
        :meth:`limit_s` (see :func:`run_bounded`, also for ``nudge``).

        Raises:
            Incorrect: the function raised (the message names the call, its arguments, the error and
                :meth:`explain`'s advice), or ran past its limit and was stopped (the message says where it was, and
                :meth:`explain_timeout`'s advice).
        """
        shown = ", ".join(show(a) for a in args)
        try:
            return run_bounded(fn, *args, limit_s=self.limit_s(), nudge=nudge)
        except TimeLimitExceeded as e:
            where = f" It was at {e.where}." if e.where else ""
            raise Incorrect(
                f"{name}({shown}) had not returned after {e.limit_s:g} s, so the check stopped it.{where} "
                + self.explain_timeout(fn)
            ) from None
        except Exception as e:
            advice = self.explain(e, fn)
            raise Incorrect(f"{name}({shown}) raised {describe_error(e)}." + (f" {advice}" if advice else "")) from e

    # --- what learners call -------------------------------------------------------------------------------------

    def evaluate(self, ns: Mapping[str, Any]) -> Outcome:
        """Check the learner's work in namespace ``ns`` and return the :class:`Outcome` (prints nothing)."""
        missing = [v for v in self.variables if v not in ns]
        if missing and len(missing) == len(self.variables):
            return Outcome("unattempted", f"define {_names(missing)}, then run {self.name}.check() again.")
        if missing:
            return Outcome("incorrect", f"{_names(missing)} is not defined yet; run the cell that defines it.")
        blank = [v for v in self.variables if uses_placeholder(ns[v])]
        if blank:
            return Outcome(
                "unattempted",
                f"replace the ____ in {_names(blank)} with your code, then run {self.name}.check() again.",
            )
        absent = [n for n in self.needs if n not in ns]
        if absent:
            return Outcome("incorrect", f"this check uses {_names(absent)} from the setup cells: run those first.")
        try:
            self.verify(ns)
        except Incorrect as e:
            return Outcome("incorrect", str(e))
        return Outcome("correct", self.correct_message)

    def check(self) -> None:
        """Check the calling cell's work and print one line: correct, incorrect (and why) or not attempted."""
        print(self.evaluate(sys._getframe(1).f_globals))

    def hint(self, n: int = 1) -> None:
        """Print hint ``n`` (1 is the mildest)."""
        count = len(self.hints)
        if not 1 <= n <= count:
            print(f"{self.name} has {count} hint{'s' if count > 1 else ''}: try {self.name}.hint(1).")
        elif count == 1:
            print(f"Hint: {self.hints[0]}")
        else:
            more = f"\n(For another, run {self.name}.hint({n + 1}).)" if n < count else ""
            print(f"Hint {n} of {count}: {self.hints[n - 1]}{more}")

    def solution(self) -> None:
        """Print the reference solution's code."""
        print(f"Solution:\n\n{self.solution_code.strip()}")

    # --- what tests and the cassette author call ----------------------------------------------------------------

    def namespace(self, code: str = "") -> dict[str, Any]:
        """A fresh notebook-like namespace (from ``context``) after running ``code`` in it, as a learner's cell."""
        ns = dict(self.context())
        filename = f"<{self.name} cell>"
        linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)  # as IPython does
        exec(compile(code, filename, "exec"), ns)
        return ns

    def check_reference(self) -> None:
        """Run the reference solution through the check, against the current session's server.

        In record mode this records every request the check makes, so the lesson's cassette can answer them.

        Raises:
            AssertionError: the reference solution does not pass (the message gives the outcome).
        """
        outcome = self.evaluate(self.namespace(self.solution_code))
        assert outcome.status == "correct", f"{self.name}'s reference solution fails its own check: {outcome}"


def _names(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def lesson(context: Callable[[], dict[str, Any]], *problems: type[Problem]) -> tuple[Problem, ...]:
    """A lesson's exercises, in order, named ``q1``, ``q2``, ...: ``PROBLEMS = q1, q2 = lesson(context, A, B)``."""
    return tuple(problem(f"q{i}", context) for i, problem in enumerate(problems, start=1))


def assert_check_passed(problem: Problem, code: str) -> Outcome:
    """Assert that ``code`` (a learner's cell) passes ``problem``'s check; returns the outcome. For pytest.

    Raises:
        AssertionError: it did not pass (the message gives the outcome).
    """
    outcome = problem.evaluate(problem.namespace(code))
    assert outcome.status == "correct", f"expected {problem.name} to pass, got: {outcome}"
    return outcome


def assert_check_failed(problem: Problem, code: str, *expected: str) -> Outcome:
    """Assert that ``code`` fails ``problem``'s check with a message containing each of ``expected``. For pytest.

    Raises:
        AssertionError: it passed, was unattempted, or its message lacks an expected part.
    """
    outcome = problem.evaluate(problem.namespace(code))
    assert outcome.status == "incorrect", f"expected {problem.name} to fail, got: {outcome}"
    lacking = [e for e in expected if e not in outcome.message]
    assert not lacking, f"{problem.name}'s message lacks {lacking}: {outcome}"
    return outcome


def assert_check_unattempted(problem: Problem, code: str) -> Outcome:
    """Assert that ``problem``'s check calls ``code`` not attempted (e.g. the starter cell). For pytest.

    Raises:
        AssertionError: it was judged correct or incorrect.
    """
    outcome = problem.evaluate(problem.namespace(code))
    assert outcome.status == "unattempted", f"expected {problem.name} to be unattempted, got: {outcome}"
    return outcome
