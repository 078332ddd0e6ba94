"""The room's dashboard in a real browser: Playwright drives headless Chromium against a relay on loopback.

The page must load without a script error, show every seat, take updates over its event stream while seats make
calls (each update checked against the relay's own record, never the browser's clock), revoke and un-revoke a seat,
and offer the CSV export. Without its token it is refused. Every wait is bounded (:data:`TIMEOUT_MS`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from google import genai
from google.genai import errors, types
from playwright.sync_api import Browser, Page, expect

from helpers.models import FLASH

from .conftest import PROMPT, TEXT, generate_exchange, stream_exchange, write_cassette
from .rooms import TIMEOUT_S, RunningRelay, as_seat, call, relay
from .test_web_browser import browser  # noqa: F401  (the fixture: Debian's Chromium, else Playwright's)

TIMEOUT_MS = 20_000
SEATS = 4


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRelay]:
    folder = tmp_path_factory.mktemp("dashboard")
    write_cassette(
        folder,
        "t",
        [generate_exchange(PROMPT, TEXT, 0.0), stream_exchange(PROMPT, [(0.02, "Sunlight "), (0.04, "blue.")])],
    )
    args = ("--seats", str(SEATS), "--rpm", "2", "--cassettes", str(folder))
    with relay(folder / "seats.txt", *args) as running_relay:
        yield running_relay


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:  # noqa: F811
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"script error: {e}"))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.problems = problems  # type: ignore[attr-defined]
    yield page
    context.close()


def seat_client(room: RunningRelay, number: int) -> genai.Client:
    options = types.HttpOptions(
        base_url=room.base_url("t"), timeout=int(TIMEOUT_S * 1000), retry_options=types.HttpRetryOptions(attempts=1)
    )
    return genai.Client(api_key=room.seats[number - 1], http_options=options)


def row(page: Page, number: int) -> str:
    return f'#seats tr[data-seat="{number}"]'


def test_the_dashboard_is_refused_without_its_token(room: RunningRelay, page: Page) -> None:
    bare = room.dashboard.split("?", 1)[0]
    response = page.goto(bare)
    assert response is not None and response.status == 401
    assert "UNAUTHENTICATED" in page.content()
    response = page.goto(f"{bare}?token=not-the-token")
    assert response is not None and response.status == 403


def test_updates_arrive_while_seats_call_and_a_seat_can_be_revoked(room: RunningRelay, page: Page) -> None:
    page.goto(room.dashboard)
    expect(page.locator("#status")).to_have_text("live")
    expect(page.locator("#seats tr")).to_have_count(SEATS)
    expect(page.locator(f"{row(page, 1)} .requests")).to_have_text("0")

    one = seat_client(room, 1)
    one.models.generate_content(model=FLASH, contents=PROMPT)
    recorded = room.seat(1)
    expect(page.locator(f"{row(page, 1)} .requests")).to_have_text(str(recorded["requests"]))
    expect(page.locator(f"{row(page, 1)} .tokens")).to_have_text(str(recorded["tokens"]))

    for _ in one.models.generate_content_stream(model=FLASH, contents=PROMPT):
        pass
    with pytest.raises(errors.ClientError):  # over 2 RPM
        one.models.generate_content(model=FLASH, contents=PROMPT)
    recorded = room.seat(1)
    assert (recorded["requests"], recorded["limited"]) == (3, 1)
    expect(page.locator(f"{row(page, 1)} .requests")).to_have_text("3")
    expect(page.locator(f"{row(page, 1)} .limited-count")).to_have_text("1")
    expect(page.locator(f"{row(page, 1)} .cost")).to_have_text(f"${recorded['cost_usd']:.4f}")
    expect(page.locator("#totals")).to_contain_text("1 of 4 seats active")

    progress = {"lesson": "01_sync", "exercise": "q2", "status": "incorrect"}
    for _ in range(3):
        assert call(f"{room.url}/_room/progress", progress, headers=as_seat(room.seats[1]))[0] == 200
    expect(page.locator(f"{row(page, 2)} .progress")).to_contain_text("01_sync: 0 of 4 done · q2 incorrect ×3")
    expect(page.locator(f"{row(page, 2)} .progress .stuck")).to_have_count(1)

    page.locator(f"{row(page, 3)} button.revoke").click()
    expect(page.locator(row(page, 3))).to_have_class("revoked")
    assert room.seat(3)["revoked"] is True
    three = seat_client(room, 3)  # kept: a client that is garbage-collected closes its connections
    with pytest.raises(errors.ClientError) as refused:
        three.models.generate_content(model=FLASH, contents=PROMPT)
    assert refused.value.code == 403
    page.locator(f"{row(page, 3)} button.revoke").click()
    expect(page.locator(row(page, 3))).not_to_have_class("revoked")
    assert three.models.generate_content(model=FLASH, contents=PROMPT).text == TEXT

    with page.expect_download() as download:
        page.locator("#export").click()
    saved = Path(download.value.path()).read_text()
    assert "2,01_sync,q2,incorrect,False,3," in saved
    assert page.problems == []  # type: ignore[attr-defined]
    for token in room.seats:
        assert token not in page.content(), "a seat's token never reaches the page"
