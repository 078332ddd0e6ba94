"""The checked exercises of ``06_interactions``: a conversation by ``previous_interaction_id``, an interaction
stream's TTFT, and many interactions under a semaphore and a rate.

The notebook imports them with ``from helpers.exercises.ex06_interactions import ____, q1, q2, q3``; its setup cell
defines ``client = genai.Client()`` and ``MODEL`` (:data:`helpers.models.FLASH`), which the checks use. The prompts
below are the lesson's own (``notebooks/scripts/06_interactions.json`` answers them). The checks judge by what the
learner's calls asked for (their arguments, seen on the notebook's ``client``) and by the replay server's record
(``helpers.control.stats``), never by the learner's wall clock: a time the learner reports is compared with a lower
bound the server saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiolimiter import AsyncLimiter

from .. import control
from ..checks import (
    Incorrect,
    Problem,
    ____,
    expect_async,
    expect_seconds,
    expect_ttft,
    forbidding_sleep,
    global_values,
    holding_stream,
    lesson,
    lesson_context,
    reads_argument,
    recording,
    show,
    stream_ended,
)
from ..timing import atimed, timed
from ..workbook import current_session

TURNS = (
    "I am planning a three-day trip to Lisbon. Suggest one neighbourhood to stay in, in one sentence.",
    "What should I eat there on the first evening? One sentence.",
    "And a day trip for the third day? One sentence.",
)
STREAM_PROMPT = "Explain how a hash table finds a key, in one paragraph."
PLANETS = ("Mercury", "Venus", "Mars", "Jupiter")
PROMPTS = tuple(f"Tell me one fact about {planet}." for planet in PLANETS)
RUNS = ((2, 2.0), (3, 3.0))
"""q3's ``(limit, rate_per_s)`` for its two calls of ``ask_all``: a semaphore or limiter that ignores the arguments
cannot fit both (the second run's limit is higher, its starts closer together)."""
LATENCY_S = 1.5
"""Seconds q3's check adds to every answer (recorded time), so that requests the learner lets overlap do overlap,
however late a busy machine starts them: at the rates of :data:`RUNS`, ``limit`` requests start within 0.7 s."""
CLOSEST = 0.25
"""q3 calls two starts too close when the server saw them less than this fraction of ``1 / rate_per_s`` apart. A
busy machine can delay a paced request on its way (a new connection, a stalled loop) until it arrives just before
the next one, so the bound is loose, and the gap after the first request (which also waits for the event loop's
first connection) is not judged: unpaced requests arrive within milliseconds of each other, and the semaphore lets
two or three of them go together after the first gap too."""
LATENCIES_S = (1.3, 0.3)
"""Seconds q2's check adds before its two streams' first events, the longer first (so the first call's start-up
falls in the longer wait). A clock started after ``create`` returns misses at least this much; a constant cannot lie
between the bounds of both streams."""
SLACK_S = 0.02
"""Rounding allowed when a learner's time is compared with the server's record or the call's own duration."""

__all__ = ["PROBLEMS", "____", "context", "q1", "q2", "q3"]


context = lesson_context(asyncio=asyncio, time=time, AsyncLimiter=AsyncLimiter, timed=timed, atimed=atimed)
"""What ``06_interactions``' setup cell leaves in the notebook that the exercises use: ``client``, ``MODEL``,
``genai``, ``asyncio``, ``time``, ``AsyncLimiter``, ``timed``, ``atimed`` and ``____``."""


def _replay() -> bool:
    return current_session().server_url is not None


@dataclass
class Asked:
    """What :func:`asked` saw: the keyword arguments of each ``create`` call (before it was sent, so a call the server
    refuses is seen too), and what each call that returned gave back."""

    kwargs: list[dict[str, Any]] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)


@contextlib.contextmanager
def asked(obj: Any) -> Iterator[Asked]:
    """Record every ``obj.create`` call made inside the block (:class:`Asked`); the original method is restored
    afterwards."""
    original = obj.create
    seen = Asked()

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.kwargs.append(kwargs)
        result = original(*args, **kwargs)
        seen.results.append(result)
        return result

    obj.create = spy
    try:
        yield seen
    finally:
        del obj.create


