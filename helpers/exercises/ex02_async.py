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
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.genai import errors, types

from .. import control
from ..checks import (
    Incorrect,
    InFlight,
    Problem,
    TimeLimitExceeded,
    Watched,
    ____,
    counting_calls,
    describe_error,
    expect_async,
    expect_returned,
    forbidding_sleep,
    function_names,
    global_values,
    lesson,
    lesson_context,
    run_bounded,
    show,
    watching,
)
from ..replay.pipeline.rate_limits import WINDOW_S
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

REFILL_WAIT_S = 2.0
HOLD_BOTH_S = 1.0
"""Exercise 2 holds its first two requests together this long (wall clock): a cap of two starts no third meanwhile,
while a rate limiter (aiolimiter's ``AsyncLimiter(2, 1)``) lets one start after half a second."""

RETRY_DELAYS_S = (2.5, 0.05)
"""Exercise 3's second case: the server answers 429 twice, asking for a long wait, then a short one (``retryDelay``),
then answers. No fixed pause, nor a backoff that grows, waits as long as both say."""
LATE_S = 2.0
"""How much longer than a ``retryDelay`` a retry may take to reach the server (a busy machine is slow to wake a
sleeper and send): more than that, and the code waited on its own schedule. Below :data:`RETRY_DELAYS_S`'s spread,
so a pause long enough for the first delay is too long for the second."""
DELAY_ROUNDING_S = 0.002
"""A ``retryDelay`` reads like ``'2.500s'``: a retry may arrive this much before the exact delay has passed."""
"""Exercise 2 holds the first request back until another one starts after a request has finished, at most this many
seconds: a semaphore starts the next request as soon as a slot frees, chunks of two do not until both are done. The
decision is causal (did a request start while the first was held?); the wait only bounds a wrong answer's check."""

__all__ = ["PROBLEMS", "____", "context", "q1", "q2", "q3"]

context = lesson_context(asyncio=asyncio, errors=errors, types=types)
"""What ``02_async``'s setup cells leave in the notebook: ``client``, ``MODEL``, ``asyncio``, ``errors``, ``types``,
``genai``, ``____``."""


def answers_to(ns: Mapping[str, Any], prompts: Sequence[str]) -> list[str]:
    """The answer to each prompt, asked one at a time with the notebook's sync client (what the learner should get)."""
    return [ns["client"].models.generate_content(model=ns["MODEL"], contents=p).text for p in prompts]


@dataclass
class Overlap:
    """What :func:`overlapping` saw of the learner's requests.

    Attributes:
        counted: the notebook client's ``client.aio.models.generate_content`` calls (none if the learner made a
            client of their own).
        blocking: calls of the notebook's *sync* ``client.models.generate_content`` (each blocks the event loop).
        server_peak: the replay server's peak of requests in flight, read when the block ends.
        refilled: with ``hold``: whether a request started while the first was held back after another had
            finished (``None``: not judged, no call of the notebook's client).
    """

    counted: InFlight
    blocking: list[Watched] = field(default_factory=list)
    server_peak: int = 0
    refilled: bool | None = None

    @property
    def peak(self) -> int:
        """The most requests in flight at once: the client's count, or the server's for a client of their own."""
        return self.counted.peak if self.counted.calls else self.server_peak


@contextlib.contextmanager
def overlapping(ns: Mapping[str, Any], *, hold: bool = False) -> Iterator[Overlap]:
    """Count the learner's requests in flight for the block (:class:`Overlap`, filled when the block ends).

    The count is of ``client.aio.models.generate_content`` calls of the notebook's ``client`` in progress at once,
    whatever the machine's speed; for a learner's own client, the replay server's ``peak_in_flight``, with every
    answer slowed by :data:`OVERLAP_S` so that overlapping requests overlap there too. Calls of the sync client are
    noted too: inside ``async def`` each blocks the loop. ``hold`` holds calls back (:func:`_hold`): the first two
    together for :data:`HOLD_BOTH_S` (a cap of two starts nothing more meanwhile; a rate limiter does), then the first
    until a later call starts after an earlier one has ended (at most :data:`REFILL_WAIT_S`), recording whether one
    did: a semaphore refills its free slot at once, chunked gathers wait for the whole chunk.
    """
    control.reset_stats()
    control.add_latency(OVERLAP_S)
    models = ns["client"].aio.models
    seen = Overlap(InFlight())
    if hold:
        _hold(models, seen)
    try:
        with (
            counting_calls(models, "generate_content") as counted,
            watching(ns["client"].models, "generate_content") as blocking,
        ):
            seen.counted, seen.blocking = counted, blocking
            yield seen
    finally:
        if hold:
            del models.generate_content
        control.add_latency(0)
        seen.server_peak = control.stats().peak_in_flight


