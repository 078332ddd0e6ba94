"""The checked exercises of ``09_frameworks``: stream a chain's tokens, batch under a rate limit, fan out three ways.

The notebook imports them with ``from helpers.exercises.ex09_frameworks import ____, q1, q2, q3``. Its cells define
the LangChain model ``llm`` and ``chain`` (prompt | model | parser), the GenAI Processors model ``model``, the
branch maker ``ask`` with its branches ``retell`` and ``keywords``, the text ``BEES``, and the rate limit ``RPM`` per
``window_s`` seconds; :func:`context` builds the same for pytest. The checks judge what the replay server saw
(:mod:`helpers.control`: requests, 429s, requests in flight at once), never the client's clock. The prompts are ones
the lesson's synthetic script answers (``notebooks/scripts/09_frameworks.json``).
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from genai_processors import processor, streams  # type: ignore[import-untyped]
from genai_processors.core import genai_model  # type: ignore[import-untyped]
from google.genai import errors, types
from langchain_core.exceptions import ModelRateLimitError
from langchain_core.messages import BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.rate_limiters import InMemoryRateLimiter
from langchain_google_genai import ChatGoogleGenerativeAI

from .. import control
from ..checks import (
    Incorrect,
    Problem,
    ____,
    expect_async,
    expect_returned,
    forbidding_sleep,
    lesson,
    lesson_context,
    recording,
    run_coroutine,
    show,
    watching,
)
from ..models import FLASH, FLASH_LITE
from ..replay.pipeline.rate_limits import WINDOW_S
from ..workbook import current_session

TOPIC = "why leaves change colour in autumn"
"""The topic exercise 1's check sends through the chain."""

EXPLAIN = (("system", "You explain science to curious ten-year-olds."), ("human", "Explain {topic}, in one paragraph."))
"""The lesson's chat prompt template, as ``ChatPromptTemplate.from_messages`` takes it."""

COUNTRIES = (
    "France", "Japan", "Kenya", "Canada", "Australia", "Egypt", "Norway", "Peru", "Spain", "Italy",
    "Germany", "Chile", "Ghana", "Poland", "Greece", "Vietnam", "Portugal", "Turkey", "Cuba", "Sweden",
)  # fmt: skip
QUESTIONS = tuple(f"What is the capital of {country}? Answer in one word." for country in COUNTRIES)
"""The twenty questions of the lesson's batch, which exercise 2's check asks."""

LITE = {"model": FLASH_LITE, "thinking_level": "minimal"}
"""The lesson's settings for the batch of one-word questions: the cheapest model, with the least thinking it allows."""

RPM = 10
"""The rate limit of the lesson's batch section and of exercise 2: requests per server minute (``60 / speed`` s)."""

MAX_REJECTIONS = 2
"""Exercise 2 fails a batch the server refused more often than this. Paced under the limit, twenty questions get none
(two at most, where the client's clock and the server's disagree at a window's edge); five at a time without a rate
limiter get about ten."""

BEES = (
    "Honeybees keep the brood nest of a hive close to 35 °C all year round. In winter the workers cluster tightly "
    "and shiver their flight muscles to make heat; in summer they fan their wings at the entrance and spread "
    "droplets of water on the comb, cooling it as the water evaporates."
)
"""The text the lesson's processors read, and exercise 3's check sends through ``fan_out``."""

BRANCHES = {
    "retell": "Retell this text for a child, in one paragraph.\n\n",
    "keywords": "List three keywords for this text.\n\n",
    "headline": "Write a one-line headline for this text.\n\n",
}
"""Exercise 3's branches: name -> instruction (the lesson defines the first two, the learner the third)."""

OVERLAP_S = 0.05
"""Exercise 3 delays every answer by this many seconds (wall clock) while ``fan_out`` runs, so branches that run at the
same time surely overlap on the server, even where replayed answers come back in milliseconds."""

__all__ = ["PROBLEMS", "____", "ask", "context", "q1", "q2", "q3"]


