"""The 05_batch exercises, tested both ways against the lesson's own shipped cassette."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from helpers import prices
from helpers.checks import assert_check_failed, assert_check_passed
from helpers.exercises.ex05_batch import PROBLEMS, SNAPSHOT_ADVICE, q1, q2, q3, q4
from helpers.models import FLASH

from .exercising import lesson_tests

# The notebook's speed: q2 times its polls against the job's timeline.
replay, test_reference_passes_and_starter_is_not_attempted = lesson_tests("05_batch", PROBLEMS, speed=4)


def requests(item: str) -> str:
    return f"def build_requests(reviews):\n    return [{item} for key, text in reviews.items()]"


WAIT = """\
ENDED = {{
    types.JobState.JOB_STATE_SUCCEEDED,
    types.JobState.JOB_STATE_FAILED,
    types.JobState.JOB_STATE_CANCELLED,
    types.JobState.JOB_STATE_EXPIRED,
}}


def wait(name, first_delay_s=1.0, max_delay_s=60.0):
    delay = first_delay_s
    job = client.batches.get(name=name)
    while {until}:
        time.sleep(delay)
        delay = {grow}
        job = client.batches.get(name=name)
    return {result}
"""


def wait(until: str = "not job.done", grow: str = "min(delay * 2, max_delay_s)", result: str = "job") -> str:
    return WAIT.format(until=until, grow=grow, result=result)


def join(value: str, condition: str = "") -> str:
    return f"def join(job):\n    return {{r.metadata['key']: {value} for r in job.dest.inlined_responses {condition}}}"


FORGETS_THINKING = """\
def batch_saving_usd(responses):
    total = 0.0
    for r in responses:
        u = r.usage_metadata
        seen = types.GenerateContentResponseUsageMetadata(
            prompt_token_count=u.prompt_token_count, candidates_token_count=u.candidates_token_count
        )
        total += prices.cost_usd(seen, MODEL) - prices.cost_usd(seen, MODEL, batch=True)
    return total
