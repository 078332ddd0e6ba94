"""The 00_setup exercises, tested both ways against the lesson's own shipped cassette."""

from __future__ import annotations

import pytest

from helpers.checks import assert_check_failed, assert_check_passed
from helpers.exercises.ex00_setup import PROBLEMS, q1, q2, q3

from .exercising import lesson_tests

replay, test_reference_passes_and_starter_is_not_attempted = lesson_tests("00_setup", PROBLEMS, speed=20)


@pytest.mark.parametrize(
    ("problem", "code", "expected"),
    [
        (q1, "mode = 'Replay'", "right mode, but write it exactly"),
        (q1, "mode = 'live'", "this kernel is not in that mode"),
        (q1, "mode = 1", "the exercise wants the mode's name, a str"),
        (q2, "version = response", "version is the whole response"),
        (q2, "version = response.text", "version is the answer's text"),
        (q2, "version = 'gemini-1.0-pro'", "not the model version the response reports"),
        (q3, "def mask(key):\n    return key", "returned the whole key"),
        (q3, "def mask(key):\n    print(key[:4])", "did you forget `return`"),
        (
            q3,
            "def mask(key):\n    return key[:4] + '...' + key[-4:]",
            "for a key of 9 characters the exercise",
        ),
        (q2, "version = MODEL", "version is MODEL, the model you asked for"),
        (q2, "import helpers\n\nversion = helpers.FLASH", "version is MODEL, the model you asked for"),
        (
            q3,
            "def mask(key):\n    return '***' if len(key) < 12 else key[:4] + '...' + key[-4:]",
            "mask('AIzaFAKE1234') returned 'AIza...1234'; for a key of 12 characters the exercise wants '***'",
        ),
        (
            q3,
            "def mask(key):\n    return '***' if len(key) <= 13 else key[:4] + '...' + key[-4:]",
            "mask('AIzaFAKE12345') returned '***'; for a key of 13 characters the exercise wants its first 4",
        ),
        (q3, "def mask(key):\n    return '***' if len(key) <= 12 else key[:4] + '…' + key[-4:]", "'...', then its"),
        (q3, "def mask(key):\n    return key.upper", "the exercise wants a str"),
    ],
)
def test_typical_wrong_answers_fail_with_their_message(problem, code: str, expected: str) -> None:
    assert_check_failed(problem, code, expected)


def test_another_correct_mask_passes() -> None:
    assert_check_passed(q3, "def mask(k):\n    return f'{k[:4]}...{k[-4:]}' if len(k) > 12 else '***'")
