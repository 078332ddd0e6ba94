"""Command line of the replay server (a fixed contract: flags are added, never renamed).

    python -m helpers.replay serve [--host 127.0.0.1] [--allow-remote] [--require-token] [--port N] [--cassettes DIR]
                                   [--speed S]
                                   [--record] [--upstream URL] [--local-files-batches] [--rpm N] [--tpm N]
                                   [--idle-timeout S] [--upload-ttl S] [--max-stored-bytes N]
                                   [--unmatched improvise|error]
    python -m helpers.replay synth --script FILE [--host H] [--allow-remote] [--port N] [--idle-timeout S]
    python -m helpers.replay author CASSETTE --prompt P --text T [--model M] [--stream] [--repeat N] ...
    python -m helpers.replay author-notebook notebooks/NN_name.ipynb [--keep]

``serve`` and ``synth`` print exactly ``serving http://HOST:PORT`` as their first stdout line, then run until SIGINT
or SIGTERM, or Ctrl+Break on Windows (or, with ``--watch-stdin``, until standard input closes: how ``helpers.setup``
ties a server to its kernel, and stops it, on every OS).
A ``--host`` that is not loopback is refused without ``--allow-remote``; with it, or with ``--require-token`` (how
``helpers.setup`` starts every server, so that another account on the machine cannot use it), ``serve`` prints a
second line, ``token TOKEN``, which every call must then send (``SECURITY.md``). ``serve`` redacts every API key it
was sent from what it writes to standard error (its log, :class:`.api_keys.RedactingStream`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import sys
from dataclasses import replace
from pathlib import Path

from ..models import FLASH, PROFILES
from .app.replay_server import CassetteStore, Mode, ReplayServer
from .cassettes.cassette import CassetteError, check_writable, default_dir
from .pipeline.guard import Guard
from .pipeline.rate_limits import Limits
from .pipeline.server_token import HEADER, RuntimeDirError, is_loopback
from .pipeline.socket_server import IDLE_TIMEOUT_S, PortInUseError, serve_forever
from .services.files_api import MAX_STORED_BYTES, UPLOAD_TTL_S, FileLimits
from .upstream.synthetic import Script, ScriptEntry, SyntheticUpstream
from .upstream.synthetic_openai import OpenAIUpstream
from .wire.api_keys import RedactingStream
from .wire.defaults import DEFAULT_UPSTREAM, TOKEN_VARIABLE, UNMATCHED_POLICIES, UPSTREAM_TOKEN_VARIABLE

try:
    # uvloop: a burst of 500 simultaneous streams replays with a third of asyncio's loop's TTFT error at the 95th
    # percentile (bench/pipeline_bench.py, bench/RESULTS.md). It has no Windows build (pyproject.toml installs it
    # where sys_platform != 'win32'); there asyncio's own loop (Proactor) serves.
    from uvloop import run as run_serving
except ImportError:
    run_serving = asyncio.run  # type: ignore[assignment]


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number greater than 0, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:  # NaN compares false with everything: test finiteness first
        raise argparse.ArgumentTypeError(f"must be a finite number greater than 0, got {text!r}")
    return value


def _limit(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text}")
    return value


def _token(variable: str) -> str | None:
    """A token given in the environment variable ``variable`` (``helpers.setup`` passes its servers' so), or ``None``.

    Raises:
        ValueError: it is not at least 20 letters, digits, ``_`` or ``-``.
    """
    token = os.environ.get(variable) or None
    if token is not None and not re.fullmatch(r"[A-Za-z0-9_-]{20,}", token):
        raise ValueError(
            f"{variable} must be at least 20 letters, digits, '_' or '-' (a dot separates a token from the API key "
            "in KEY.TOKEN)."
        )
    return token


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m helpers.replay", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def network(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
        cmd.add_argument(
            "--allow-remote",
            action="store_true",
            help="allow a --host reachable from other machines; every call then needs the printed token",
        )
        cmd.add_argument(
            "--require-token",
            action="store_true",
            help="every call needs the printed token, on loopback too (as the API key's suffix KEY.TOKEN, or a header)",
        )
        cmd.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default)")
        cmd.add_argument("--watch-stdin", action="store_true", help="also stop when standard input closes")
        cmd.add_argument(
            "--idle-timeout",
            type=_positive,
            default=IDLE_TIMEOUT_S,
            help=f"close a connection without a complete request head after S seconds (default {IDLE_TIMEOUT_S:g})",
        )

    serve = sub.add_parser("serve", help="replay cassettes (or record them) over Gemini's REST protocol")
    network(serve)
    serve.add_argument("--cassettes", type=Path, default=None, help=f"cassette folder (default: {default_dir()})")
    serve.add_argument("--speed", type=_positive, default=1.0, help="divide every recorded delay by S (default 1)")
    serve.add_argument("--record", action="store_true", help="forward to --upstream and record into the cassettes")
    serve.add_argument("--upstream", default=DEFAULT_UPSTREAM, help=f"record from here (default {DEFAULT_UPSTREAM})")
    serve.add_argument(
        "--local-files-batches",
        action="store_true",
        help="with --record: serve the Files and Batch APIs here as replay does, not upstream (for the synthetic one)",
    )
    serve.add_argument("--rpm", type=_limit, help="requests a minute per cassette and model (default: no limit)")
    serve.add_argument("--tpm", type=_limit, help="recorded tokens a minute per cassette and model (default: no limit)")
    serve.add_argument(
        "--upload-ttl",
        type=_positive,
        default=UPLOAD_TTL_S,
        help=f"forget an unfinished upload after S seconds without a chunk (default {UPLOAD_TTL_S:g})",
    )
    serve.add_argument(
        "--max-stored-bytes",
        type=_limit,
        default=MAX_STORED_BYTES,
        help=f"the most bytes of files and uploads held, all cassettes together (default {MAX_STORED_BYTES})",
    )

    serve.add_argument(
        "--unmatched",
        choices=UNMATCHED_POLICIES,
        default="error",
        help="in replay, answer a request no recording matches with a labelled offline stand-in (improvise) or the "
        "404 that names the nearest recording (error, the default)",
    )

    synth = sub.add_parser("synth", help="serve a synthetic stand-in of the Gemini API from a script of responses")
    network(synth)
    synth.add_argument("--script", type=Path, required=True, help="JSON script of responses (docs/cassettes.md)")

    author = sub.add_parser("author", help="author synthetic exchanges into a cassette through the real record path")
    author.add_argument("cassette", help="cassette name, e.g. 03_streaming")
    author.add_argument("--prompt", required=True, help="the user prompt, exactly as the notebook sends it")
    author.add_argument("--text", required=True, help="the response text the model should give")
    author.add_argument("--model", default=FLASH, choices=sorted(PROFILES), help=f"model id (default {FLASH})")
    author.add_argument("--stream", action="store_true", help="author a streamGenerateContent exchange")
    author.add_argument("--repeat", type=int, default=1, help="how many exchanges to author (a TTFT distribution)")
    author.add_argument(
        "--config",
        type=json.loads,
        default=None,
        help="GenerateContentConfig as JSON, e.g. '{\"temperature\": 0}'",
    )
    author.add_argument("--cassettes", type=Path, default=None, help="cassette folder (default: the workbook's)")
    author.add_argument("--ttft-s", type=_positive, default=None, help="median TTFT in seconds (default: the model's)")
    author.add_argument(
        "--tokens-per-s", type=_positive, default=None, help="output tokens per second (default: the model's)"
    )

    lesson = sub.add_parser(
        "author-notebook", help="re-author a lesson's synthetic cassette from its script, then refresh its outputs"
    )
    lesson.add_argument("notebook", type=Path, help="e.g. notebooks/01_sync.ipynb")
    lesson.add_argument("--keep", action="store_true", help="refresh the existing cassette instead of starting empty")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command in ("serve", "synth") and not is_loopback(args.host) and not args.allow_remote:
            raise ValueError(
                f"--host {args.host} is not a loopback address: it would let every machine on your network (and "
                "web pages through them) reach this server. Use --host 127.0.0.1, or pass --allow-remote too, and "
                f"send the token it prints in the {HEADER} header of every call."
            )
        if args.command == "serve":
            mode = Mode.REPLAY
            if args.record:
                mode = Mode.RECORD_LOCAL if args.local_files_batches else Mode.RECORD
            store = CassetteStore(args.cassettes or default_dir())
            if mode.records:
                check_writable(store.folder)  # before the first call is forwarded (and billed)
            files = FileLimits(upload_ttl_s=args.upload_ttl, max_stored_bytes=args.max_stored_bytes)
            remote = not is_loopback(args.host)
            limits = Limits(args.rpm, args.tpm)
            server = ReplayServer(
                store,
                args.speed,
                mode,
                args.upstream,
                limits,
                files,
                remote=remote,
                require_token=args.require_token,
                token=_token(TOKEN_VARIABLE),
                upstream_token=_token(UPSTREAM_TOKEN_VARIABLE),
                unmatched=args.unmatched,
            )
            app = server.app()
            sys.stderr = RedactingStream(sys.stderr)  # type: ignore[assignment]
            show = remote or args.require_token
            serving = serve_forever(app, args.host, args.port, args.watch_stdin, args.idle_timeout, show_token=show)
            run_serving(serving)
        elif args.command == "synth":
            upstream = SyntheticUpstream(Script.load(args.script))
            app = upstream.app(OpenAIUpstream(upstream).install)
            if args.require_token:  # helpers.setup's stand-in upstream: its recorder sends the token
                guard = Guard(token=_token(TOKEN_VARIABLE), require_token=True)
                guard.install(app)
                app.middlewares.insert(1, guard.middleware)  # after the error middleware, before all else
            show = args.require_token
            asyncio.run(serve_forever(app, args.host, args.port, args.watch_stdin, args.idle_timeout, show_token=show))
        elif args.command == "author-notebook":
            from .app.authoring import author_notebook

            print(f"authored {author_notebook(args.notebook, fresh=not args.keep)} and refreshed {args.notebook}")
        else:
            from ..proxies import keep_loopback_off_proxies
            from .app.authoring import author

            keep_loopback_off_proxies()  # its SDK client calls the recorder on loopback

            script = Script([ScriptEntry(args.prompt, [args.text], args.model)])
            base = PROFILES[args.model]
            profile = None
            if args.ttft_s or args.tokens_per_s:
                profile = replace(
                    base,
                    ttft_s=args.ttft_s or base.ttft_s,
                    tokens_per_s=args.tokens_per_s or base.tokens_per_s,
                    source="given on the command line by the author (python -m helpers.replay author)",
                )
            exchanges = asyncio.run(
                author(
                    args.cassettes or default_dir(),
                    args.cassette,
                    script,
                    args.model,
                    args.prompt,
                    stream=args.stream,
                    repeat=args.repeat,
                    config=args.config,
                    profile=profile,
                )
            )
            print(f"authored {len(exchanges)} synthetic exchange(s) into {args.cassette}")
    except (PortInUseError, RuntimeDirError, CassetteError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
