"""Issue 22's figures: the README's install from a fresh virtual environment, before and after, in one run.

    python bench/install_bench.py [--before REF] [--after REF] [--runs N]

Each install runs in a clean export of its commit (``git archive``) in a temporary folder, exactly as that commit's
README gives it: ``--before`` (default ``main``) with pip, ``--after`` (default ``HEAD``) with uv. Each is run once
untimed to warm its cache (pip's, uv's), then ``--runs`` times timed, each time from a fresh ``.venv``; the size is
``du`` of that ``.venv`` right after the install. A third row times the after install with ``UV_COMPILE_BYTECODE=1``
(``.pyc`` files compiled at install, as pip does and as ``.ci/run`` sets). Prints one markdown row per install
with the one-minute load average before and after it: the development machine is shared, so figures taken at a
high load are slower than a learner's laptop would be.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt"
AFTER = "python3 -m venv .venv && .venv/bin/pip install -q uv==0.13.9 && .venv/bin/uv sync --locked -q"


@dataclass(frozen=True)
class Install:
    """One way to install: a label, the commit whose files it installs, its shell command and extra variables."""

    label: str
    ref: str
    command: str
    env: dict[str, str]


def export(ref: str, into: Path) -> Path:
    """The files of commit ``ref`` (``git archive``) in a new folder under ``into``; returns that folder."""
    folder = into / ref.replace("/", "_")
    folder.mkdir()
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def install_once(install: Install, folder: Path) -> tuple[float, int]:
    """Run ``install`` in ``folder`` from no ``.venv``; returns (seconds, size of ``.venv`` in bytes).

    Raises:
        subprocess.CalledProcessError: the install failed (its output is in the exception).
    """
    shutil.rmtree(folder / ".venv", ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(install.command, shell=True, cwd=folder, env={**os.environ, **install.env}, check=True)
    took = time.perf_counter() - start
    return took, disk_usage(folder / ".venv")


def disk_usage(path: Path) -> int:
    """Bytes ``path`` takes on disk: ``du -sk`` where there is one, else the files' sizes (each inode once)."""
    if shutil.which("du"):
        du = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
        return int(du.stdout.split()[0]) * 1024
    seen: dict[tuple[int, int], int] = {}
    for file in path.rglob("*"):
        if file.is_file() and not file.is_symlink():
            stat = file.stat()
            seen[(stat.st_dev, stat.st_ino)] = stat.st_size
    return sum(seen.values())


def load() -> str:
    """The one-minute load average, where the OS has one."""
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "unknown"


def measure(install: Install, folder: Path, runs: int) -> str:
    """One markdown row: the warm-cache seconds (median of ``runs``, with each run) and the size, with the load."""
    install_once(install, folder)  # warms the cache; not counted
    load_before = load()
    results = [install_once(install, folder) for _ in range(runs)]
    load_after = load()
    seconds = [s for s, _ in results]
    each = ", ".join(f"{s:.1f}" for s in seconds)
    size_mb = results[-1][1] / 1e6
    return (
        f"| {install.label} | `{install.command}` | {statistics.median(seconds):.1f} s ({each}) | {size_mb:,.0f} MB "
        f"| {load_before} / {load_after} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="main", help="the commit installed the old way (pip)")
    parser.add_argument("--after", default="HEAD", help="the commit installed the new way (uv)")
    parser.add_argument("--runs", type=int, default=1, help="timed runs of each install")
    opts = parser.parse_args(argv)
    installs = [
        Install(f"before ({opts.before}, pip)", opts.before, BEFORE, {}),
        Install(f"after ({opts.after}, uv)", opts.after, AFTER, {}),
        Install(f"after ({opts.after}, uv, .pyc compiled)", opts.after, AFTER, {"UV_COMPILE_BYTECODE": "1"}),
    ]
    print(f"python {Path(sys.argv[0]).name} {' '.join(argv or sys.argv[1:])}, {time.strftime('%Y-%m-%d %H:%M UTC')}")
    print("\n| install | command | warm-cache seconds | .venv size | load (1 min) before / after |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        folders = {ref: export(ref, Path(tmp)) for ref in {i.ref for i in installs}}
        for install in installs:
            print(measure(install, folders[install.ref], opts.runs), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
