"""The 06_interactions exercises, tested both ways against the lesson's own shipped cassette."""

from __future__ import annotations

import pytest

from helpers.checks import assert_check_failed, assert_check_passed
from helpers.exercises.ex06_interactions import PROBLEMS, q1, q2, q3

from .exercising import change, lesson_tests

replay, test_reference_passes_and_starter_is_not_attempted = lesson_tests("06_interactions", PROBLEMS, speed=4)


CREATE = "client.interactions.create(model=MODEL, input=turn, previous_interaction_id=previous_id)"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (change(q1, CREATE, "client.interactions.create(model=MODEL, input=turn)"), "without previous_interaction_id"),
        (
            change(q1, "        previous_id = step.id\n", "        previous_id = previous_id or step.id\n"),
            "pass the id of the latest interaction",
        ),
        (
            change(q1, "    previous_id, answers = None, []\n", "    previous_id, answers, sent = None, [], []\n")
            .replace("    for turn in turns:\n", "    for turn in turns:\n        sent.append(turn)\n")
            .replace("input=turn,", "input=list(sent) if len(sent) > 1 else turn,"),
            "resent the conversation",
        ),
        (change(q1, "answers.append(step.output_text)", "answers.append(step)"), "return each interaction's"),
    ],
)
def test_typical_wrong_conversations_fail_with_their_message(code: str, expected: str) -> None:
    assert_check_failed(q1, code, expected)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            change(q2, "    start = time.perf_counter()\n    stream = ", "    stream = ").replace(
                "    for event in stream:\n", "    start = time.perf_counter()\n    for event in stream:\n"
            ),
            "Start the clock before client.interactions.create",
        ),
        (
            change(q2, "return time.perf_counter() - start", "return 1000 * (time.perf_counter() - start)"),
            "milliseconds",
        ),
        (
            change(q2, ", stream=True)", ")")
            .replace("    for event in stream:\n", "    for event in stream.steps:\n")
            .replace('if event.event_type == "step.delta" and event.delta.type == "text":', "if True:"),
            "did not stream",
        ),
    ],
)
def test_typical_wrong_ttfts_fail_with_their_message(code: str, expected: str) -> None:
    assert_check_failed(q2, code, expected)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (change(q3, "            await limiter.acquire()\n", ""), "A semaphore is not a rate limiter"),
        (
            change(q3, "    semaphore = asyncio.Semaphore(limit)\n", "    semaphore = asyncio.Semaphore(100)\n"),
            "in flight at once",
        ),
        (change(q3, "return step.output_text", "return step"), "return each interaction's .output_text"),
    ],
)
def test_typical_wrong_fan_outs_fail_with_their_message(code: str, expected: str) -> None:
    assert_check_failed(q3, code, expected)


def test_timed_helper_passes_q2() -> None:
    assert_check_passed(
        q2,
        """\
def interaction_ttft(prompt: str) -> float:
    stream = timed(lambda: client.interactions.create(model=MODEL, input=prompt, stream=True))
    for event in stream:
        if event.event_type == "step.delta" and event.delta.type == "text":
            break
    return stream.timing.ttft_s
""",
    )