def ask(model: processor.Processor, instruction: str, branch: str) -> processor.PartProcessor:
    """The lesson's branch maker: a part processor that sends ``instruction`` and each part it receives to ``model``,
    labelling what comes back with substream ``branch``. (The notebook's ``ask`` closes over its ``model``.)"""

    @processor.part_processor_function
    async def call(part: processor.ProcessorPart) -> Any:
        async for out in model([instruction, part]):
            yield processor.ProcessorPart(out, substream_name=branch)

    return call


def _genai_model(ns: Mapping[str, Any]) -> genai_model.GenaiModel:
    """The lesson's ``model``: genai-processors' model of :data:`helpers.models.FLASH`, on the session's key."""
    return genai_model.GenaiModel(
        api_key=os.environ.get("GOOGLE_API_KEY") or os.environ["GEMINI_API_KEY"], model_name=FLASH
    )


context = lesson_context(
    fresh={
        "llm": lambda ns: ChatGoogleGenerativeAI(model=FLASH),
        "chain": lambda ns: ChatPromptTemplate.from_messages(list(EXPLAIN)) | ns["llm"] | StrOutputParser(),
        "model": _genai_model,
        "ask": lambda ns: functools.partial(ask, ns["model"]),
        "retell": lambda ns: ask(ns["model"], BRANCHES["retell"], "retell"),
        "keywords": lambda ns: ask(ns["model"], BRANCHES["keywords"], "keywords"),
        "window_s": lambda ns: WINDOW_S / current_session().speed,
    },
    BEES=BEES,
    LITE=LITE,
    RPM=RPM,
    ChatGoogleGenerativeAI=ChatGoogleGenerativeAI,
    InMemoryRateLimiter=InMemoryRateLimiter,
    processor=processor,
    streams=streams,
    asyncio=asyncio,
    errors=errors,
    types=types,
)
"""What ``09_frameworks``' cells leave in the notebook that the exercises use: ``client``, ``llm``, ``chain``,
``model``, ``ask`` (taking the instruction and branch name), ``retell``, ``keywords``, ``BEES``, ``LITE``, ``RPM``,
``window_s``, ``MODEL``, ``ChatGoogleGenerativeAI``, ``InMemoryRateLimiter``, ``processor``, ``streams``, ``genai``,
``asyncio``, ``errors``, ``types`` and ``____``."""


def _expect_list(call: str, result: Any, what: str) -> list[Any]:
    expect_returned(call, result, (list, tuple), f"a list of {what}")
    return list(result)


def _needs_replay(what: str) -> None:
    if current_session().server_url is None:
        raise Incorrect(
            f"this check {what}, which needs the replay server: unset WORKBOOK_MODE and re-run the setup cell."
        )


def _causes(error: BaseException) -> list[BaseException]:
    """``error``, what it was raised from, and the exceptions of any exception group among them."""
    found: list[BaseException] = []
    pending = [error]
    while pending:
        e = pending.pop()
        found.append(e)
        pending += [c for c in (e.__cause__, e.__context__) if c is not None and c not in found]
        pending += list(getattr(e, "exceptions", ()))
    return found


