"""Issue 11's figures: what recording costs as a cassette grows, how true recorded timing stays under concurrent
recordings, and how faithfully a burst of 500 simultaneous streams is replayed.

    python bench/pipeline_bench.py [--server-python PATH] [--exchanges N] [--only NAME ...]

Every server is a real ``python -m helpers.replay serve`` subprocess; ``--server-python`` runs another checkout's
(its venv's ``python``), which is how the "before" figures in ``bench/RESULTS.md`` were taken. Clients are raw
aiohttp in this process. Prints one markdown row per figure, with the load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from common import JSON_HEADERS, MODEL, RAW, Row, payload, percentiles_ms, stream_exchange, write
from replay_bench import fidelity, raw_session, stream_arrivals, write_cassettes

from helpers.replay.cassettes.cassette import Cassette
from helpers.replay.pipeline.socket_server import raise_open_file_limit

CONCURRENT_RECORDINGS = 50
CHUNKS = 10


@contextlib.contextmanager
def serve(python: str, folder: Path, *args: str) -> Iterator[str]:
    """``PYTHON -m helpers.replay serve --port 0 --cassettes FOLDER ARGS``; yields its URL, stops it afterwards."""
    proc = subprocess.Popen(
        [python, "-m", "helpers.replay", "serve", "--port", "0", "--cassettes", str(folder), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline().split()
    try:
        if first[:1] != ["serving"]:
            raise RuntimeError(f"the server did not start: {first}")
        yield first[1]
    finally:
        proc.terminate()
        proc.wait(timeout=120)


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def offsets(rng: random.Random) -> list[float]:
    """A Flash-like stream: TTFT 0.3-0.6 s, then gaps of 30-120 ms."""
    out = [rng.uniform(0.3, 0.6)]
    for _ in range(CHUNKS - 1):
        out.append(out[-1] + rng.uniform(0.03, 0.12))
    return [round(o, 4) for o in out]


async def record_sequentially(url: str, n: int) -> list[float]:
    """Record ``n`` distinct streamed exchanges one after another; each one's seconds, request sent to stream end."""
    endpoint = f"{url}/grow/v1/models/{MODEL}:streamGenerateContent"
    seconds = []
    async with aiohttp.ClientSession() as session:
        for i in range(n):
            start = time.perf_counter()
            async with session.post(
                endpoint, params={"alt": "sse"}, data=payload(f"grow {i}"), headers=JSON_HEADERS
            ) as reply:
                await reply.read()
                if reply.status != 200:
                    raise RuntimeError(f"HTTP {reply.status}")
            seconds.append(time.perf_counter() - start)
    return seconds


async def measure_flat_cost(python: str, n: int) -> Row:
    """Exchanges 1-100 against the last 100 of ``n`` recorded into one cassette (target ratio <= 1.2)."""
    with tempfile.TemporaryDirectory() as tmp:
        up, rec = Path(tmp) / "up", Path(tmp) / "rec"
        up.mkdir()
        rec.mkdir()
        # The upstream answers at once, five chunks: what is measured is the recorder's own cost.
        write(up, "grow", [stream_exchange(f"grow {i}", [0.0] * 5, f"r{i}") for i in range(n)])
        with (
            serve(sys.executable, up) as upstream,
            serve(python, rec, "--record", "--upstream", f"{upstream}/grow") as url,
        ):
            seconds = await record_sequentially(url, n)
        size = (rec / "grow.json").stat().st_size
    # Medians: the first exchange also pays for the connections and the cassette's first write.
    first, last = statistics.median(seconds[:100]), statistics.median(seconds[-100:])
    return Row(
        f"recording cost per exchange as one cassette grows ({n} streamed exchanges, 5 chunks each, one at a time)",
        f"median of exchanges 1-100 {first * 1000:.2f} ms, of {n - 99}-{n} {last * 1000:.2f} ms: ratio "
        f"{last / first:.2f} (cassette {size / 2**20:.1f} MiB; all {n} in {sum(seconds):.1f} s)",
        "ratio <= 1.2",
        last / first <= 1.2,
        RAW,
    )


