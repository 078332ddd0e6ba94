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
from typing import Any

from aiolimiter import AsyncLimiter

from .. import control
from ..checks import Incorrect, Problem, ____, counting_calls, expect_async, lesson, lesson_context, show
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
LIMIT = 2
RATE_PER_S = 4.0
LATENCY_S = 0.5
"""Seconds q3's check adds to every answer (recorded time), so that requests the learner lets overlap do overlap."""
WAIT_S = 0.3
"""Seconds q2's check adds before the stream's first event: a clock started after ``create`` returns misses at least
this much, whatever the machine's speed."""
SLACK_S = 0.02
"""Rounding allowed when a learner's time is compared with the server's lower bound."""

__all__ = ["PROBLEMS", "____", "context", "q1", "q2", "q3"]


context = lesson_context(asyncio=asyncio, time=time, AsyncLimiter=AsyncLimiter, timed=timed, atimed=atimed)
"""What ``06_interactions``' setup cell leaves in the notebook that the exercises use: ``client``, ``MODEL``,
``genai``, ``asyncio``, ``time``, ``AsyncLimiter``, ``timed``, ``atimed`` and ``____``."""


def _replay() -> bool:
    return current_session().server_url is not None


class ReadEvents:
    """A sync interaction stream that notes each event the learner's loop reads: its ``delta.type`` for a
    ``step.delta`` (``"text"``, ``"thought_signature"``, ...), else its ``event_type``."""

    def __init__(self, stream: Any, read: list[str]) -> None:
        self._stream, self.read = stream, read

    def __iter__(self) -> ReadEvents:
        return self

    def __next__(self) -> Any:
        event = next(self._stream)
        delta = getattr(event, "delta", None)
        self.read.append(str(getattr(delta, "type", None) or getattr(event, "event_type", "")))
        return event

    def __enter__(self) -> ReadEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def asked(obj: Any, read: list[str] | None = None) -> Iterator[list[dict[str, Any]]]:
    """Record the keyword arguments of every ``obj.create`` call made inside the block, before it is sent (so a call
    the server refuses is seen too); with ``read``, a sync stream it returns notes the events read into it
    (:class:`ReadEvents`). The original method is restored afterwards."""
    original = obj.create
    calls: list[dict[str, Any]] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        result = original(*args, **kwargs)
        return ReadEvents(result, read) if read is not None and kwargs.get("stream") else result

    obj.create = spy
    try:
        yield calls
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
    """q1: ``converse(turns) -> list[str]`` continues one conversation by ``previous_interaction_id``."""

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
        "each turn sent only its new message and named the interaction before it; the server supplied the history."
    )

    def verify(self, ns: Mapping[str, Any]) -> None:
        client = ns["client"]
        with asked(client.interactions) as calls:
            try:
                result = self.call("converse", ns["converse"], list(TURNS))
                error = None
            except Incorrect as e:
                result, error = None, e
        self._judge(calls)
        if error is not None:
            raise error
        _texts_or_explain("converse(turns)", result, len(TURNS))

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