class TokenTexts(Problem):
    """q1: ``async def token_texts(topic) -> list[str]``: the text of each chunk the model streamed through ``chain``,
    read from ``astream_events``."""

    title = "Stream the tokens of a chain"
    variables = ("token_texts",)
    needs = ("chain",)
    hints = (
        'async for event in chain.astream_events({"topic": topic}, version="v2") reports every step\'s events; '
        'the model\'s chunks are the events whose event["event"] is "on_chat_model_stream".',
        'Such an event\'s event["data"]["chunk"] is an AIMessageChunk: keep its .text when it is not empty (the '
        "model's last chunk only marks the end).",
    )
    starter = """\
async def token_texts(topic: str) -> list[str]:
    ____
"""
    solution_code = """\
async def token_texts(topic: str) -> list[str]:
    texts = []
    async for event in chain.astream_events({"topic": topic}, version="v2"):
        if event["event"] == "on_chat_model_stream" and event["data"]["chunk"].text:
            texts.append(event["data"]["chunk"].text)
    return texts
"""
    correct_message = (
        "one text per chunk the model streamed, in order. The parser's and the chain's stream events repeat the same "
        "pieces, and the model's last chunk is empty: filtering on the event's kind and on the text keeps neither."
    )

    def explain(self, error: Exception, fn: Callable[..., Any]) -> str:
        if any(isinstance(e, errors.ClientError) and e.code == 404 for e in _causes(error)):
            return (
                "The replay server has no recording of a call that does not stream (invoke or ainvoke): run the "
                "chain with astream_events, which streams from the model."
            )
        if isinstance(error, (AttributeError, KeyError)):
            return (
                "Not every event carries a model chunk: start and end events have no data['chunk'], and the "
                "parser's and the chain's stream events carry plain str. Keep the on_chat_model_stream events only."
            )
        return ""

    def verify(self, ns: Mapping[str, Any]) -> None:
        fn = ns["token_texts"]
        expect_async(fn, "token_texts")
        expected = [piece for piece in ns["chain"].stream({"topic": TOPIC}) if piece]
        replay = current_session().server_url is not None
        if replay:
            control.reset_stats()
        call = f"token_texts({TOPIC!r})"
        result = _expect_list(call, self.call("token_texts", fn, TOPIC), "str, one per chunk")
        if any(isinstance(r, BaseMessage) for r in result):
            raise Incorrect(f"{call} returned message chunks; the exercise wants their text (chunk.text).")
        if not all(isinstance(r, str) for r in result):
            odd = next(r for r in result if not isinstance(r, str))
            raise Incorrect(f"{call} returned {show(odd)} among its items; the exercise wants str, one per chunk.")
        if replay and not any(r.path.endswith(":streamGenerateContent") for r in control.stats().requests):
            raise Incorrect(f"{call} never streamed from the model: run the chain with astream_events.")
        if Counter(result) == Counter(expected * 3):
            raise Incorrect(
                f"{call} kept every stream event, so each piece appears three times (the model's, the parser's and "
                "the chain's event): keep only the on_chat_model_stream events."
            )
        if "" in result:
            raise Incorrect(
                f"{call} includes empty strings: the model's last chunk carries no text (it only marks the end of "
                "the stream); keep the chunks whose text is not empty."
            )
        if result == expected:
            return
        if "".join(result) == "".join(expected):
            raise Incorrect(
                f"{call} returned the answer in {len(result)} piece(s), not one per chunk the model streamed: "
                "collect each on_chat_model_stream event's chunk as it comes."
            )
        raise Incorrect(f"{call} returned {len(result)} pieces that are not the chunks the model streamed.")


