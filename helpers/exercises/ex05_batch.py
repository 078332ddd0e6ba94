"""The checked exercises of ``05_batch``: build keyed inline requests, poll with backoff, join by key, price a batch.

The notebook imports them with ``from helpers.exercises.ex05_batch import ____, q1, q2, q3, q4``; its setup cells
define ``client = genai.Client()``, ``MODEL`` (:data:`helpers.models.FLASH`), ``CONFIG`` (the classifier's
``GenerateContentConfig``) and ``REVIEWS`` (``notebooks/data/reviews.json``), which the checks use. Batch requests
are answered from the lesson's recorded ``generateContent`` calls, so the checks send only reviews the notebook
classifies synchronously (and, on purpose, :data:`NEW_KEY`, which nobody recorded). The poll check steers jobs
through the replay server (``helpers.control.inject_batch_state``), so it needs replay.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from unittest import mock

from google import genai
from google.genai import types
from pydantic import ValidationError

from .. import control, prices
from ..checks import (
    Case,
    FunctionProblem,
    Incorrect,
    Mistake,
    Problem,
    Slept,
    Watched,
    ____,
    code_strings,
    lesson,
    lesson_context,
    name_mistake,
    show,
    watching,
    watching_sleep,
)
from ..paths import NOTEBOOKS_DIR
from ..replay.services.batches_api import PENDING_S, RUNNING_S
from ..workbook import current_session

REVIEWS_PATH = NOTEBOOKS_DIR / "data" / "reviews.json"
CONFIG = types.GenerateContentConfig(
    system_instruction=(
        "Classify the sentiment of the customer review. Answer with one word: positive, negative or mixed."
    ),
    thinking_config=types.ThinkingConfig(thinking_level=types.ThinkingLevel.LOW),
)
"""The classifier's config, as the notebook builds it (the recordings were made with exactly this)."""
SAMPLE = ("r01", "r02", "r03")
"""The reviews the checks send: classified synchronously by the notebook, so batch jobs can answer them."""
NEW_KEY, NEW_REVIEW = "r21", "Arrived yesterday; first impressions are good."
"""A review nobody recorded: in replay its batch request fails, as a request can fail in a real job."""
EXTRA_POLLS = 3
"""How many polls of an ended job the poll check allows before it stops the learner's loop."""
ATTEMPTS = 3
"""How many jobs the poll check lets succeed while it waits to see two sleeps: one is enough unless the machine is so
busy that a poll takes a third as long as the whole job."""

__all__ = ["PROBLEMS", "____", "context", "q1", "q2", "q3", "q4"]


def load_reviews() -> dict[str, str]:
    """``notebooks/data/reviews.json``: review id -> review text, in file order."""
    return json.loads(REVIEWS_PATH.read_text(encoding="utf-8"))


context = lesson_context(
    fresh={"REVIEWS": lambda ns: load_reviews()}, CONFIG=CONFIG, prices=prices, time=time, types=types
)
"""What ``05_batch``'s setup cells leave: ``client``, ``MODEL``, ``CONFIG``, ``REVIEWS`` and the modules."""


def _texts(contents: Any) -> list[str]:
    """The text parts of ``contents`` in any form ``InlinedRequest.contents`` takes (str, Part, Content, lists)."""
    if isinstance(contents, str):
        return [contents]
    if isinstance(contents, types.Part):
        return [contents.text] if contents.text is not None else []
    if isinstance(contents, types.Content):
        return [t for p in contents.parts or [] for t in _texts(p)]
    if isinstance(contents, list):
        return [t for c in contents for t in _texts(c)]
    return []


def _wait_done(client: genai.Client, name: str) -> types.BatchJob:
    """Poll ``name`` until it ends (the check's own loop, so a learner's mistake cannot hang it)."""
    deadline = time.monotonic() + 60 + (PENDING_S + RUNNING_S) / current_session().speed
    job = client.batches.get(name=name)
    while not job.done:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the check's batch job {name} did not end within a minute")
        time.sleep(0.05)
        job = client.batches.get(name=name)
    return job