def _texts_or_explain(call: str, result: Any, n: int) -> list[str]:
    """``result`` as a list of ``n`` strings, or :class:`Incorrect` naming what it is instead."""
    if result is None:
        raise Incorrect(f"{call} returned None: did you forget `return`?")
    if not isinstance(result, list) or len(result) != n:
        raise Incorrect(f"{call} should return a list of {n} texts, got {show(result)}.")
    if not all(isinstance(r, str) for r in result):
        raise Incorrect(
            f"{call} returned {type(result[0]).__name__} items: return each interaction's .output_text, not the "
            "interaction."
        )
    return result


class Converse(Problem):
    """q1: ``converse(turns) -> list[str]`` continues one conversation by ``previous_interaction_id``.

    Judged by what each call asked for (its arguments, seen on the notebook's ``client``) and, in replay, by the
    server's record: the answers must be the texts it sent for those turns, in order.
    """

    title = "Continue a conversation by previous_interaction_id"
    variables = ("converse",)
    needs = ("client", "MODEL")
    hints = (
        "Keep the id of the last interaction in a variable (None before the first turn) and pass it as "
        "previous_interaction_id= to the next client.interactions.create(...).",
        "Send only the new turn as input=turn: the server already has the rest. After each call, set the variable "
        "to that interaction's .id and keep its .output_text.",
    )
    starter = """\
def converse(turns: list[str]) -> list[str]:
    ____
"""
    solution_code = """\
def converse(turns: list[str]) -> list[str]:
    previous_id, answers = None, []
    for turn in turns:
        step = client.interactions.create(model=MODEL, input=turn, previous_interaction_id=previous_id)
        previous_id = step.id
        answers.append(step.output_text)
    return answers
"""
    correct_message = (
        "each turn sent only its new message and named the interaction before it; the server supplied the history, "
        "and you returned the answers it sent."
    )

    def verify(self, ns: Mapping[str, Any]) -> None:
        call = "converse(turns)"
        with asked(ns["client"].interactions) as seen, recording() as record:
            try:
                result = self.call("converse", ns["converse"], list(TURNS), shown="turns")
                error = None
            except Incorrect as e:
                result, error = None, e
        self._judge(seen.kwargs)
        if error is not None:
            raise error
        answers = _texts_or_explain(call, result, len(TURNS))
        if not seen.kwargs:
            raise Incorrect(f"{call} never called client.interactions.create, so it cannot have the model's answers.")
        if answers == [getattr(r, "id", None) for r in seen.results]:
            raise Incorrect(f"{call} returned the interactions' ids; return each one's .output_text, the answer.")
        sent = [r.text for r in record.calls] if record.calls is not None else [r.output_text for r in seen.results]
        wrong = next((i for i, (a, t) in enumerate(zip(answers, sent, strict=False)) if a != t), None)
        if wrong is not None or len(sent) != len(answers):
            n = len(sent) if wrong is None else wrong
            raise Incorrect(
                f"{call} returned {show(answers[n] if n < len(answers) else None)} for turn {n + 1}, which is not the "
                "answer the server sent for it: return each interaction's .output_text, in order."
            )

    def _judge(self, calls: list[dict[str, Any]]) -> None:
        """The mistake the calls show, if any: a turn sent alone, history resent, or the wrong turn continued."""
        for n, kwargs in enumerate(calls[1:], 2):
            if not isinstance(kwargs.get("input"), str):
                raise Incorrect(
                    f"turn {n} resent the conversation as input: with previous_interaction_id the server has the "
                    "history already, so send only the new turn (input=turn)."
                )
            if not kwargs.get("previous_interaction_id"):
                raise Incorrect(
                    f"turn {n} was sent without previous_interaction_id: it started a new conversation, so the "
                    f"model never saw turn {n - 1}."
                )
        ids = [k.get("previous_interaction_id") for k in calls]
        if len(ids) >= 3 and ids[2] == ids[1]:
            raise Incorrect(
                "turn 3 continued the same interaction as turn 2: pass the id of the latest interaction each time "
                "(update the variable after every call), not the first one's."
            )


