"""Issue 24's figure: what the room relay adds to time to first token, in a 30-seat replay run.

    python bench/classroom_bench.py [--seats 30] [--rounds 10] [--pairs 2]

Thirty seats stream the same recorded answer (first chunk at 0.2 s), each ``--rounds`` times, in two patterns:

- **a room at work**: each seat waits a random 0-2 s (seeded) before each of its streams, as learners run cells at
  their own pace, so streams overlap as they happen to;
- **lockstep**: all thirty streams start at the same instant, round after round: the worst case, where every request
  queues behind the others in the relay's one event loop.

Each pattern runs once straight from a replay server (``python -m helpers.replay serve``) and once through a relay
(``python -m helpers.classroom serve --seats 30``: each seat with its token and, behind the relay, its own replay
server), with the same raw aiohttp client in this process, one connection per seat, timing each stream from when its
request was sent. A TTFT error is the first chunk's arrival minus its recorded 0.2 s; the relay's overhead is the relay
run's error minus the direct run's, at the same percentile. Direct and relay runs alternate (``--pairs``), so a change
in the machine's load hits both. Prints one markdown row per pattern, with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from common import MODEL, RAW, Row, payload, percentiles_ms, stream_exchange, write
from replay_bench import raw_session, stream_arrivals

from helpers.classroom.client import SEAT_HEADER

TTFT_S = 0.2
OFFSETS_S = (TTFT_S, 0.25, 0.3)
TARGET_MS = 10.0


@contextlib.contextmanager
def serving(args: list[str]) -> Iterator[list[str]]:
    """A server subprocess started with ``args``; yields its first two stdout lines, stops it afterwards."""
    proc = subprocess.Popen([sys.executable, "-m", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = [proc.stdout.readline().strip()]
    try:
        if not lines[0].startswith("serving "):
            raise RuntimeError(f"the server did not start: {lines}")
        if args[0] == "helpers.classroom":
            lines.append(proc.stdout.readline().strip())
        yield lines
    finally:
        proc.terminate()
        proc.wait(timeout=60)


async def errors_s(url: str, tokens: list[str | None], rounds: int, lockstep: bool) -> list[float]:
    """TTFT errors (seconds) of ``rounds`` streams per seat, after one unmeasured stream per seat (which opens the
    connections and, through a relay, starts each seat's replay server)."""
    endpoint = f"{url}/room/v1beta/models/{MODEL}:streamGenerateContent"
    data = payload("room")
    sessions = [raw_session(traced=True) for _ in tokens]
    pauses = random.Random(24)

    async def stream(session: aiohttp.ClientSession, token: str | None) -> float:
        arrivals = await stream_arrivals(session, endpoint, data, {SEAT_HEADER: token} if token else None)
        return arrivals.chunks_s[0] - TTFT_S

    async def seat(session: aiohttp.ClientSession, token: str | None, waits: list[float]) -> list[float]:
        found = []
        for wait in waits:
            await asyncio.sleep(wait)
            found.append(await stream(session, token))
        return found

    try:
        await asyncio.gather(*(stream(s, t) for s, t in zip(sessions, tokens, strict=True)))
        if lockstep:
            found: list[float] = []
            for _ in range(rounds):
                found += await asyncio.gather(*(stream(s, t) for s, t in zip(sessions, tokens, strict=True)))
            return found
        waits = [[pauses.uniform(0, 2) for _ in range(rounds)] for _ in tokens]
        per_seat = await asyncio.gather(*(seat(s, t, w) for s, t, w in zip(sessions, tokens, waits, strict=True)))
        return [e for errors in per_seat for e in errors]
    finally:
        for session in sessions:
            await session.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seats", type=int, default=30)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--pairs", type=int, default=2)
    args = p.parse_args(argv)
    for lockstep in (False, True):
        load_before = os.getloadavg()[0]
        direct: list[float] = []
        relayed: list[float] = []
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            write(folder, "room", [stream_exchange("room", OFFSETS_S)])
            room = ["helpers.classroom", "serve", "--seats", str(args.seats), "--seats-file", str(folder / "seats")]
            for _ in range(args.pairs):
                with serving(["helpers.replay", "serve", "--port", "0", "--cassettes", str(folder)]) as lines:
                    direct += asyncio.run(errors_s(lines[0].split()[1], [None] * args.seats, args.rounds, lockstep))
                with serving([*room, "--cassettes", str(folder)]) as lines:
                    tokens: list[str | None] = list((folder / "seats").read_text().split())
                    relayed += asyncio.run(errors_s(lines[0].split()[1], tokens, args.rounds, lockstep))
        d50, d95, dmax = percentiles_ms(direct)
        r50, r95, rmax = percentiles_ms(relayed)
        pattern = "lockstep: all seats at the same instant" if lockstep else "a room at work: 0-2 s random pauses"
        row = Row(
            f"room relay's added TTFT, {args.seats} seats x {args.rounds} streams x {args.pairs} runs, {pattern} "
            f"({len(direct)} TTFTs each way, first chunk recorded at {TTFT_S:g} s)",
            f"TTFT error p50/p95/max direct {d50:.1f}/{d95:.1f}/{dmax:.1f} ms, through the relay {r50:.1f}/{r95:.1f}/"
            f"{rmax:.1f} ms: the relay adds {r50 - d50:.1f} ms at p50, {r95 - d95:.1f} ms at p95 (load average "
            f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after)",
            f"p95 < {TARGET_MS:g} ms" if not lockstep else "-",
            (r95 - d95 < TARGET_MS) if not lockstep else None,
            RAW,
        )
        met = {True: "yes", False: "**no**", None: "-"}[row.met]
        print(f"| {row.benchmark} | {row.result} | {row.target} | {met} | {row.client} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
