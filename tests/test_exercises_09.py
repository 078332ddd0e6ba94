"""The 09_frameworks exercises, tested both ways against the lesson's own shipped cassette."""

from __future__ import annotations

import pytest

from helpers.checks import assert_check_failed, assert_check_passed
from helpers.exercises.ex09_frameworks import BRANCHES, PROBLEMS, q1, q2, q3

from .exercising import lesson_tests

# The lesson's exercises run at 60x, after its batch section.
replay, test_reference_passes_and_starter_is_not_attempted = lesson_tests("09_frameworks", PROBLEMS, speed=60)


EVENTS = 'async for event in chain.astream_events({"topic": topic}, version="v2"):'
HEADLINE = f'ask({BRANCHES["headline"]!r}, "headline")'


@pytest.mark.parametrize(
    ("problem", "code", "expected"),
    [
        (
            q1,
            f"async def token_texts(topic):\n    texts = []\n    {EVENTS}\n"
            '        chunk = event["data"].get("chunk")\n        if chunk is not None:\n'
            "            texts.append(chunk if isinstance(chunk, str) else chunk.text)\n"
            "    return [t for t in texts if t]",
            "each piece appears three times",
        ),
        (
            q1,
            f'async def token_texts(topic):\n    texts = []\n    {EVENTS}\n        if "chunk" in event["data"]:\n'
            '            texts.append(event["data"]["chunk"].text)\n    return texts',
            "Not every event carries a model chunk",
        ),
        (
            q1,
            f"async def token_texts(topic):\n    texts = []\n    {EVENTS}\n"
            '        if event["event"] == "on_chat_model_stream":\n'
            '            texts.append(event["data"]["chunk"].text)\n    return texts',
            "includes empty strings",
        ),
        (
            q1,
            f"async def token_texts(topic):\n    texts = []\n    {EVENTS}\n"
            '        if event["event"] == "on_chat_model_stream":\n'
            '            texts.append(event["data"]["chunk"])\n    return texts',
            "returned message chunks",
        ),
        (
            q1,
            'async def token_texts(topic):\n    return [await chain.ainvoke({"topic": topic})]',
            "no recording of a call that does not stream",
        ),
        (q1, 'def token_texts(topic):\n    return list(chain.stream({"topic": topic}))', "Define token_texts with"),
        (
            q2,
            "async def capitals(questions):\n"
            '    answers = await ChatGoogleGenerativeAI(**LITE).abatch(questions, config={"max_concurrency": 5})\n'
            "    return [a.text for a in answers]",
            "capping concurrency does not cap the rate",
        ),
        (
            q2,
            "async def capitals(questions):\n    fragile = ChatGoogleGenerativeAI(**LITE, max_retries=1)\n"
            "    return [a.text for a in await fragile.abatch(questions)]",
            "A 429 escaped as LangChain's GoogleRateLimitError",
        ),
        (
            q2,
            "async def capitals(questions):\n"
            "    limiter = InMemoryRateLimiter(requests_per_second=RPM / window_s / 1.1, check_every_n_seconds=0.01)\n"
            "    return await ChatGoogleGenerativeAI(**LITE, rate_limiter=limiter).abatch(questions)",
            "returned messages",
        ),
        (q3, "fan_out = retell // keywords", "no part from the headline branch"),
        (q3, f"fan_out = retell + keywords + {HEADLINE}", "`+` chains processors"),
        (
            q3,
            "@processor.part_processor_function\nasync def fan_out(part):\n"
            f"    for branch in (retell, keywords, {HEADLINE}):\n"
            "        async for out in branch(part):\n            yield out",
            "the branches ran one after another",
        ),
        (q3, f"fan_out = [retell, keywords, {HEADLINE}]", "fan_out is a list"),
    ],
)
def test_typical_wrong_answers_fail_with_their_message(problem, code: str, expected: str) -> None:
    assert_check_failed(problem, code, expected)


@pytest.mark.parametrize(
    ("problem", "code"),
    [
        (q1, 'async def token_texts(topic):\n    return [p async for p in chain.astream({"topic": topic}) if p]'),
        (
            q3,
            "@processor.part_processor_function\nasync def fan_out(part):\n"
            f"    async for out in streams.merge([retell(part), keywords(part), {HEADLINE}(part)]):\n"
            "        yield out",
        ),
    ],
)
def test_other_correct_answers_pass(problem, code: str) -> None:
    assert_check_passed(problem, code)


PACED = (
    "    limiter = InMemoryRateLimiter(\n"
    "        requests_per_second=RPM / window_s / 1.1, check_every_n_seconds=0.01, max_bucket_size=1\n"
    "    )\n"
    "    paced = ChatGoogleGenerativeAI(**LITE, rate_limiter=limiter)\n"
)


@pytest.mark.parametrize(
    ("problem", "code", "expected"),
    [
        pytest.param(
            q1,
            "async def token_texts(topic):\n    return ['Leaves change colour', ' because chlorophyll fades.']",
            "never streamed from the model",
            id="q1-hard-coded-pieces",
        ),
        pytest.param(
            q2,
            "async def capitals(questions):\n"
            + PACED
            + "    return [(await paced.ainvoke(q)).text for q in questions]",
            "one abatch call",
            id="q2-a-loop-of-ainvoke",
        ),
        pytest.param(
            q2,
            "async def capitals(questions):\n"
            + PACED
            + "    answers = await asyncio.gather(*(paced.ainvoke(q) for q in questions))\n"
            "    return [a.text for a in answers]",
            "one abatch call",
            id="q2-gather-of-ainvoke",
        ),
        pytest.param(
            q2,
            "import time\n\n\nasync def capitals(questions):\n    llm = ChatGoogleGenerativeAI(**LITE)\n"
            "    answers = []\n    for q in questions:\n        time.sleep(1.1 * window_s / RPM)\n"
            "        answers.append((await llm.ainvoke(q)).text)\n    return answers",
            "time.sleep, which blocks the event loop",
            id="q2-blocking-sleep-as-pacing",
        ),
        pytest.param(
            q2,
            "import time\n\n\nasync def capitals(questions):\n"
            + PACED
            + "    time.sleep(0.01)\n    return [a.text for a in await paced.abatch(questions)]",
            "time.sleep, which blocks the event loop",
            id="q2-blocking-sleep-before-abatch",
        ),
    ],
)
def test_warned_mistakes_and_shortcuts_are_rejected_by_name(problem, code: str, expected: str) -> None:
    """Issue 25: one abatch is asked for, and nothing may block the event loop the batch runs on."""
    assert_check_failed(problem, code, expected)


def test_q2_passes_one_abatch_capped_and_paced() -> None:
    assert_check_passed(
        q2,
        "async def capitals(questions):\n"
        + PACED
        + '    answers = await paced.abatch(questions, config={"max_concurrency": 3})\n'
        "    return [a.text for a in answers]",
    )
