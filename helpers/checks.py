"""Exercise checks in the style of Kaggle's learntools: ``q1.check()``, ``q1.hint()``, ``q1.solution()``.

A lesson's exercises live in ``helpers/exercises/exNN_name.py``: one :class:`Problem` subclass per exercise, whose
:meth:`Problem.verify` raises :class:`Incorrect` with one friendly message naming what is wrong (never the answer).
The learner's starter code uses the placeholder :data:`____`; while it is there the check says "not attempted".

Checks read the learner's names from the namespace of the cell that calls ``check()`` (in a notebook, the
kernel's user namespace), call the learner's functions against the current session's server (see
:func:`helpers.setup`), and judge what comes back; a later lesson's check may also read the replay server's stats
(``helpers.control``) around the call. Output is plain text with no addresses or timings, so nbval compares it.
Introduced in ``01_sync``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

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
    own = vars(obj)
    shadowed, original = method in own, getattr(obj, method)
    seen: list[Watched] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        seen.append(Watched(args, kwargs, result))
        if then is not None:
            then(seen)
        return result

    setattr(obj, method, spy)
    try:
        yield seen
    finally:
        if shadowed:
            setattr(obj, method, original)
        else:
            delattr(obj, method)


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


def show(value: Any, limit: int = 60) -> str:
    """A value as a message shows it: short literals as ``repr`` (long strings cut), anything else by type.

    Never an address, so messages stay deterministic: ``'error'``, ``404``, ``None``, ``a GenerateContentResponse``.
    """
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= limit else text[: limit - 4] + "...'"
    return f"a {type(value).__name__}"


def describe_error(error: BaseException, limit: int = 200) -> str:
    """An exception in one line, without a final period: ``NameError: name 'x' is not defined``, or for the API
    ``ClientError 404 NOT_FOUND: models/x is not found ...`` (the first sentence of its message)."""
    if isinstance(error, errors.APIError):
        text = f"{type(error).__name__} {error.code} {error.status}: {(error.message or '').split('. ')[0]}"
    else:
        text = f"{type(error).__name__}: {error}"
    text = " ".join(text.split()).rstrip(".")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_coroutine(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, also inside a notebook whose event loop is running.

    With a running loop (a Jupyter cell), it runs on a fresh loop in a worker thread: google-genai 3.4 keeps one
    connection pool per loop, so ``client.aio`` works there. Objects already bound to the notebook's loop (e.g. an
    ``asyncio.Semaphore`` it has used) cannot be shared with that loop; create them inside the function.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


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

    def call(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Call the learner's function as ``name(*args)`` and return the result (awaited if it is a coroutine).

        Raises:
            Incorrect: the function raised; the message names the call, its arguments, the error and
                :meth:`explain`'s advice.
        """
        try:
            result = fn(*args)
            return run_coroutine(result) if inspect.iscoroutine(result) else result
        except Exception as e:
            shown = ", ".join(show(a) for a in args)
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
        exec(compile(code, f"<{self.name} cell>", "exec"), ns)
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