class Capitals(Problem):
    """q2: ``async def capitals(questions) -> list[str]``: every answer from one ``abatch``, in order, with the server
    refusing at most :data:`MAX_REJECTIONS` requests under a limit of :data:`RPM` a server minute."""

    title = "Batch under the rate limit"
    variables = ("capitals",)
    needs = ("LITE", "RPM", "window_s")
    hints = (
        "abatch's config={'max_concurrency': n} caps how many requests are in flight, not how many start per "
        "second. Give the model a rate_limiter instead: ChatGoogleGenerativeAI(**LITE, rate_limiter=...).",
        "InMemoryRateLimiter(requests_per_second=RPM / window_s / 1.1, check_every_n_seconds=0.01, "
        "max_bucket_size=1) paces one request at a time, a little under the limit. Return [a.text for a in answers].",
    )
    starter = """\
async def capitals(questions: list[str]) -> list[str]:
    ____
"""
    solution_code = """\
async def capitals(questions: list[str]) -> list[str]:
    limiter = InMemoryRateLimiter(
        requests_per_second=RPM / window_s / 1.1, check_every_n_seconds=0.01, max_bucket_size=1
    )
    paced = ChatGoogleGenerativeAI(**LITE, rate_limiter=limiter)
    answers = await paced.abatch(questions)
    return [answer.text for answer in answers]
"""
    correct_message = (
        "every answer, in order, and the server refused (almost) nothing: the rate limiter paced the requests under "
        "the limit, which max_concurrency alone cannot do."
    )

    def explain(self, error: Exception, fn: Callable[..., Any]) -> str:
        causes = _causes(error)
        if any(isinstance(e, ModelRateLimitError) for e in causes):
            return (
                "A 429 escaped as LangChain's GoogleRateLimitError (a ModelRateLimitError, not an errors.APIError): "
                "pace the requests with a rate_limiter so the server has nothing to refuse."
            )
        if any(isinstance(e, TimeoutError) for e in causes):
            return "Is the rate limiter paced per second? RPM / window_s requests a second is the limit."
        return ""

    def timeout_s(self) -> float:
        """How long the learner's batch may run: three times what pacing at the limit takes, plus 30 s."""
        return 3 * len(QUESTIONS) / RPM * WINDOW_S / current_session().speed + 30

    def verify(self, ns: Mapping[str, Any]) -> None:
        _needs_replay("sets a rate limit and counts the 429s")
        fn = ns["capitals"]
        expect_async(fn, "capitals")
        time.sleep(WINDOW_S / current_session().speed)  # let every earlier request leave the server's window
        control.set_limits(rpm=RPM)
        try:
            with (
                recording() as record,
                watching(ns["ChatGoogleGenerativeAI"], "abatch") as batches,
                forbidding_sleep(fn, "capitals"),
            ):
                result = self.call(
                    "capitals",
                    lambda qs: asyncio.wait_for(fn(qs), self.timeout_s()),
                    list(QUESTIONS),
                    shown="questions",
                )
        finally:
            control.set_limits(rpm=None)
        calls = record.calls or []
        call = f"capitals(questions) with {len(QUESTIONS)} questions"
        if len(batches) != 1:
            how = "never called abatch" if not batches else f"called abatch {len(batches)} times"
            raise Incorrect(
                f"{call} {how}: the exercise asks for one abatch call with every question, which runs them "
                "concurrently while the model's rate_limiter paces them (not ainvoke in a loop, nor a gather)."
            )
        result = _expect_list(call, result, "answers (str), one per question")
        if any(isinstance(r, BaseMessage) for r in result):
            raise Incorrect(f"{call} returned messages; the exercise wants each answer's text (.text).")
        rejected = sum(r.status == 429 for r in calls)
        if rejected > MAX_REJECTIONS:
            peak = max((r.in_flight for r in calls), default=0)
            raise Incorrect(
                f"the server refused {rejected} of the requests (at most {peak} were in flight at once): capping "
                "concurrency does not cap the rate. Give the model a rate_limiter paced under RPM requests per "
                "window_s seconds."
            )
        if len(result) != len(QUESTIONS):
            raise Incorrect(f"{call} returned {len(result)} answers.")
        sent = {r.prompt: r.text for r in calls if r.text}
        expected = [sent.get(q, "") for q in QUESTIONS]
        if result != expected:
            if sorted(map(str, result)) == sorted(expected):
                raise Incorrect(f"{call} returned the right answers, but not in the order of the questions.")
            wrong = next(i for i, (r, e) in enumerate(zip(result, expected, strict=True)) if r != e)
            raise Incorrect(
                f"{call}: answer {wrong} is {show(result[wrong])}, not the answer the server sent to question {wrong}."
            )