class BuildRequests(Problem):
    """q1: ``build_requests(reviews)`` returns one ``InlinedRequest`` per review, keyed by its id in ``metadata``."""

    title = "Build keyed inline requests"
    variables = ("build_requests",)
    needs = ("CONFIG", "REVIEWS")
    hints = (
        "types.InlinedRequest takes contents, config and metadata: the same contents and config as "
        "generate_content, plus a dict of strings that comes back with the answer.",
        "For each (key, text) in reviews.items(): types.InlinedRequest(contents=text, config=CONFIG, "
        "metadata={'key': key}).",
    )
    starter = """\
def build_requests(reviews: dict[str, str]) -> list[types.InlinedRequest]:
    return ____
"""
    solution_code = """\
def build_requests(reviews: dict[str, str]) -> list[types.InlinedRequest]:
    return [
        types.InlinedRequest(contents=text, config=CONFIG, metadata={"key": key})
        for key, text in reviews.items()
    ]
"""
    correct_message = (
        "each request carries its review, the same CONFIG as the synchronous calls (so the batch asks the same "
        "question) and metadata {'key': id} to join its answer back by."
    )

    def verify(self, ns: Mapping[str, Any]) -> None:
        reviews = {key: ns["REVIEWS"][key] for key in SAMPLE}
        result = self.call("build_requests", ns["build_requests"], reviews)
        call = "build_requests(reviews)"
        if result is None:
            raise Incorrect(f"{call} returned None: did you forget `return`?")
        if not isinstance(result, list):
            raise Incorrect(f"{call} returned {show(result)}; client.batches.create(src=...) wants a list.")
        if len(result) != len(reviews):
            if len(result) == len(ns["REVIEWS"]):
                raise Incorrect(
                    f"{call} returned {len(result)} requests for the {len(reviews)} reviews it was given: build them "
                    "from its argument, reviews, not from the notebook's REVIEWS."
                )
            raise Incorrect(f"{call} returned {len(result)} requests for {len(reviews)} reviews; make one per review.")
        for item in result:
            self._check_request(call, item, reviews, ns["CONFIG"])

    @staticmethod
    def _check_request(call: str, item: Any, reviews: dict[str, str], config: types.GenerateContentConfig) -> None:
        if isinstance(item, Mapping):
            try:
                item = types.InlinedRequest.model_validate(item)
            except ValidationError as e:
                field = ".".join(str(p) for p in e.errors()[0]["loc"][-1:])
                if field in ("generation_config", "generationConfig", "system_instruction"):
                    raise Incorrect(
                        f"{call} put {field!r} in a request: that is the REST name a JSONL line uses. Inline "
                        "requests go through the SDK, which takes the settings as config (it sends them on as "
                        "generationConfig and systemInstruction)."
                    ) from None
                raise Incorrect(f"{call} returned a dict that is not an inline request ({field!r}).") from None
        if not isinstance(item, types.InlinedRequest):
            raise Incorrect(f"{call} returned a list of {type(item).__name__}; build types.InlinedRequest(...)s.")
        texts = _texts(item.contents)
        key = next((k for k, text in reviews.items() if texts == [text]), None)
        if key is None:
            raise Incorrect(f"{call} made a request whose contents are {show(texts)}, not one review's text.")
        if not item.metadata:
            raise Incorrect(
                f"the request for {key!r} has no metadata: give it {{'key': {key!r}}}, or you cannot tell which "
                "answer belongs to which review."
            )
        if "custom_id" in item.metadata:
            raise Incorrect(
                f"the request for {key!r} has metadata {item.metadata}: custom_id is the field of OpenAI's and "
                f"Anthropic's batch APIs. Gemini's names it key (a JSONL line's \"key\"), and this lesson's inline "
                f"requests carry {{'key': {key!r}}}."
            )
        if item.metadata != {"key": key}:
            raise Incorrect(
                f"the request for {key!r} has metadata {item.metadata}; the exercise wants {{'key': {key!r}}}."
            )
        if item.config is None:
            raise Incorrect(
                f"the request for {key!r} has no config: without CONFIG's system instruction and thinking level the "
                "batch asks a different question from the synchronous calls."
            )
        if item.config != config:
            raise Incorrect(f"the request for {key!r} has a config that differs from CONFIG; pass CONFIG itself.")


