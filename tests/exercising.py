"""What every ``test_exercises_NN.py`` opens with: the lesson's replay for the module, the test that each reference
solution passes and each starter cell is not attempted, and :func:`change` to make a wrong answer from a reference.

A test module binds the first two to its own names, which is how pytest finds them::

    replay, test_reference_passes_and_starter_is_not_attempted = lesson_tests("06_interactions", PROBLEMS, speed=4)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest

from helpers.checks import Problem, assert_check_unattempted

from .conftest import lesson_replay


def lesson_tests(
    notebook: str, problems: Sequence[Problem], *, speed: float
) -> tuple[Callable[[], Iterator[None]], Callable[[Problem], None]]:
    """The shared opening of a lesson's exercise tests.

    Args:
        notebook: the lesson, e.g. ``"06_interactions"``; its own shipped cassette is replayed.
        problems: the lesson's ``PROBLEMS``.
        speed: the replay speed (``helpers.setup(..., speed=)``).

    Returns:
        A module-scoped autouse fixture that replays the lesson for the module (a clean environment, restored
        afterwards), and a test parametrized over ``problems`` that runs each reference solution through its check
        and asserts the starter cell is not attempted.
    """

    @pytest.fixture(scope="module", autouse=True)
    def replay() -> Iterator[None]:
        with lesson_replay(notebook, speed=speed):
            yield

    @pytest.mark.parametrize("problem", problems, ids=lambda p: p.name)
    def test_reference_passes_and_starter_is_not_attempted(problem: Problem) -> None:
        problem.check_reference()
        assert_check_unattempted(problem, problem.starter)

    return replay, test_reference_passes_and_starter_is_not_attempted


def change(problem: Problem, old: str, new: str) -> str:
    """The problem's reference solution with one piece changed (it must occur exactly once)."""
    assert problem.solution_code.count(old) == 1, old
    return problem.solution_code.replace(old, new)
