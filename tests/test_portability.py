"""Windows, checked on Linux: the replay, record, Files, Batch and setup() tests once more under a simulated
non-POSIX interpreter (``tests/nonposix/sitecustomize.py``), and a server that stops without a signal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import workbook

from .test_hygiene import posix_only_modules

ROOT = Path(__file__).resolve().parent.parent
SIMULATION = ROOT / "tests" / "nonposix"
UNDER_SIMULATION = [f"tests/test_{name}.py" for name in ("replay", "record", "files_batches", "workbook")]
"""The replay round-trip, record, Files and Batch, and setup() tests."""
SIMULATED_RUN_TIMEOUT_S = 780.0
"""Their run's bound: about 3 minutes on a loaded 2-core machine; under the suite's 15-minute net (pyproject.toml)."""

PROBE = """
import asyncio, json, os
import psutil  # another library: it still imports resource and pwd, as on Windows it imports its own modules
refused = []
for name in {modules!r}:
    try:
        exec(f"import {{name}}")
    except ModuleNotFoundError as e:
        refused.append(name if "simulated non-POSIX" in str(e) else f"{{name}}: {{e}}")
loop = asyncio.new_event_loop()
try:
    loop.add_signal_handler(2, print)
    handlers = "kept"
except NotImplementedError:
    handlers = "none"
print(json.dumps({{"refused": refused, "getuid": hasattr(os, "getuid"), "signal_handlers": handlers}}))
"""


def simulated_env() -> dict[str, str]:
    """This environment with the simulation first on ``PYTHONPATH``."""
    paths = [str(SIMULATION), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def test_the_simulation_takes_away_what_windows_lacks() -> None:
    modules = sorted(posix_only_modules())
    probe = PROBE.format(modules=modules)
    out = subprocess.run(
        [sys.executable, "-c", probe], env=simulated_env(), capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert json.loads(out) == {"refused": modules, "getuid": False, "signal_handlers": "none"}


def test_replay_record_files_batches_and_setup_pass_without_posix() -> None:
    """The same tests, in a fresh interpreter (and the servers they start) under the simulation: a POSIX-only import
    or call on any of their paths fails them, as it would on Windows."""
    command = [sys.executable, "-m", "pytest", *UNDER_SIMULATION, "-n", "0", "-q", "-p", "no:randomly"]
    try:
        run = subprocess.run(
            command, cwd=ROOT, env=simulated_env(), capture_output=True, text=True, timeout=SIMULATED_RUN_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as e:
        tail = (e.stdout or b"")[-3000:]
        pytest.fail(f"the simulated non-POSIX run took over {SIMULATED_RUN_TIMEOUT_S:g} s; it printed:\n{tail!r}")
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    printed = f"{run.stdout[-6000:]}\n{run.stderr[-2000:]}"
    assert run.returncode == 0, f"under the simulated non-POSIX interpreter:\n{printed}"
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary


def test_a_server_stops_cleanly_without_a_signal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows has no SIGTERM to send (``terminate()`` kills outright): ServerProcess.stop closes the server's stdin,
    and the server shuts down cleanly by itself."""
    server = workbook.ServerProcess(["serve", "--cassettes", str(tmp_path)])
    signals: list[str] = []
    monkeypatch.setattr(server.proc, "send_signal", lambda sig: signals.append(f"send_signal({sig})"))
    monkeypatch.setattr(server.proc, "terminate", lambda: signals.append("terminate()"))
    server.stop()
    assert (server.proc.returncode, signals) == (0, [])
    assert not server.log.exists(), "a clean stop leaves an empty log, which goes"