async def measure_concurrent_recording(python: str) -> Row:
    """Recorded chunk offsets under 50 concurrent recordings against what a direct client saw (target p95 <= 10 ms)."""
    rng = random.Random(11)
    schedule = {f"c{i}": offsets(rng) for i in range(CONCURRENT_RECORDINGS)}
    with tempfile.TemporaryDirectory() as tmp:
        up, rec = Path(tmp) / "up", Path(tmp) / "rec"
        up.mkdir()
        rec.mkdir()
        write(up, "up", [stream_exchange(p, o, p) for p, o in schedule.items()])
        with serve(sys.executable, up) as upstream:
            direct_url = f"{upstream}/up/v1/models/{MODEL}:streamGenerateContent"
            async with raw_session(traced=True) as session:
                # Warm the upstream's connections and cassette, then measure.
                await asyncio.gather(*(stream_arrivals(session, direct_url, payload(p)) for p in schedule))
                direct = await asyncio.gather(*(stream_arrivals(session, direct_url, payload(p)) for p in schedule))
            seen = {a.response_id: a.chunks_s for a in direct}
            with serve(python, rec, "--record", "--upstream", f"{upstream}/up") as url:
                endpoint = f"{url}/rec/v1/models/{MODEL}:streamGenerateContent"
                async with raw_session(traced=True) as session:
                    # As for the direct client, a first round opens the connections (client to recorder, recorder
                    # to upstream); the second round's recordings are measured.
                    for _ in range(2):
                        await asyncio.gather(*(stream_arrivals(session, endpoint, payload(p)) for p in schedule))
        cassette = Cassette.load(rec / "rec.json")
    first, gaps = [], []
    for exchange in cassette.exchanges[CONCURRENT_RECORDINGS:]:
        response = exchange.response
        assert "chunks" in response
        got = [c["offset_s"] for c in response["chunks"]]
        saw = seen[response["chunks"][0]["data"]["responseId"]]
        first.append(abs(got[0] - saw[0]))
        gaps += [abs((got[i] - got[i - 1]) - (saw[i] - saw[i - 1])) for i in range(1, len(got))]
    f50, f95, fmax = percentiles_ms(first)
    g50, g95, gmax = percentiles_ms(gaps)
    return Row(
        f"recorded timing under {CONCURRENT_RECORDINGS} concurrent recordings ({len(first)} first chunks, "
        f"{len(gaps)} gaps) against a direct client of the same upstream",
        f"first-chunk offset error p50/p95/max {f50:.1f}/{f95:.1f}/{fmax:.1f} ms; "
        f"gap error {g50:.1f}/{g95:.1f}/{gmax:.1f} ms",
        "p95 <= 10 ms",
        max(f95, g95) <= 10.0,
        RAW,
    )


async def measure_burst(python: str, streams: int = 500) -> Row:
    """TTFT and gap errors of ``streams`` simultaneous replayed streams (target TTFT p95 <= 20 ms)."""
    with tempfile.TemporaryDirectory() as tmp:
        recordings = write_cassettes(Path(tmp))
        with serve(python, Path(tmp)) as url:
            found = await fidelity(url, recordings, streams, 1)
    t50, t95, tmax = percentiles_ms(found.ttft)
    g50, g95, gmax = percentiles_ms(found.gaps)
    return Row(
        f"replay fidelity, {streams} simultaneous streams ({len(found.ttft)} TTFTs, {len(found.gaps)} gaps)",
        f"TTFT error p50/p95/max {t50:.1f}/{t95:.1f}/{tmax:.1f} ms; gap error {g50:.1f}/{g95:.1f}/{gmax:.1f} ms; "
        f"the client sent them over {found.sent_over_s * 1000:.1f} ms, the server began handling them over "
        f"{found.handled_over_s * 1000:.1f} ms",
        "TTFT p95 <= 20 ms",
        t95 <= 20.0,
        RAW,
    )


async def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server-python", default=sys.executable, help="the python that runs the servers measured")
    p.add_argument("--exchanges", type=int, default=2000, help="exchanges recorded for the flat-cost figure")
    p.add_argument(
        "--only", nargs="*", choices=["flat", "concurrent", "burst"], default=["flat", "concurrent", "burst"]
    )
    args = p.parse_args(argv)
    raise_open_file_limit()
    print(f"server python: {args.server_python}; load average {load()} at the start", flush=True)
    measures = {
        "flat": lambda: measure_flat_cost(args.server_python, args.exchanges),
        "concurrent": lambda: measure_concurrent_recording(args.server_python),
        "burst": lambda: measure_burst(args.server_python),
    }
    for name in args.only:
        row = await measures[name]()
        met = "-" if row.met is None else ("yes" if row.met else "**no**")
        print(f"| {row.benchmark} | {row.result} | {row.target} | {met} | {row.client} | load {load()} |", flush=True)
    print(json.dumps({"load_at_end": load()}))


if __name__ == "__main__":
    asyncio.run(main())
