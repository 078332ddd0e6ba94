"""Exercise checks never judge an improvised stand-in (issue 28): a check run with the server improvising behaves
exactly as with it strict, for every lesson's recorded exercise requests and for the same requests on a model no
recording has; and a value a stand-in answered is refused, saying so. (Its own file, so that ``pytest -n``, which
gives each file one worker, runs it beside ``test_improvise.py``.)"""

from __future__ import annotations

from pathlib import Path

import pytest

import helpers
from helpers.checks import Problem, describe_error
from helpers.exercises import (
    ex00_setup,
    ex01_sync,
    ex02_async,
    ex03_streaming,
    ex04_multimodal,
    ex05_batch,
    ex06_interactions,
    ex07_web,
    ex08_protocols,
    ex09_frameworks,
)
from helpers.models import FLASH, FLASH_LITE

from .conftest import generate_exchange, lesson_replay, write_cassette
from .test_exercises_03 import SPEED as SPEED_03

LESSONS = [
    (ex00_setup, "00_setup", 20),
    (ex01_sync, "01_sync", 20),
    (ex02_async, "02_async", 120),
    (ex03_streaming, "03_streaming", SPEED_03),
    (ex04_multimodal, "04_multimodal", 4),
    (ex05_batch, "05_batch", 4),
    (ex06_interactions, "06_interactions", 4),
    (ex07_web, "07_web", 1),
    (ex08_protocols, "08_protocols", 4),
    (ex09_frameworks, "09_frameworks", 60),
]
"""Each lesson's exercises and the replay speed its own exercise tests use (``tests/test_exercises_NN.py``)."""
ANOTHER_MODEL = f"MODEL = {FLASH_LITE!r}  # every call the check makes now has no recording\n"


def outcome(problem: Problem, code: str) -> str:
    """What ``problem``'s check makes of ``code``: its printed line, or the error that escaped it (a check's own
    call with no recording raises, improvising or not)."""
    try:
        return str(problem.evaluate(problem.namespace(code)))
    except Exception as e:
        return f"raised {describe_error(e)}"


def outcomes(notebook: str, problems: tuple[Problem, ...], speed: float, unmatched: str) -> list[str]:
    """Each problem's outcome for its reference solution, then for the reference on another model (whose requests
    no recording matches), on a fresh replay of the lesson with ``unmatched``."""
    with lesson_replay(notebook, speed=speed, unmatched=unmatched):
        return [
            outcome(problem, prefix + problem.solution_code) for problem in problems for prefix in ("", ANOTHER_MODEL)
        ]


@pytest.mark.parametrize(("module", "notebook", "speed"), LESSONS, ids=[n for _, n, _ in LESSONS])
def test_a_check_in_improvise_mode_behaves_exactly_as_in_error_mode(module, notebook: str, speed: float) -> None:
    strict = outcomes(notebook, module.PROBLEMS, speed, "error")
    assert strict == outcomes(notebook, module.PROBLEMS, speed, "improvise")
    assert all(o.startswith("Correct") for o in strict[::2]), strict


def test_a_value_a_stand_in_answered_is_not_judged(env: Path) -> None:
    first, lite = (generate_exchange(ex00_setup.FIRST_PROMPT, "Hello.", 0.0, model=m) for m in (FLASH, FLASH_LITE))
    write_cassette(env, "00_setup", [first, lite])
    helpers.setup("00_setup", unmatched="improvise")
    q2 = ex00_setup.q2
    ns = q2.namespace("response = client.models.generate_content(model=MODEL, contents='Hi!')\n" + q2.solution_code)
    outcome = q2.evaluate(ns)
    assert outcome.status == "unattempted"
    assert str(outcome).startswith("Not attempted yet: `response` holds an offline stand-in's answer")
    assert q2.evaluate(q2.namespace(q2.solution_code)).status == "correct", "a recorded one is judged"