class KeptPolling(Exception):
    """Raised into a learner's poll loop that goes on polling a job that has ended."""

    def __init__(self, state: types.JobState) -> None:
        super().__init__(f"still polling a job that ended as {state.name}")
        self.state = state


class NeverRefetched(Exception):
    """Raised into a learner's poll loop that sleeps on without asking for the job again: the snapshot it checks
    can never change."""

    def __init__(self, slept_s: float) -> None:
        super().__init__(f"slept {slept_s:.2f} s in all without getting the job again")


@dataclass
class Polling:
    """What one call of the learner's ``wait`` did, as the check saw it.

    Attributes:
        result: what it returned.
        polls: how many times it got the job (``client.batches.get``).
        sleeps: the seconds each ``time.sleep`` asked for, in order (the delays its code chose, not measured).
    """

    result: Any
    polls: int
    sleeps: list[float]


class PollWithBackoff(Problem):
    """q2: ``wait(name, first_delay_s, max_delay_s)`` polls until any terminal state, backing off up to a cap.

    Backoff is judged by the delays the learner's code passes to ``time.sleep`` (see
    :func:`helpers.checks.watching_sleep`), which no busy machine changes: the second sleep must be longer than the
    first, and none longer than the cap. The cap is 1.5 times the first delay, so two sleeps tell all.
    """

    title = "Poll until the job ends, backing off"
    variables = ("wait",)
    needs = ("client", "MODEL", "CONFIG", "REVIEWS")
    time_limit_s = 20.0
    hints = (
        "Loop: get the job; stop once it has ended (job.done), otherwise sleep and get it again. Make the sleep "
        "longer each time (multiply it), but never longer than max_delay_s.",
        "job.done is True in exactly the four terminal states: JOB_STATE_SUCCEEDED, _FAILED, _CANCELLED and "
        "_EXPIRED. The strings 'BATCH_STATE_...' from the REST docs never match job.state: the SDK renames them.",
    )
    starter = """\
def wait(name: str, first_delay_s: float = 1.0, max_delay_s: float = 60.0) -> types.BatchJob:
    ____
"""
    solution_code = """\
def wait(name: str, first_delay_s: float = 1.0, max_delay_s: float = 60.0) -> types.BatchJob:
    delay = first_delay_s
    job = client.batches.get(name=name)
    while not job.done:
        time.sleep(delay)
        delay = min(delay * 2, max_delay_s)
        job = client.batches.get(name=name)
    return job
"""
    correct_message = (
        "wait() stops at every terminal state, polls often at first and less often as the job runs on, and never "
        "sleeps longer than the cap. On a real job (minutes to 24 h) a cap of a minute or more spares your quota."
    )

    def explain(self, error: Exception, fn: Callable[..., Any]) -> str:
        if isinstance(error, KeptPolling):
            advice = (
                f"Stop at every terminal state, {error.state.name} included: SUCCEEDED, FAILED, CANCELLED, EXPIRED."
            )
            if any("BATCH_STATE" in text for text in code_strings(fn)):
                advice += " The SDK names states JOB_STATE_*; the wire's BATCH_STATE_* strings never match job.state."
            return advice
        if isinstance(error, NeverRefetched):
            return SNAPSHOT_ADVICE
        return ""

    def explain_timeout(self, fn: Callable[..., Any]) -> str:
        return SNAPSHOT_ADVICE

    def verify(self, ns: Mapping[str, Any]) -> None:
        session = current_session()
        if session.server_url is None:
            raise Incorrect("this check ends jobs on purpose through the replay server: run it in replay mode.")
        client, fn = ns["client"], ns["wait"]
        job_s = (PENDING_S + RUNNING_S) / session.speed
        first, cap = job_s / 64, job_s / 64 * 1.5  # dozens of polls before the job succeeds
        src = [types.InlinedRequest(contents=ns["REVIEWS"][SAMPLE[0]], config=ns["CONFIG"])]
        for end in ("CANCELLED", "FAILED", "EXPIRED"):
            name = client.batches.create(model=ns["MODEL"], src=src).name
            if end == "CANCELLED":
                client.batches.cancel(name=name)
            else:
                control.inject_batch_state(name, end)
            self._expect_job(self._watch(client, fn, name, first, cap, job_s).result, f"JOB_STATE_{end}")
        for _ in range(ATTEMPTS):
            name = client.batches.create(model=ns["MODEL"], src=src).name
            seen = self._watch(client, fn, name, first, cap, job_s)
            self._expect_job(seen.result, "JOB_STATE_SUCCEEDED")
            if seen.result.dest is None:
                raise Incorrect("wait() returned the job before its results: return the job from the last get().")
            self._judge_backoff(seen, first, cap)
            if len(seen.sleeps) >= 2:
                return
        # Each poll took so long (a busy machine) that the job ended before wait() slept twice, every time.
        raise Incorrect(
            f"the job ended before wait() had slept twice, in {ATTEMPTS} tries: the machine is too busy for this "
            f"check to see the backoff. Run {self.name}.check() again."
        )

    @staticmethod
    def _judge_backoff(seen: Polling, first: float, cap: float) -> None:
        """Judge the sleeps of one call that polled a job to success (see the class docstring).

        Raises:
            Incorrect: a first sleep longer than ``first``, a sleep over the cap, polls with no sleep between them,
                or no sleep longer than the first.
        """
        if seen.sleeps and seen.sleeps[0] > first * (1 + 1e-9):
            raise Incorrect(
                f"wait() first slept {seen.sleeps[0]:.3g} s with first_delay_s={first:.3g}: sleep first_delay_s (its "
                "argument, not a number of your own) before the second poll."
            )
        if any(s > cap * (1 + 1e-9) for s in seen.sleeps):
            raise Incorrect(
                f"wait() slept {max(seen.sleeps):.3f} s between polls with max_delay_s={cap:.3f}: cap each sleep at "
                "max_delay_s."
            )
        if not seen.sleeps and seen.polls > 2:
            raise Incorrect(
                f"wait() polled {seen.polls} times without calling time.sleep in between: sleep first_delay_s, then "
                "longer each time, between two polls."
            )
        if len(seen.sleeps) >= 2 and max(seen.sleeps[1:]) <= seen.sleeps[0]:
            raise Incorrect(
                "wait() polled at a steady pace: back off, making each sleep longer than the last (up to max_delay_s)."
            )

    def _watch(
        self, client: genai.Client, fn: Callable[..., Any], name: str, first: float, cap: float, job_s: float
    ) -> Polling:
        """Call ``fn(name, first, cap)``, stopping it if it polls an ended job too often, or sleeps twice as long
        as the whole job without getting it again (see :func:`helpers.checks.watching`)."""
        polls: list[Watched] = []
        since_poll = [0.0]  # seconds of sleep asked for since the last poll

        def stop_when_ended(seen: list[Watched]) -> None:
            if seen[-1].kwargs.get("name") != name:
                return
            polls.append(seen[-1])
            since_poll[0] = 0.0
            ended = [w.result for w in polls if w.result.done]
            if len(ended) > EXTRA_POLLS:
                raise KeptPolling(ended[-1].state)

        def stop_when_stuck(slept: list[Slept]) -> None:
            since_poll[0] += slept[-1].seconds
            if since_poll[0] > 2 * job_s:
                raise NeverRefetched(since_poll[0])

        with (
            watching(client.batches, "get", then=stop_when_ended) as seen,
            watching_sleep(fn, then=stop_when_stuck) as slept,
        ):
            result = self.call("wait", fn, name, first, cap, shown="name, first_delay_s, max_delay_s")
        if not seen:
            raise Incorrect("wait() never called client.batches.get(name=...), so it cannot know the job's state.")
        return Polling(result, len(polls), [s.seconds for s in slept])

    @staticmethod
    def _expect_job(job: Any, state: str) -> None:
        call = "wait(name)"
        if job is None:
            raise Incorrect(f"{call} returned None: did you forget `return job`?")
        if isinstance(job, types.JobState):
            raise Incorrect(f"{call} returned a JobState; return the job itself: it carries dest, the results.")
        if not isinstance(job, types.BatchJob):
            raise Incorrect(f"{call} returned {show(job)}; the exercise wants the BatchJob.")
        if not job.done:
            raise Incorrect(
                f"{call} returned the job in {job.state.name if job.state else None}, before it ended: get it again "
                "until job.done."
            )
        if job.state != state:
            raise Incorrect(
                f"{call} returned a job in {job.state.name if job.state else None} for a job that ended {state}."
            )


