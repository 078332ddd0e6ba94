"""Kinds of exercise, as learntools has them: most exercises are data over one of these (~10-20 lines each).

- :class:`EqualityCheckProblem`: the answer is a value bound to a name; it must equal what the check works out.
- :class:`FunctionProblem`: the answer is a function; the check calls it on cases (``async def`` awaited) and compares
  each result with the expected one, naming a recognised :class:`Mistake` when it sees one.
- :class:`ScriptProblem`: the answer is a script the learner writes with ``%%writefile``; the check runs it in a
  subprocess, reading its output as it arrives, within a time limit (``03_streaming``).

The "returned None: did you forget `return`?" and type checks are :func:`~helpers.checks.expect_returned`'s, the
``async def`` check :func:`~helpers.checks.expect_async`'s: a family calls them, an exercise never writes its own.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .expect import expect_async, expect_returned
from .outcomes import Incorrect, Outcome, show, steady
from .problem import Problem
from .record import HOLD_S, holding_stream, stream_seen


@dataclass(frozen=True)
class Mistake:
    """A wrong answer a check recognises by its value, and the message that names it (never the right answer).

    Attributes:
        when: ``when(answer, expected, args)`` is true for this mistake (``args``: the call's arguments, ``()`` for
            a value).
        message: what to tell the learner, a whole sentence; ``{call}`` (``mode``, ``mask('AIza...')``) and
            ``{answer}`` (the answer as :func:`~helpers.checks.show` shows it) are filled in.
    """

    when: Callable[[Any, Any, tuple[Any, ...]], bool]
    message: str

    def says(self, call: str, answer: Any) -> str:
        """The message for ``call``, which gave ``answer``."""
        return self.message.format(call=call, answer=show(answer))


def name_mistake(
    mistakes: Sequence[Mistake],
    call: str,
    answer: Any,
    expected: Any,
    otherwise: str,
    args: tuple[Any, ...] = (),
    advice: str = "",
) -> Incorrect:
    """The :class:`Incorrect` for a wrong ``answer`` to a call with ``args``: the first of ``mistakes`` that matches,
    else ``otherwise`` (formatted as a :class:`Mistake`'s message is) followed by ``advice``."""
    for mistake in mistakes:
        if mistake.when(answer, expected, args):
            return Incorrect(mistake.says(call, answer))
    return Incorrect(f"{otherwise.format(call=call, answer=show(answer))} {advice}".rstrip())


class EqualityCheckProblem(Problem):
    """An exercise whose answer is a value bound to ``variables[0]``: it must be a :attr:`kind` equal to
    :meth:`expected`. Introduced in ``00_setup``.

    Class attributes (besides :class:`Problem`'s):
        kind: the type or types the answer must have (a bool never counts as a number).
        what: the wanted value in words, for a wrong type: ``"the mode's name, a str"``.
        mistakes: recognised wrong values, checked in order.
        otherwise: the message for any other wrong value (``{call}`` and ``{answer}`` filled in).
    """

    kind: ClassVar[type | tuple[type, ...]] = object
    what: ClassVar[str] = "a value"
    mistakes: ClassVar[tuple[Mistake, ...]] = ()
    otherwise: ClassVar[str] = "{call} is {answer}, which is not what the exercise asks for."

    def expected(self, ns: Mapping[str, Any]) -> Any:
        """The right value, worked out from the notebook's namespace ``ns`` (e.g. the response it holds)."""
        raise NotImplementedError

    def verify(self, ns: Mapping[str, Any]) -> None:
        name = self.variables[0]
        value, expected = ns[name], self.expected(ns)
        if value is None:
            raise Incorrect(f"{name} is None; the exercise wants {self.what}.")
        if isinstance(value, bool) or not isinstance(value, self.kind):
            raise Incorrect(f"{name} is {show(value)}; the exercise wants {self.what}.")
        if value != expected:
            raise name_mistake(self.mistakes, name, value, expected, self.otherwise)


@dataclass(frozen=True)
class Case:
    """One call a :class:`FunctionProblem` makes, and what it must return.

    Attributes:
        args: the arguments.
        expected: the right result.
        advice: what the message adds after :attr:`FunctionProblem.otherwise` when the result is wrong and no
            :class:`Mistake` names it.
        shown: how the message writes the call's arguments (default: each by :func:`~helpers.checks.show`).
    """

    args: tuple[Any, ...]
    expected: Any
    advice: str = ""
    shown: str | None = None


class FunctionProblem(Problem):
    """An exercise whose answer is the function ``variables[0]``: each of :meth:`cases` is called (awaited if
    ``async def``, within the time limit) and must return its ``expected`` value. Introduced in ``00_setup``.

    Class attributes (besides :class:`Problem`'s):
        asynchronous: the function must be ``async def``.
        returns: the type or types each result must have; ``returns_what`` says it in words.
        cases: the calls, when they do not depend on the notebook (else override :meth:`cases_for`).
        mistakes: recognised wrong results, checked in order; ``otherwise`` is the message for any other.
    """

    asynchronous: ClassVar[bool] = False
    returns: ClassVar[type | tuple[type, ...]] = object
    returns_what: ClassVar[str] = "a value"
    cases: ClassVar[tuple[Case, ...]] = ()
    mistakes: ClassVar[tuple[Mistake, ...]] = ()
    otherwise: ClassVar[str] = "{call} returned {answer}, which is wrong."

    def cases_for(self, ns: Mapping[str, Any]) -> Sequence[Case]:
        """The cases to call, worked out from the notebook's namespace ``ns`` if need be; :attr:`cases` unless
        overridden."""
        return self.cases

    def judge(self, call: str, answer: Any, case: Case, ns: Mapping[str, Any]) -> None:
        """Judge one result (already of the right type): equal to ``case.expected``, or the mistake it shows.

        Raises:
            Incorrect: it is wrong.
        """
        if answer != case.expected:
            raise name_mistake(self.mistakes, call, answer, case.expected, self.otherwise, case.args, case.advice)

    def verify(self, ns: Mapping[str, Any]) -> None:
        name = self.variables[0]
        fn = ns[name]
        if self.asynchronous:
            expect_async(fn, name)
        for case in self.cases_for(ns):
            shown = case.shown if case.shown is not None else ", ".join(show(a) for a in case.args)
            answer = self.call(name, fn, *case.args, shown=shown)
            call = f"{name}({shown})"
            expect_returned(call, answer, self.returns, self.returns_what)
            self.judge(call, answer, case, ns)


@dataclass(frozen=True)
class ScriptRun:
    """One run of a learner's script by :meth:`ScriptProblem.run`.

    Attributes:
        stdout: what it printed, decoded as UTF-8.
        stderr: what it wrote to stderr.
        returncode: its exit status.
        printed_while_held: whether it printed while the check held its stream back after the first text
            (``None``: the stream was not held).
        took_s: seconds from starting the process to its exit (an upper bound on anything it measured itself).
    """

    stdout: str
    stderr: str
    returncode: int
    printed_while_held: bool | None
    took_s: float

    @property
    def last_error(self) -> str:
        """The last line the script wrote to stderr (its exception, when it crashed), cut at 200 characters."""
        lines = [line for line in self.stderr.strip().splitlines() if line.strip()]
        return lines[-1][:200] if lines else "(nothing on stderr)"


class ScriptProblem(Problem):
    """An exercise whose answer is a script, :attr:`script`, that the learner writes with ``%%writefile`` in the
    notebook's folder. Introduced in ``03_streaming``.

    The check is not attempted while the file is missing or still holds ``____``; :meth:`verify_script` judges it,
    calling :meth:`run` to run it in a subprocess with the current environment (which ``helpers.setup`` pointed at
    the replay server). In tests and for the cassette author, :meth:`namespace` writes the given code to a temporary
    file that the check runs instead.

    Class attributes (besides :class:`Problem`'s):
        script: the script's file name, e.g. ``"stream_cli.py"``.
        run_timeout_s: how long one run may take before the check kills it, seconds.
    """

    script: ClassVar[str] = ""
    run_timeout_s: ClassVar[float] = 60.0

    @property
    def path_key(self) -> str:
        """The namespace key under which :meth:`namespace` leaves the temporary script's path."""
        return f"__{Path(self.script).stem}_path__"

    def verify_script(self, path: Path) -> None:
        """Judge the script at ``path``.

        Raises:
            Incorrect: what is wrong, the likeliest cause first.
        """
        raise NotImplementedError

    def namespace(self, code: str = "") -> dict[str, Any]:
        """A fresh namespace; ``code`` (the script, with or without its ``%%writefile`` line) is written to a
        temporary file that the check then runs instead of :attr:`script`."""
        ns = dict(self.context())
        if code:
            lines = code.splitlines(keepends=True)
            body = "".join(lines[1:]) if lines and lines[0].startswith("%%writefile") else code
            path = Path(tempfile.gettempdir()) / f"gemini-workbook-{os.getpid()}-{self.script}"
            path.write_text(body, encoding="utf-8")
            ns[self.path_key] = path
        return ns

    def conclude(self, ns: Mapping[str, Any]) -> Outcome:
        """Not attempted while the script is missing or still holds ``____``; else what :meth:`verify` says."""
        path = Path(ns.get(self.path_key, self.script))
        if not path.is_file():
            return Outcome("unattempted", f"run the %%writefile cell to write {self.script}, then {self.name}.check().")
        if "____" in path.read_text(encoding="utf-8"):
            return Outcome(
                "unattempted",
                f"replace the ____ in {self.script} with your code, run that cell again, then {self.name}.check().",
            )
        try:
            self.verify(ns)
        except Incorrect as e:
            return Outcome("incorrect", steady(str(e)))
        return Outcome("correct", self.correct_message)

    def verify(self, ns: Mapping[str, Any]) -> None:
        self.verify_script(Path(ns.get(self.path_key, self.script)))

    def run(self, path: Path, *args: str, hold: bool = False) -> ScriptRun:
        """Run the script at ``path`` with ``args``, reading its stdout as it arrives, within :attr:`run_timeout_s`.

        ``PYTHONUNBUFFERED`` is removed from its environment: whether output is flushed is the learner's to get
        right. ``hold``: hold the cassette's next stream back after its first text until the script prints, exits,
        or has had that text for :data:`~helpers.checks.HOLD_S` (:func:`~helpers.checks.holding_stream`); the
        result says whether it printed meanwhile, which a script that buffers its output cannot.

        Raises:
            Incorrect: it ran past :attr:`run_timeout_s` (and was killed).
        """
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffering is part of the test
        env["PYTHONIOENCODING"] = "utf-8"
        pieces: list[bytes] = []
        printed = None
        with tempfile.TemporaryFile() as errors_file, holding_stream() if hold else contextlib.nullcontext() as held:
            started = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, path.name, *args], cwd=path.parent, env=env, stdout=subprocess.PIPE, stderr=errors_file
            )
            stdout = proc.stdout
            assert isinstance(stdout, io.BufferedReader)  # stdout=PIPE, buffered: the default

            def read() -> None:  # in a thread, so the check sees output as it arrives
                while piece := stdout.read1(65536):
                    pieces.append(piece)

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            try:
                if held is not None and held.active:
                    printed = self._printed_while_held(proc, pieces, started)
                    held.release()
                proc.wait(timeout=max(0.0, started + self.run_timeout_s - time.perf_counter()))
            except subprocess.TimeoutExpired:
                raise Incorrect(
                    f"{self.script} ran for more than {self.run_timeout_s:g} s, so the check stopped it; it should "
                    "take seconds."
                ) from None
            finally:
                proc.kill()  # already exited, unless something above failed
                reader.join()
                stdout.close()
            took = time.perf_counter() - started
            errors_file.seek(0)
            stderr = errors_file.read().decode("utf-8", "replace")
        out = b"".join(pieces).decode("utf-8", "replace")
        return ScriptRun(out, stderr, proc.returncode, printed, took)

    def _printed_while_held(self, proc: subprocess.Popen[bytes], pieces: list[bytes], started: float) -> bool:
        """Wait until the script prints, exits, or has had its first chunks for :data:`HOLD_S`; whether it printed.

        Its stream is held after the first text, so nothing it prints now can come after the last chunk.
        """
        had_first_chunk = None
        while time.perf_counter() < started + self.run_timeout_s:
            if pieces:
                return True
            if proc.poll() is not None:
                return False
            if had_first_chunk is None:
                _, server = stream_seen()
                if server is not None and server.chunks_s:
                    had_first_chunk = time.perf_counter()  # the server's record says it went out by now
            elif time.perf_counter() > had_first_chunk + HOLD_S:
                return False
            time.sleep(0.02)
        return False
