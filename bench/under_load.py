"""Run the test suite on a busy machine: CPU hogs beside it, as on a shared CI runner or a classroom laptop.

    python bench/under_load.py                 # 2 hogs, the whole suite (.venv/bin/python -m pytest), 3 runs
    python bench/under_load.py --runs 1 -- tests/test_replay.py -q

Each hog is a Python process spinning on one core. The hogs stop when the runs end, when this script is interrupted,
and in any case after ``--max-hours`` (each hog has its own deadline, so none outlives a killed parent for long).
Prints one line per run and exits non-zero if any run failed. Issue "Notebooks that hold" asks for three green runs
in a row with two hogs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOG = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


def start_hogs(count: int, max_s: float) -> list[subprocess.Popen[bytes]]:
    """Start ``count`` CPU-bound processes, each of which exits by itself after ``max_s`` seconds."""
    return [subprocess.Popen([sys.executable, "-c", HOG.format(seconds=max_s)]) for _ in range(count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hogs", type=int, default=2, help="CPU-bound processes to run beside the suite (2)")
    parser.add_argument("--runs", type=int, default=3, help="runs of the suite in a row (3)")
    parser.add_argument("--max-hours", type=float, default=2.0, help="a hog's own deadline, hours (2)")
    parser.add_argument("pytest_args", nargs="*", help="arguments for pytest (after --); default: the whole suite")
    args = parser.parse_args(argv)
    python = ROOT / ".venv" / "bin" / "python"
    command = [str(python if python.exists() else sys.executable), "-m", "pytest", *args.pytest_args]
    hogs = start_hogs(args.hogs, args.max_hours * 3600)
    failed = 0
    try:
        for run in range(1, args.runs + 1):
            started = time.monotonic()
            code = subprocess.run(command, cwd=ROOT, env=os.environ.copy()).returncode
            failed += code != 0
            verdict = "passed" if code == 0 else f"FAILED (exit {code})"
            print(f"run {run}/{args.runs} with {args.hogs} hogs: {verdict} in {time.monotonic() - started:.0f} s")
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
