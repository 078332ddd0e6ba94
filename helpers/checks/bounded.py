"""Time limits: run a learner's function so that it never hangs a check (:func:`run_bounded`), and say where it was
when it had to be stopped."""

from __future__ import annotations

import asyncio
import ctypes
import inspect
import linecache
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

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
    | {str(Path(__file__).resolve().parents[1])}
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