def _hold(models: Any, seen: Overlap) -> None:
    """Shadow ``models.generate_content``: its first two calls wait together until a third starts (more than two in
    flight) or :data:`HOLD_BOTH_S` passes; then the first waits on until a call starts after another has ended (at
    most :data:`REFILL_WAIT_S`). Sets ``seen.refilled`` to whether one did."""
    original = models.generate_content
    state: dict[str, Any] = {"started": 0, "ended": 0}

    async def holding(*args: Any, **kwargs: Any) -> Any:
        state["started"] += 1
        number = state["started"]
        if number == 1:  # events made on the learner's loop, by its first call
            state["both"], state["go"] = asyncio.Event(), asyncio.Event()
        if number <= 2:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state["both"].wait(), HOLD_BOTH_S)
            state["both"].set()
        if number == 1:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state["go"].wait(), REFILL_WAIT_S)
            seen.refilled = state.get("refilled", False)
        elif state["ended"] or state["started"] - state["ended"] > 2:
            state.setdefault("refilled", state["ended"] > 0)
            state["both"].set()
            state["go"].set()  # a refill, or more than two in flight: either way the verdict is in
        try:
            return await original(*args, **kwargs)
        finally:
            state["ended"] += 1

    models.generate_content = holding


def expect_not_blocking(name: str, seen: Overlap) -> None:
    """Reject an ``async def`` that called the sync client, which blocks the event loop for the whole request.

    Raises:
        Incorrect: it did.
    """
    if seen.blocking:
        raise Incorrect(
            f"{name} called client.models.generate_content, the sync client, inside async def: each call blocks the "
            "event loop until its answer arrives, so nothing runs together. Await client.aio.models.generate_content."
        )


def expect_answers(call: str, result: Any, expected: list[str]) -> None:
    """Check that ``result`` is the list of answers ``expected``, in the order of the prompts.

    Raises:
        Incorrect: naming the likeliest mistake: no return, not a list, responses instead of text, wrong length,
            the right answers in completion order, or some other answer.
    """
    expect_returned(call, result, (list, tuple), "a list of answers, one per prompt")
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
        f"all {len(PROMPTS)} requests were in flight at once, and the answers came back in the order of the prompts."
    )

    def verify(self, ns: Mapping[str, Any]) -> None:
        fn = ns["ask_all"]
        expect_async(fn, "ask_all")
        expected = answers_to(ns, PROMPTS)
        with overlapping(ns) as seen, forbidding_sleep(fn, "ask_all"):
            result = self.call("ask_all", fn, list(PROMPTS))
        expect_not_blocking("ask_all", seen)
        call, peak = "ask_all(prompts)", seen.peak
        if peak <= 1 and result is not None:
            raise Incorrect(
                f"{call} sent the requests one at a time (never more than 1 in flight): create every coroutine "
                "first, then await them together with asyncio.gather."
            )
        if peak < len(PROMPTS) and result is not None:
            raise Incorrect(
                f"{call} had at most {peak} of the {len(PROMPTS)} requests in flight at once: one asyncio.gather of "
                "every coroutine sends them all together; several smaller gathers, one after another, wait for each "
                "group to finish."
            )
        expect_answers(call, result, expected)


SEMAPHORE_OUTSIDE = (
    "a semaphore made outside the function works once, then the next run (this check's, or your own when you "
    "re-run the cell) fails with 'bound to a different event loop': an asyncio.Semaphore belongs to the event loop "
    "that first waits on it, and each asyncio.run, like each check, has a new loop. Create it inside the function."
)


