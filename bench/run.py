"""Benchmarks of the workbook's own instruments: figures, not claims (issue 6).

    python bench/run.py [--quick] [--rpm R] [--speed S] [--nbval | --no-nbval] [--out FILE]

Measures, against real replay servers (``python -m helpers.replay serve``, started as ``helpers.setup`` starts them,
on cassettes written to a temporary folder): replay fidelity of TTFT and chunk gaps at 1, 100 and 500 concurrent
streams, and how faithfully record mode times a stream; the async speed-up of requests recorded at 1.0 s and what the
server adds to it; capacity (concurrent streams, and requests per second); throughput under ``--rpm`` of the
rate-limit patterns lesson 02 teaches; the timing helpers' overhead (``bench/timing_overhead.py``); and the wall time
of the whole nbval suite.

Prints a markdown table and writes it to ``bench/RESULTS.md`` (``--out``) with the machine, the versions and the
date. A row with a target (from issue 6) says whether this run met it. ``--quick`` takes under a minute: fewer
rounds and requests, and no nbval suite unless ``--nbval``. Run it from the repository root or anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rate_limits
import replay_bench
import timing_overhead
from common import Row, replay_server

from helpers.replay.pipeline.socket_server import raise_open_file_limit

ROOT = Path(__file__).resolve().parent.parent
NBVAL_TARGET_S = 180.0
"""The nbval suite's budget: CI runs it twice (nbval, then tests/test_determinism.py) well within 20 minutes."""


def machine() -> str:
    """Cores, CPU model, memory and OS."""
    cpuinfo = Path("/proc/cpuinfo")
    models = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE) if cpuinfo.exists() else []
    cpu = models[0] if models else platform.processor() or "unknown CPU"
    memory = "unknown memory"
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        memory = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB memory"
    return f"{os.cpu_count()} cores ({cpu}), {memory}, {platform.system()} {platform.release()}"


def load() -> str:
    """The one-minute load average (how busy the shared machine was), or ``"unknown"``."""
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "unknown"


def versions() -> str:
    """Python and the packages whose code is measured."""
    packages = ", ".join(f"{p} {importlib.metadata.version(p)}" for p in ("google-genai", "aiohttp", "aiolimiter"))
    return f"Python {platform.python_version()}, {packages}"


def timing_helper_rows(quick: bool) -> list[Row]:
    """The timing helpers' own cost, measured by ``bench/timing_overhead.py``'s functions."""
    n, rounds = (5_000, 3) if quick else (20_000, 7)
    data = timing_overhead.chunks(n)
    figures = {
        "timed()": timing_overhead.best(rounds, lambda: timing_overhead.sync_per_chunk(data)),
        "atimed()": timing_overhead.best(rounds, lambda: asyncio.run(timing_overhead.async_per_chunk(data))),
    }
    track = timing_overhead.best(rounds, lambda: asyncio.run(timing_overhead.track_per_request(n)))
    per_chunk = "; ".join(f"{name} {s * 1e6:.2f} µs" for name, s in figures.items())
    return [
        Row(
            f"timing helpers' overhead (best of {rounds} rounds of {n:,}, in memory)",
            f"per chunk: {per_chunk}; Timeline.track {track * 1e6:.2f} µs per request "
            "(chunks of a Flash stream arrive ~100 ms apart)",
        )
    ]


def nbval_row() -> Row:
    """The wall time of ``python -m pytest notebooks`` (every notebook under nbval), in a subprocess."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "notebooks", "-q"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr.strip()[-200:]
    notebooks = len(list((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    return Row(
        f"nbval suite: `pytest notebooks` ({notebooks} notebooks)",
        f"{seconds:.0f} s wall ({summary.strip('= ')})",
        f"<= {NBVAL_TARGET_S:.0f} s, all passed",
        seconds <= NBVAL_TARGET_S and result.returncode == 0,
        "-",
    )


async def measure_replay(folder: Path, opts: argparse.Namespace) -> list[Row]:
    """Every replay-server measurement, on one server at recorded speed and one with the rate limit."""
    recordings = replay_bench.write_cassettes(folder)
    rate_limits.write_cassettes(folder)
    rows: list[Row] = []
    with replay_server(folder) as url:
        rows += await replay_bench.measure_fidelity(url, recordings, opts.quick)
        recorded = folder / "recorded"
        with replay_server(recorded, "--record", "--upstream", f"{url}/fidelity") as recorder:
            rows.append(
                await replay_bench.measure_record_fidelity(recorder, recorded, recordings, 5 if opts.quick else 20)
            )
        sequential_n = 5 if opts.quick else 100
        rows += await replay_bench.measure_speedup(url, sequential_n, 100, 3 if opts.quick else 7)
        steps = [250, 1000, 2000] if opts.quick else [250, 500, 1000, 2000, 4000, 8000]
        rows.append(await replay_bench.measure_capacity(url, steps))
        rows += await replay_bench.measure_requests_per_s(url, *((3000, 1000) if opts.quick else (20000, 5000)), 32)
    with replay_server(folder, "--rpm", str(opts.rpm), "--speed", f"{opts.speed:g}") as url:
        requests = (2 if opts.quick else 10) * opts.rpm
        rows += await rate_limits.measure_rate_limits(url, requests, opts.rpm, opts.speed)
    return rows


def table(rows: list[Row]) -> str:
    """The rows as a markdown table."""
    lines = ["| benchmark | result | target | met | client |", "|---|---|---|---|---|"]
    for r in rows:
        met = {None: "-", True: "yes", False: "**no**"}[r.met]
        lines.append(f"| {r.benchmark} | {r.result} | {r.target} | {met} | {r.client} |")
    return "\n".join(lines)


NOTES = """\
## How each figure is measured

