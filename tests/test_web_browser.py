"""Lesson 07's page in a real browser: Playwright drives Chromium against the app, replaying the lesson's cassette.

Chromium comes from Debian's ``chromium`` package (``.ci/run`` installs it) at ``/usr/bin/chromium``; elsewhere,
``playwright install chromium`` downloads Playwright's own. Every wait is bounded (:data:`TIMEOUT_MS`), and the
fixtures stop the browser, the app and the replay server whatever happens. Nothing here judges by the browser's
clock alone: growth is counted in distinct DOM states, and what the model's stream did comes from the replay
server's own record (``helpers.control.stats``).
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Error, Page, sync_playwright

from helpers import control, web
from helpers.replay.cassettes.cassette import Cassette, default_dir

from .conftest import lesson_replay

SPEED = 0.5
"""Replay at half the recorded speed: the default answer's chunks then come about 0.2 s apart, so even a busy
machine's browser sees them as separate steps."""
TIMEOUT_MS = 20_000
"""The longest any one browser action or wait may take."""
DEBIAN_CHROMIUM = Path("/usr/bin/chromium")

RECORD_STATES = """() => {
    const answer = document.querySelector("#answer");
    window.states = [];
    new MutationObserver(() => window.states.push([performance.now(), answer.textContent]))
        .observe(answer, {childList: true, characterData: true, subtree: true});
}"""
"""Record every change of ``#answer``: when (``performance.now()``, ms) and its text then."""


def recorded_stream(prompt: str) -> tuple[str, list[float]]:
    """The recorded answer to ``prompt`` and its chunks' offsets (seconds), from the lesson's cassette."""
    for exchange in Cassette.load(default_dir() / "07_web.json").exchanges:
        parts = exchange.request["body"]["contents"][-1]["parts"]
        if exchange.is_stream and parts == [{"text": prompt}]:
            chunks = exchange.response["chunks"]
            text = "".join(p.get("text", "") for c in chunks for p in c["data"]["candidates"][0]["content"]["parts"])
            return text, [c["offset_s"] for c in chunks]
    raise AssertionError(f"the cassette has no stream of {prompt!r}, the page's prompt: re-author 07_web")


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    """The lesson's app, run as the README says, against a replay server of the lesson's cassette."""
    with (
        lesson_replay("07_web", speed=SPEED),
        web.AppServer("uvicorn", "app:app", "--app-dir", str(web.WEB_DIR)) as server,
    ):
        yield server.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium: Debian's when installed, else Playwright's own download."""
    executable = str(DEBIAN_CHROMIUM) if DEBIAN_CHROMIUM.exists() else None
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=executable, timeout=TIMEOUT_MS)
        except Error as e:
            found = shutil.which("chromium") or "none"
            raise AssertionError(
                f"no Chromium to drive (on PATH: {found}): `apt-get install chromium` on Debian, or `python -m "
                f"playwright install chromium` elsewhere. Playwright said: {str(e).splitlines()[0]}"
            ) from None
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser, app_url: str) -> Iterator[Page]:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(app_url)
    page.evaluate(RECORD_STATES)
    try:
        yield page
    finally:
        context.close()


def test_the_page_offers_a_default_prompt_whose_stream_is_recorded_in_several_chunks(page: Page) -> None:
    _, offsets = recorded_stream(page.input_value("#prompt"))
    assert len(offsets) >= 3
    assert page.is_visible("#start") and page.text_content("#answer") == ""


def test_the_answer_grows_in_several_steps_and_ends_with_the_recorded_text(page: Page) -> None:
    text, offsets = recorded_stream(page.input_value("#prompt"))
    control.reset_stats()
    page.click("#start")
    page.wait_for_function("document.querySelector('#answer').textContent.length > 0")
    # The model's stream is still being sent while the page already shows its start: nothing held it back.
    streaming_while_shown = control.stats().in_flight
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('done')")
    states: list[tuple[float, str]] = [(t, s) for t, s in page.evaluate("window.states") if s]

    assert page.text_content("#answer") == text
    assert streaming_while_shown == 1, "the page showed text only after the model's stream had ended"
    distinct = list(dict.fromkeys(s for _, s in states))
    assert len(distinct) >= 3, f"#answer changed in {len(distinct)} step(s): {distinct}"
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(distinct))
    assert len(distinct) <= len(offsets), "more redraws than chunks: the page redraws without new text"
    times = [t for t, _ in states]
    assert times == sorted(times) and times[-1] > times[0], "every step came at the same instant"
    # A page that did not close on `done` would reconnect after retry: (1 s), and show the app's answer to that.
    page.wait_for_timeout(2_500)
    assert (page.text_content("#status") or "").startswith("done") and control.stats().received == 1


def test_closing_the_page_mid_stream_stops_the_model_stream(page: Page) -> None:
    text, offsets = recorded_stream(page.input_value("#prompt"))
    control.reset_stats()
    page.click("#start")
    page.wait_for_function("document.querySelector('#answer').textContent.length > 0")
    shown = page.text_content("#answer") or ""
    page.close()

    assert web.wait_until(lambda: control.stats().in_flight == 0, timeout_s=TIMEOUT_MS / 1000)
    model = control.stats().requests[0]
    assert model.end_s is not None and model.first_byte_s is not None
    sent_for_s = model.end_s - model.start_s
    recorded_s = offsets[-1] / SPEED
    assert len(shown) < len(text), "the page had the whole answer before it closed; nothing to stop"
    assert sent_for_s < recorded_s - (offsets[-1] - offsets[len(offsets) // 2]) / SPEED, (
        f"the model's stream ran {sent_for_s:.2f} s of its {recorded_s:.2f} s after the page closed"
    )


def test_the_servers_error_event_is_shown_and_closes_the_stream(page: Page) -> None:
    control.reset_stats()
    control.fail_next(1, 503)
    try:
        page.click("#start")
        page.wait_for_function("document.querySelector('#status').textContent.startsWith('error')")
    finally:
        control.clear_faults()
    assert "503" in (page.text_content("#status") or "")
    # A page that did not close would reconnect after retry: (1 s) and ask the model again.
    page.wait_for_timeout(2_500)
    assert control.stats().received == 1