@dataclass(frozen=True)
class TtftRun:
    """One call of the learner's ``interaction_ttft``, as q2's check saw it.

    Attributes:
        value: what it returned.
        took_s: how long the call took, timed around it by the check (no reading inside it can span more).
        first_text_s: when the server sent the stream's first text, seconds after the request arrived (``None``
            live, where no server keeps a record).
        after_first_s: when the server sent the next chunk after that, likewise: only once the check let the held
            stream go on, because the function was still running (``None``: it never did).
        left_open: the function returned while the stream was held, and the server still had it open after
            :data:`~helpers.checks.CLOSE_WAIT_S`.
    """

    value: Any
    took_s: float
    first_text_s: float | None
    after_first_s: float | None
    left_open: bool


class InteractionTtft(Problem):
    """q2: ``interaction_ttft(prompt) -> float``: seconds from sending a streamed interaction to its first text.

    Called twice, with :data:`LATENCIES_S` added before each stream's first event, and with the stream held back
    after its first text (:func:`~helpers.checks.holding_stream`). Each value is bounded below by the server's record
    (its first text went out that long after the request arrived) and above by the call itself (and, if the call was
    still running when the check let the stream go on, by when the server sent the next chunk); the two values must
    differ by the added latency, so a constant fails; the stream must be closed when the function returns.
    """

    title = "Measure an interaction stream's TTFT"
    variables = ("interaction_ttft",)
    needs = ("client", "MODEL")
    hints = (
        "Read the stream with a for loop and return at the first event whose event_type is 'step.delta' and whose "
        "delta.type is 'text'.",
        "Take time.perf_counter() *before* client.interactions.create(..., stream=True): with stream=True the call "
        "itself waits for the first event. Open it with `with ... as stream:`, so returning at the first text closes "
        "it (the model stops generating the rest).",
    )
    starter = """\
def interaction_ttft(prompt: str) -> float:
    ____
"""
    solution_code = """\
def interaction_ttft(prompt: str) -> float:
    start = time.perf_counter()
    with client.interactions.create(model=MODEL, input=prompt, stream=True) as stream:
        for event in stream:
            if event.event_type == "step.delta" and event.delta.type == "text":
                return time.perf_counter() - start  # leaving the `with` closes the stream
    raise RuntimeError("the stream carried no text")
"""
    correct_message = (
        "the clock started before the request went out and stopped at the first text delta, and the stream was "
        "closed then, so the model did not generate the rest for nobody."
    )

    def verify(self, ns: Mapping[str, Any]) -> None:
        call = "interaction_ttft(prompt)"
        runs = [self._run(ns, latency) for latency in (LATENCIES_S if _replay() else (0.0,))]
        values = [expect_seconds(call, run.value) for run in runs]
        firsts = [run.first_text_s for run in runs if run.first_text_s is not None]
        if len(values) > 1 and len(set(values)) == 1 and len(firsts) > 1:
            raise Incorrect(
                f"{call} returned {values[0]:g} twice, for streams whose first text the server sent "
                f"{abs(firsts[0] - firsts[1]):.1f} s apart: return the time you measure on each call, not the same "
                "number."
            )
        for run in runs:
            if run.first_text_s is not None and run.value < run.first_text_s - SLACK_S:
                raise Incorrect(
                    f"{call} returned {run.value:.3f} s, but the server sent the first text {run.first_text_s:.3f} s "
                    "after the request arrived. Start the clock before client.interactions.create(..., stream=True): "
                    "that call returns only when the first event has arrived, so a clock started after it misses the "
                    "wait."
                )
            expect_ttft(call, run.value, run.took_s, SLACK_S, run.first_text_s)
            if run.after_first_s is not None and run.value >= run.after_first_s - SLACK_S:
                raise Incorrect(
                    f"{call} returned {run.value:.3f} s, but the server sent the first text {run.first_text_s:.3f} s "
                    "after the request arrived: that is the time to the end of the stream. Return at the first text "
                    "delta."
                )
            if run.left_open:
                raise Incorrect(
                    f"{call} returned and left the stream open: the server was still streaming the rest to nobody. "
                    "Close the stream when you return (`with client.interactions.create(...) as stream:`), so the "
                    "model stops."
                )

    def _run(self, ns: Mapping[str, Any], latency_s: float) -> TtftRun:
        """Call the learner's function once, with ``latency_s`` added before the stream's first event (replay)."""
        with asked(ns["client"].interactions) as seen:
            if latency_s:
                control.add_latency(latency_s)
            try:
                with holding_stream() as hold, recording() as record:
                    started = time.perf_counter()
                    value = self.call("interaction_ttft", ns["interaction_ttft"], STREAM_PROMPT, nudge=hold.nudge)
                    took = time.perf_counter() - started
                    open_after = hold.active and not hold.released and not stream_ended()
            except Incorrect:
                if seen.kwargs and not seen.kwargs[-1].get("stream"):
                    raise self._not_streamed() from None
                raise
            finally:
                if latency_s:
                    control.add_latency(0)
        if seen.kwargs and not seen.kwargs[-1].get("stream"):
            raise self._not_streamed()
        streams = [r for r in record.calls or [] if r.streamed]
        if record.calls is None:
            return TtftRun(value, took, None, None, False)
        if not streams or (first := streams[-1].first_text_s) is None:
            raise Incorrect("the replay server sent no text to interaction_ttft: read the stream to its first text.")
        stream = streams[-1]
        later = [s.at_s for s in stream.sent if s.at_s > first]
        after = later[0] - stream.start_s if hold.released and later else None
        return TtftRun(value, took, first - stream.start_s, after, open_after)

    @staticmethod
    def _not_streamed() -> Incorrect:
        return Incorrect(
            "interaction_ttft did not stream: pass stream=True to client.interactions.create, or the whole answer "
            "arrives at once and there is no first token to time."
        )