- **Replay fidelity**: 500 recordings of a 10-chunk stream, each with its own timing (TTFT 0.2-0.5 s, then gaps of
  30-120 ms), so concurrent streams do not all send at the same instant. A chunk's error is its arrival, timed from
  when the request's body left the client (an aiohttp trace hook; aiohttp only queues the headers until the body
  goes, so under a burst the headers' hook would count the client's own queueing), minus its recorded offset
  (TTFT), or its gap to the previous chunk minus the recorded gap. An unmeasured round opens the connections first.
  Client and server share the machine's cores. The rows give over how long the client sent a round's requests and
  over how long the server saw them arrive (its own clock, `helpers.control.stats`): each request's recorded timing
  starts when its first bytes arrive (noted in the connection's data callback, before the request waits in the
  event loop's queue behind the rest of the burst). The SDK sends about one request a millisecond (see the
  requests per second), slower than the server takes them, so a notebook's `asyncio.gather` does not make such a
  burst.
- **Record mode's timing**: the fidelity recordings replayed by one server, recorded through another in record
  mode (`--record --upstream`), one stream at a time; each recorded offset minus the one the upstream played. The
  recorder's clock starts when the request reaches it, before it forwards the request, so its TTFTs are a little
  longer than the upstream's; the gap error is what its relaying adds or loses between chunks.
- **Async speed-up**: `client.aio.models.generate_content`, one by one and all at once, on recordings answered
  after 1.0 s. *The server's addition* is the wall time of 100 concurrent 1.0-s requests, minus 1.0 s, minus the
  wall time of the same 100 requests recorded at 0 s (the SDK client's floor), medians of the rounds. The
  subtraction is rough (with a 1-s wait the client parses answers while others are still waiting, so it can come
  out below zero); the server's own clock, request arrival to first byte sent, is given beside it.
- **Capacity**: steps of concurrent streams, each 5 chunks over 2.5 s, until one step has an error (an exception, a
  status other than 200, a missing chunk) or the server's peak of requests in flight falls short of the step. The
  open-files limit is raised first, and the servers inherit it: with a soft limit of 1024 (a common default) the
  server held 1014 streams and the connections beyond failed (measured once, 2026-11-22). *Requests per second*:
  32 workers send non-streaming requests recorded at 0 s, one process, on the same cores as the server.
- **Rate limits**: each pattern sends all its requests at once, on its own cassette (an empty window each);
  `bench/rate_limits.py` says how each pattern works and how its steady rate is counted. The SDK's retry delays
  are its defaults divided by the server's speed, as every recorded delay is.
- **Timing helpers**: `bench/timing_overhead.py`'s functions (wrapped minus bare iteration, in memory).
- **nbval suite**: `python -m pytest notebooks` in a subprocess. `pytest` in CI runs it, and
  `tests/test_determinism.py` runs every notebook once more (about as long again).

Figures vary from run to run with the machine's load (it is shared); the targets are issue 6's.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="under a minute: fewer rounds, no nbval suite")
    parser.add_argument(
        "--rpm", type=int, default=10, help="the rate-limit benchmark's limit (default 10, as in 02_async)"
    )
    parser.add_argument("--speed", type=float, default=30.0, help="its server's --speed (default 30: a 2-s minute)")
    parser.add_argument("--nbval", action=argparse.BooleanOptionalAction, default=None, help="time the nbval suite")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"), help="results file")
    opts = parser.parse_args(argv)
    started = time.perf_counter()
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = load()
    open_files = raise_open_file_limit()
    with tempfile.TemporaryDirectory(prefix="workbook-bench-") as folder:
        rows = asyncio.run(measure_replay(Path(folder), opts))
    rows += timing_helper_rows(opts.quick)
    if opts.nbval if opts.nbval is not None else not opts.quick:
        rows.append(nbval_row())
    command = "python bench/run.py" + (" --quick" if opts.quick else "")
    text = table(rows)
    print(text)
    took = time.perf_counter() - started
    print(f"\n{command}: {took:.0f} s; written to {opts.out}")
    opts.out.write_text(
        f"# Benchmark results\n\n`{command} --rpm {opts.rpm} --speed {opts.speed:g}`, {date}, {took:.0f} s.\n\n"
        f"- Machine: {machine()}; load average {load_before} at the start, {load()} at the end; open-files limit "
        f"{open_files or 'not settable'}.\n"
        f"- Versions: {versions()}.\n\n{text}\n\n{NOTES}",
        encoding="utf-8",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
