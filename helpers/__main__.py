"""The workbook's own commands (each prints what it found; bad input is one line saying what to do).

    python -m helpers doctor [--room URL --seat TOKEN]   check this machine (exit 0 when nothing needed fails)
    python -m helpers progress [--reset]                 exercises done per lesson, or forget them all

The replay server has its own: ``python -m helpers.replay ...``; the classroom relay too: ``python -m
helpers.classroom serve ...``.
"""

from __future__ import annotations

import argparse
import sys


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m helpers", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    doctor = sub.add_parser("doctor", help="check that this machine can run the workbook, and say what to do if not")
    doctor.add_argument("--room", help="a classroom relay to check (default: $WORKBOOK_ROOM)")
    doctor.add_argument("--seat", help="your seat token (default: $WORKBOOK_SEAT)")
    progress = sub.add_parser("progress", help="show the exercises you have done, per lesson")
    progress.add_argument("--reset", action="store_true", help="forget every recorded outcome")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "doctor":
        from .preflight import doctor

        return 0 if doctor(room=args.room, seat=args.seat).ok else 1
    from . import progress

    try:
        if args.reset:
            progress.reset()
            print(f"progress forgotten ({progress.progress_file()} removed)")
        else:
            print(progress.table(progress.summary()))
            print(f"(kept in {progress.progress_file()})")
    except progress.ProgressError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
