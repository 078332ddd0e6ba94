"""helpers.setup: modes, the one printed line, a plain genai.Client() afterwards, and clear errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from google import genai

import helpers
from helpers import models, prices, workbook
from helpers.replay.pipeline.socket_server import bind

from .conftest import PROMPT, TEXT, generate_exchange, write_cassette


def test_replay_prints_one_line_and_a_plain_client_works(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_cassette(env, "07_demo", [generate_exchange(PROMPT, TEXT, 0.0)])
    session = helpers.setup("07_demo")
    assert capsys.readouterr().out == (
        f"mode: replay · cassette: 07_demo · synthetic responses · {helpers.FLASH} · prices read {prices.CHECKED} · "
        "recorded speed · no API key or network needed\n"
    )
    assert session.base_url == f"{session.server_url}/07_demo/"
    client = genai.Client()
    assert client.models.generate_content(model=helpers.FLASH, contents=PROMPT).text == TEXT
    assert workbook.current_session() is session


def test_a_users_key_is_kept_and_a_placeholder_fills_in_otherwise(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each key gets the server's token after it (``KEY.TOKEN``, SECURITY.md), and live mode gets it back as it was."""
    write_cassette(env, "07_demo", [generate_exchange(PROMPT, TEXT, 0.0)])
    helpers.setup("07_demo")
    token = workbook._servers["serve"].token
    assert token and os.environ["GEMINI_API_KEY"] == f"{workbook.PLACEHOLDER_KEY}.{token}"
    monkeypatch.delenv("GEMINI_API_KEY")
    monkeypatch.setenv("GOOGLE_API_KEY", "users-own-key")
    helpers.setup("07_demo")
    assert "GEMINI_API_KEY" not in os.environ  # the SDK would warn that both are set
    assert os.environ["GOOGLE_API_KEY"] == f"users-own-key.{token}"
    monkeypatch.setenv("WORKBOOK_MODE", "live")
    monkeypatch.setattr(workbook, "check_models", lambda base_url: [])
    helpers.setup("07_demo")
    assert os.environ["GOOGLE_API_KEY"] == "users-own-key"


def test_setup_reuses_a_live_server_and_replaces_a_dead_one_on_its_port(env: Path) -> None:
    write_cassette(env, "07_demo", [generate_exchange(PROMPT, TEXT, 0.0)])
    first = helpers.setup("07_demo")
    client = genai.Client()  # made before the server dies: it keeps the base URL it was given
    old = workbook._servers["serve"]
    assert helpers.setup("07_demo").server_url == first.server_url and workbook._servers["serve"] is old
    old.proc.kill()
    old.proc.wait()
    again = helpers.setup("07_demo")
    assert workbook._servers["serve"] is not old and workbook._servers["serve"].alive()
    assert again.server_url == first.server_url
    assert client.models.generate_content(model=helpers.FLASH, contents=PROMPT).text == TEXT


def test_a_taken_port_does_not_stop_a_restart(env: Path) -> None:
    write_cassette(env, "07_demo", [generate_exchange(PROMPT, TEXT, 0.0)])
    first = helpers.setup("07_demo")
    old = workbook._servers["serve"]
    old.proc.kill()
    old.proc.wait()
    squatter = bind("127.0.0.1", int(first.server_url.rsplit(":", 1)[1]))
    squatter.listen()
    try:
        again = helpers.setup("07_demo")
    finally:
        squatter.close()
    assert again.server_url != first.server_url
    assert genai.Client().models.generate_content(model=helpers.FLASH, contents=PROMPT).text == TEXT


