"""The pre-flight doctor (``python -m helpers doctor``): ok on this machine, and each check failing when it should.

The checks run for real: a replay server is started and called, kernels are looked up as Jupyter looks them up, a
room relay is asked about its seat. Failures are made real too (a requirements file with a missing package, a
kernelspec pointing at another Python, a dead room, a live mode without a key), never by patching the check.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import types
from pathlib import Path

import pytest

from helpers import preflight
from helpers.preflight import FAIL, OK, WARN

from .rooms import relay

LINE = re.compile(r"(ok|warn|fail)\s+(\w+)\s+\S.*")
"""A finding's first line: its status, what was checked, what was found."""

CLEAN = ("WORKBOOK_MODE", "WORKBOOK_ROOM", "WORKBOOK_SEAT", "GEMINI_API_KEY", "GOOGLE_API_KEY", "WORKBOOK_CASSETTES")


def doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in CLEAN}
    return subprocess.run(
        [sys.executable, "-m", "helpers", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**environment, **(env or {})},
        check=False,
    )


def findings(out: str) -> dict[str, str]:
    """``{name: status}`` of the report's finding lines."""
    return {m[2]: m[1] for line in out.splitlines() if (m := LINE.fullmatch(line))}


def test_this_machine_passes_with_one_line_per_check_and_a_paste_line() -> None:
    done = doctor()
    assert done.returncode == 0, done.stdout + done.stderr
    found = findings(done.stdout)
    assert list(found) == ["python", "packages", "loopback", "proxies", "replay", "kernel", "disk"]
    assert FAIL not in found.values()
    last = done.stdout.splitlines()[-1]
    assert re.fullmatch(
        r"doctor \d{4}-\d\d-\d\d · \S+ \S+ · Python [\d.]+ · google-genai [\d.]+ · 7 ok, 0 warn, 0 fail", last
    )


def test_in_a_room_it_checks_the_relay_and_the_seat_and_fails_for_a_dead_one(tmp_path: Path) -> None:
    with relay(tmp_path / "seats.txt", "--seats", "2") as room:
        seat = room.seats[1]
        done = doctor(env={"WORKBOOK_ROOM": room.url, "WORKBOOK_SEAT": seat})
        assert done.returncode == 0 and findings(done.stdout)["room"] == OK
        assert "seat 2, replay mode" in done.stdout and done.stdout.rstrip().endswith("· seat 2")
        assert seat not in done.stdout, "the paste line goes to an instructor: no token in it"
        wrong = doctor("--room", room.url, "--seat", "not-a-seat-of-this-room-at-all")
        assert wrong.returncode == 1 and findings(wrong.stdout)["room"] == FAIL and "(401)" in wrong.stdout
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{free.getsockname()[1]}"
    done = doctor(env={"WORKBOOK_ROOM": dead, "WORKBOOK_SEAT": seat})
    assert done.returncode == 1
    assert "fail: room" in done.stdout.splitlines()[-1]
    assert "on the room's network" in done.stdout


def test_live_without_a_key_fails_and_a_key_is_never_shown() -> None:
    done = doctor(env={"WORKBOOK_MODE": "live"})
    assert done.returncode == 1 and findings(done.stdout)["key"] == FAIL
    assert "set GEMINI_API_KEY" in done.stdout
    key = "AIza" + "Sy" + "doctor-must-never-print-this-0000000"
    problems = ["model check: could not ask the API about gemini-3.8-flash (ConnectError: no network)"]
    assert preflight.check_live_models(lambda _url: problems).status == FAIL
    assert preflight.check_live_models(lambda _url: []).status == OK
    os.environ["GEMINI_API_KEY"] = key
    try:
        finding = preflight.check_key()
    finally:
        del os.environ["GEMINI_API_KEY"]
    assert finding.status == OK and key not in str(finding) and "GEMINI_API_KEY is set" in str(finding)


def test_packages_missing_fail_and_other_versions_warn(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "# pins\naiohttp==3.14.5 \\\n    --hash=sha256:00\n-e .\nnever-installed-package==1.0  # gone\n"
        "skipped-elsewhere==1.0 ; sys_platform == 'no-such-platform'\n"
    )
    assert preflight.pins(requirements) == {"aiohttp": "3.14.5", "never-installed-package": "1.0"}
    missing = preflight.check_packages(requirements)
    assert (
        missing.status == FAIL
        and "never-installed-package" in missing.found
        and "pip install --no-deps -r" in missing.todo
    )
    requirements.write_text("aiohttp==0.0.1\n")
    other = preflight.check_packages(requirements)
    assert other.status == WARN and "(pinned 0.0.1)" in other.found
    assert preflight.check_packages(tmp_path / "absent.txt").status == WARN


def test_in_colab_the_packages_are_checked_against_requirements_colab(monkeypatch: pytest.MonkeyPatch) -> None:
    """Colab keeps its own numpy and kernel packages (docs/colab.md): the workbook's pins for them are not its."""
    compared: list[Path] = []
    monkeypatch.setattr(preflight, "pins", lambda path: compared.append(path) or {})
    preflight.check_packages()
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    preflight.check_packages()
    assert compared == [preflight.REQUIREMENTS, preflight.REQUIREMENTS_COLAB]
    assert preflight.REQUIREMENTS_COLAB.is_file()
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    assert "Colab Secrets" in preflight.check_key().todo


def test_a_kernel_of_another_python_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "kernels" / "python3"
    spec.mkdir(parents=True)
    base = Path(sys.base_prefix) / ("python.exe" if os.name == "nt" else "bin/python3")
    argv = [str(base), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"}))
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    finding = preflight.check_kernel()
    assert finding.status == FAIL and "not this one" in finding.found and "ipykernel install --user" in finding.todo
    argv[0] = sys.executable
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"}))
    assert preflight.check_kernel().status == OK


def test_no_recordings_fails_replay_and_a_full_disk_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    finding = preflight.check_replay(tmp_path)
    assert finding.status == FAIL and "cannot read the recordings" in finding.found
    monkeypatch.setattr(preflight, "MIN_FREE_BYTES", 1 << 60)
    assert preflight.check_disk(tmp_path).status == FAIL


def test_proxy_variables_are_named_never_shown_and_judged_by_the_replay_call() -> None:
    secret = "http://learner:hunter2@127.0.0.1:9"
    done = doctor(env={"HTTPS_PROXY": secret, "HTTP_PROXY": secret})
    found = findings(done.stdout)
    assert "hunter2" not in done.stdout
    assert "HTTPS_PROXY" in done.stdout and "HTTP_PROXY" in done.stdout
    # Whatever the SDK does with a dead proxy, doctor's two lines agree with each other.
    assert (found["replay"], found["proxies"]) in ((OK, OK), (FAIL, WARN))
    assert done.returncode == (0 if found["replay"] == OK else 1)
