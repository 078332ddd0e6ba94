"""The checked exercises of ``02_async``: gather in order, cap concurrency with a semaphore, retry a 429 politely.

The notebook imports them with ``from helpers.exercises.ex02_async import ____, q1, q2, q3``; its setup cells define
``client = genai.Client()``, ``MODEL`` (:data:`helpers.models.FLASH`), ``asyncio`` and ``errors``, which learners use.
The learners' functions are ``async def``; each check runs them on a fresh event loop
(:func:`helpers.checks.run_bounded`) and judges how many requests were in flight at once (counted as the learner's
``client.aio`` calls start and end, :func:`helpers.checks.counting_calls`; the replay server's peak if the learner
made another client) and how many the server refused with 429 (:mod:`helpers.control`). The prompts are ones the
lesson's synthetic script answers (``notebooks/scripts/02_async.json``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from google import genai
from google.genai import errors, types

from .. import control
from ..checks import Incorrect, Problem, ____, counting_calls, show
from ..models import FLASH
from ..replay.limits import WINDOW_S
from ..workbook import current_session

PROMPTS = tuple(
    f"Translate '{word}' into {language}. Answer with the translation only."
    for word, language in [
        ("friend", "Spanish"),
        ("book", "French"),
        ("cat", "German"),
        ("house", "Italian"),
        ("sun", "Portuguese"),
        ("moon", "Spanish"),
    ]
)
"""Six prompts every check sends (from the lesson's hundred translations)."""

LIMIT = 2
"""The rate limit of exercise 3: requests per minute of the server (a minute lasts ``60 / speed`` seconds)."""

MAX_REJECTIONS = 3 * len(PROMPTS)
"""Exercise 3 fails a client that got more 429s than this. Honouring ``retryDelay``, six calls at two a minute get
about six (four, then two); retrying without waiting long enough gets dozens to thousands."""

OVERLAP_S = 0.05
"""Exercises 1 and 2 delay every answer by this many seconds (wall clock) while the learner's code runs, so that the
server's peak of requests in flight (the fallback for a learner's own client) shows requests that overlap."""

__all__ = ["PROBLEMS", "____", "context", "q1", "q2", "q3"]


def context() -> dict[str, Any]:
    """What ``02_async``'s setup cells leave in the notebook: ``client``, ``MODEL``, ``asyncio``, ``errors``,
    ``types``, ``genai``, ``____``.

    Raises:
        helpers.WorkbookError: ``helpers.setup(...)`` has not run in this kernel.
    """
    current_session()
    return {
        "client": genai.Client(),
        "MODEL": FLASH,
        "asyncio": asyncio,
        "errors": errors,
        "types": types,
        "genai": genai,
        "____": ____,
    }


def answers_to(ns: Mapping[str, Any], prompts: Sequence[str]) -> list[str]:
    """The answer to each prompt, asked one at a time with the notebook's sync client (what the learner should get)."""
    return [ns["client"].models.generate_content(model=ns["MODEL"], contents=p).text for p in prompts]


@contextlib.contextmanager
def overlapping(ns: Mapping[str, Any]) -> Iterator[Callable[[], int]]:
    """Count the learner's requests in flight for the block; yields a function that gives their peak afterwards.

    The peak is the most ``client.aio.models.generate_content`` calls of the notebook's ``client`` in progress at
    once: a count, whatever the machine's speed. For a learner who made a client of their own, it is the replay
    server's ``peak_in_flight``, with every answer slowed by :data:`OVERLAP_S` so that overlapping requests overlap
    there too.
    """
    control.reset_stats()
    control.add_latency(OVERLAP_S)
    try:
        with counting_calls(ns["client"].aio.models, "generate_content") as counted:
            yield lambda: counted.peak if counted.calls else control.stats().peak_in_flight
    finally:
        control.add_latency(0)


def expect_answers(call: str, result: Any, expected: list[str]) -> None:
    """Check that ``result`` is the list of answers ``expected``, in the order of the prompts.

    Raises:
        Incorrect: naming the likeliest mistake: no return, not a list, responses instead of text, wrong length,
            the right answers in completion order, or some other answer.
    """
    if result is None:
        raise Incorrect(f"{call} returned None: did you forget `return`?")
    if not isinstance(result, (list, tuple)):
        raise Incorrect(f"{call} returned {show(result)}; the exercise wants a list of answers, one per prompt.")
    if any(isinstance(r, types.GenerateContentResponse) for r in result):
        raise Incorrect(f"{call} returned responses; the exercise wants the text of each answer.")
    if any(asyncio.iscoroutine(r) or isinstance(r, asyncio.Future) for r in result):
        raise Incorrect(f"{call} returned coroutines that never ran: await them (asyncio.gather does).")
    if len(result) != len(expected):
        raise Incorrect(f"{call} returned {len(result)} answers for {len(expected)} prompts.")
    if list(result) != expected:
        if sorted(map(str, result)) == sorted(expected):
            raise Incorrect(
                f"{call} returned the right answers in the order they finished, not the order of the prompts: "
                "asyncio.gather keeps the order of what you pass it; asyncio.as_completed does not."
            )
        wrong = next(i for i, (r, e) in enumerate(zip(result, expected, strict=True)) if r != e)
        raise Incorrect(f"{call}: answer {wrong} is {show(result[wrong])}, which is not the answer to prompt {wrong}.")


def expect_async(fn: Any, name: str) -> None:
    """Check that the learner's ``fn`` is an ``async def`` function.

    Raises:
        Incorrect: it is not.
    """
    if not inspect.iscoroutinefunction(fn):
        raise Incorrect(f"Define {name} with `async def`, so that calling it gives a coroutine to await.")


class GatherInOrder(Problem):
    """q1: ``async def ask_all(prompts) -> list[str]`` sends every prompt at once and returns the answers in order."""

    title = "Ask all at once, answers in order"
    variables = ("ask_all",)
    needs = ("client", "MODEL")
    hints = (
        "Make one coroutine per prompt with client.aio.models.generate_content(...), without awaiting it yet.",
        "await asyncio.gather(*coroutines) runs them together and returns their results in the order you passed "
        "them; then take each response's .text.",
    )
    starter = """\
async def ask_all(prompts: list[str]) -> list[str]:
    ____
"""
    solution_code = """\
async def ask_all(prompts: list[str]) -> list[str]:
    responses = await asyncio.gather(
        *(client.aio.models.generate_content(model=MODEL, contents=p) for p in prompts)
    )
    return [r.text for r in responses]
"""
    correct_message = (
        "every request was in flight at once, and asyncio.gather returned the answers in the order of the prompts, "
        "whatever order they finished in."
    )

    def verify(self, ns: Mapping[str, Any]) -> None:
        expect_async(ns["ask_all"], "ask_all")
        expected = answers_to(ns, PROMPTS)
        with overlapping(ns) as peak_in_flight:
            result = self.call("ask_all", ns["ask_all"], list(PROMPTS))
        peak = peak_in_flight()
        call = "ask_all(prompts)"
        if peak <= 1 and result is not None:
            raise Incorrect(
                f"{call} sent the requests one at a time (never more than 1 in flight): create every coroutine "
                "first, then await them together with asyncio.gather."
            )
        expect_answers(call, result, expected)


class CapAtTwo(Problem):
    """q2: ``async def ask_two_at_a_time(prompts) -> list[str]``: two requests in flight at a time, never more."""

    title = "Cap concurrency at 2 with a semaphore"
    variables = ("ask_two_at_a_time",)
    needs = ("client", "MODEL")
    hints = (
        "Create asyncio.Semaphore(2) inside ask_two_at_a_time, and do each request inside `async with semaphore:`.",
        "Write a small inner `async def one(prompt)` that holds the semaphore around its request and returns the "
        "text; then gather one(p) for every prompt.",
    )
    starter = """\
async def ask_two_at_a_time(prompts: list[str]) -> list[str]:
    ____
"""
    solution_code = """\
async def ask_two_at_a_time(prompts: list[str]) -> list[str]:
    semaphore = asyncio.Semaphore(2)

    async def one(prompt: str) -> str:
        async with semaphore:
            response = await client.aio.models.generate_content(model=MODEL, contents=prompt)
        return response.text

    return await asyncio.gather(*(one(p) for p in prompts))
"""
    correct_message = (
        "the semaphore let two requests run at a time and queued the rest; asyncio.gather still returned the answers "
        "in order. Create the semaphore inside the function, on the loop that uses it."
    )

    def verify(self, ns: Mapping[str, Any]) -> None:
        expect_async(ns["ask_two_at_a_time"], "ask_two_at_a_time")
        expected = answers_to(ns, PROMPTS)
        with overlapping(ns) as peak_in_flight:
            result = self.call("ask_two_at_a_time", ns["ask_two_at_a_time"], list(PROMPTS))
        peak = peak_in_flight()
        if peak > 2:
            raise Incorrect(f"{peak} requests were in flight at once; the limit was 2.")
        if peak < 2 and result is not None:
            raise Incorrect(
                "never more than 1 request was in flight: a semaphore of 2 lets two run at once (are the requests "
                "awaited one after another?)."
            )
        expect_answers("ask_two_at_a_time(prompts)", result, expected)


async def _all_at_once(fn: Callable[[str], Any], prompts: Sequence[str]) -> list[Any]:
    """``fn(prompt)`` for every prompt, concurrently, results in order."""
    return await asyncio.gather(*(fn(p) for p in prompts))


class RetryPolitely(Problem):
    """q3: ``async def ask_patiently(prompt) -> str`` retries a 429 after the server's ``retryDelay``; checked with six
    concurrent calls under a limit of two requests a minute."""

    title = "Retry a 429 when the server says"
    variables = ("ask_patiently",)
    needs = ("client", "MODEL")
    hints = (
        "Loop: try the request; on errors.APIError with e.code == 429, sleep, then try again. Any other error, "
        "raise it.",
        "How long to sleep is in the error: e.details['error']['details'] holds a "
        "'type.googleapis.com/google.rpc.RetryInfo' entry whose 'retryDelay' reads like '0.734s'.",
    )
    starter = """\
async def ask_patiently(prompt: str) -> str:
    ____
"""
    solution_code = """\
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


async def ask_patiently(prompt: str) -> str:
    for attempt in range(10):
        try:
            response = await client.aio.models.generate_content(model=MODEL, contents=prompt)
            return response.text
        except errors.APIError as e:
            if e.code != 429 or attempt == 9:
                raise
            delays = [d["retryDelay"] for d in e.details["error"]["details"] if d["@type"] == RETRY_INFO]
            await asyncio.sleep(float(delays[0].removesuffix("s")))
"""
    correct_message = (
        "every call got its answer: each 429 waited exactly as long as the server's RetryInfo said, so few requests "
        "were refused. google-genai raises errors.APIError (a ClientError with code 429), never "
        "google.api_core's ResourceExhausted."
    )

    def explain(self, error: Exception, fn: Callable[..., Any]) -> str:
        if isinstance(error, errors.APIError) and error.code == 429:
            return (
                "A 429 escaped: catch google.genai.errors.APIError (not google.api_core's ResourceExhausted, which "
                "google-genai never raises), check e.code == 429, wait as long as e.details says, and try again."
            )
        return ""

    def verify(self, ns: Mapping[str, Any]) -> None:
        fn = ns["ask_patiently"]
        expect_async(fn, "ask_patiently")
        expected = answers_to(ns, PROMPTS)
        time.sleep(WINDOW_S / current_session().speed)  # let every earlier request leave the server's window
        control.reset_stats()
        control.set_limits(rpm=LIMIT)
        try:
            result = self.call("ask_patiently", lambda: _all_at_once(fn, PROMPTS))
        finally:
            control.set_limits(rpm=None)
        stats = control.stats()
        rejected = stats.rejected.get(429, 0)
        if rejected > MAX_REJECTIONS:
            raise Incorrect(
                f"{len(PROMPTS)} calls were refused {rejected} times: ask_patiently retried sooner than the server "
                "asked. Wait for the RetryInfo delay in e.details before each retry."
            )
        expect_answers(f"{len(PROMPTS)} concurrent calls of ask_patiently", result, expected)
        if not rejected:
            raise Incorrect("the server refused nothing, so the check could not see a retry: run the check again.")


q1 = GatherInOrder("q1", context)
q2 = CapAtTwo("q2", context)
q3 = RetryPolitely("q3", context)

PROBLEMS = (q1, q2, q3)
"""Every problem of the lesson, in order: for pytest and for recording the checks' requests into the cassette."""
