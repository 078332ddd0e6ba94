"""The base of every exercise, :class:`Problem` (``q1.check()``, ``q1.hint()``, ``q1.solution()``), a lesson's
namespace (:func:`lesson_context`), and the ``assert_check_*`` helpers pytest uses."""

from __future__ import annotations

import linecache
import sys
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from google import genai

from ..models import FLASH
from ..workbook import WorkbookError, current_session, record_check
from .bounded import LIVE_TIME_LIMIT_S, TIME_LIMIT_S, TimeLimitExceeded, run_bounded
from .code import uses_placeholder
from .outcomes import Incorrect, Outcome, ____, describe_error, show, steady
from .record import improvised, recordings_only


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
        self,
        name: str,
        fn: Callable[..., Any],
        *args: Any,
        nudge: tuple[float, Callable[[], None]] | None = None,
        shown: str | None = None,
    ) -> Any:
        """Call the learner's function as ``name(*args)`` and return the result (awaited if it is a coroutine), within
        :meth:`limit_s` (see :func:`run_bounded`, also for ``nudge``). ``shown`` is how a message writes the
        arguments (default: each as :func:`~helpers.checks.show` shows it), e.g. ``"url, prompt"`` for an argument
        that differs from run to run (a port, a job's name), which a message must not show.

        Raises:
            Incorrect: the function raised (the message names the call, its arguments, the error and
                :meth:`explain`'s advice), or ran past its limit and was stopped (the message says where it was, and
                :meth:`explain_timeout`'s advice).
        """
        shown = ", ".join(show(a) for a in args) if shown is None else shown
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
        """Check the learner's work in namespace ``ns`` and return the :class:`Outcome` (prints nothing).

        While it runs, requests no recording matches get the 404, never an improvised stand-in
        (:func:`~helpers.checks.recordings_only`): a check judges recorded answers only."""
        with recordings_only():
            return self.conclude(ns)

    def conclude(self, ns: Mapping[str, Any]) -> Outcome:
        """The outcome of the learner's work in ``ns``: not attempted while a name is missing or holds ``____``, else
        what :meth:`verify` says. A family whose answer is not a name overrides it (:class:`ScriptProblem`)."""
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
        stand_ins = [n for n in (*self.variables, *self.needs) if improvised(ns[n])]
        if stand_ins:
            return Outcome(
                "unattempted",
                f"{_names(stand_ins)} holds an offline stand-in's answer (no recording matched the call that made it), "
                f"and checks judge recorded answers only: run that cell as the lesson has it, then {self.name}.check() "
                "again.",
            )
        try:
            self.verify(ns)
        except Incorrect as e:
            return Outcome("incorrect", steady(str(e)))
        return Outcome("correct", self.correct_message)

    def check(self) -> None:
        """Check the calling cell's work and print one line: correct, incorrect (and why) or not attempted.

        The outcome is kept as the learner's progress (:func:`helpers.workbook.record_check`)."""
        outcome = self.evaluate(sys._getframe(1).f_globals)
        print(outcome)
        record_check(self.name, outcome.status)

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