SNAPSHOT_ADVICE = (
    "A BatchJob is a snapshot: its state never changes by itself. Get the job again with "
    "client.batches.get(name=name) each time round the loop, and stop once job.done."
)


def _answer(response: types.InlinedResponse) -> str | None:
    """An inline result's text, or ``None`` when its request failed: what ``join`` maps its key to."""
    return None if response.error or response.response is None else response.response.text


class JoinByKey(FunctionProblem):
    """q3: ``join(job)`` maps each inline request's ``metadata["key"]`` to its answer's text (``None``: it failed).

    Called on a finished job of the check's whose request for :data:`NEW_KEY` failed and whose responses come back
    in reverse order (as python-genai issue 1909 reports of the real service).
    """

    title = "Join results to inputs by key"
    variables = ("join",)
    needs = ("client", "MODEL", "CONFIG", "REVIEWS")
    hints = (
        "Each item of job.dest.inlined_responses has .metadata (the dict you sent), and either .response or .error.",
        "A failed request has response None: check r.error (or r.response is None) before reading r.response.text.",
    )
    starter = """\
def join(job: types.BatchJob) -> dict[str, str | None]:
    return ____
"""
    solution_code = """\
def join(job: types.BatchJob) -> dict[str, str | None]:
    return {
        r.metadata["key"]: None if r.error else r.response.text
        for r in job.dest.inlined_responses
    }
"""
    correct_message = (
        "join() pairs answers with inputs by key, whatever order they come back in, and keeps failed requests "
        "visible as None so you can retry just those."
    )

    def explain(self, error: Exception, fn: Callable[..., Any]) -> str:
        if isinstance(error, AttributeError) and "'NoneType'" in str(error):
            return "One request failed: its response is None and its error says why. Check r.error first."
        return ""

    returns = dict
    returns_what = "a dict from each key to its answer"
    mistakes = (
        Mistake(
            lambda answer, expected, _: set(answer) == set(expected) - {NEW_KEY},
            f"{{call}} left out {NEW_KEY!r}, whose request failed: map it to None, so you see what to retry.",
        ),
        Mistake(
            lambda answer, expected, _: set(answer) != set(expected),
            "{call} has keys that are not the requests' metadata keys: key each answer by r.metadata['key'].",
        ),
        Mistake(
            lambda answer, expected, _: sorted(map(str, answer.values())) == sorted(map(str, expected.values())),
            "{call} paired answers with the wrong keys: an answer belongs to another request. Results can come back "
            "in any order (python-genai issue 1909), so read each one's metadata['key'].",
        ),
        Mistake(
            lambda answer, expected, _: any(isinstance(v, types.GenerateContentResponse) for v in answer.values()),
            "{call} maps keys to whole responses; the exercise wants each answer's text.",
        ),
        Mistake(
            lambda answer, expected, _: answer[NEW_KEY] is not None,
            f"{{call}} maps {NEW_KEY!r}, whose request failed, to an answer; map it to None.",
        ),
    )
    otherwise = (
        "{call} gave a key an answer that belongs to another request: results can come back in any order "
        "(python-genai issue 1909), so read each one's metadata['key']."
    )

    def cases_for(self, ns: Mapping[str, Any]) -> Sequence[Case]:
        client = ns["client"]
        inputs = {key: ns["REVIEWS"][key] for key in SAMPLE} | {NEW_KEY: NEW_REVIEW}
        src = [
            types.InlinedRequest(contents=text, config=ns["CONFIG"], metadata={"key": key})
            for key, text in inputs.items()
        ]
        job = _wait_done(client, client.batches.create(model=ns["MODEL"], src=src).name)
        dest = job.dest
        if dest is None or not dest.inlined_responses:
            raise Incorrect(f"the check's batch job ended {job.state} without inline results: run the check again.")
        responses = dest.inlined_responses
        expected = {(r.metadata or {}).get("key", ""): _answer(r) for r in responses}
        shuffled = job.model_copy(update={"dest": dest.model_copy(update={"inlined_responses": responses[::-1]})})
        return [Case((shuffled,), expected, shown="job")]


