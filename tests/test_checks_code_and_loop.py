"""The shared check pieces lessons 05-09 added (issue 25): reading what a learner's code holds (``code_strings``,
``reads_argument``), a call's arguments written as names, and the loop probe that tells code which awaits while it
waits from code that blocks its event loop (``helpers.checks.loop``), against a real replay server."""

from __future__ import annotations

import asyncio
import functools
import time
from pathlib import Path

import pytest
from google import genai

import helpers
from helpers.checks import (
    HOLD_S,
    Incorrect,
    Problem,
    code_strings,
    probing_the_loop,
    reads_argument,
    run_bounded,
    stream_ended,
)
from helpers.checks.record import holding_stream
from helpers.models import FLASH

from .conftest import stream_exchange, write_cassette

STATES = frozenset({"GLOBAL_STATE"})


def test_code_strings_reads_folded_tuples_nested_code_and_the_globals_a_function_uses() -> None:
    def poll(state: str) -> bool:
        return (state in ("TUPLE_STATE", "OTHER") and any(s == "NESTED_STATE" for s in [state])) or state in STATES

    found = code_strings(poll)
    assert {"TUPLE_STATE", "NESTED_STATE", "GLOBAL_STATE"} <= found
    assert code_strings(functools.partial(poll)) == found, "a partial is read through"
    assert code_strings(len) == set() and code_strings(3) == set()


def test_reads_argument_sees_an_argument_read_in_a_closure_and_one_never_read() -> None:
    async def honest(prompts: list[str], limit: int) -> list[str]:
        semaphore = asyncio.Semaphore(limit)

        async def one(prompt: str) -> str:
            async with semaphore:
                return prompt

        return [await one(p) for p in prompts]

    async def hard_coded(prompts: list[str], limit: int) -> int:
        def closure() -> int:
            return len(prompts)

        return closure() + 2

    assert reads_argument(honest, "limit") and reads_argument(honest, "prompts")
    assert not reads_argument(hard_coded, "limit") and reads_argument(hard_coded, "prompts")
    assert reads_argument(functools.partial(honest, ["p"]), "limit")
    assert reads_argument(len, "limit"), "no Python function to read: nothing to accuse"


class Raises(Problem):
    """A problem whose check calls the learner's ``f`` with an argument that differs from run to run."""

    variables = ("f",)

    def verify(self, ns: dict) -> None:
        self.call("f", ns["f"], f"batches/{time.monotonic_ns()}", shown="name")


def test_a_call_can_write_its_arguments_as_names() -> None:
    def f(name: str) -> None:
        raise ValueError("no such job")

    outcome = Raises("q9", dict).evaluate({"f": f})
    assert outcome.message == "f(name) raised ValueError: no such job."


@pytest.fixture
def streaming(env: Path) -> helpers.Session:
    """A replay session whose cassette streams one answer in three chunks."""
    write_cassette(env, "07_probe", [stream_exchange("Stream", [(0.05, "one "), (0.1, "two "), (0.15, "three")])])
    return helpers.setup("07_probe")


async def awaits() -> str:
    """Reads the stream as ``async def`` code should: awaiting each chunk, so the loop runs meanwhile."""
    stream = await genai.Client().aio.models.generate_content_stream(model=FLASH, contents="Stream")
    return "".join([chunk.text or "" async for chunk in stream])


async def blocks() -> str:
    """Reads the same stream with the sync client inside ``async def``: the loop stops until it returns."""
    client = genai.Client()
    return "".join(c.text or "" for c in client.models.generate_content_stream(model=FLASH, contents="Stream"))


def test_the_loop_probe_lets_awaiting_code_go_on_at_once(streaming: helpers.Session) -> None:
    with probing_the_loop() as probe:
        assert probe.active
        assert run_bounded(probe.wrap(awaits), limit_s=30, nudge=probe.nudge) == "one two three"
    assert probe.turned and probe.hold.released, "the probe, on the learner's loop, let the stream go on"


def test_the_loop_probe_names_code_that_blocks_its_loop_only_after_the_checks_nudge(
    streaming: helpers.Session,
) -> None:
    started = time.monotonic()
    with probing_the_loop() as probe:
        assert run_bounded(probe.wrap(blocks), limit_s=30, nudge=probe.nudge) == "one two three"
    assert not probe.turned and probe.hold.released
    assert time.monotonic() - started >= HOLD_S, "nothing but the nudge let the held stream go on"


def test_holding_stream_from_the_first_chunk_and_stream_ended_for_a_closed_stream(streaming: helpers.Session) -> None:
    helpers.control.reset_stats()
    with holding_stream(after_text_chunks=0) as hold:

        async def first_chunk_then_close() -> str:
            stream = await genai.Client().aio.models.generate_content_stream(model=FLASH, contents="Stream")
            async for chunk in stream:
                return chunk.text or ""
            raise Incorrect("no chunk")

        assert run_bounded(first_chunk_then_close, limit_s=30, nudge=hold.nudge) == "one "
        assert hold.released, "held before the first chunk, only the nudge let it out"
    assert stream_ended()