class CapAtTwo(Problem):
    """q2: ``async def ask_two_at_a_time(prompts) -> list[str]``: two requests in flight at a time, never more, each
    freed slot refilled at once (a semaphore, not chunks of two)."""

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
        "never more than two requests were in flight, a new one started as soon as one finished (while the check "
        "held the first back), and the answers came back in the order of the prompts."
    )

    def explain(self, error: Exception, fn: Callable[..., Any]) -> str:
        if isinstance(error, RuntimeError) and "different event loop" in str(error):
            return SEMAPHORE_OUTSIDE[0].upper() + SEMAPHORE_OUTSIDE[1:]
        return ""

    def verify(self, ns: Mapping[str, Any]) -> None:
        fn = ns["ask_two_at_a_time"]
        expect_async(fn, "ask_two_at_a_time")
        outside = [n for n, v in global_values(fn).items() if isinstance(v, asyncio.Semaphore)]
        if outside:
            raise Incorrect(f"ask_two_at_a_time uses `{outside[0]}`, {SEMAPHORE_OUTSIDE}")
        if _uses_rate_limiter(fn) and not _uses_semaphore(fn):
            raise Incorrect(f"ask_two_at_a_time uses an AsyncLimiter: {RATE_NOT_CAP}")
        expected = answers_to(ns, PROMPTS)
        with overlapping(ns, hold=True) as seen, forbidding_sleep(fn, "ask_two_at_a_time"):
            result = self.call("ask_two_at_a_time", fn, list(PROMPTS))
        expect_not_blocking("ask_two_at_a_time", seen)
        peak = seen.peak
        if peak > 2:
            limiter = f" {RATE_NOT_CAP}" if _uses_rate_limiter(fn) else ""
            raise Incorrect(f"{peak} requests were in flight at once; the limit was 2.{limiter}")
        if peak < 2 and result is not None:
            raise Incorrect(
                "never more than 1 request was in flight: a semaphore of 2 lets two run at once (are the requests "
                "awaited one after another?)."
            )
        if seen.refilled is False and result is not None:
            raise Incorrect(
                "while the check held the first request back, the other finished and no new request started: the "
                "prompts went in groups of two, each group waiting for its slowest request. A semaphore starts the "
                "next request as soon as a slot is free; create asyncio.Semaphore(2) and gather every prompt."
            )
        expect_answers("ask_two_at_a_time(prompts)", result, expected)


RATE_NOT_CAP = (
    "an AsyncLimiter limits how many requests start per period, not how many are in flight: while two slow "
    "requests are still running it lets more start. A cap on concurrency is asyncio.Semaphore(2), made inside "
    "the function."
)


