"""The pre-flight doctor: one screen that says whether this machine can run the workbook, and what to do if not.

Run ``python -m helpers doctor`` in a terminal (or ``helpers.doctor()`` in ``00_setup``) before a lesson or a workshop.
Each line is ``ok``, ``warn`` or ``fail`` with what was found and, when not ok, what to do; the command exits with
status 0 only when nothing failed (a warning does not stop you), and its last line is one a learner can paste to the
instructor. It checks, in order: Python's version, the installed packages against the pins in ``requirements.txt`` (in
Google Colab, ``requirements-colab.txt``: Colab's own kernel and numpy stay), that this machine's loopback works and
which proxy variables are set (names only: a proxy's URL may carry a password), that the replay server starts here and
answers a real SDK call, that Jupyter's kernel is this environment, free disk space, and then by mode: in live or record
mode, that an API key is set (never its value) and that the API serves the taught models (:mod:`helpers.models`); in a
classroom room, that the relay answers and knows the seat.

Nothing here is POSIX-only: it runs the same on Windows, macOS and Linux.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import colab, models
from .classroom.client import RoomError, room_request
from .paths import NOTEBOOKS_DIR
from .replay.cassettes.cassette import Cassette, CassetteError, RecordedRequest, default_dir
from .replay.wire.defaults import PLACEHOLDER_KEY
from .workbook import KEY_VARIABLES, ROOM_VARIABLE, SEAT_VARIABLE, ServerProcess, WorkbookError, check_models

MIN_PYTHON = (3, 11)
"""google-genai 3.6 installs on nothing older."""
REQUIREMENTS = NOTEBOOKS_DIR.parent / "requirements.txt"
REQUIREMENTS_COLAB = NOTEBOOKS_DIR.parent / "requirements-colab.txt"
"""What a Google Colab runtime installs on top of its own packages (``docs/colab.md``)."""
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
"""Proxy variables HTTP clients read (each also in lower case)."""
MIN_FREE_BYTES = 200 * 1024**2
"""Below this much free disk space, doctor fails: recordings, logs and pip's caches need room."""
LOW_FREE_BYTES = 1024**3
"""Below this much, doctor warns."""
CALL_TIMEOUT_MS = 30_000
"""How long the test call to the replay server may take, milliseconds."""
KERNEL_TIMEOUT_S = 30.0
"""How long asking a kernel's Python for its environment may take, seconds."""
PROBE_CASSETTE = "00_setup"
ASK = "paste the paste line below to your instructor"
"""The cassette whose first recorded call doctor replays."""

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Finding:
    """One line of the report.

    Attributes:
        status: ``"ok"``, ``"warn"`` or ``"fail"``.
        name: what was checked, one word (``"python"``, ``"replay"``, ...).
        found: what was found, one sentence.
        todo: what to do about it (empty when ok).
    """

    status: str
    name: str
    found: str
    todo: str = ""

    def __str__(self) -> str:
        line = f"{self.status:4}  {self.name:9} {self.found}"
        return f"{line}\n{'':16}-> {self.todo}" if self.todo else line


@dataclass
class Report:
    """Everything doctor found, in order; ``str(report)`` is the screen it prints.

    Attributes:
        findings: one :class:`Finding` per check.
        seat: the seat's number in a classroom room, for the paste line (``None`` alone).
    """

    findings: list[Finding] = field(default_factory=list)
    seat: int | None = None

    @property
    def ok(self) -> bool:
        """True when nothing failed (warnings allowed): the command's exit status is then 0."""
        return all(f.status != FAIL for f in self.findings)

    def count(self, status: str) -> int:
        return sum(f.status == status for f in self.findings)

    @property
    def paste_line(self) -> str:
        """One line for the instructor: the date, the platform, Python and SDK versions, the counts, and the names
        of what warned or failed. It holds no key, token, path or address."""
        try:
            sdk = importlib.metadata.version("google-genai")
        except importlib.metadata.PackageNotFoundError:
            sdk = "missing"
        parts = [
            f"doctor {dt.date.today().isoformat()}",
            f"{platform.system()} {platform.machine()}",
            f"Python {platform.python_version()}",
            f"google-genai {sdk}",
            f"{self.count(OK)} ok, {self.count(WARN)} warn, {self.count(FAIL)} fail",
        ]
        for status in (FAIL, WARN):
            names = [f.name for f in self.findings if f.status == status]
            if names:
                parts.append(f"{status}: {', '.join(names)}")
        if self.seat is not None:
            parts.append(f"seat {self.seat}")
        return " · ".join(parts)

    def __str__(self) -> str:
        verdict = "everything needed works" if self.ok else "something needed does not work: see the fail lines"
        lines = [str(f) for f in self.findings]
        ask = f"{verdict}. Paste this line to your instructor if you need help:"
        return "\n".join([*lines, "", ask, self.paste_line])