"""


def saving(expression: str) -> str:
    body = f"sum({expression} for r in responses)"
    return f"def batch_saving_usd(responses):\n    return {body}"


CONTENT = "types.Content(role='user', parts=[types.Part(text=text)])"
STANDARD = "prices.cost_usd(r.usage_metadata, MODEL)"
BATCH = "prices.cost_usd(r.usage_metadata, MODEL, batch=True)"


@pytest.mark.parametrize(
    ("problem", "code", "expected"),
    [
        (q1, "def build_requests(reviews):\n    print(reviews)", "did you forget `return`"),
        (q1, "def build_requests(reviews):\n    return {k: t for k, t in reviews.items()}", "wants a list"),
        (q1, requests("types.InlinedRequest(contents=text, config=CONFIG)"), "has no metadata"),
        (q1, requests("types.InlinedRequest(contents=text, config=CONFIG, metadata={'id': key})"), "{'key': 'r01'}"),
        (q1, requests("types.InlinedRequest(contents=text, metadata={'key': key})"), "has no config"),
        (
            q1,
            requests("types.InlinedRequest(contents=text, config={'temperature': 1}, metadata={'key': key})"),
            "differs from CONFIG",
        ),
        (
            q1,
            requests("{'contents': text, 'generation_config': {'temperature': 0}, 'metadata': {'key': key}}"),
            "the REST name a JSONL line uses",
        ),
        (q1, requests("types.InlinedRequest(contents=key, config=CONFIG, metadata={'key': key})"), "not one review"),
        (q2, wait(until="job.state != types.JobState.JOB_STATE_SUCCEEDED"), "JOB_STATE_CANCELLED included"),
        (q2, wait(until="job.state != 'BATCH_STATE_SUCCEEDED'"), "BATCH_STATE_* strings never match"),
        (q2, wait(grow="delay"), "polled at a steady pace"),
        (q2, wait(grow="delay * 2"), "cap each sleep at max_delay_s"),
        (q2, wait(result="job.state"), "returned a JobState"),
        (q2, wait(result="None"), "did you forget `return job`"),
        (q3, join("r.response.text"), "its response is None"),
        (q3, join("r.response.text", "if r.response"), "left out 'r21'"),
        (q3, join("r.error.message if r.error else r.response.text"), "map it to None"),
        (q3, join("None if r.error else r.response"), "whole responses"),
        (
            q3,
            "def join(job):\n    rs = job.dest.inlined_responses\n"
            "    keys = sorted(r.metadata['key'] for r in rs)\n"
            "    return dict(zip(keys, [None if r.error else r.response.text for r in rs]))",
            "belongs to another request",
        ),
        (q3, "def join(job):\n    return [r.response for r in job.dest.inlined_responses]", "wants a dict"),
        (q4, saving(STANDARD), "returned the standard cost"),
        (q4, saving(f"{BATCH} - {STANDARD}"), "negative saving"),
        (q4, saving(f"1_000_000 * ({STANDARD} - {BATCH})"), "a million times too big"),
        (q4, "def batch_saving_usd(responses):\n    return '$0.01'", "wants a number of US dollars"),
        (
            q1,
            "def build_requests(reviews):\n    return [types.InlinedRequest(contents=t, config=CONFIG, "
            "metadata={'custom_id': k}) for k, t in reviews.items()]",
            "custom_id is the field of OpenAI's and Anthropic's batch APIs",
        ),
        (q4, FORGETS_THINKING, "left out the"),
        (q4, FORGETS_THINKING, "thinking tokens (thoughts_token_count), which are billed as output"),
    ],
)
def test_typical_wrong_answers_fail_with_their_message(problem, code: str, expected: str) -> None:
    assert_check_failed(problem, code, expected)


def test_other_correct_answers_pass() -> None:
    assert_check_passed(q1, requests("{'contents': text, 'config': CONFIG, 'metadata': {'key': key}}"))
    assert_check_passed(
        q1, requests(f"types.InlinedRequest(contents={CONTENT}, config=CONFIG, metadata={{'key': key}})")
    )
    assert_check_passed(q1, requests("types.InlinedRequest(contents=[text], config=CONFIG, metadata={'key': key})"))
    assert_check_passed(
        q2,
        wait(
            until="job.state.name in ('JOB_STATE_PENDING', 'JOB_STATE_RUNNING')", grow="min(delay * 1.5, max_delay_s)"
        ),
    )
    assert_check_passed(q2, wait(until="job.state not in ENDED"))
    assert_check_passed(q3, join("r.response.text if r.response else None"))
    assert_check_passed(q4, saving(f"{STANDARD} * (1 - prices.DISCOUNT)"))


def a_day_priced_unlike_today() -> dt.date:
    """A day whose 3.8 Flash price differs from today's: either side of the 2027-01-01 change."""
    today = prices.price_on(FLASH)
    return next(day for day in (dt.date(2026, 12, 1), dt.date(2027, 1, 2)) if prices.price_on(FLASH, day) != today)


def saving_on(day: str) -> str:
    """A correct saving priced at the day the expression ``day`` gives."""
    at = f"on={day}"
    return saving(
        f"prices.cost_usd(r.usage_metadata, MODEL, {at}) - prices.cost_usd(r.usage_metadata, MODEL, batch=True, {at})"
    )


def test_the_saving_at_the_lessons_priced_on_day_passes_and_at_another_day_fails() -> None:
    day = f"dt.date.fromisoformat({a_day_priced_unlike_today().isoformat()!r})"
    priced_on = "import datetime as dt\nPRICED_ON = {}\n"
    assert_check_passed(q4, priced_on.format(day) + saving_on("PRICED_ON"))
    assert_check_failed(q4, priced_on.format("dt.date.today()") + saving_on(day), "batch_saving_usd(responses)")


SNAPSHOT_ONLY = """\
def wait(name, first_delay_s=1.0, max_delay_s=60.0):
    delay = first_delay_s
    job = client.batches.get(name=name)
    while not job.done:
        {body}
    return job
"""


