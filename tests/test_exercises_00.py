"""The 00_setup exercises, tested both ways against the lesson's own shipped cassette.

Each exercise lists the mistakes its lesson warns about and the shortcuts a learner tries, each rejected with a
message naming it; honest variants pass.
"""

from __future__ import annotations

import pytest

from helpers.checks import assert_check_failed, assert_check_passed
from helpers.exercises.ex00_setup import PROBLEMS, q1, q2, q3

from .exercising import lesson_tests

replay, test_reference_passes_and_starter_is_not_attempted = lesson_tests("00_setup", PROBLEMS, speed=20)


def version(body: str) -> str:
    return f"import helpers\n\ndef model_version(response):\n    return {body}\n"


MASK = "def mask(key):\n    return {}\n"

MISTAKES = {
    "q1: the right mode, spelt otherwise": (q1, "mode = 'Replay'", "right mode, but write it exactly"),
    "q1: another mode": (q1, "mode = 'live'", "this kernel is not in that mode"),
    "q1: not a str": (q1, "mode = 1", "the exercise wants the mode's name, a str"),
    "q1: the session itself": (q1, "mode = session", "the exercise wants the mode's name, a str"),
    "q2: the whole response": (q2, version("response"), "the exercise wants the model's version, a str"),
    "q2: the answer's text": (q2, version("response.text"), "returned the answer's text"),
    "q2: the model asked for (MODEL)": (q2, version("MODEL"), "the model you asked for (MODEL)"),
    "q2: the model asked for (helpers.FLASH)": (q2, version("helpers.FLASH"), "the model you asked for (MODEL)"),
    "q2: a version typed in as a literal": (q2, version(repr("gemini-3.8-flash")), "the model you asked for (MODEL)"),
    "q2: the notebook's response, not the argument": (
        q2,
        "first = response\n\ndef model_version(response):\n    return first.model_version\n",
        "the model you asked for (MODEL), not the one that answered",
    ),
    "q2: another version": (q2, version("'gemini-1.0-pro'"), "not the model version that response reports"),
    "q2: forgot return": (q2, "def model_version(response):\n    response.model_version\n", "forget `return`"),
    "q3: the whole key": (q3, MASK.format("key"), "returned the whole key"),
    "q3: forgot return": (q3, "def mask(key):\n    print(key[:4])", "did you forget `return`"),
    "q3: no length check": (q3, MASK.format("key[:4] + '...' + key[-4:]"), "for a key of 9 characters the exercise"),
    "q3: a 12-character key shown": (
        q3,
        MASK.format("'***' if len(key) < 12 else key[:4] + '...' + key[-4:]"),
        "mask('AIzaFAKE1234') returned 'AIza...1234'; for a key of 12 characters the exercise wants '***'",
    ),
    "q3: a 13-character key hidden": (
        q3,
        MASK.format("'***' if len(key) <= 13 else key[:4] + '...' + key[-4:]"),
        "mask('AIzaFAKE12345') returned '***'; for a key of 13 characters the exercise wants its first 4",
    ),
    "q3: an ellipsis character": (q3, MASK.format("'***' if len(key) <= 12 else key[:4] + '…' + key[-4:]"), "'...'"),
    "q3: a method, not its result": (q3, MASK.format("key.upper"), "the exercise wants a str"),
    "q3: hard-coded for the first key": (q3, MASK.format("'AIza...wxyz'"), "mask('sk-0123456789abcdef') returned"),
}


@pytest.mark.parametrize(("problem", "code", "expected"), MISTAKES.values(), ids=MISTAKES.keys())
def test_each_warned_mistake_and_shortcut_is_rejected_with_its_message(problem, code: str, expected: str) -> None:
    assert_check_failed(problem, code, expected)


HONEST = {
    "q1: the literal read from the setup line": (q1, "mode = 'replay'"),
    "q2: getattr": (q2, "def model_version(response):\n    return getattr(response, 'model_version')\n"),
    "q2: a lambda": (q2, "model_version = lambda r: r.model_version\n"),
    "q3: an f-string": (q3, "def mask(k):\n    return f'{k[:4]}...{k[-4:]}' if len(k) > 12 else '***'"),
}


@pytest.mark.parametrize(("problem", "code"), HONEST.values(), ids=HONEST.keys())
def test_honest_variants_pass(problem, code: str) -> None:
    assert_check_passed(problem, code)