class PacedAndCapped(Problem):
    """q3: ``async def ask_all(prompts, limit, rate_per_s) -> list[str]``: at most ``limit`` interactions in flight and
    ``rate_per_s`` started per second, answers in prompt order.

    Called twice with the arguments of :data:`RUNS` and :data:`LATENCY_S` added to every answer; judged by the
    server's record: at most and at least ``limit`` in flight at once (all at once, one at a time and a limit of
    its own all fail), starts no closer than ``rate_per_s`` allows, the answers it sent in prompt order. Semaphores and
    limiters made outside ``ask_all``, arguments never read and a blocking ``time.sleep`` are named as such.
    """

    title = "Cap concurrency and pace the rate"
    variables = ("ask_all",)
    needs = ("client", "MODEL")
    hints = (
        "Two limits, two tools: asyncio.Semaphore(limit) for how many are in flight, AsyncLimiter(1, 1 / rate_per_s) "
        "for how many start per second. Create both inside ask_all, from its arguments.",
        "In an inner `async def one(prompt)`: `async with semaphore:`, then `await limiter.acquire()`, then await "
        "client.aio.interactions.create(model=MODEL, input=prompt) and return its .output_text; gather one(p) for "
        "every prompt.",
    )
    starter = """\
async def ask_all(prompts: list[str], limit: int, rate_per_s: float) -> list[str]:
    ____
"""
    solution_code = """\
async def ask_all(prompts: list[str], limit: int, rate_per_s: float) -> list[str]:
    semaphore = asyncio.Semaphore(limit)
    limiter = AsyncLimiter(1, 1 / rate_per_s)

    async def one(prompt: str) -> str:
        async with semaphore:
            await limiter.acquire()
            step = await client.aio.interactions.create(model=MODEL, input=prompt)
        return step.output_text

    return await asyncio.gather(*(one(p) for p in prompts))
"""
    correct_message = (
        "for both limits and rates the check gave, exactly `limit` interactions were in flight at the most, their "
        "starts were spaced by the rate, and the answers came back in prompt order."
    )

    def verify(self, ns: Mapping[str, Any]) -> None:
        fn = ns["ask_all"]
        expect_async(fn, "ask_all")
        made = sorted(n for n, v in global_values(fn).items() if isinstance(v, (asyncio.Semaphore, AsyncLimiter)))
        if made:
            raise Incorrect(
                f"ask_all uses a semaphore or limiter made outside it ({', '.join(made)}): made once, it ignores the "
                "limit and rate each call gives, and belongs to the first event loop that used it. Create them "
                "inside ask_all, from its arguments."
            )
        for limit, rate in RUNS:
            self._run(ns, fn, limit, rate)
        for argument in ("limit", "rate_per_s"):  # a pace slower than asked is no mistake the server sees
            if not reads_argument(fn, argument):
                raise Incorrect(
                    f"ask_all never reads its {argument} argument, so it ignores the value the check passes: build "
                    "the semaphore from limit and the limiter from rate_per_s."
                )

    def _run(self, ns: Mapping[str, Any], fn: Any, limit: int, rate: float) -> None:
        """Call ``ask_all(PROMPTS, limit, rate)`` once and judge it by the server's record."""
        call = f"ask_all(prompts, {limit}, {rate:g})"
        control.add_latency(LATENCY_S if _replay() else 0)
        try:
            with recording() as record, forbidding_sleep(fn, "ask_all"):
                result = self.call("ask_all", fn, list(PROMPTS), limit, rate, shown=f"prompts, {limit}, {rate:g}")
        finally:
            control.add_latency(0)
        answers = _texts_or_explain(call, result, len(PROMPTS))
        if record.calls is None:  # live: no server record; each answer must at least be about its planet
            for planet, answer in zip(PLANETS, answers, strict=True):
                if planet not in answer:
                    raise Incorrect(f"the answer for {planet} is {show(answer)}: {OUT_OF_ORDER}")
            return
        peak = max((r.in_flight for r in record.calls), default=0)
        if peak > limit:
            raise Incorrect(
                f"{peak} interactions were in flight at once in {call}; the limit was {limit}. Hold an "
                "asyncio.Semaphore(limit) around each request."
            )
        if peak == 1:
            raise Incorrect(
                f"{call} ran the interactions one at a time: it awaited each before starting the next. Start them all "
                "(asyncio.gather) and let the semaphore hold them to the limit."
            )
        if peak < limit:
            raise Incorrect(
                f"at most {peak} interactions were in flight at once in {call}: it holds them to a limit of its own, "
                "not its limit argument."
            )
        starts = sorted(r.start_s for r in record.calls)
        gaps = [b - a for a, b in itertools.pairwise(starts)][1:]  # the first request also waits for a connection
        if gaps and min(gaps) < CLOSEST / rate:
            raise Incorrect(
                f"two requests started {min(gaps):.3f} s apart in {call}; at {rate:g} per second they must be "
                f"{1 / rate:g} s apart. A semaphore is not a rate limiter: it caps how many are in flight, not how "
                "many start per second. Pace them with AsyncLimiter(1, 1 / rate_per_s)."
            )
        sent = {r.prompt: r.text for r in record.calls}
        self._judge_order(answers, [sent.get(p, "") for p in PROMPTS])

    @staticmethod
    def _judge_order(answers: list[str], expected: list[str]) -> None:
        if answers == expected:
            return
        if sorted(answers) == sorted(expected):
            raise Incorrect(f"the answers came back out of order: {OUT_OF_ORDER}")
        wrong = next(i for i, (a, e) in enumerate(zip(answers, expected, strict=True)) if a != e)
        raise Incorrect(
            f"ask_all returned {show(answers[wrong])} for prompt {wrong + 1}, which is not the answer the server sent "
            "for it: return each interaction's .output_text."
        )


OUT_OF_ORDER = (
    "return the answers in the order of the prompts (asyncio.gather keeps it; collecting them as they finish does not)."
)

PROBLEMS = q1, q2, q3 = lesson(context, Converse, InteractionTtft, PacedAndCapped)
"""Every problem of the lesson, in order: for pytest and for recording the checks' requests into the cassette."""
