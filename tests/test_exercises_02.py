"""The 02_async exercises, tested both ways against the lesson's own shipped cassette.

Each exercise lists the mistakes its lesson warns about and the shortcuts a learner tries, each rejected with a
message naming it; honest variants pass.
"""

from __future__ import annotations

import pytest

from helpers.checks import assert_check_failed, assert_check_passed
from helpers.exercises.ex02_async import PROBLEMS, q1, q2, q3

from .exercising import change, lesson_tests

replay, test_reference_passes_and_starter_is_not_attempted = lesson_tests("02_async", PROBLEMS, speed=120)


ONE_AT_A_TIME = """\
async def ask_all(prompts):
    answers = []
    for p in prompts:
        answers.append((await client.aio.models.generate_content(model=MODEL, contents=p)).text)
    return answers
"""

AS_COMPLETED = """\
async def ask_all(prompts):
    coroutines = [client.aio.models.generate_content(model=MODEL, contents=p) for p in prompts]
    return [(await c).text for c in asyncio.as_completed(coroutines)]
"""

RESPONSES = """\
async def ask_all(prompts):
    return await asyncio.gather(*(client.aio.models.generate_content(model=MODEL, contents=p) for p in prompts))
"""

NOT_ASYNC = """\
def ask_all(prompts):
    return asyncio.gather(*(client.aio.models.generate_content(model=MODEL, contents=p) for p in prompts))
"""

UNCAPPED = RESPONSES.replace("ask_all", "ask_two_at_a_time").replace("return await", "return [r.text for r in await")
UNCAPPED = UNCAPPED.rstrip() + "]\n"

CAPPED_AT = """\
async def ask_two_at_a_time(prompts):
    semaphore = asyncio.Semaphore({n})

    async def one(prompt):
        async with semaphore:
            return (await client.aio.models.generate_content(model=MODEL, contents=prompt)).text

    return await asyncio.gather(*(one(p) for p in prompts))
"""

NO_RETRY = """\
async def ask_patiently(prompt):
    return (await client.aio.models.generate_content(model=MODEL, contents=prompt)).text
"""

IMPATIENT = """\
async def ask_patiently(prompt):
    while True:
        try:
            return (await client.aio.models.generate_content(model=MODEL, contents=prompt)).text
        except errors.APIError as e:
            if e.code != 429:
                raise
            await asyncio.sleep(0.01)
"""

ON_500_ONLY = IMPATIENT.replace("e.code != 429", "e.code != 500")

HALF_AND_HALF = """\
async def ask_all(prompts):
    half = len(prompts) // 2
    first = await asyncio.gather(*(client.aio.models.generate_content(model=MODEL, contents=p) for p in prompts[:half]))
    rest = await asyncio.gather(*(client.aio.models.generate_content(model=MODEL, contents=p) for p in prompts[half:]))
    return [r.text for r in first + rest]
"""

CHUNKS_OF_TWO = """\
async def ask_two_at_a_time(prompts):
    answers = []
    for i in range(0, len(prompts), 2):
        pair = prompts[i : i + 2]
        responses = await asyncio.gather(*(client.aio.models.generate_content(model=MODEL, contents=p) for p in pair))
        answers += [r.text for r in responses]
    return answers
"""

SEMAPHORE_OUTSIDE = """\
semaphore = asyncio.Semaphore(2)


async def ask_two_at_a_time(prompts):
    async def one(prompt):
        async with semaphore:
            return (await client.aio.models.generate_content(model=MODEL, contents=prompt)).text

    return await asyncio.gather(*(one(p) for p in prompts))
"""

REFERENCE = q3.solution_code

SDK_RETRY_OPTIONS = """\
async def ask_patiently(prompt):
    options = types.HttpOptions(retry_options=types.HttpRetryOptions(attempts=8))
    response = await client.aio.models.generate_content(
        model=MODEL, contents=prompt, config=types.GenerateContentConfig(http_options=options)
    )
    return response.text
"""

SDK_RETRYING_CLIENT = """\
retrying = types.HttpRetryOptions(attempts=4, initial_delay=0.1, max_delay=0.5)
client = genai.Client(http_options=types.HttpOptions(retry_options=retrying))


async def ask_patiently(prompt):
    return (await client.aio.models.generate_content(model=MODEL, contents=prompt)).text
"""