def test_speed_is_printed_and_restarts_the_server(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_cassette(env, "07_demo", [generate_exchange(PROMPT, TEXT, 0.0)])
    first = helpers.setup("07_demo")
    old = workbook._servers["serve"]
    fast = helpers.setup("07_demo", speed=10)
    assert workbook._servers["serve"] is not old and not old.alive()
    assert fast.server_url == first.server_url, "the new server takes the old one's port"
    assert "· 10x recorded speed ·" in capsys.readouterr().out.splitlines()[-1]


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("live", "WORKBOOK_MODE=live needs your API key: set GEMINI_API_KEY"),
        ("record", "WORKBOOK_MODE=record needs your API key: set GEMINI_API_KEY"),
        ("turbo", "WORKBOOK_MODE='turbo' is not a mode; use one of replay, live, record"),
    ],
)
def test_bad_mode_or_missing_key_is_one_clear_error(
    env: Path, monkeypatch: pytest.MonkeyPatch, mode: str, message: str
) -> None:
    monkeypatch.setenv("WORKBOOK_MODE", mode)
    with pytest.raises(helpers.WorkbookError, match=message):
        helpers.setup("07_demo")


def test_live_mode_uses_the_real_endpoint_and_checks_the_models_there(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKBOOK_MODE", "live")
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:1/stale/")
    asked: list[str | None] = []  # no network here: the check itself is tested against local upstreams below
    monkeypatch.setattr(workbook, "check_models", lambda base_url: asked.append(base_url) or ["model check: x"])
    session = helpers.setup("07_demo")
    assert session.base_url is None and "GOOGLE_GEMINI_BASE_URL" not in os.environ
    assert not workbook._servers
    assert asked == [None], "live mode asks the SDK's default endpoint"
    assert capsys.readouterr().out.splitlines()[1:] == ["model check: x"]


def test_missing_and_corrupt_cassettes_say_what_to_do(env: Path) -> None:
    with pytest.raises(helpers.WorkbookError, match=r"no cassette '07_demo'.*WORKBOOK_MODE=record"):
        helpers.setup("07_demo")
    (env / "07_demo.json").write_text('{"format": 1, "exchanges": [}')
    with pytest.raises(
        helpers.WorkbookError, match=r"07_demo.json is not valid JSON at line 1 column 29: Expecting value"
    ):
        helpers.setup("07_demo")


def record_from_the_synthetic_upstream(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Record mode from the synthetic stand-in, with a one-answer script for ``07_demo``."""
    scripts = env.parent / "scripts"
    scripts.mkdir()
    (scripts / "07_demo.json").write_text(json.dumps({"responses": [{"prompt": "sky", "text": TEXT}]}))
    monkeypatch.setenv("WORKBOOK_MODE", "record")
    monkeypatch.setenv("WORKBOOK_UPSTREAM", "synthetic")


def test_record_from_the_synthetic_upstream_writes_a_labelled_cassette(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_from_the_synthetic_upstream(env, monkeypatch)
    helpers.setup("07_demo")
    client = genai.Client()
    assert client.models.generate_content(model=helpers.FLASH, contents=PROMPT).text == TEXT
    (exchange,) = json.loads((env / "07_demo.json").read_text())["exchanges"]
    assert exchange["provenance"]["source"] == "synthetic"
    assert "Artificial Analysis" in exchange["provenance"]["based_on"]
    assert exchange["request"]["body"] == {"contents": [{"parts": [{"text": PROMPT}], "role": "user"}]}


def test_record_mode_checks_the_models_at_the_upstream_once_without_recording_it(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    record_from_the_synthetic_upstream(env, monkeypatch)
    monkeypatch.setattr(models, "MODELS", (*models.MODELS, models.MISSING_MODEL))
    helpers.setup("07_demo")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("mode: record · cassette: 07_demo")
    assert lines[1:] == [
        f"model check: the API does not serve {models.MISSING_MODEL} (404 NOT_FOUND: models/{models.MISSING_MODEL} "
        "is not found for API version v1.); change it in helpers/models.py (FLASH / FLASH_LITE), then re-record "
        "the cassettes"
    ], "the served models pass, the missing one is one line naming where to change it"
    assert not (env / "07_demo.json").exists(), "the check went to the upstream, not through the recorder"


def test_the_model_check_says_so_when_it_cannot_reach_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    (first, *_) = workbook.check_models("http://127.0.0.1:1/")
    assert first.startswith(f"model check: could not ask the API about {models.MODELS[0]} (")
