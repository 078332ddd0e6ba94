"""helpers.setup in Google Colab: the key comes from Colab Secrets in live and record mode, is never written, and
replay runs as on a laptop.

Colab cannot run here, so it is simulated as far as it goes: a stand-in ``google.colab`` package whose ``userdata``
behaves as Colab's (``get`` returns a secret or raises ``SecretNotFoundError`` / ``NotebookAccessError``). The
in-process tests put it in ``sys.modules``, as Colab's kernel has it before any cell runs; the end-to-end ones put it
on ``sys.path`` of a fresh interpreter, which imports it first as Colab's kernel does, then runs a lesson's setup.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import pytest
from google import genai

import helpers
from helpers import colab, workbook

from .colab_stub import SECRET, files_holding, write_stub
from .conftest import PROMPT, TEXT, Server, generate_exchange, write_cassette

Secrets = dict[str, tuple[str, bool]]
"""A stand-in Colab Secrets panel: name -> (value, whether this notebook may read it)."""


class SecretNotFoundError(Exception):
    """As ``google.colab.userdata.SecretNotFoundError``."""


class NotebookAccessError(Exception):
    """As ``google.colab.userdata.NotebookAccessError``."""


def userdata_module(secrets: Secrets, asked: list[str]) -> types.ModuleType:
    """A ``google.colab.userdata`` stand-in serving ``secrets``; each name asked for is appended to ``asked``."""

    def get(key: str) -> str:
        asked.append(key)
        if key not in secrets:
            raise SecretNotFoundError(f"Secret {key} does not exist.")
        value, access = secrets[key]
        if not access:
            raise NotebookAccessError(f"Notebook does not have access to secret {key}")
        return value

    module = types.ModuleType("google.colab.userdata")
    module.SecretNotFoundError = SecretNotFoundError  # type: ignore[attr-defined]
    module.NotebookAccessError = NotebookAccessError  # type: ignore[attr-defined]
    module.get = get  # type: ignore[attr-defined]
    return module


@pytest.fixture
def in_colab(env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Secrets], list[str]]]:
    """Make this process look like a Colab kernel whose Secrets panel holds the given secrets; returns the names
    ``userdata.get`` was asked for. Live mode's model check is replaced by a recorder (no network here)."""

    def enter(secrets: Secrets) -> list[str]:
        asked: list[str] = []
        package = types.ModuleType("google.colab")
        package.userdata = userdata_module(secrets, asked)  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "google.colab", package)
        monkeypatch.setitem(sys.modules, "google.colab.userdata", package.userdata)  # type: ignore[attr-defined]
        monkeypatch.setattr(workbook, "check_models", lambda base_url, token=None: [])
        return asked

    yield enter


def test_colab_is_recognised_from_the_runtime_not_from_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert not colab.running_in_colab()
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert colab.running_in_colab()