async def _parts(fan_out: Any, text: str, timeout_s: float = 60.0) -> list[processor.ProcessorPart]:
    """Every part ``fan_out(text)`` yields, read inside ``processor.context()`` so that an error in any branch
    cancels the others and is raised here (outside a context, genai-processors 2.0.3 leaves the reader waiting for
    ever), and within ``timeout_s`` seconds in case the learner's processor hangs some other way.

    Raises:
        TimeoutError: the processor had not finished after ``timeout_s`` seconds.
    """
    async with asyncio.timeout(timeout_s), processor.context():
        return [part async for part in fan_out(text)]


class FanOut(Problem):
    """q3: ``fan_out``: a processor that runs the ``retell``, ``keywords`` and ``headline`` branches on each part, all
    at once (three requests in flight on the server), each branch's parts labelled by its name."""

    title = "Fan out three ways"
    variables = ("fan_out",)
    needs = ("ask", "retell", "keywords")
    hints = (
        "`//` runs part processors side by side on the same part; `+` would feed one branch's output to the next.",
        f'headline = ask({BRANCHES["headline"]!r}, "headline"), then fan_out = retell // keywords // headline.',
    )
    starter = """\
fan_out = ____
"""
    solution_code = f"""\
headline = ask({BRANCHES["headline"]!r}, "headline")
fan_out = retell // keywords // headline
"""
    correct_message = (
        "three requests were in flight at once and each branch answered about the same text. `//` hands the parts on "
        "in branch order; streams.merge would show each branch as it arrives."
    )

    def explain(self, error: Exception, fn: Callable[..., Any]) -> str:
        causes = _causes(error)
        if any(isinstance(e, TimeoutError) for e in causes):
            return "A processor that never finishes: does every branch end when its model call does?"
        if any(isinstance(e, errors.ClientError) and e.code == 404 for e in causes):
            return (
                "The replay server has no recording of a request your processor sent: a branch asked about another "
                "branch's output instead of the text. `+` chains processors (each reads the previous one's output); "
                "`//` gives every branch the same part."
            )
        return ""

    def verify(self, ns: Mapping[str, Any]) -> None:
        _needs_replay("reads how many requests were in flight at once")
        fan_out = ns["fan_out"]
        if not isinstance(fan_out, (processor.Processor, processor.PartProcessor)):
            raise Incorrect(
                f"fan_out is {show(fan_out)}; make it a processor: combine the branches (part processors) with //."
            )
        model = genai_model.GenaiModel(
            api_key=os.environ.get("GOOGLE_API_KEY") or os.environ["GEMINI_API_KEY"], model_name=FLASH
        )
        expected = {
            name: "".join(p.text for p in run_coroutine(_parts(ask(model, instruction, name), BEES)))
            for name, instruction in BRANCHES.items()
        }
        control.reset_stats()
        control.add_latency(OVERLAP_S)
        try:
            parts = self.call("fan_out", lambda text: _parts(fan_out, text), BEES)
        finally:
            control.add_latency(0)
        peak = control.stats().peak_in_flight
        got = {name: "".join(p.text for p in parts if p.substream_name == name) for name in BRANCHES}
        absent = [name for name, text in got.items() if not text]
        if absent:
            raise Incorrect(
                f"fan_out(BEES) gave no part from the {' or '.join(absent)} branch: combine retell, keywords and a "
                "headline branch made with ask(...) using //."
            )
        if peak < len(BRANCHES):
            raise Incorrect(
                f"only {peak} request(s) were in flight at once: the branches ran one after another. `//` runs them "
                "side by side on the same part."
            )
        for name, instruction in BRANCHES.items():
            if got[name] != expected[name]:
                raise Incorrect(
                    f"the {name} branch's parts are not the model's answer to {instruction.strip()!r} about BEES: "
                    f"make that branch with ask({instruction!r}, {name!r})."
                )


PROBLEMS = q1, q2, q3 = lesson(context, TokenTexts, Capitals, FanOut)
"""Every problem of the lesson, in order: for pytest and for recording the checks' requests into the cassette."""
"""Every problem of the lesson, in order: for pytest and for recording the checks' requests into the cassette."""
