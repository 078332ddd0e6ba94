"""The checked exercises of ``00_setup``: name the mode, read the model version, mask a key before logging it.

The notebook imports them with ``from helpers.exercises.ex00_setup import ____, q1, q2, q3``; its cells define
``session`` (from ``helpers.setup``), ``client``, ``MODEL`` and ``response``, which the checks use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..checks import Incorrect, Problem, ____, expect_returned, lesson, lesson_context, show
from ..workbook import current_session

FIRST_PROMPT = "Say hello to a new learner in two sentences."
"""The notebook's first call; the context repeats it to provide ``response``."""

__all__ = ["PROBLEMS", "____", "context", "q1", "q2", "q3"]

context = lesson_context(
    fresh={
        "session": lambda ns: current_session(),
        "response": lambda ns: ns["client"].models.generate_content(model=ns["MODEL"], contents=FIRST_PROMPT),
    }
)
"""What ``00_setup``'s cells leave in the notebook: ``session``, ``client``, ``MODEL``, ``response``, ``____``."""


class NameTheMode(Problem):
    title = "Name the mode"
    variables = ("mode",)
    needs = ("session",)
    hints = ("The setup cell's line starts with it, and `session` remembers it as an attribute.",)
    starter = "mode = ____  # a str\n"
    solution_code = "mode = session.mode\n"
    correct_message = (
        "session.mode is the mode helpers.setup chose from WORKBOOK_MODE: replay unless you set live or record."
    )

    def verify(self, ns: Mapping[str, Any]) -> None:
        mode, actual = ns["mode"], ns["session"].mode
        if not isinstance(mode, str):
            raise Incorrect(f"mode is {show(mode)}; the exercise wants the mode's name, a str.")
        if mode.strip().lower() == actual and mode != actual:
            raise Incorrect(f"mode is {mode!r}: right mode, but write it exactly as the session spells it.")
        if mode != actual:
            raise Incorrect(f"mode is {mode!r}, but this kernel is not in that mode: read the setup cell's line.")


class ReadTheModelVersion(Problem):
    title = "Read the model version"
    variables = ("version",)
    needs = ("response",)
    hints = (
        "The answer is in `response`, the object your first call returned, not in its text.",
        "Look for an attribute of the response whose name mentions the model.",
    )
    starter = "version = ____  # from response\n"
    solution_code = "version = response.model_version\n"
    correct_message = (
        "response.model_version names the model that actually answered: worth logging, because an alias such as "
        "gemini-flash-latest can point at a different model next month."
    )

    def verify(self, ns: Mapping[str, Any]) -> None:
        version, response = ns["version"], ns["response"]
        if version is response:
            raise Incorrect("version is the whole response; the exercise wants one attribute of it.")
        if version is ns.get("MODEL") and version is not response.model_version:
            raise Incorrect(
                "version is MODEL, the model you asked for. The exercise wants the one that answered, which the "
                "response reports: they are named alike here, but an alias such as gemini-flash-latest is answered "
                "by a dated model, and that name is what you would log."
            )
        if version == response.text:
            raise Incorrect("version is the answer's text; the model's version is another attribute of the response.")
        if version != response.model_version:
            raise Incorrect(f"version is {show(version)}, which is not the model version the response reports.")


class MaskTheKey(Problem):
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
    CASES = (
        ("AIzaFAKE-0123456789-wxyz", "AIza...wxyz"),
        ("sk-0123456789abcdef", "sk-0...cdef"),
        ("short-key", "***"),
        ("AIza-8chars", "***"),
        ("AIzaFAKE1234", "***"),
        ("AIzaFAKE12345", "AIza...2345"),
        ("", "***"),
    )

    def verify(self, ns: Mapping[str, Any]) -> None:
        for key, expected in self.CASES:
            got = self.call("mask", ns["mask"], key)
            call = f"mask({key!r})"
            expect_returned(call, got, str, "a str")
            if key and key in got:
                raise Incorrect(f"{call} returned the whole key: exactly what must never reach a log.")
            if got != expected:
                want = "'***'" if len(key) <= 12 else "its first 4 characters, '...', then its last 4"
                raise Incorrect(
                    f"{call} returned {got!r}; for a key of {len(key)} characters the exercise wants {want} (a key "
                    "of 12 characters or fewer gives '***', a longer one is shown in part)."
                )


PROBLEMS = q1, q2, q3 = lesson(context, NameTheMode, ReadTheModelVersion, MaskTheKey)
"""Every problem of the lesson, in order: for pytest and for recording the checks' requests into the cassette."""
