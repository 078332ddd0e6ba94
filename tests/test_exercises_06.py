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
            change(q2, "    start = time.perf_counter()\n    with", "    with").replace(
                "        for event in stream:\n", "        start = time.perf_counter()\n        for event in stream:\n"
            ),
            "Start the clock before client.interactions.create",
        ),
        (
            change(q2, "return time.perf_counter() - start", "return 1000 * (time.perf_counter() - start)"),
            "milliseconds",
        ),
        (
            "def interaction_ttft(prompt):\n    start = time.perf_counter()\n"
            "    client.interactions.create(model=MODEL, input=prompt)\n    return time.perf_counter() - start",
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


UNCLOSED = """\
def interaction_ttft(prompt: str) -> float:
    start = time.perf_counter()
    stream = client.interactions.create(model=MODEL, input=prompt, stream=True)
    for event in stream:
        if event.event_type == "step.delta" and event.delta.type == "text":
            return time.perf_counter() - start
"""
WHOLE_STREAM = """\
def interaction_ttft(prompt: str) -> float:
    start = time.perf_counter()
    with client.interactions.create(model=MODEL, input=prompt, stream=True) as stream:
        for event in stream:
            pass
    return time.perf_counter() - start
"""
TIMED = """\
def interaction_ttft(prompt: str) -> float:
    stream = timed(lambda: client.interactions.create(model=MODEL, input=prompt, stream=True))
    for event in stream:
        if event.event_type == "step.delta" and event.delta.type == "text":
            break
    return stream.timing.ttft_s
"""
CLOSED_BY_HAND = """\
def interaction_ttft(prompt: str) -> float:
    start = time.monotonic()
    stream = client.interactions.create(model=MODEL, input=prompt, stream=True)
    try:
        for event in stream:
            if event.event_type == "step.delta" and event.delta.type == "text":
                return time.monotonic() - start
    finally:
        stream.close()
"""


def ttft(value: str) -> str:
    """The reference, returning ``value`` at the first text."""
    return change(q2, "return time.perf_counter() - start  # leaving the `with` closes the stream", f"return {value}")


CONVERSE = """\
def converse(turns):
    previous_id, answers = None, []
    for turn in turns:
        step = client.interactions.create(model=MODEL, input=turn, previous_interaction_id=previous_id)
        previous_id = step.id
        answers.append({answer})
    return answers
"""
ASK_ALL = """\
async def ask_all(prompts, limit, rate_per_s):
    semaphore = {semaphore}
    limiter = {limiter}

    async def one(prompt):
        async with semaphore:
            await limiter.acquire()
            step = await client.aio.interactions.create(model=MODEL, input=prompt)
        return step.output_text

    return await asyncio.gather(*(one(p) for p in prompts))
"""


def ask_all(semaphore: str = "asyncio.Semaphore(limit)", limiter: str = "AsyncLimiter(1, 1 / rate_per_s)") -> str:
    return ASK_ALL.format(semaphore=semaphore, limiter=limiter)


SEQUENTIAL = """\
async def ask_all(prompts, limit, rate_per_s):
    limiter = AsyncLimiter(1, 1 / rate_per_s)
    answers = []
    for prompt in prompts:
        await limiter.acquire()
        answers.append((await client.aio.interactions.create(model=MODEL, input=prompt)).output_text)
    return answers
"""
WORKERS = """\
async def ask_all(prompts, limit, rate_per_s):
    limiter = AsyncLimiter(1, 1 / rate_per_s)
    answers, queue = [None] * len(prompts), list(enumerate(prompts))

    async def worker():
        while queue:
            i, prompt = queue.pop(0)
            await limiter.acquire()
            answers[i] = (await client.aio.interactions.create(model=MODEL, input=prompt)).output_text

    await asyncio.gather(*(worker() for _ in range(limit)))
    return answers
"""


@pytest.mark.parametrize(
    ("problem", "code", "expected"),
    [
        pytest.param(
            q1, "def converse(turns):\n    return turns", "never called client.interactions.create", id="q1-no-api-call"
        ),
        pytest.param(
            q1,
            "def converse(turns):\n    return ['', '', '']",
            "never called client.interactions.create",
            id="q1-hard-coded-answers",
        ),
        pytest.param(q1, CONVERSE.format(answer="step.id"), "the interactions' ids", id="q1-ids-not-answers"),
        pytest.param(q1, CONVERSE.format(answer="''"), "not the answer the server sent", id="q1-empty-strings"),
        pytest.param(q2, ttft("time.perf_counter() - start + 1"), "longer than", id="q2-ttft-plus-a-second"),
        pytest.param(q2, ttft("0.4"), "the same", id="q2-a-constant"),
        pytest.param(q2, ttft("float('nan')"), "nan", id="q2-nan"),
        pytest.param(q2, WHOLE_STREAM, "to the end of the stream", id="q2-whole-stream-time"),
        pytest.param(q2, UNCLOSED, "Close the stream", id="q2-stream-never-closed"),
        pytest.param(q2, TIMED, "Close the stream", id="q2-timed-and-left-open"),
        pytest.param(q3, SEQUENTIAL, "one at a time", id="q3-fully-sequential"),
        pytest.param(
            q3,
            "semaphore, limiter = asyncio.Semaphore(2), AsyncLimiter(1, 0.25)\n"
            + ask_all()
            .replace("    semaphore = asyncio.Semaphore(limit)\n", "")
            .replace("    limiter = AsyncLimiter(1, 1 / rate_per_s)\n", ""),
            "made outside it",
            id="q3-module-level-semaphore-and-limiter",
        ),
        pytest.param(q3, ask_all(semaphore="asyncio.Semaphore(2)"), "its limit argument", id="q3-hard-coded-limit"),
        pytest.param(q3, ask_all(limiter="AsyncLimiter(1, 0.4)"), "its rate_per_s argument", id="q3-hard-coded-rate"),
        pytest.param(
            q3,
            ask_all(limiter="None").replace("await limiter.acquire()", "time.sleep(1 / rate_per_s)"),
            "time.sleep",
            id="q3-blocking-sleep-as-pacing",
        ),
    ],
)
def test_warned_mistakes_and_shortcuts_are_rejected_by_name(problem, code: str, expected: str) -> None:
    """Issue 25: answers compared with what the server sent, a TTFT bounded on both sides by the server's record,
    concurrency and pacing observed with the arguments the check chose."""
    assert_check_failed(problem, code, expected)


@pytest.mark.parametrize(
    ("problem", "code"),
    [
        pytest.param(q1, CONVERSE.format(answer="step.output_text"), id="q1-reference-shape"),
        pytest.param(
            q1,
            CONVERSE.format(answer="step.output_text").replace(
                "previous_interaction_id=previous_id",
                "**({'previous_interaction_id': previous_id} if previous_id else {})",
            ),
            id="q1-id-only-when-there-is-one",
        ),
        pytest.param(q2, CLOSED_BY_HAND, id="q2-closed-in-finally-with-monotonic"),
        pytest.param(q3, WORKERS, id="q3-a-pool-of-limit-workers"),
    ],
)
def test_honest_variants_pass(problem, code: str) -> None:
    assert_check_passed(problem, code)


def test_q3_praises_only_what_the_code_used() -> None:
    outcome = assert_check_passed(q3, WORKERS)
    assert "semaphore" not in outcome.message.lower() and "gather" not in outcome.message.lower()