ALT_DISCOUNT = 0.3
"""A Batch API price, as a fraction of the standard one, at which the saving and the batch cost differ: q4 runs the
learner's function at today's 50% (:data:`helpers.prices.DISCOUNT`), where they are equal, and again at this."""
ASKED_AGAIN = f"the check asked again as if the Batch API cost {ALT_DISCOUNT:.0%} of the standard price"


def _near(value: float, target: float) -> bool:
    return math.isclose(value, target, rel_tol=1e-6, abs_tol=1e-15)


@dataclass(frozen=True)
class Costs:
    """What the check's responses cost, USD, at the prices in force when the check reads them.

    Attributes:
        standard: through the standard API.
        batch: through the Batch API.
        unthinking: the saving with the thinking tokens left out.
    """

    standard: float
    batch: float
    unthinking: float

    @classmethod
    def of(cls, responses: Sequence[types.GenerateContentResponse], model: str, on: dt.date | None = None) -> Costs:
        """The costs of ``responses`` of ``model``, at :mod:`helpers.prices` as it is now, on day ``on`` (default:
        today)."""
        usages = [r.usage_metadata for r in responses if r.usage_metadata is not None]
        visible = [u.model_copy(update={"thoughts_token_count": None}) for u in usages]

        def saving(u: types.GenerateContentResponseUsageMetadata) -> float:
            return prices.cost_usd(u, model, on=on) - prices.cost_usd(u, model, batch=True, on=on)

        return cls(
            standard=sum(prices.cost_usd(u, model, on=on) for u in usages),
            batch=sum(prices.cost_usd(u, model, batch=True, on=on) for u in usages),
            unthinking=sum(saving(u) for u in visible),
        )