class InteractionTtft(Problem):
    """q2: ``interaction_ttft(prompt) -> float``: seconds from sending a streamed interaction to its first text."""

    title = "Measure an interaction stream's TTFT"
    variables = ("interaction_ttft",)
    needs = ("client", "MODEL")
    hints = (
        "Read the stream with a for loop and return at the first event whose event_type is 'step.delta' and whose "
        "delta.type is 'text'.",
        "Take time.perf_counter() *before* client.interactions.create(..., stream=True): with stream=True the call "
        "itself waits for the first event. Or let timed(lambda: ...) do it and return stream.timing.ttft_s.",
    )
    starter = """\
def interaction_ttft(prompt: str) -> float:
    ____
"""
    solution_code = """\
def interaction_ttft(prompt: str) -> float:
    start = time.perf_counter()
    stream = client.interactions.create(model=MODEL, input=prompt, stream=True)
    for event in stream:
        if event.event_type == "step.delta" and event.delta.type == "text":
            return time.perf_counter() - start
    raise RuntimeError("the stream carried no text")
"""
    correct_message = "the clock started before the request went out, and stopped at the first text delta."

    def verify(self, ns: Mapping[str, Any]) -> None:
        client = ns["client"]
        control.reset_stats()
        events: list[str] = []
        control.add_latency(WAIT_S if _replay() else 0)
        with asked(client.interactions, events) as calls:
            try:
                value = self.call("interaction_ttft", ns["interaction_ttft"], STREAM_PROMPT)
            except Incorrect:
                if calls and not calls[-1].get("stream"):
                    raise Incorrect(
                        "interaction_ttft did not stream: pass stream=True to client.interactions.create, or the "
                        "whole answer arrives at once and there is no first token to time."
                    ) from None
                raise
            finally:
                control.add_latency(0)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Incorrect(f"interaction_ttft(prompt) should return seconds as a float, got {show(value)}.")
        if calls and not calls[-1].get("stream"):
            raise Incorrect("interaction_ttft did not stream: pass stream=True to client.interactions.create.")
        if not _replay():
            return
        bound = self._server_ttft(events)
        if value > 100 * bound and value > 20:
            raise Incorrect(f"interaction_ttft returned {value:g}: that looks like milliseconds; return seconds.")
        if value < bound - SLACK_S:
            raise Incorrect(
                f"interaction_ttft returned {value:.3f} s, but the server sent the first text {bound:.3f} s after "
                "the request arrived. Start the clock before client.interactions.create(..., stream=True): that "
                "call returns only when the first event has arrived, so a clock started after it misses the wait."
            )

    def _server_ttft(self, events: list[str]) -> float:
        """When the server sent the learner's stream's first text, seconds after the request arrived: a lower bound
        of any true TTFT. ``events`` are the event types the learner's loop read, which say which one that was."""
        requests = [r for r in control.stats().requests if r.path.endswith("/interactions") and r.chunks_s]
        if not requests:
            raise Incorrect("the replay server saw no streamed interaction from interaction_ttft.")
        learner = requests[-1]
        first_text = next((i for i, kind in enumerate(events) if kind == "text"), None)
        if first_text is None or first_text >= len(learner.chunks_s):
            raise Incorrect("interaction_ttft returned before its stream's first text delta arrived.")
        return learner.chunks_s[first_text] - learner.start_s


class PacedAndCapped(Problem):
    """q3: ``async def ask_all(prompts, limit, rate_per_s) -> list[str]``: at most ``limit`` interactions in flight and
    ``rate_per_s`` started per second, answers in prompt order."""

    title = "Cap concurrency and pace the rate"
    variables = ("ask_all",)
    needs = ("client", "MODEL")
    hints = (
        "Two limits, two tools: asyncio.Semaphore(limit) for how many are in flight, AsyncLimiter(1, 1 / rate_per_s) "
        "for how many start per second. Create both inside ask_all.",
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
        "the semaphore kept the in-flight count under the limit, the limiter spaced the starts, and gather kept the "
        "answers in prompt order."
    )

    def verify(self, ns: Mapping[str, Any]) -> None:
        fn = ns["ask_all"]
        expect_async(fn, "ask_all")
        control.reset_stats()
        control.add_latency(LATENCY_S if _replay() else 0)
        try:
            with counting_calls(ns["client"].aio.interactions, "create") as counted:
                result = self.call("ask_all", fn, list(PROMPTS), LIMIT, RATE_PER_S)
        finally:
            control.add_latency(0)
        call = f"ask_all(prompts, {LIMIT}, {RATE_PER_S:g})"
        answers = _texts_or_explain(call, result, len(PROMPTS))
        if _replay():
            stats = control.stats()
            peak = counted.peak if counted.calls else stats.peak_in_flight
            if peak > LIMIT:
                raise Incorrect(
                    f"{peak} interactions were in flight at once; the limit was {LIMIT}. Hold an "
                    f"asyncio.Semaphore({LIMIT}) around each request."
                )
            starts = sorted(r.start_s for r in stats.requests if r.path.endswith("/interactions"))
            gaps = [b - a for a, b in itertools.pairwise(starts)]
            if gaps and min(gaps) < 0.3 / RATE_PER_S:
                raise Incorrect(
                    f"two requests started {min(gaps):.3f} s apart; at {RATE_PER_S:g} per second they must be "
                    f"{1 / RATE_PER_S:g} s apart. A semaphore is not a rate limiter: it caps how many are in flight, "
                    "not how many start per second. Pace them with AsyncLimiter(1, 1 / rate_per_s)."
                )
        for planet, answer in zip(PLANETS, answers, strict=True):
            if planet not in answer:
                raise Incorrect(
                    f"the answer for {planet} is {show(answer)}: return the answers in the order of the prompts "
                    "(asyncio.gather keeps it; collecting them as they finish does not)."
                )


PROBLEMS = q1, q2, q3 = lesson(context, Converse, InteractionTtft, PacedAndCapped)
"""Every problem of the lesson, in order: for pytest and for recording the checks' requests into the cassette."""
