"""Issue 26's figure: how faithfully a burst of 500 simultaneous streams is replayed, as a client process sees it.

    python bench/burst_bench.py [--streams 500] [--rounds 3] [--server-python PATH] [--only quiet loaded floor]

Unlike ``bench/pipeline_bench.py`` (which times each request from when aiohttp's trace hook says its body went to the
socket, on connections an unmeasured round opened first), the client here is a separate process that times each
stream as a notebook would: from just before its ``session.post``, one aiohttp session, 500 streams started by one
``asyncio.gather``. Its TTFT error is its TTFT minus the recorded TTFT of the recording that answered it, minus the
same for a lone stream (the median of 20 sent one at a time first, on the same session): what the burst adds.

Three servers, each a real ``python -m helpers.replay serve`` subprocess:

- *quiet*: the fidelity cassette of ``bench/replay_bench.py`` (500 recordings, TTFT 0.2-0.5 s, 10 chunks);
- *loaded*: the same, with two CPU-bound processes beside it, started by this script and stopped by their PIDs;
- *floor*: the same burst against recordings answered at once (every chunk at 0 s): what the client's own work and
  the server's least work add, the limit the other figures are judged against.

Each prints one markdown row (first round on connections the burst opens, then the later rounds on open
connections), with the load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from common import JSON_HEADERS, MODEL, payload, percentiles_ms, stream_exchange, write
from pipeline_bench import load, serve
from replay_bench import raw_session, write_cassettes

from helpers.replay.cassettes.cassette import Cassette

LONE_STREAMS = 20
"""Lone streams sent one at a time before the burst: their median error is the baseline subtracted."""


async def ttft(session: aiohttp.ClientSession, url: str) -> tuple[str, float, float]:
    """One stream's ``(response id, seconds from just before the request to its first chunk, seconds from just
    before the request to when its bytes went to the socket)``: the last is the client's own share (connecting,
    queueing behind the burst's other requests), which the server cannot see."""
    sent: dict[str, float] = {}
    start = time.perf_counter()
    request = session.post(
        url, params={"alt": "sse"}, data=payload("fidelity"), headers=JSON_HEADERS, trace_request_ctx=sent
    )
    async with request as reply:
        if reply.status != 200:
            raise RuntimeError(f"HTTP {reply.status}: {(await reply.text())[:200]}")
        async for line in reply.content:
            if line.startswith(b"data: "):
                first = time.perf_counter() - start
                rid = json.loads(line[6:])["responseId"]
                async for _ in reply.content:  # read the rest, as a client does
                    pass
                return rid, first, sent["sent"] - start
    raise RuntimeError("the stream had no chunk")


async def client(url: str, recorded: dict[str, float], streams: int, rounds: int) -> dict[str, list[float]]:
    """The client process's work: lone streams, then ``rounds`` bursts; each stream's error in seconds, by round
    kind (``"cold"``: the first burst, which opens its connections; ``"warm"``: later ones), and of each the part
    before its bytes left the client (``" sent"``) and after (``" after"``)."""
    endpoint = f"{url}/fidelity/v1/models/{MODEL}:streamGenerateContent"
    async with raw_session(traced=True) as session:
        lone, lone_sent = [], []
        for _ in range(LONE_STREAMS):
            rid, first, sent = await ttft(session, endpoint)
            lone.append(first - recorded[rid])
            lone_sent.append(sent)
        base, base_sent = statistics.median(lone), statistics.median(lone_sent)
        errors: dict[str, list[float]] = {
            f"{kind}{part}": [] for kind in ("cold", "warm") for part in ("", " sent", " after")
        }
        for round_ in range(rounds):
            kind = "cold" if round_ == 0 else "warm"
            answers = await asyncio.gather(*(ttft(session, endpoint) for _ in range(streams)))
            for rid, first, sent in answers:
                error, own = first - recorded[rid] - base, sent - base_sent
                errors[kind].append(error)
                errors[f"{kind} sent"].append(own)
                errors[f"{kind} after"].append(error - own)
            await asyncio.sleep(1.0)
    return errors


def run_client(url: str, recorded: dict[str, float], streams: int, rounds: int) -> dict[str, list[float]]:
    """:func:`client` in a separate process (this script with ``--client``); its errors."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(recorded, f)
    args = [sys.executable, __file__, "--client", url, f.name, str(streams), str(rounds)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, check=False)
    os.unlink(f.name)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout)


@contextlib.contextmanager
def cpu_hogs(n: int) -> Iterator[list[int]]:
    """``n`` CPU-bound processes for the duration of the block, stopped by their PIDs."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()  # by its own handle: this process started it
            p.wait()


def row(name: str, errors: dict[str, list[float]], before: str, after: str) -> str:
    def pct(samples: list[float]) -> str:
        p50, p95, top = percentiles_ms(samples)
        return f"p50/p95/max {p50:.1f}/{p95:.1f}/{top:.1f} ms"

    def part(kind: str, label: str) -> str:
        found = errors[kind]
        return (
            f"{label} ({len(found)} TTFTs) **{pct(found)}**; the client's own share, before its bytes left, "
            f"{pct(errors[f'{kind} sent'])}; the rest, from then to the first chunk, {pct(errors[f'{kind} after'])}"
        )

    text = part("cold", "first round") + ("; " + part("warm", "later rounds") if errors["warm"] else "")
    return f"| {name} | {text} | load {before} -> {after} |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", type=int, default=500)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--server-python", default=sys.executable)
    p.add_argument("--only", nargs="*", choices=["quiet", "loaded", "floor"], default=["quiet", "loaded", "floor"])
    p.add_argument("--client", nargs=4, metavar=("URL", "RECORDED", "STREAMS", "ROUNDS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.client:
        url, recorded_path, streams, rounds = args.client
        recorded = json.loads(Path(recorded_path).read_text())
        print(json.dumps(asyncio.run(client(url, recorded, int(streams), int(rounds)))))
        return
    folder = Path(tempfile.mkdtemp(prefix="burst-"))
    recordings = write_cassettes(folder)
    recorded = {rid: offsets[0] for rid, offsets in recordings.items()}
    instant = folder / "instant"
    instant.mkdir()
    write(instant, "fidelity", [stream_exchange("fidelity", [0.0] * 10, rid) for rid in recordings])
    assert len(Cassette.load(instant / "fidelity.json").exchanges) == len(recordings)
    zero = dict.fromkeys(recordings, 0.0)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores")
    print(f"| burst of {args.streams} streams: TTFT error vs a lone stream's, client-timed | result | load |")
    print("|---|---|---|")
    cases = {
        "quiet": ("quiet", folder, recorded, 0),
        "loaded": ("loaded (2 CPU-bound processes)", folder, recorded, 2),
        "floor": ("floor (recordings answered at once)", instant, zero, 0),
    }
    for name, where, times, hogs in (cases[case] for case in args.only):
        with serve(args.server_python, where) as url, cpu_hogs(hogs):
            before = load()
            errors = run_client(url, times, args.streams, args.rounds)
            print(row(name, errors, before, load()), flush=True)


if __name__ == "__main__":
    main()