def test_q2_a_loop_that_never_gets_the_job_again_is_stopped_by_what_it_asked_to_sleep() -> None:
    code = SNAPSHOT_ONLY.format(body="time.sleep(delay)\n        delay = min(delay * 2, max_delay_s)")
    assert_check_failed(q2, code, "raised NeverRefetched: slept", SNAPSHOT_ADVICE)


def test_q2_a_loop_that_never_returns_is_stopped_at_the_stated_limit_and_the_next_check_runs(monkeypatch) -> None:
    monkeypatch.setattr(q2, "time_limit_s", 2.0)
    started = time.monotonic()
    assert_check_failed(
        q2,
        SNAPSHOT_ONLY.format(body="pass"),
        "wait(",
        "had not returned after 2 s, so the check stopped it. It was at line ",
        " of wait(): `",  # the loop's line, or its body's
        SNAPSHOT_ADVICE,
    )
    assert time.monotonic() - started >= 2.0
    q2.check_reference()


def test_q2_judges_the_delays_asked_for_through_any_name_of_time_sleep() -> None:
    assert_check_passed(q2, "from time import sleep\n" + wait().replace("time.sleep", "sleep"))
    assert_check_failed(
        q2, "from time import sleep as nap\n" + wait(grow="delay").replace("time.sleep", "nap"), "steady pace"
    )


REST_STATES = "('BATCH_STATE_SUCCEEDED', 'BATCH_STATE_FAILED', 'BATCH_STATE_CANCELLED', 'BATCH_STATE_EXPIRED')"


@pytest.mark.parametrize(
    ("problem", "code", "expected"),
    [
        pytest.param(
            q1,
            "def build_requests(reviews):\n    return [types.InlinedRequest(contents=t, config=CONFIG, "
            "metadata={'key': k}) for k, t in REVIEWS.items()]",
            "from its argument, reviews",
            id="q1-ignores-its-argument",
        ),
        pytest.param(
            q2,
            wait(until=f"job.state not in {REST_STATES}"),
            "BATCH_STATE_* strings never match",
            id="q2-rest-state-names-in-a-tuple",
        ),
        pytest.param(
            q2,
            f"REST_ENDED = set({REST_STATES})\n" + wait(until="job.state not in REST_ENDED"),
            "BATCH_STATE_* strings never match",
            id="q2-rest-state-names-in-a-global",
        ),
        pytest.param(
            q2, wait().replace("delay = first_delay_s", "delay = 1.0"), "first_delay_s", id="q2-hard-coded-first-delay"
        ),
        pytest.param(q2, wait(grow="min(delay * 2, 60.0)"), "cap each sleep at max_delay_s", id="q2-hard-coded-cap"),
        pytest.param(
            q2,
            "def wait(name, first_delay_s=1.0, max_delay_s=60.0):\n    return client.batches.get(name=name)",
            "before it ended",
            id="q2-gets-the-job-once",
        ),
        pytest.param(q4, saving(BATCH), "what the calls cost through the Batch API", id="q4-batch-cost-not-saving"),
        pytest.param(
            q4,
            saving(f"{STANDARD} * prices.DISCOUNT"),
            "what the calls cost through the Batch API",
            id="q4-standard-times-discount",
        ),
        pytest.param(q4, saving(f"{STANDARD} / 2"), "assumes the Batch API halves", id="q4-hard-coded-half"),
        pytest.param(q4, saving(f"{STANDARD} * 0.5"), "assumes the Batch API halves", id="q4-hard-coded-0.5"),
    ],
)
def test_warned_mistakes_and_shortcuts_are_rejected_by_name(problem, code: str, expected: str) -> None:
    """Issue 25: the shortcuts a learner tries (ignoring an argument, hard-coding a number, numbers that coincide at
    50%) and the BATCH_STATE_* names the lesson warns about, wherever the code keeps them."""
    assert_check_failed(problem, code, expected)
