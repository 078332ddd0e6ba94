"""Command line of the room relay (a fixed contract: flags are added, never renamed).

    python -m helpers.classroom serve [--host H] [--port N] --seats N --seats-file F [--rpm R] [--tpm T]
                                      [--budget-usd B] [--live [--upstream URL]] [--cassettes DIR]
                                      [--certfile F --keyfile F]

Its first stdout line is exactly ``serving http://HOST:PORT`` (``https://`` with ``--certfile``), its second
``dashboard URL``: the word, a space, and the dashboard's URL, which carries its token. Then it runs until
interrupted (Ctrl+C, or SIGTERM where there is one). A seat's SDK uses its token (a line of ``F``) as the API key and
``http://HOST:PORT/<cassette>/`` as base URL, exactly as with the replay server; ``helpers.setup(..., room=URL,
seat=TOKEN)`` does this for a lesson. ``docs/classroom.md`` is the instructor's guide; :mod:`.relay` has the routes.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import ssl
import sys
from pathlib import Path

from aiohttp import web

from ..replay.cassettes.cassette import default_dir
from ..replay.cassettes.store import CassetteStore
from ..replay.pipeline.rate_limits import Limits
from ..replay.pipeline.socket_server import PortInUseError, bind
from ..replay.wire.api_keys import RedactingStream
from ..replay.wire.defaults import DEFAULT_UPSTREAM
from .backends import LiveUpstream
from .client import ROOM_PREFIX
from .meter import Meter
from .relay import Relay, RoomConfig
from .seats import SeatBook, SeatsFileError, load_tokens

try:  # uvloop where it installs (not on Windows): replayed timing holds better under thirty streaming seats
    from uvloop import run
except ImportError:
    from asyncio import run  # type: ignore[assignment]

KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
"""Where ``--live`` finds the instructor's key (the first one set)."""


def _whole(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _dollars(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of US dollars, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of US dollars above 0, got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m helpers.classroom", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run a room's relay: seats call through it, the instructor watches")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind: your LAN one in a room")
    serve.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default)")
    serve.add_argument("--seats", type=_whole, required=True, help="how many seats the room has")
    serve.add_argument("--seats-file", type=Path, required=True, help="one seat token a line; written when absent")
    serve.add_argument("--rpm", type=_whole, help="requests a minute per seat and model (default: no limit)")
    serve.add_argument("--tpm", type=_whole, help="tokens a minute per seat and model (default: no limit)")
    serve.add_argument("--budget-usd", type=_dollars, help="estimated spend per seat, US dollars (default: none)")
    serve.add_argument("--live", action="store_true", help="forward to the Gemini API with your GEMINI_API_KEY")
    serve.add_argument("--upstream", help=f"with --live: forward here instead (default {DEFAULT_UPSTREAM})")
    serve.add_argument("--cassettes", type=Path, help=f"replay these cassettes (default {default_dir()})")
    serve.add_argument("--certfile", type=Path, help="serve HTTPS with this certificate (PEM) ...")
    serve.add_argument("--keyfile", type=Path, help="... and this private key (PEM)")
    return p


class UsageError(ValueError):
    """Flags that cannot work together; the message says what to pass instead."""


def config(args: argparse.Namespace) -> tuple[SeatBook, RoomConfig, ssl.SSLContext | None]:
    """The seats, the relay's configuration and the TLS context (``None`` for plain HTTP) the flags ask for.

    Raises:
        UsageError: ``--upstream`` without ``--live``, ``--live`` without a key, half of a certificate pair, or a
            certificate that does not load.
        SeatsFileError: see :func:`.seats.load_tokens`.
    """
    if args.upstream and not args.live:
        raise UsageError("--upstream only applies with --live (replay plays the recordings, it forwards nothing).")
    live = None
    if args.live:
        key = next((os.environ[v] for v in KEY_VARIABLES if os.environ.get(v)), "")
        if not key:
            raise UsageError(
                "--live forwards the seats' calls with your API key: set GEMINI_API_KEY in this shell first (it never "
                "leaves the relay), or leave out --live to replay the recordings."
            )
        live = LiveUpstream(args.upstream or DEFAULT_UPSTREAM, key)
    context = None
    if args.certfile or args.keyfile:
        if not (args.certfile and args.keyfile):
            raise UsageError("--certfile and --keyfile go together: pass both, or neither for plain HTTP.")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(args.certfile, args.keyfile)
        except (OSError, ssl.SSLError) as e:
            raise UsageError(f"the certificate or key did not load ({e}); pass PEM files.") from None
    meter = Meter(Limits(args.rpm, args.tpm), args.budget_usd)
    book = SeatBook(load_tokens(args.seats_file, args.seats))
    store = CassetteStore(args.cassettes or default_dir())
    return book, RoomConfig(meter, store, live), context


async def serve(relay: Relay, host: str, port: int, context: ssl.SSLContext | None) -> None:
    """Serve the relay until interrupted; print the two contract lines once it accepts connections."""
    sock = bind(host, port)
    runner = web.AppRunner(relay.app(), access_log=None, handle_signals=False, handler_cancellation=True)
    await runner.setup()
    site = web.SockSite(runner, sock, ssl_context=context, backlog=1024)
    await site.start()
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    url = f"{'https' if context else 'http'}://{shown}:{bound_port}"
    print(f"serving {url}", flush=True)
    print(f"dashboard {url}/{ROOM_PREFIX}/dashboard?token={relay.instructor_token}", flush=True)
    mode = "live, with your key" if relay.config.live is not None else "replay"
    print(f"{len(relay.book.seats)} seats ({mode}); stop with Ctrl+C", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except NotImplementedError:  # Windows' event loops: Python's own handler, handing over to the loop
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        book, room, context = config(args)
    except (UsageError, SeatsFileError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sys.stderr = RedactingStream(sys.stderr)  # type: ignore[assignment]
    relay = Relay(book, room)
    try:
        run(serve(relay, args.host, args.port, context))
    except PortInUseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