BLOCKING_SLEEP = "import time\n\n" + REFERENCE.replace("await asyncio.sleep(", "time.sleep(")

RETRIES_EVERY_ERROR = """\
async def ask_patiently(prompt):
    for attempt in range(10):
        try:
            return (await client.aio.models.generate_content(model=MODEL, contents=prompt)).text
        except errors.APIError as e:
            delay = 0.05
            if e.code == 429:
                info = [d for d in e.details["error"]["details"] if d["@type"].endswith("RetryInfo")]
                delay = float(info[0]["retryDelay"].rstrip("s"))
            await asyncio.sleep(delay)
"""

READS_RETRY_INFO_OF_EVERY_ERROR = REFERENCE.replace("e.code != 429 or attempt == 9", "attempt == 9")


BLOCKING_SLEEP_IN_GATHER = """\
import time


async def ask_all(prompts):
    async def one(prompt):
        time.sleep(0.01)  # "to be polite"
        return (await client.aio.models.generate_content(model=MODEL, contents=prompt)).text

    return await asyncio.gather(*(one(p) for p in prompts))
"""

SYNC_CLIENT_IN_ASYNC = """\
async def ask_all(prompts):
    async def one(prompt):
        return client.models.generate_content(model=MODEL, contents=prompt).text

    return await asyncio.gather(*(one(p) for p in prompts))
"""

ASYNC_LIMITER = "from aiolimiter import AsyncLimiter\n\n" + CAPPED_AT.replace(
    "semaphore = asyncio.Semaphore({n})", "limiter = AsyncLimiter(2, 1)"
).replace("async with semaphore:", "async with limiter:")


def retry_with(delay: str) -> str:
    """The reference solution, waiting ``delay`` (an expression) instead of the 429's retryDelay."""
    return change(q3, 'float(delays[0].removesuffix("s"))', delay)


MISTAKES = {
    "q1: one request at a time": (q1, ONE_AT_A_TIME, "sent the requests one at a time"),
    "q1: as_completed order": (q1, AS_COMPLETED, "in the order they finished, not the order of the prompts"),
    "q1: responses, not text": (q1, RESPONSES, "returned responses; the exercise wants the text"),
    "q1: not async def": (q1, NOT_ASYNC, "Define ask_all with `async def`"),
    "q1: forgot return": (q1, "async def ask_all(prompts):\n    answers = await asyncio.sleep(0)", "forget `return`"),
    "q1: two gathers in turn": (q1, HALF_AND_HALF, "had at most 3 of the 6 requests in flight at once"),
    "q1: blocking time.sleep in async code": (q1, BLOCKING_SLEEP_IN_GATHER, "called time.sleep, which blocks"),
    "q1: the sync client in async code": (q1, SYNC_CLIENT_IN_ASYNC, "called client.models.generate_content, the sync"),
    "q2: no cap": (q2, UNCAPPED, "6 requests were in flight at once; the limit was 2."),
    "q2: a cap of 3": (q2, CAPPED_AT.format(n=3), "3 requests were in flight at once; the limit was 2."),
    "q2: a cap of 1": (q2, CAPPED_AT.format(n=1), "never more than 1 request was in flight"),
    "q2: chunks of two": (q2, CHUNKS_OF_TWO, "the prompts went in groups of two"),
    "q2: a semaphore made outside": (q2, SEMAPHORE_OUTSIDE, "a semaphore made outside the function works once"),
    "q2: a semaphore made outside, the loop error": (q2, SEMAPHORE_OUTSIDE, "'bound to a different event loop'"),
    "q2: an AsyncLimiter, a rate not a cap": (q2, ASYNC_LIMITER, "an AsyncLimiter limits how many requests start"),
    "q2: blocking time.sleep in async code": (
        q2,
        "import time\n\n"
        + CAPPED_AT.format(n=2).replace("async with semaphore:", "async with semaphore:\n            time.sleep(0)"),
        "called time.sleep, which blocks",
    ),
    "q3: not async def": (
        q3,
        NO_RETRY.replace("async def", "def").replace("(await ", "("),
        "Define ask_patiently with `async def`",
    ),
    "q3: no retry": (q3, NO_RETRY, "ClientError 429 RESOURCE_EXHAUSTED"),
    "q3: no retry, advice on api_core": (q3, NO_RETRY, "not google.api_core's ResourceExhausted"),
    "q3: retries at once": (q3, IMPATIENT, "retried sooner than the server asked"),
    "q3: retries 500s only": (q3, ON_500_ONLY, "A 429 escaped"),
    "q3: the SDK's retry options": (q3, SDK_RETRY_OPTIONS, "the SDK's HttpRetryOptions, which waits on its own"),
    "q3: a client that retries by itself": (q3, SDK_RETRYING_CLIENT, "for your 6 calls: ask_patiently leaves"),
    "q3: blocking time.sleep in async code": (q3, BLOCKING_SLEEP, "called time.sleep, which blocks the event loop"),
    "q3: retries every error": (q3, RETRIES_EVERY_ERROR, "returned an answer although the server answered 503 3"),
    "q3: reads RetryInfo of every error": (
        q3,
        READS_RETRY_INFO_OF_EVERY_ERROR,
        "check e.code == 429 before reading RetryInfo",
    ),
    "q3: a fixed pause shorter than retryDelay": (
        q3,
        retry_with("1.0"),
        "retried before the 2.5 s its 429's retryDelay asked for had passed",
    ),
    "q3: a fixed pause long enough for the longest retryDelay": (
        q3,
        retry_with("3.0"),
        "to retry in 0.05 s, it waited much longer",
    ),
    "q3: exponential backoff with jitter": (
        q3,
        "import random\n\n" + retry_with("0.5 * 2 ** attempt + random.random() / 10"),
        "retryDelay",
    ),
}