def check_python() -> Finding:
    """Python's version against :data:`MIN_PYTHON`."""
    version = platform.python_version()
    if sys.version_info[:2] < MIN_PYTHON:
        need = ".".join(map(str, MIN_PYTHON))
        return Finding(FAIL, "python", f"Python {version}", f"install Python {need} or newer and make the venv with it")
    return Finding(OK, "python", f"Python {version} (environment {Path(sys.prefix).name})")


def pins(path: Path = REQUIREMENTS) -> dict[str, str]:
    """The exact pins of a requirements file that apply to this platform: ``{name: version}``.

    Reads ``name==version`` lines (extras, environment markers, ``\\`` continuations and ``--hash`` options
    allowed); skips options (``-e .``, ``--index-url``) and comments.

    Raises:
        OSError: the file cannot be read.
    """
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    found: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].split(" --", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        exact = [s.version for s in requirement.specifier if s.operator == "=="]
        if exact and (requirement.marker is None or requirement.marker.evaluate()):
            found[canonicalize_name(requirement.name)] = exact[0]
    return found


def check_packages(path: Path | None = None) -> Finding:
    """The installed packages against the pins of ``path``: missing ones fail, other versions warn. By default
    ``requirements.txt``, or in Google Colab ``requirements-colab.txt`` (:func:`helpers.colab.running_in_colab`)."""
    if path is None:
        path = REQUIREMENTS_COLAB if colab.running_in_colab() else REQUIREMENTS
    try:
        pinned = pins(path)
    except OSError:
        return Finding(WARN, "packages", f"no {path.name} beside the workbook to compare with", "run doctor in a clone")
    missing, other = [], []
    for name, version in pinned.items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
            continue
        if installed != version:
            other.append(f"{name} {installed} (pinned {version})")
    install = f"{sys.executable} -m pip install --no-deps -r {path}"
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        return Finding(FAIL, "packages", f"{len(missing)} of {len(pinned)} pinned packages missing: {shown}", install)
    if other:
        shown = ", ".join(other[:3]) + (f" and {len(other) - 3} more" if len(other) > 3 else "")
        return Finding(WARN, "packages", f"{len(other)} not at their pins: {shown}", install)
    return Finding(OK, "packages", f"all {len(pinned)} pinned packages installed at their pins")


def check_loopback() -> Finding:
    """Whether a connection to this machine's loopback (127.0.0.1) goes through, as every replay call's does."""
    try:
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            with socket.create_connection(server.getsockname(), timeout=5):
                pass
    except OSError as e:
        return Finding(
            FAIL,
            "loopback",
            f"cannot connect to 127.0.0.1 ({e.strerror or e})",
            "a firewall or security tool blocks local connections: allow Python on 127.0.0.1 (ask your IT desk)",
        )
    return Finding(OK, "loopback", "127.0.0.1 accepts connections")


def proxy_variables() -> list[str]:
    """The proxy variables set in this environment, by name (never their values)."""
    return sorted(name for name, value in os.environ.items() if name.upper() in PROXY_VARIABLES and value)


def check_replay(folder: Path | None = None) -> Finding:
    """Start a replay server as ``helpers.setup`` does, and make a real SDK call to it: the first recorded
    ``generateContent`` of :data:`PROBE_CASSETTE`, whose answer must come back as recorded."""
    from google import genai
    from google.genai import types

    folder = folder or default_dir()
    try:
        cassette = Cassette.load(folder / f"{PROBE_CASSETTE}.json")
    except CassetteError as e:
        return Finding(FAIL, "replay", f"cannot read the recordings ({e})", "restore notebooks/cassettes with git")
    probe = next((e for e in cassette.exchanges if not e.is_stream and _plain_call(e.request)), None)
    if probe is None:
        return Finding(FAIL, "replay", f"{PROBE_CASSETTE}.json has no plain generateContent call to replay", "")
    model = probe.request["path"].split("/", 1)[1].split(":", 1)[0]
    prompt = probe.request["body"]["contents"][0]["parts"][0]["text"]
    started = time.monotonic()
    try:
        server = ServerProcess(["serve", "--cassettes", str(folder)])
    except WorkbookError as e:
        return Finding(FAIL, "replay", f"the replay server did not start: {e}", ASK)
    try:
        options = types.HttpOptions(
            base_url=f"{server.url}/{PROBE_CASSETTE}/",
            timeout=CALL_TIMEOUT_MS,
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        with genai.Client(api_key=PLACEHOLDER_KEY, http_options=options) as client:
            answer = client.models.generate_content(model=model, contents=prompt)
    except Exception as e:
        names = proxy_variables()
        todo = (
            f"{', '.join(names)} is set: add 127.0.0.1,localhost to NO_PROXY, or unset it for the workbook"
            if names
            else ASK
        )
        return Finding(FAIL, "replay", f"an SDK call to the replay server failed ({type(e).__name__}: {e})", todo)
    finally:
        server.stop()
    expected = json.loads(probe.body_bytes)["candidates"][0]["content"]["parts"][0]["text"]
    if answer.text != expected:
        return Finding(FAIL, "replay", "the replay server answered, but not with the recorded text", "report it")
    took = time.monotonic() - started
    return Finding(OK, "replay", f"a replay server started and answered an SDK call in {took:.1f} s")


def _plain_call(request: RecordedRequest) -> bool:
    """Whether a recorded request is a plain ``generateContent`` of one text part, as ``generate_content(model=M,
    contents="...")`` sends it."""
    body = request.get("body")
    if not request["path"].endswith(":generateContent") or not isinstance(body, dict) or set(body) != {"contents"}:
        return False
    contents = body["contents"]
    return len(contents) == 1 and list(contents[0].get("parts", [{}])[0]) == ["text"]


def check_proxies(replay: Finding) -> Finding:
    """Which proxy variables are set, and whether replay worked with them (``replay``, :func:`check_replay`)."""
    names = proxy_variables()
    if not names:
        return Finding(OK, "proxies", "no proxy variables set")
    found = f"{', '.join(names)} set"
    if replay.status == OK:
        return Finding(OK, "proxies", f"{found}; calls to this machine bypass them (the replay call worked)")
    return Finding(
        WARN,
        "proxies",
        f"{found}; the replay call failed, perhaps through the proxy",
        "add 127.0.0.1,localhost to NO_PROXY before starting Jupyter",
    )


def check_kernel() -> Finding:
    """Whether the lessons' Jupyter kernel (``python3``) runs this environment, where ``helpers`` is installed."""
    if "ipykernel" in sys.modules:
        return Finding(
            OK, "kernel", f"this notebook's kernel runs the workbook's environment ({Path(sys.prefix).name})"
        )
    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

        spec = KernelSpecManager().get_kernel_spec("python3")
    except (ImportError, NoSuchKernel) as e:
        return Finding(
            FAIL, "kernel", f"Jupyter has no python3 kernel here ({e})", f"{sys.executable} -m pip install ipykernel"
        )
    python = spec.argv[0]
    start = f"start JupyterLab from this environment: {sys.executable} -m jupyter lab"
    if python in ("python", "python3", "{python}"):
        return Finding(OK, "kernel", "the python3 kernel runs the Python that starts Jupyter", start)
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print(sys.prefix)"],
            capture_output=True,
            text=True,
            timeout=KERNEL_TIMEOUT_S,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        out = f"nothing that runs ({type(e).__name__})"
    if Path(out) == Path(sys.prefix):
        return Finding(OK, "kernel", f"the python3 kernel runs this environment ({Path(sys.prefix).name})")
    return Finding(
        FAIL,
        "kernel",
        f"the python3 kernel ({spec.resource_dir}) runs {python}, whose environment is {out}, not this one",
        f"{sys.executable} -m ipykernel install --user --name python3 --display-name 'Python 3 (ipykernel)'",
    )


def check_disk(folder: Path = NOTEBOOKS_DIR) -> Finding:
    """Free disk space where the workbook is."""
    free = shutil.disk_usage(folder if folder.exists() else Path.cwd()).free
    found = f"{free / 1024**3:.1f} GB free"
    if free < MIN_FREE_BYTES:
        return Finding(FAIL, "disk", found, "free some disk space: the workbook needs a few hundred MB to run")
    if free < LOW_FREE_BYTES:
        return Finding(WARN, "disk", found, "free some disk space before a workshop (1 GB is comfortable)")
    return Finding(OK, "disk", found)


def check_key() -> Finding:
    """Live and record mode: whether an API key is set (which variable, never its value)."""
    names = [n for n in KEY_VARIABLES if os.environ.get(n)]
    if not names:
        where = "set GEMINI_API_KEY in the shell that starts Jupyter"
        if colab.running_in_colab():
            where = "add GEMINI_API_KEY to Colab Secrets (the key icon) with notebook access, run the setup cell"
        return Finding(FAIL, "key", "no API key set (GEMINI_API_KEY)", f"{where}, or unset WORKBOOK_MODE to replay")
    return Finding(OK, "key", f"{names[0]} is set (its value is not shown)")


def check_live_models(ask: Callable[[str | None], list[str]] = check_models) -> Finding:
    """Live and record mode: whether the API serves every taught model (:data:`helpers.models.MODELS`)."""
    problems = ask(None)
    if problems:
        return Finding(FAIL, "models", "; ".join(problems), "check your key and network, then run doctor again")
    return Finding(OK, "models", f"the API serves {', '.join(models.MODELS)}")


def check_room(room: str, seat: str) -> tuple[Finding, int | None]:
    """In a classroom room: whether the relay answers and knows this seat; returns the seat's number too."""
    try:
        info = room_request(room, seat, "GET", "seat")
    except RoomError as e:
        todo = "check WORKBOOK_ROOM and WORKBOOK_SEAT against what your instructor gave you"
        if e.code is None:
            todo = "check that this machine is on the room's network and the relay runs (ask your instructor)"
        return Finding(FAIL, "room", str(e), todo), None
    number = info.get("seat")
    return Finding(OK, "room", f"the relay answers: seat {number}, {info.get('mode')} mode"), number


def doctor(*, room: str | None = None, seat: str | None = None) -> Report:
    """Check this machine for the workbook and print the report (see the module docstring); introduced in
    ``00_setup``. Also ``python -m helpers doctor``.

    Args:
        room: a classroom relay to check (default ``$WORKBOOK_ROOM``).
        seat: the seat token to check it with (default ``$WORKBOOK_SEAT``).

    Returns:
        The :class:`Report`; ``report.ok`` is True when nothing failed.
    """
    report = Report()
    report.findings += [check_python(), check_packages(), check_loopback()]
    replay = check_replay()
    report.findings += [check_proxies(replay), replay, check_kernel(), check_disk()]
    mode = os.environ.get("WORKBOOK_MODE", "").strip().lower() or "replay"
    if mode in ("live", "record"):
        key = check_key()
        report.findings.append(key)
        if key.status == OK:
            report.findings.append(check_live_models())
    room = room or os.environ.get(ROOM_VARIABLE) or None
    seat = seat or os.environ.get(SEAT_VARIABLE) or None
    if room or seat:
        if room and seat:
            finding, report.seat = check_room(room, seat)
        else:
            finding = Finding(FAIL, "room", "only one of WORKBOOK_ROOM and WORKBOOK_SEAT is set", "set both or neither")
        report.findings.append(finding)
    print(report)
    return report