class BatchSaving(FunctionProblem):
    """q4: ``batch_saving_usd(responses)``: standard cost minus Batch API cost of those calls, with helpers.prices, at
    today's prices or at the lesson's ``PRICED_ON``.

    Run at today's prices and again as if the Batch API cost :data:`ALT_DISCOUNT` of the standard price, so that the
    saving differs from the batch cost and from half the standard cost.
    """

    title = "Price the batch saving"
    variables = ("batch_saving_usd",)
    needs = ("client", "MODEL", "CONFIG", "REVIEWS", "prices")
    hints = (
        "prices.cost_usd(usage_metadata, MODEL) prices one call; batch=True prices it through the Batch API.",
        "Add up, over the responses, prices.cost_usd(r.usage_metadata, MODEL) - prices.cost_usd(r.usage_metadata, "
        "MODEL, batch=True).",
    )
    starter = """\
def batch_saving_usd(responses: list[types.GenerateContentResponse]) -> float:
    return ____
"""
    solution_code = """\
def batch_saving_usd(responses: list[types.GenerateContentResponse]) -> float:
    return sum(
        prices.cost_usd(r.usage_metadata, MODEL) - prices.cost_usd(r.usage_metadata, MODEL, batch=True)
        for r in responses
    )
"""
    correct_message = (
        "the Batch API halves the price of every token, input and output (thinking included), so today the saving is "
        "half the standard cost; read from prices, your saving stayed right when the check changed the discount."
    )
    returns = (int, float)
    returns_what = "a number of US dollars"
    mistakes = (
        Mistake(
            lambda answer, costs, _: _near(answer, costs.batch),
            "{call} returned what the calls cost through the Batch API, not what they save: subtract it from the "
            f"standard cost. At today's 50% the two are equal, so {ASKED_AGAIN}.",
        ),
        Mistake(
            lambda answer, costs, _: _near(answer, costs.standard / 2),
            "{call} assumes the Batch API halves every price: read the batch price from prices (batch=True), which "
            f"stays right when prices change ({ASKED_AGAIN}).",
        ),
        Mistake(
            lambda answer, costs, _: _near(answer, costs.unthinking),
            "{call} left out the thinking tokens (thoughts_token_count), which are billed as output, in a batch too: "
            "price each response's whole usage_metadata.",
        ),
        Mistake(
            lambda answer, costs, _: _near(answer, costs.standard),
            "{call} returned the standard cost; subtract what the same calls cost in a batch.",
        ),
        Mistake(
            lambda answer, costs, _: _near(answer, costs.batch - costs.standard),
            "{call} returned a negative saving: subtract the batch cost from the standard cost.",
        ),
        Mistake(
            lambda answer, costs, _: _near(answer, (costs.standard - costs.batch) * 1_000_000),
            "{call} is a million times too big: cost_usd already divides by the 1M-token unit.",
        ),
    )
    otherwise = "{call} returned {answer}, which is not the standard cost minus the batch cost."

    def cases_for(self, ns: Mapping[str, Any]) -> Sequence[Case]:
        client, model = ns["client"], ns["MODEL"]
        responses = [
            client.models.generate_content(model=model, contents=ns["REVIEWS"][key], config=ns["CONFIG"])
            for key in SAMPLE
        ]
        return [Case((responses,), None, shown="responses")]

    def judge(self, call: str, answer: Any, case: Case, ns: Mapping[str, Any]) -> None:
        # At the prices in force now (the check may have changed them), today's or on the lesson's PRICED_ON: both
        # are right, and they differ once a price changes (3.8 Flash's on 2027-01-01).
        lesson_day = ns.get("PRICED_ON")
        days = [None, lesson_day] if isinstance(lesson_day, dt.date) else [None]
        costs = [Costs.of(case.args[0], ns["MODEL"], on=day) for day in days]
        if not any(_near(answer, c.standard - c.batch) for c in costs):
            raise name_mistake(self.mistakes, call, answer, costs[0], self.otherwise, case.args)

    def verify(self, ns: Mapping[str, Any]) -> None:
        for discount in (None, ALT_DISCOUNT):
            with contextlib.nullcontext() if discount is None else mock.patch.object(prices, "DISCOUNT", discount):
                super().verify(ns)


PROBLEMS = q1, q2, q3, q4 = lesson(context, BuildRequests, PollWithBackoff, JoinByKey, BatchSaving)
"""Every problem of the lesson, in order: for pytest and for recording the checks' requests into the cassette."""