def _uses_rate_limiter(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` refers to aiolimiter's ``AsyncLimiter`` (by name, or a limiter made outside it)."""
    return "AsyncLimiter" in function_names(fn) or any(
        type(v).__name__ == "AsyncLimiter" for v in global_values(fn).values()
    )


def _uses_semaphore(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` refers to ``asyncio.Semaphore`` or ``BoundedSemaphore`` by name."""
    return bool({"Semaphore", "BoundedSemaphore"} & function_names(fn))


async def _all_at_once(fn: Callable[[str], Any], prompts: Sequence[str]) -> list[Any]:
    """``fn(prompt)`` for every prompt, concurrently, results in order."""
    return await asyncio.gather(*(fn(p) for p in prompts))


FAILING_503 = 3
"""The check's 503 case answers this many requests in a row with 503: a function that retries it gets an answer."""


class RetryPolitely(Problem):
    """q3: ``async def ask_patiently(prompt) -> str`` retries a 429 after the server's ``retryDelay`` and raises any
    other error; checked with six concurrent calls under a limit of two requests a minute, then a 503."""

    title = "Retry a 429 when the server says"
    variables = ("ask_patiently",)
    needs = ("client", "MODEL")
    hints = (
        "Loop: try the request; on errors.APIError with e.code == 429, sleep with `await asyncio.sleep(...)`, then "
        "try again. Any other error, raise it.",
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
        f"all {len(PROMPTS)} calls got their answers with no more 429s than waiting out each retryDelay causes, "
        "every retry was a call of yours (no hidden SDK retries), nothing blocked the event loop, and a 503 was "
        "raised at once. google-genai raises errors.APIError (a ClientError with code 429), never google.api_core's "
        "ResourceExhausted."
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
        if {"HttpRetryOptions", "retry_options"} & function_names(fn):
            raise Incorrect(SDK_RETRIES)
        expected = answers_to(ns, PROMPTS)
        time.sleep(WINDOW_S / current_session().speed)  # let every earlier request leave the server's window
        control.reset_stats()
        control.set_limits(rpm=LIMIT)
        failure = None
        try:
            with (
                counting_calls(ns["client"].aio.models, "generate_content") as counted,
                forbidding_sleep(fn, "ask_patiently"),
            ):
                try:
                    result = self.call("ask_patiently", lambda: _all_at_once(fn, PROMPTS))
                except Incorrect as e:
                    failure = e
        finally:
            control.set_limits(rpm=None)
        stats = control.stats()
        if counted.calls and stats.received > counted.calls:
            raise Incorrect(f"the server saw {stats.received} requests for your {counted.calls} calls: {SDK_RETRIES}")
        if failure is not None:
            raise failure
        rejected = stats.rejected.get(429, 0)
        if rejected > MAX_REJECTIONS:
            raise Incorrect(
                f"{len(PROMPTS)} calls were refused {rejected} times: ask_patiently retried sooner than the server "
                "asked. Wait for the RetryInfo delay in e.details before each retry."
            )
        expect_answers(f"{len(PROMPTS)} concurrent calls of ask_patiently", result, expected)
        if not rejected:
            raise Incorrect("the server refused nothing, so the check could not see a retry: run the check again.")
        self.verify_waits_as_asked(fn)
        self.verify_raises_503(fn)

    def verify_waits_as_asked(self, fn: Callable[..., Any]) -> None:
        """Judge the waits by the server's record: it answers 429 asking for :data:`RETRY_DELAYS_S` in turn, and each
        retry must arrive no sooner than its ``retryDelay`` after the 429 went out, nor more than :data:`LATE_S`
        later."""
        call = f"ask_patiently({PROMPTS[0]!r})"
        control.reset_stats()
        control.fail_next(len(RETRY_DELAYS_S), 429, retry_delays_s=RETRY_DELAYS_S)
        try:
            self.call("ask_patiently", fn, PROMPTS[0])
        finally:
            control.clear_faults()
        seen = control.stats().requests
        if len(seen) <= len(RETRY_DELAYS_S):
            raise Incorrect(f"{call} gave up after {len(seen)} request(s) although each 429 said when to come back.")
        for refused, retry, delay in zip(seen, seen[1:], RETRY_DELAYS_S, strict=False):
            waited = retry.start_s - (refused.end_s or refused.start_s)
            if waited < delay - DELAY_ROUNDING_S:
                raise Incorrect(
                    f"{call} retried before the {delay:g} s its 429's retryDelay asked for had passed: a fixed or "
                    "growing backoff ignores RetryInfo. Wait as long as the retryDelay in e.details says."
                )
            if waited > delay + LATE_S:
                raise Incorrect(
                    f"when a 429 asked {call} to retry in {delay:g} s, it waited much longer: a fixed pause or a "
                    "backoff that grows ignores RetryInfo, and here the server asked for a long wait, then a short "
                    "one. Wait as long as the retryDelay in e.details says."
                )

    def verify_raises_503(self, fn: Callable[..., Any]) -> None:
        """Judge ``fn`` on a request the server answers 503 (:data:`FAILING_503` times): it must raise, once."""
        call = f"ask_patiently({PROMPTS[0]!r})"
        control.reset_stats()
        control.fail_next(FAILING_503, 503)
        try:
            run_bounded(fn, PROMPTS[0], limit_s=self.limit_s())
        except TimeLimitExceeded:
            raise Incorrect(f"{call} kept retrying a 503 until the check stopped it: {ONLY_429}") from None
        except errors.APIError as e:
            if e.code != 503:
                raise Incorrect(f"{call} raised {describe_error(e)} for a 503: re-raise the error you caught.") from e
            if (tries := control.stats().received) > 1:
                raise Incorrect(f"{call} sent the request {tries} times before raising the 503: {ONLY_429}") from e
            return
        except Exception as e:
            raise Incorrect(
                f"the server answered {call} with 503, and it raised {describe_error(e)}: check e.code == 429 before "
                "reading RetryInfo (a 503 has none), and re-raise any other error as it is."
            ) from e
        finally:
            control.clear_faults()
        raise Incorrect(f"{call} returned an answer although the server answered 503 {FAILING_503} times: {ONLY_429}")


SDK_RETRIES = (
    "ask_patiently leaves the retries to the SDK's HttpRetryOptions, which waits on its own exponential schedule "
    "with jitter and never reads RetryInfo. The exercise asks you to catch the 429 and wait as long as its "
    "retryDelay says."
)
ONLY_429 = "it retried a ServerError. Retry only 429, whose RetryInfo says when to come back; raise any other error."


PROBLEMS = q1, q2, q3 = lesson(context, GatherInOrder, CapAtTwo, RetryPolitely)
"""Every problem of the lesson, in order: for pytest and for recording the checks' requests into the cassette."""
