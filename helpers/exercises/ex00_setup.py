"""The checked exercises of ``00_setup``: name the mode, read the model version, mask a key before logging it.

Mostly data over the kinds of :mod:`helpers.checks.families`.

The notebook imports them with ``from helpers.exercises.ex00_setup import ____, q1, q2, q3``; its cells define
``session`` (from ``helpers.setup``), ``client``, ``MODEL`` and ``response``, which the checks use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..checks import Case, EqualityCheckProblem, FunctionProblem, Incorrect, Mistake, ____, lesson, lesson_context, show
from ..models import FLASH_LITE
from ..workbook import current_session

FIRST_PROMPT = "Say hello to a new learner in two sentences."
"""The notebook's first call; the context repeats it to provide ``response``, and q2 asks it of another model."""

__all__ = ["PROBLEMS", "____", "context", "q1", "q2", "q3"]

context = lesson_context(
    fresh={
        "session": lambda ns: current_session(),
        "response": lambda ns: ns["client"].models.generate_content(model=ns["MODEL"], contents=FIRST_PROMPT),
    }
)
"""What ``00_setup``'s cells leave in the notebook: ``session``, ``client``, ``MODEL``, ``response``, ``____``."""


class NameTheMode(EqualityCheckProblem):
    """q1: ``mode`` is the session's mode, spelt as the session spells it."""

    title = "Name the mode"
    variables = ("mode",)
    needs = ("session",)
    hints = ("The setup cell's line starts with it, and `session` remembers it as an attribute.",)
    starter = "mode = ____  # a str\n"
    solution_code = "mode = session.mode\n"
    correct_message = (
        "session.mode is the mode helpers.setup chose from WORKBOOK_MODE: replay unless you set live or record."
    )
    kind = str
    what = "the mode's name, a str"
    mistakes = (
        Mistake(
            lambda mode, actual, _: mode.strip().lower() == actual,
            "mode is {answer}: right mode, but write it exactly as the session spells it.",
        ),
    )
    otherwise = "mode is {answer}, but this kernel is not in that mode: read the setup cell's line."

    def expected(self, ns: Mapping[str, Any]) -> Any:
        return ns["session"].mode


class ReadTheModelVersion(FunctionProblem):
    """q2: ``model_version(response) -> str`` returns ``response.model_version``; checked with the notebook's
    ``response`` and with a response another model (:data:`helpers.models.FLASH_LITE`) answered, so a version typed
    in as a literal, or the model asked for, fails."""

    title = "Read the model version"
    variables = ("model_version",)
    needs = ("client", "response")
    hints = (
        "The answer is in the response you are given, not in its text, and not in MODEL (what you asked for).",
        "Look for an attribute of the response whose name mentions the model.",
    )
    starter = """\
def model_version(response) -> str:
    return ____  # from response
"""
    solution_code = """\
def model_version(response) -> str:
    return response.model_version
"""
    correct_message = (
        "response.model_version names the model that actually answered: worth logging, because an alias such as "
        "gemini-flash-latest can point at a different model next month."
    )
    returns = str
    returns_what = "the model's version, a str"
    otherwise = "{call} returned {answer}, which is not the model version that response reports."

    def cases_for(self, ns: Mapping[str, Any]) -> list[Case]:
        other = ns["client"].models.generate_content(model=FLASH_LITE, contents=FIRST_PROMPT)
        return [
            Case((ns["response"],), ns["response"].model_version, shown="response"),
            Case((other,), other.model_version, shown="other"),
        ]

    def judge(self, call: str, answer: Any, case: Case, ns: Mapping[str, Any]) -> None:
        if answer == case.args[0].text:
            raise Incorrect(f"{call} returned the answer's text; the model's version is another attribute of it.")
        if answer != case.expected and answer in (ns.get("MODEL"), ns["response"].model_version):
            raise Incorrect(
                f"{call} returned {show(answer)} for a response {FLASH_LITE} answered: that is the model you asked "
                "for (MODEL), not the one that answered. Read the version from the response you are given, not "
                "MODEL nor a name typed in: an alias such as gemini-flash-latest is answered by a dated model, and "
                "that name is what you would log."
            )
        super().judge(call, answer, case, ns)


class MaskTheKey(FunctionProblem):
    """q3: ``mask(key) -> str`` keeps a long key's first and last four characters and hides a short one whole."""

    title = "Mask a key before you log it"
    variables = ("mask",)
    hints = (
        "Slices do it: key[:4] is the first four characters and key[-4:] the last four.",
        "Check the length first: a key of 12 characters or fewer must give '***' and nothing of the key.",
    )
    starter = """\
def mask(key: str) -> str:
    return ____
"""
    solution_code = """\
def mask(key: str) -> str:
    if len(key) <= 12:
        return "***"
    return key[:4] + "..." + key[-4:]
"""
    correct_message = (
        "A masked key tells you which key was used without giving it away; log that, never the key itself."
    )
    returns = str
    returns_what = "a str"
    cases = tuple(
        Case(
            (key,),
            expected,
            f"for a key of {len(key)} characters the exercise wants "
            + ("'***'" if len(key) <= 12 else "its first 4 characters, '...', then its last 4")
            + " (a key of 12 characters or fewer gives '***', a longer one is shown in part).",
        )
        for key, expected in (
            ("AIzaFAKE-0123456789-wxyz", "AIza...wxyz"),
            ("sk-0123456789abcdef", "sk-0...cdef"),
            ("short-key", "***"),
            ("AIza-8chars", "***"),
            ("AIzaFAKE1234", "***"),
            ("AIzaFAKE12345", "AIza...2345"),
            ("", "***"),
        )
    )
    mistakes = (
        Mistake(
            lambda got, _, args: bool(args[0]) and args[0] in got,
            "{call} returned the whole key: exactly what must never reach a log.",
        ),
    )
    otherwise = "{call} returned {answer};"


PROBLEMS = q1, q2, q3 = lesson(context, NameTheMode, ReadTheModelVersion, MaskTheKey)
"""Every problem of the lesson, in order: for pytest and for recording the checks' requests into the cassette."""
