"""helpers.timing against the replay server: streams, single calls, repeats, concurrent requests, tables.

Times are only bounded from below by delays the cassette records (the server never answers earlier), never from above.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time

import numpy as np
import pytest
from google import genai
from google.genai import errors

import helpers
from helpers import control, plots, timing
from helpers.models import FLASH
from helpers.replay.app.authoring import author
from helpers.replay.cassettes.cassette import Cassette
from helpers.replay.upstream.synthetic import Script, ScriptEntry
from helpers.timing import (
    CallTiming,
    ChunkTiming,
    ConcurrencyTiming,
    StreamTiming,
    Summary,
    Timeline,
    arepeat,
    atimed,
    elapsed,
    in_flight,
    repeat,
    summarize,
    table,
    timed,
)

from .conftest import clean_workbook_env, stop_workbook_servers

STORY = "Tell me a story."
QUICK = "Quick question."
BUSY = "Are you busy?"
CHUNK_TEXTS = ["", "Once upon ", "a time, a replay server ", "kept perfect time."]
CHUNK_OFFSETS_S = [0.15, 0.25, 0.35, 0.45]
OUTPUT_TOKENS = 12
QUICK_OFFSET_S = 0.2


def _stream_chunks() -> list[dict]:
    chunks = []
    for i, (text, offset) in enumerate(zip(CHUNK_TEXTS, CHUNK_OFFSETS_S, strict=True)):
        usage = {"promptTokenCount": 5, "totalTokenCount": 5}
        if i == len(CHUNK_TEXTS) - 1:
            usage = {"promptTokenCount": 5, "candidatesTokenCount": OUTPUT_TOKENS, "totalTokenCount": 17}
        data = {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}]}
        chunks.append({"offset_s": offset, "data": {**data, "usageMetadata": usage, "modelVersion": FLASH}})
    return chunks


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """A client of a replay server whose cassette has a stream with known chunk times, a 0.2 s call and a 429."""
    folder = tmp_path_factory.mktemp("cassettes")
    script = Script([ScriptEntry(p, ["Some words to answer with."]) for p in (STORY, QUICK, BUSY)])

    async def record() -> None:
        await author(folder, "timing", script, FLASH, STORY, stream=True)
        await author(folder, "timing", script, FLASH, QUICK)
        await author(folder, "timing", script, FLASH, BUSY)

    asyncio.run(record())
    cassette = Cassette.load(folder / "timing.json")
    story, quick, busy = cassette.exchanges
    story.response = {"status": 200, "chunks": _stream_chunks()}
    quick.response["offset_s"] = QUICK_OFFSET_S
    # The same request twice: the server plays recordings in order, so the first call gets 429, the next 200.
    busy.response["offset_s"] = 0.05
    rejected = Cassette.from_json({"format": 1, "exchanges": [busy.to_json()]}, folder / "x.json").exchanges[0]
    rejected.response = {
        "status": 429,
        "offset_s": 0.01,
        "body": {"error": {"code": 429, "message": "Quota exceeded.", "status": "RESOURCE_EXHAUSTED"}},
    }
    cassette.exchanges = [story, quick, rejected, busy]
    cassette.save()
    with pytest.MonkeyPatch.context() as mp:
        clean_workbook_env(mp)
        mp.setenv("WORKBOOK_CASSETTES", str(folder))
        helpers.setup("timing")
        yield genai.Client()
        stop_workbook_servers()


# --- streams --------------------------------------------------------------------------------------------------------


def _assert_story_timing(timing: StreamTiming) -> None:
    assert [c.chars for c in timing.chunks] == [len(t) for t in CHUNK_TEXTS]
    times = [c.at_s for c in timing.chunks]
    assert times == sorted(times)
    assert all(t >= recorded for t, recorded in zip(times, CHUNK_OFFSETS_S, strict=True))
    assert timing.first_chunk_s == times[0] < timing.ttft_s == times[1] < timing.ttlt_s == times[-1]
    assert timing.output_tokens == OUTPUT_TOKENS
    assert timing.tokens_per_s == pytest.approx(OUTPUT_TOKENS / (times[-1] - times[1]))
    assert re.fullmatch(
        r"first chunk \d+\.\d\d s · TTFT \d+\.\d\d s · TTLT \d+\.\d\d s · 4 chunks · \d+ tokens/s", str(timing)
    )


def test_timed_passes_chunks_through_and_times_them(client):
    stream = timed(client.models.generate_content_stream(model=FLASH, contents=STORY))
    texts = [chunk.text for chunk in stream]
    assert texts == CHUNK_TEXTS
    _assert_story_timing(stream.timing)


async def test_atimed_passes_chunks_through_and_times_them(client):
    stream = atimed(await client.aio.models.generate_content_stream(model=FLASH, contents=STORY))
    texts = [chunk.text async for chunk in stream]
    assert texts == CHUNK_TEXTS
    _assert_story_timing(stream.timing)


def test_the_clock_starts_when_iteration_starts_not_when_the_stream_is_made(client):
    stream = timed(client.models.generate_content_stream(model=FLASH, contents=STORY))
    time.sleep(0.3)  # e.g. the learner runs the loop in the next cell
    # Same clock, no machine speed involved: a TTLT timed from the start of iteration fits inside drain().
    iterating = time.perf_counter()
    ttlt = stream.drain().ttlt_s
    assert ttlt <= time.perf_counter() - iterating and ttlt >= CHUNK_OFFSETS_S[-1]


def test_a_timed_stream_reports_only_after_iteration_and_only_once():
    stream = timed(iter(["a"]))
    with pytest.raises(RuntimeError, match="iterate the stream first"):
        _ = stream.timing
    stream.drain()
    with pytest.raises(RuntimeError, match="already iterated"):
        stream.drain()


def test_text_chunks_and_odd_chunks_are_sized_sensibly():
    timing = timed(iter(["", b"ab", "cde", 42])).drain()
    assert [c.chars for c in timing.chunks] == [0, 2, 3, 0]
    assert timing.output_tokens is None and timing.tokens_per_s is None
    assert timing.chars == 5


@pytest.mark.parametrize(
    ("chunks", "line"),
    [
        ((), "no chunks"),
        ((ChunkTiming(0.5, 0),), "first chunk 0.50 s · no text · TTLT 0.50 s · 1 chunk"),
        ((ChunkTiming(0.5, 3),), "TTFT 0.50 s · TTLT 0.50 s · 1 chunk"),
        ((ChunkTiming(0.5, 3), ChunkTiming(1.5, 9)), "TTFT 0.50 s · TTLT 1.50 s · 2 chunks · 20 tokens/s"),
    ],
)
def test_stream_timing_prints_one_line(chunks, line):
    timing = StreamTiming(chunks, output_tokens=20 if len(chunks) == 2 else None)
    assert str(timing) == repr(timing) == line


def test_stream_timing_row():
    row = StreamTiming((ChunkTiming(0.5, 3), ChunkTiming(1.5, 9)), 20).row()
    assert row == {
        "first_chunk_s": 0.5,
        "ttft_s": 0.5,
        "ttlt_s": 1.5,
        "chunks": 2,
        "chars": 12,
        "output_tokens": 20,
        "tokens_per_s": 20.0,
    }


# --- one call -------------------------------------------------------------------------------------------------------


def test_elapsed_prints_one_sanitizable_line(client, capsys):
    with elapsed() as e:
        client.models.generate_content(model=FLASH, contents=QUICK)
    assert e.s >= QUICK_OFFSET_S
    assert re.fullmatch(r"elapsed \d+\.\d\d s\n", capsys.readouterr().out)
    with elapsed("sequential", show=False) as quiet:
        pass
    assert capsys.readouterr().out == "" and re.fullmatch(r"sequential: elapsed \d+\.\d\d s", str(quiet))


def test_elapsed_reports_even_when_the_block_raises(capsys):
    with pytest.raises(ZeroDivisionError), elapsed("boom") as e:
        _ = 1 / 0
    assert e.s >= 0 and capsys.readouterr().out.startswith("boom: elapsed ")


# --- repeated measurements ------------------------------------------------------------------------------------------


def test_summary_matches_numpy_and_prints_one_line():
    samples = [0.1 * i for i in range(1, 11)]
    s = summarize(samples, "TTFT")
    assert (s.n, s.row()["min_s"], s.row()["max_s"]) == (10, 0.1, 1.0)
    for q in (50, 90, 99):
        assert s.row()[f"p{q}_s"] == pytest.approx(np.percentile(samples, q))
    assert str(s) == (
        "TTFT over 10 runs: min 0.10 s · p50 0.55 s · p90 0.91 s · p99 (n < 100: about the max) 0.99 s · max 1.00 s"
    )
    assert repr(s) == str(s)  # what a notebook cell ending with it shows


def test_a_percentile_is_named_plainly_only_when_the_sample_supports_it():
    assert str(summarize([1.0] * 100, "TTFT")).count("about the max") == 0
    assert "p90 (n < 10: about the max)" in str(summarize([1.0] * 9, "TTFT"))
    assert [timing.min_samples(q) for q in (50, 90, 99)] == [2, 10, 100]


@pytest.mark.parametrize(("samples", "message"), [([], "no TTFT samples"), ([0.1, None], "missing .* run 1")])
def test_summarize_refuses_what_it_cannot_summarise(samples, message):
    with pytest.raises(ValueError, match=message):
        summarize(samples, "TTFT")


def test_repeat_times_each_call_or_applies_the_metric():
    calls = []
    wall = repeat(lambda: calls.append(time.sleep(0.01)), 3)
    assert len(calls) == 3 and wall.n == 3 and wall.name == "elapsed" and min(wall.samples_s) >= 0.01
    lengths = repeat(lambda: "abc", 2, name="length", metric=len)
    assert lengths.samples_s == (3.0, 3.0) and lengths.results == ("abc", "abc")
    with pytest.raises(ValueError, match="at least 1"):
        repeat(lambda: None, 0)


async def test_arepeat_runs_one_after_another(client):
    async def ttft() -> StreamTiming:
        return await atimed(await client.aio.models.generate_content_stream(model=FLASH, contents=STORY)).drain()

    s = await arepeat(ttft, 2, name="TTFT", metric=lambda t: t.ttft_s)
    assert isinstance(s, Summary) and s.n == 2 and min(s.samples_s) >= CHUNK_OFFSETS_S[1]
    ends = [t.ttlt_s for t in s.results]
    assert sum(ends) >= 2 * CHUNK_OFFSETS_S[-1]


# --- many requests at once ------------------------------------------------------------------------------------------


def test_in_flight_counts_overlaps_and_not_touching_spans():
    spans = [CallTiming(str(i), 0, s, None, e, 200) for i, (s, e) in enumerate([(0, 2), (1, 3), (2, 4), (5, 6)])]
    times, counts = in_flight(spans)
    assert list(times) == [0, 1, 2, 2, 3, 4, 5, 6] and counts.max() == 2
    assert list(counts) == [1, 2, 1, 2, 1, 0, 1, 0]
    assert ConcurrencyTiming(()).peak == 0 and len(in_flight([])[0]) == 0


def test_concurrency_timing_counts_requests_retries_and_statuses():
    calls = (
        CallTiming("a", 0, 0.0, None, 0.5, 429, "ClientError"),
        CallTiming("b", 0, 0.0, 0.3, 1.0, 200),
        CallTiming("a", 1, 0.6, None, 2.0, 200),
        CallTiming("c", 0, 0.1, None, 0.2, None, "TimeoutError"),
    )
    t = ConcurrencyTiming(calls)
    assert (t.requests, t.retries, t.succeeded, t.wall_s, t.peak) == (3, 1, 2, 2.0, 3)
    assert t.statuses == {200: 2, 429: 1, None: 1}
    assert t.requests_per_s == 1.0
    assert str(t) == (
        "3 requests · wall 2.00 s · 1.0 requests/s · peak 3 in flight · 1 retry · status 200 ×2, 429 ×1, no status ×1"
    )
    assert t.rows()[0]["status"] == 429 and t.row()["retries"] == 1 and repr(t) == str(t)


async def test_timeline_sees_concurrent_requests_overlap(client):
    timeline = Timeline()
    await asyncio.gather(
        *(timeline.track(client.aio.models.generate_content(model=FLASH, contents=QUICK)) for _ in range(5))
    )
    t = timeline.timing
    assert (t.requests, t.retries, t.succeeded, t.peak) == (5, 0, 5, 5)
    assert all(c.end_s - c.start_s >= QUICK_OFFSET_S and c.first_byte_s is None for c in t.calls)
    assert t.calls[0].start_s == 0.0 and t.wall_s >= QUICK_OFFSET_S
    assert re.fullmatch(r"5 requests · wall \d+\.\d\d s · \d+\.\d requests/s · peak 5 in flight", str(t))


async def test_timeline_shows_what_a_semaphore_does(client):
    timeline, semaphore = Timeline(), asyncio.Semaphore(2)

    async def ask() -> None:
        async with semaphore:
            await timeline.track(client.aio.models.generate_content(model=FLASH, contents=QUICK))

    await asyncio.gather(*(ask() for _ in range(4)))
    assert timeline.timing.peak == 2 and timeline.timing.wall_s >= 2 * QUICK_OFFSET_S


async def test_timeline_groups_retries_and_records_the_status(client):
    timeline = Timeline()
    with pytest.raises(errors.ClientError):
        await timeline.track(client.aio.models.generate_content(model=FLASH, contents=BUSY), key=BUSY)
    await timeline.track(client.aio.models.generate_content(model=FLASH, contents=BUSY), key=BUSY)
    t = timeline.timing
    assert [(c.key, c.attempt, c.status, c.error) for c in t.calls] == [
        (BUSY, 0, 429, "ClientError"),
        (BUSY, 1, 200, None),
    ]
    assert (t.requests, t.retries, t.succeeded) == (1, 1, 1)


async def test_a_stream_inside_track_marks_the_first_byte(client):
    timeline = Timeline()

    async def read() -> StreamTiming:
        return await atimed(await client.aio.models.generate_content_stream(model=FLASH, contents=STORY)).drain()

    await timeline.track(read())
    (call,) = timeline.timing.calls
    assert CHUNK_OFFSETS_S[0] <= call.first_byte_s < call.end_s


async def test_timeline_and_the_servers_stats_see_the_same_requests_and_both_plot(client):
    control.reset_stats()
    control.fail_next(1, status=429)
    timeline = Timeline()

    async def ask() -> None:
        with contextlib.suppress(errors.ClientError):
            await timeline.track(client.aio.models.generate_content(model=FLASH, contents=QUICK))

    await asyncio.gather(*(ask() for _ in range(4)))
    server = control.stats()
    assert timeline.timing.statuses == {200: 3, 429: 1} and server.rejected == {429: 1} and server.answered == 3
    for calls in (timeline.timing, server.requests):
        assert len([p for p in plots.timeline(calls).axes[0].patches if p.get_width() > 0]) == 4


def test_timeline_call_times_sync_calls_and_failures(client):
    timeline = Timeline()
    timing = timeline.call(lambda: timed(client.models.generate_content_stream(model=FLASH, contents=STORY)).drain())
    with pytest.raises(ValueError):
        timeline.call(int, "not a number")
    ok, failed = timeline.timing.calls
    assert ok.first_byte_s is not None and ok.end_s - ok.start_s >= timing.ttlt_s
    assert (failed.status, failed.error) == (None, "ValueError")


# --- tables ---------------------------------------------------------------------------------------------------------


def test_table_aligns_rows_and_prints_units():
    rows = [summarize([0.25, 0.5], "TTFT"), {"name": "TTLT", "n": 2, "min_s": 1.0, "p50_s": None}]
    lines = table(rows).splitlines()
    assert lines[0].split() == ["name", "n", "min_s", "p50_s", "p90_s", "p99_s", "max_s"]
    assert set(lines[1]) == {"-", " "}
    assert lines[2].split() == ["TTFT", "2", "0.25", "s", "0.38", "s", "0.47", "s", "0.50", "s", "0.50", "s"]
    assert lines[3].split() == ["TTLT", "2", "1.00", "s", "-", "-", "-", "-"]
    assert len({len(line) for line in lines[:3]}) == 1
    assert table([{"requests_per_s": 16.26, "ratio": 0.123456}]).splitlines()[2].split() == [
        "16.3",
        "requests/s",
        "0.123",
    ]
    assert table([]) == ""