@pytest.mark.parametrize("name", ["GEMINI_API_KEY", "GOOGLE_API_KEY"])
def test_live_mode_reads_the_key_from_colab_secrets_into_the_environment_only(
    in_colab: Callable[[Secrets], list[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
) -> None:
    asked = in_colab({name: (SECRET, True)})
    monkeypatch.setenv("WORKBOOK_MODE", "live")
    session = helpers.setup("07_demo")
    assert os.environ[name] == SECRET, "the SDK reads the key from the variable of the secret's name"
    other = {"GEMINI_API_KEY", "GOOGLE_API_KEY"} - {name}
    assert not any(os.environ.get(v) for v in other), "only one key variable: the SDK warns when both are set"
    assert asked == list(colab.SECRET_NAMES[: colab.SECRET_NAMES.index(name) + 1])
    out, err = capsys.readouterr()
    assert out == f"{session.describe()}\n" and err == ""
    assert SECRET not in repr(session)


def test_a_key_in_the_environment_wins_and_secrets_are_not_asked(
    in_colab: Callable[[Secrets], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = in_colab({"GEMINI_API_KEY": (SECRET, True)})
    monkeypatch.setenv("WORKBOOK_MODE", "live")
    monkeypatch.setenv("GOOGLE_API_KEY", "set-in-a-cell")
    helpers.setup("07_demo")
    assert asked == [] and os.environ["GOOGLE_API_KEY"] == "set-in-a-cell" and "GEMINI_API_KEY" not in os.environ


def test_replay_in_colab_runs_as_on_a_laptop_without_asking_for_a_secret(
    in_colab: Callable[[Secrets], list[str]], env: Path
) -> None:
    asked = in_colab({"GEMINI_API_KEY": (SECRET, True)})
    write_cassette(env, "07_demo", [generate_exchange(PROMPT, TEXT, 0.0)])
    helpers.setup("07_demo")
    key, _, token = os.environ["GEMINI_API_KEY"].partition(workbook.TOKEN_SEPARATOR)
    assert asked == [] and key == workbook.PLACEHOLDER_KEY and token, "replay's placeholder, with the server's token"
    assert genai.Client().models.generate_content(model=helpers.FLASH, contents=PROMPT).text == TEXT


def test_going_live_after_replay_in_one_session_takes_the_secret_not_replays_placeholder(
    in_colab: Callable[[Secrets], list[str]], env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_colab({"GEMINI_API_KEY": (SECRET, True)})
    write_cassette(env, "07_demo", [generate_exchange(PROMPT, TEXT, 0.0)])
    helpers.setup("07_demo")
    monkeypatch.setenv("WORKBOOK_MODE", "live")  # as `%env WORKBOOK_MODE=live` in the same Colab session
    helpers.setup("07_demo")
    assert os.environ["GEMINI_API_KEY"] == SECRET


@pytest.mark.parametrize(
    ("secrets", "says"),
    [
        ({}, "in Secrets (the key icon in Colab's left sidebar), add a secret named GEMINI_API_KEY with your key"),
        ({"GEMINI_API_KEY": (SECRET, False)}, "this notebook may not read the secret GEMINI_API_KEY: in Secrets"),
        ({"GOOGLE_API_KEY": ("  ", True)}, "the secret GOOGLE_API_KEY is empty: in Secrets"),
    ],
)
def test_no_usable_secret_is_one_line_saying_how_to_add_one(
    in_colab: Callable[[Secrets], list[str]], monkeypatch: pytest.MonkeyPatch, secrets: Secrets, says: str
) -> None:
    in_colab(secrets)
    monkeypatch.setenv("WORKBOOK_MODE", "record")
    with pytest.raises(helpers.WorkbookError) as raised:
        helpers.setup("07_demo")
    message = str(raised.value)
    assert message.startswith("WORKBOOK_MODE=record needs your API key: ") and says in message
    assert "\n" not in message and SECRET not in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__, "no traceback through userdata"
    assert not workbook._servers, "nothing started before the key was found"


def test_a_secret_that_cannot_be_read_is_skipped_for_the_other_name(
    in_colab: Callable[[Secrets], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    in_colab({"GEMINI_API_KEY": ("old", False), "GOOGLE_API_KEY": (SECRET, True)})
    monkeypatch.setenv("WORKBOOK_MODE", "live")
    helpers.setup("07_demo")
    assert os.environ["GOOGLE_API_KEY"] == SECRET


def test_a_secrets_failure_is_one_line_not_a_traceback(
    in_colab: Callable[[Secrets], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    in_colab({})

    def timed_out(key: str) -> str:
        raise TimeoutError(key)

    monkeypatch.setattr(sys.modules["google.colab.userdata"], "get", timed_out)
    monkeypatch.setenv("WORKBOOK_MODE", "live")
    with pytest.raises(helpers.WorkbookError, match=r"Secrets did not answer for GEMINI_API_KEY \(TimeoutError\)"):
        helpers.setup("07_demo")


# What the learner reads: the install cell in the README and docs/colab.md, and each lesson's note on Colab.

ROOT = Path(__file__).resolve().parent.parent


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)


def test_the_readme_shows_docs_colab_install_cell_verbatim() -> None:
    (install,) = [block for block in python_blocks(ROOT / "docs" / "colab.md") if "git clone" in block]
    assert install in python_blocks(ROOT / "README.md")
    assert 'REPO_URL = ""' in install, "a placeholder the learner fills in: the project publishes no address"


@pytest.mark.parametrize("lesson", sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.stem)
def test_each_lessons_first_cell_says_what_differs_in_colab(lesson: Path) -> None:
    first = nbformat.read(lesson, as_version=4).cells[0]
    assert (
        first.cell_type == "markdown"
        and "**In Google Colab:** run the cells of [docs/colab.md](../docs/colab.md)" in first.source
    )
    assert (
        "top-level `await` works and `asyncio.run` does not" in first.source
        and "colabtools/issues/3720" in first.source
    )
    assert 'print(..., end="", flush=True)' in first.source, "how streamed text shows there"


# End to end: a fresh interpreter with the stand-in google.colab on its path, as a Colab runtime would run a lesson.

LESSON = """
import os
import google.colab  # Colab's kernel imports it before any cell runs
from google.colab import userdata
from google import genai
import helpers
from helpers import workbook

if os.environ["WORKBOOK_MODE"] == "live":  # the real API is out of reach here: record the model check instead
    workbook.check_models = lambda base_url, token=None: [f"model check skipped for {base_url}"]
session = helpers.setup("07_demo")
key = os.environ.get("GEMINI_API_KEY", "").partition(workbook.TOKEN_SEPARATOR)[0]  # record mode adds a token
print("key from Secrets:", key == userdata.get("GEMINI_API_KEY"))
if session.mode == "record":
    client = genai.Client()
    print(client.models.generate_content(model=helpers.FLASH, contents="Why is the sky blue?").text)
"""


def run_in_simulated_colab(tmp_path: Path, mode: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """Run :data:`LESSON` in a fresh interpreter whose ``google.colab`` is the stand-in, holding :data:`SECRET` as
    ``GEMINI_API_KEY``. Everything it writes goes under ``tmp_path`` (cassettes, logs, runtime files)."""
    stub = write_stub(tmp_path / "colab-stub", {"GEMINI_API_KEY": (SECRET, True)})
    for folder in ("cassettes", "tmp", "runtime"):
        (tmp_path / folder).mkdir(mode=0o700, exist_ok=True)
    environment = {
        k: v for k, v in os.environ.items() if k not in {"GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL"}
    }
    environment |= {
        "PYTHONPATH": str(stub),
        "WORKBOOK_MODE": mode,
        "WORKBOOK_CASSETTES": str(tmp_path / "cassettes"),
        "TMPDIR": str(tmp_path / "tmp"),
        "XDG_RUNTIME_DIR": str(tmp_path / "runtime"),
        **variables,
    }
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(LESSON)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_live_mode_in_simulated_colab_takes_the_secret_and_writes_it_nowhere(tmp_path: Path) -> None:
    done = run_in_simulated_colab(tmp_path, "live")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "mode: live · calls go to the Gemini API with your key · nothing is recorded",
        "model check skipped for None",
        "key from Secrets: True",
    ]
    assert SECRET not in done.stdout + done.stderr
    assert files_holding(tmp_path, SECRET, outside=tmp_path / "colab-stub") == []


def test_record_mode_in_simulated_colab_sends_the_secret_upstream_and_keeps_it_out_of_the_cassette(
    tmp_path: Path, synthetic_upstream: Server
) -> None:
    done = run_in_simulated_colab(tmp_path, "record", WORKBOOK_UPSTREAM=synthetic_upstream.url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "mode: record · cassette: 07_demo · refreshed from the upstream as cells run"
    assert lines[1:] == ["key from Secrets: True", TEXT], "the model check at the stand-in passed, then the call"
    (exchange,) = json.loads((tmp_path / "cassettes" / "07_demo.json").read_text())["exchanges"]
    assert exchange["request"]["body"]["contents"][0]["parts"][0]["text"] == PROMPT
    assert SECRET not in done.stdout + done.stderr
    assert files_holding(tmp_path, SECRET, outside=tmp_path / "colab-stub") == []


@pytest.fixture
def synthetic_upstream(tmp_path: Path) -> Iterator[Server]:
    """A synthetic stand-in of the Gemini API on loopback answering :data:`PROMPT` with :data:`TEXT`."""
    script = tmp_path / "upstream.json"
    script.write_text(json.dumps({"responses": [{"prompt": "sky", "text": TEXT}]}))
    with (tmp_path / "upstream.log").open("w") as log:  # under tmp_path: searched for the key like the rest
        proc = subprocess.Popen(
            [sys.executable, "-m", "helpers.replay", "synth", "--script", str(script), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    assert proc.stdout is not None
    first = proc.stdout.readline().strip()
    if not first.startswith("serving "):
        proc.kill()
        raise AssertionError(f"the synthetic upstream did not start: {first!r}")
    server = Server(proc, first.split()[1], first)
    yield server
    server.stop()