@pytest.mark.parametrize("name", MISTAKES)
def test_each_warned_mistake_and_shortcut_is_rejected_with_its_message(name: str) -> None:
    problem, code, expected = MISTAKES[name]
    assert_check_failed(problem, code, expected)


HONEST = {
    "q1: a TaskGroup": (
        q1,
        """\
async def ask_all(prompts):
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(client.aio.models.generate_content(model=MODEL, contents=p)) for p in prompts]
    return [t.result().text for t in tasks]
""",
    ),
    "q2: a BoundedSemaphore": (q2, CAPPED_AT.format(n=2).replace("asyncio.Semaphore", "asyncio.BoundedSemaphore")),
    "q3: an async functools.partial": (
        q3,
        """\
import functools


async def retrying(prompt, attempts):
    for attempt in range(attempts):
        try:
            return (await client.aio.models.generate_content(model=MODEL, contents=prompt)).text
        except errors.APIError as e:
            if e.code != 429 or attempt == attempts - 1:
                raise
            info = [d for d in e.details["error"]["details"] if d["@type"].endswith("RetryInfo")]
            await asyncio.sleep(float(info[0]["retryDelay"].rstrip("s")))


ask_patiently = functools.partial(retrying, attempts=10)
""",
    ),
}


@pytest.mark.parametrize(("problem", "code"), HONEST.values(), ids=HONEST.keys())
def test_honest_variants_pass(problem, code: str) -> None:
    assert_check_passed(problem, code)


def test_honouring_retry_delay_through_a_helper_passes() -> None:
    assert_check_passed(
        q3,
        """\
def delay_s(error):
    info = [d for d in error.details["error"]["details"] if d["@type"].endswith("RetryInfo")]
    return float(info[0]["retryDelay"].rstrip("s"))


async def ask_patiently(prompt):
    while True:
        try:
            response = await client.aio.models.generate_content(model=MODEL, contents=prompt)
            return response.text
        except errors.APIError as e:
            if e.code != 429:
                raise
            await asyncio.sleep(delay_s(e))
""",
    )


def test_a_coroutine_that_never_finishes_is_cancelled_at_the_limit_and_the_next_check_runs(monkeypatch) -> None:
    monkeypatch.setattr(q1, "time_limit_s", 1.0)
    code = "async def ask_all(prompts):\n    await asyncio.Event().wait()\n"
    assert_check_failed(
        q1, code, "had not returned after 1 s, so the check stopped it. It was at line 2 of ask_all(): `await"
    )
    q1.check_reference()
