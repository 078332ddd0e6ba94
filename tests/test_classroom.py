"""The room relay (``python -m helpers.classroom serve``) against real servers on loopback.

Judged by what the relay and the seats' replay servers recorded (the dashboard's snapshot, ``/_control`` stats), by
counts and order, never by a client's clock. Every loop is bounded; every relay is stopped by its handle.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import re
import socket
import ssl
import stat
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from google import genai
from google.genai import errors, types

import helpers
from helpers import prices, progress
from helpers.exercises.ex00_setup import q1 as name_the_mode
from helpers.models import FLASH
from helpers.replay.pipeline.rate_limits import RETRY_INFO_TYPE
from helpers.replay.pipeline.server_token import HEADER
from helpers.replay.pipeline.socket_server import running

from .conftest import (
    PROMPT,
    TEXT,
    clean_workbook_env,
    stop_workbook_servers,
)
from .rooms import TIMEOUT_S, RunningRelay, as_seat, call, relay

KEY = "AIza" + "Sy" + "D-instructors-own-key-000000000000"  # key-shaped on purpose; built in pieces
"""The instructor's key in the live tests: shaped like a real one (39 characters), so any leak is findable."""


@pytest.fixture(scope="module")
def room(cassette_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRelay]:
    """A six-seat replay room at 4 RPM per seat; each test uses seats of its own."""
    seats = tmp_path_factory.mktemp("room") / "seats.txt"
    with relay(seats, "--seats", "6", "--rpm", "4", "--cassettes", str(cassette_dir)) as running_relay:
        yield running_relay


def sdk(room: RunningRelay, token: str, cassette: str = "t") -> genai.Client:
    """A seat's client, as ``helpers.setup(..., room=, seat=)`` configures the SDK (no retries: we count calls)."""
    options = types.HttpOptions(
        base_url=room.base_url(cassette),
        timeout=int(TIMEOUT_S * 1000),
        retry_options=types.HttpRetryOptions(attempts=1),
    )
    return genai.Client(api_key=token, http_options=options)


def ask(client: genai.Client, prompt: str = PROMPT) -> str:
    return client.models.generate_content(model=FLASH, contents=prompt).text or ""


def test_the_command_prints_its_two_lines_and_writes_then_extends_the_seats_file(
    cassette_dir: Path, tmp_path: Path
) -> None:
    seats = tmp_path / "seats.txt"
    with relay(seats, "--seats", "3", "--cassettes", str(cassette_dir)) as first:
        assert re.fullmatch(r"serving http://127\.0\.0\.1:\d+", first.lines[0])
        assert re.fullmatch(rf"dashboard {re.escape(first.url)}/_room/dashboard\?token=[\w-]{{20,}}", first.lines[1])
        tokens = first.seats
    assert len(tokens) == 3 and len(set(tokens)) == 3
    assert all(re.fullmatch(r"[\w-]{20,}", t) for t in tokens)
    if os.name == "posix":
        assert stat.S_IMODE(seats.stat().st_mode) == 0o600, "the seats file holds credentials"
    with relay(seats, "--seats", "5", "--cassettes", str(cassette_dir)) as second:
        assert second.seats[:3] == tokens, "a restarted relay keeps the seats' tokens"
        assert len(second.seats) == 5
        assert call(f"{second.url}/_room/seat", headers=as_seat(tokens[0]))[1]["seat"] == 1
        assert second.token != first.token, "each start has a fresh dashboard token"


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--seats", "2", "--upstream", "http://127.0.0.1:9"], {}, "--upstream only applies with --live"),
        (["--seats", "2", "--live"], {}, "set GEMINI_API_KEY"),
        (["--seats", "0"], {}, "at least 1"),
        (["--seats", "2", "--certfile", "cert.pem"], {}, "--certfile and --keyfile go together"),
        (["--seats", "2", "--budget-usd", "nan"], {}, "finite"),
    ],
)
def test_bad_flags_are_one_clear_error(args: list[str], env: dict[str, str], says: str, tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    done = subprocess.run(
        [sys.executable, "-m", "helpers.classroom", "serve", "--seats-file", str(tmp_path / "s.txt"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environment, **env},
    )
    assert done.returncode == 2
    assert says in done.stderr and "Traceback" not in done.stderr


def test_a_seats_file_line_that_is_not_a_token_is_refused(tmp_path: Path) -> None:
    seats = tmp_path / "seats.txt"
    seats.write_text("a-good-token-of-enough-length\nnot a token\n")
    done = subprocess.run(
        [sys.executable, "-m", "helpers.classroom", "serve", "--seats", "2", "--seats-file", str(seats)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "line 2, is not a seat token" in done.stderr


def test_every_route_needs_a_token(room: RunningRelay) -> None:
    seat_routes = [
        ("GET", "/t/v1beta/models"),
        ("POST", "/t/v1beta/models/gemini-3.8-flash:generateContent"),
        ("GET", "/_control/t/stats"),
        ("GET", "/_room/seat"),
        ("POST", "/_room/session"),
        ("POST", "/_room/progress"),
    ]
    for method, route in seat_routes:
        for headers in ({}, as_seat("not-a-seat-token-of-this-room")):
            status, body = call(room.url + route, {} if method == "POST" else None, headers=headers, method=method)
            assert status == 401, (route, body)
            assert body["error"]["status"] == "UNAUTHENTICATED" and body["error"]["code"] == 401
    instructor_routes = ["/_room/dashboard", "/_room/events", "/_room/seats", "/_room/progress.csv"]
    for route in instructor_routes:
        assert call(room.url + route)[0] == 401
        status, body = call(room.url + route + "?token=wrong-token")
        assert status == 403 and body["error"]["status"] == "PERMISSION_DENIED"
    assert call(f"{room.url}/_room/seats/1/revoke", {}, headers=as_seat(room.seats[0]))[0] == 401
    page = call(room.dashboard)
    assert page[0] == 200 and "<title>Room dashboard" in page[1]
    assert call(f"{room.url}/_room/seat", headers=as_seat(room.seats[0]))[1]["mode"] == "replay"


def test_a_revoked_seat_gets_403_while_the_others_go_on(room: RunningRelay) -> None:
    one, two = sdk(room, room.seats[0]), sdk(room, room.seats[1])
    revoke = f"{room.url}/_room/seats/2/revoke"
    assert call(revoke, {}, headers={HEADER: room.token})[1] == {"seat": 2, "revoked": True}
    with pytest.raises(errors.ClientError) as refused:
        ask(two)
    assert refused.value.code == 403 and refused.value.status == "PERMISSION_DENIED"
    assert "paused seat 02" in (refused.value.message or "")
    assert ask(one) == TEXT
    assert call(f"{room.url}/_room/seats/2/unrevoke", {}, headers={HEADER: room.token})[1]["revoked"] is False
    assert ask(two) == TEXT
    assert room.seat(2)["revoked"] is False


def test_each_seat_has_its_own_replay_turns_faults_and_stats(room: RunningRelay) -> None:
    three, four = sdk(room, room.seats[2]), sdk(room, room.seats[3])
    # Identical requests take the recordings in turn: each seat's turns are its own.
    assert [ask(three, "Count"), ask(four, "Count"), ask(three, "Count")] == ["take 0", "take 0", "take 1"]
    control = f"{room.url}/_control/t"
    status, _ = call(f"{control}/faults/fail_next", {"n": 1, "status": 503}, headers={HEADER: room.seats[2]})
    assert status == 200
    assert ask(four, "Count") == "take 1", "a fault set by seat 3 must not hit seat 4"
    with pytest.raises(errors.ServerError):
        ask(three, "Count")
    stats = {n: call(f"{control}/stats", headers={HEADER: room.seats[n - 1]})[1] for n in (3, 4)}
    assert stats[3]["received"] == 3 and stats[3]["rejected"] == {"503": 1}
    assert stats[4]["received"] == 2 and stats[4]["rejected"] == {}


def test_a_seat_over_its_rpm_gets_429_with_retry_info_while_others_go_on(room: RunningRelay) -> None:
    five, six = sdk(room, room.seats[4]), sdk(room, room.seats[5])
    assert [ask(five) for _ in range(4)] == [TEXT] * 4
    with pytest.raises(errors.ClientError) as refused:
        ask(five)
    assert refused.value.code == 429 and refused.value.status == "RESOURCE_EXHAUSTED"
    details = refused.value.details["error"]["details"]
    assert details[0]["@type"] == RETRY_INFO_TYPE and re.fullmatch(r"\d+\.\d{3}s", details[0]["retryDelay"])
    assert "each seat 4 requests per minute" in (refused.value.message or "")
    assert [ask(six), ask(six)] == [TEXT, TEXT], "seat 5's limit must not hold seat 6 back"
    five_now, six_now = room.seat(5), room.seat(6)
    assert (five_now["requests"], five_now["limited"], five_now["statuses"]) == (5, 1, {"429": 1})
    assert (six_now["requests"], six_now["limited"]) == (2, 0)
    # The refused call never reached seat 5's replay server: it recorded four calls.
    assert call(f"{room.url}/_control/t/stats", headers={HEADER: room.seats[4]})[1]["received"] == 4


def test_a_stream_passes_through_chunk_by_chunk(room: RunningRelay) -> None:
    token = room.seats[1]
    control = f"{room.url}/_control/t"
    assert call(f"{control}/faults/hold_stream", {"after_text_chunks": 1}, headers={HEADER: token})[0] == 200
    client = sdk(room, token)  # kept: a client that is garbage-collected closes its connections
    stream = iter(client.models.generate_content_stream(model=FLASH, contents=PROMPT))
    first: list[Any] = []
    reader = threading.Thread(target=lambda: first.append(next(stream)), daemon=True)
    reader.start()
    reader.join(TIMEOUT_S)
    # The seat's replay server holds the rest of the stream back: the first chunk can only have arrived if the
    # relay passed it on as it came, rather than waiting for the end of the stream.
    assert first and first[0].text == "Sunlight "
    assert call(f"{control}/stats", headers={HEADER: token})[1]["in_flight"] == 1
    assert call(f"{control}/faults/release_stream", {}, headers={HEADER: token})[0] == 200
    assert "".join(chunk.text or "" for chunk in stream) == "scatters, blue most."


def test_the_session_route_checks_what_a_lesson_sends(room: RunningRelay) -> None:
    token = as_seat(room.seats[0])
    url = f"{room.url}/_room/session"
    assert call(url, {"cassette": "no_such_lesson", "speed": 1}, headers=token)[0] == 404
    for speed in (0, -1, "fast", True, 1e9):
        assert call(url, {"cassette": "t", "speed": speed}, headers=token)[0] == 400
    assert call(url, {"cassette": "../t", "speed": 1}, headers=token)[0] == 400
    status, body = call(url, {"cassette": "t", "speed": 2}, headers=token)
    assert status == 200 and body == {"seat": 1, "mode": "replay", "sources": "synthetic", "models": [FLASH]}
    bad = {"lesson": "01_sync", "exercise": "q1; drop", "status": "correct"}
    assert call(f"{room.url}/_room/progress", bad, headers=token)[0] == 400


def test_tpm_counts_the_tokens_answers_report(cassette_dir: Path, tmp_path: Path) -> None:
    with relay(tmp_path / "seats.txt", "--seats", "1", "--tpm", "20", "--cassettes", str(cassette_dir)) as tpm_room:
        client = sdk(tpm_room, tpm_room.seats[0])
        assert [ask(client), ask(client)] == [TEXT, TEXT]  # 16 tokens known only after the first answer
        with pytest.raises(errors.ClientError) as refused:
            ask(client)
        assert refused.value.code == 429 and "20 tokens per minute" in (refused.value.message or "")
        assert tpm_room.seat(1)["tokens"] == 32


def test_a_budget_caps_a_seats_estimated_spend(cassette_dir: Path, tmp_path: Path) -> None:
    cost = prices.cost_usd({"promptTokenCount": 6, "candidatesTokenCount": 10}, FLASH)
    budget = f"{cost * 1.5:.10f}"
    with relay(
        tmp_path / "seats.txt", "--seats", "2", "--budget-usd", budget, "--cassettes", str(cassette_dir)
    ) as priced:
        first, second = sdk(priced, priced.seats[0]), sdk(priced, priced.seats[1])
        assert [ask(first), ask(first)] == [TEXT, TEXT]  # under budget before each
        with pytest.raises(errors.ClientError) as refused:
            ask(first)
        assert refused.value.code == 429 and "budget" in (refused.value.message or "")
        assert ask(second) == TEXT
        seat = priced.seat(1)
        assert seat["cost_usd"] == pytest.approx(2 * cost, rel=1e-6) and seat["limited"] == 1


class EchoUpstream:
    """A stand-in for the Gemini API on loopback that records every request it gets (headers, query, body), answers
    a prompt "echo" with the API key it was sent (to prove the relay would not pass it on), streams two chunks,
    and answers the OpenAI-compatible route."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.url = ""
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)
        self._ready = threading.Event()

    def __enter__(self) -> EchoUpstream:
        self._thread.start()
        assert self._ready.wait(TIMEOUT_S)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(TIMEOUT_S)

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._answer)
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with running(app) as url:
            self.url = url
            self._ready.set()
            await self._stop.wait()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        self.seen.append({"path": request.path, "query": dict(request.query), "headers": dict(request.headers)})
        self.seen[-1]["body"] = body
        usage = {"promptTokenCount": 5, "candidatesTokenCount": 7, "totalTokenCount": 12}
        if request.path.endswith("chat/completions"):
            return web.json_response({"choices": [], "usage": {"prompt_tokens": 5, "total_tokens": 12}})
        text = request.headers.get("x-goog-api-key", "") if "echo" in body else "hello"
        answer = {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}}], "usageMetadata": usage}
        if "streamGenerateContent" not in request.path:
            return web.json_response(answer)
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await stream.prepare(request)
        for _ in range(2):
            await stream.write(f"data: {json.dumps(answer)}\r\n\r\n".encode())
        return stream


def test_live_the_instructors_key_goes_upstream_and_nowhere_else(tmp_path: Path) -> None:
    replies: list[str] = []
    with EchoUpstream() as upstream:
        args = ("--seats", "2", "--live", "--upstream", upstream.url)
        with relay(tmp_path / "seats.txt", *args, env={"GEMINI_API_KEY": KEY}) as live:
            seat = live.seats[0]
            client = sdk(live, seat)
            replies.append(ask(client, "hello"))
            replies.append(ask(client, "echo"))
            stream = client.models.generate_content_stream(model=FLASH, contents="x")
            replies.extend(chunk.text or "" for chunk in stream)
            openai = call(
                f"{live.url}/t/v1beta/openai/chat/completions",
                {"model": FLASH, "messages": [{"role": "user", "content": "hi"}]},
                headers={"Authorization": f"Bearer {seat}"},
            )
            replies.append(json.dumps(openai))
            for route in ("/_room/seats", "/_room/progress.csv", "/_room/dashboard"):
                replies.append(json.dumps(call(f"{live.url}{route}?token={live.token}")))
            replies.append(json.dumps(call(f"{live.url}/_room/session", {"cassette": "t"}, headers=as_seat(seat))))
            snapshot = live.seat(1)
        seats_text = live.seats_file.read_text()
    assert snapshot["requests"] == 4 and snapshot["tokens"] == 12 * 4
    google = [s for s in upstream.seen if "chat/completions" not in s["path"]]
    assert len(google) == 3 and all(s["headers"].get("x-goog-api-key") == KEY for s in google)
    compatible = [s for s in upstream.seen if "chat/completions" in s["path"]]
    assert compatible and compatible[0]["headers"]["Authorization"] == f"Bearer {KEY}"
    assert "x-goog-api-key" not in compatible[0]["headers"]
    for token in live.seats:
        assert token not in json.dumps(upstream.seen), "a seat's token must never be forwarded"
    assert "[redacted]" in replies[1], "an upstream that echoes the key has it redacted"
    written = "\n".join([*replies, *live.lines, *live.stderr, seats_text])
    assert KEY not in written
    assert '"mode": "live"' in replies[-1]


def test_thirty_seats_stream_at_once_and_only_the_one_over_its_limit_is_refused(
    cassette_dir: Path, tmp_path: Path
) -> None:
    seats, rpm, calls, greedy = 30, 4, 3, 8
    with relay(
        tmp_path / "seats.txt", "--seats", str(seats), "--rpm", str(rpm), "--cassettes", str(cassette_dir)
    ) as full:
        tokens = full.seats

        async def seat(token: str, n: int) -> list[str]:
            options = types.HttpOptions(
                base_url=full.base_url("t"),
                timeout=int(TIMEOUT_S * 3000),
                retry_options=types.HttpRetryOptions(attempts=1),
            )
            outcomes = []
            async with genai.Client(api_key=token, http_options=options).aio as client:
                for _ in range(n):
                    try:
                        stream = await client.models.generate_content_stream(model=FLASH, contents=PROMPT)
                        outcomes.append("".join([chunk.text or "" async for chunk in stream]))
                    except errors.ClientError as e:
                        outcomes.append(f"{e.code} {e.details['error']['details'][0]['@type']}")
            return outcomes

        async def room() -> list[list[str]]:
            counts = [calls] * (seats - 1) + [greedy]
            return await asyncio.wait_for(
                asyncio.gather(*(seat(t, n) for t, n in zip(tokens, counts, strict=True))), 120
            )

        results = asyncio.run(room())
        snapshot = full.snapshot()["seats"]
        stats = [call(f"{full.url}/_control/t/stats", headers={HEADER: t})[1] for t in tokens]
    whole = "Sunlight scatters, blue most."
    for number, (outcome, seen, served) in enumerate(zip(results, snapshot, stats, strict=True), start=1):
        if number < seats:
            assert outcome == [whole] * calls, f"seat {number}"
            assert (seen["requests"], seen["limited"], seen["statuses"]) == (calls, 0, {})
            assert served["received"] == calls and served["answered"] == calls
    assert results[-1] == [whole] * rpm + [f"429 {RETRY_INFO_TYPE}"] * (greedy - rpm)
    assert (snapshot[-1]["requests"], snapshot[-1]["limited"]) == (greedy, greedy - rpm)
    assert stats[-1]["received"] == rpm, "refused calls never reached the seat's replay server"


@pytest.fixture
def lesson_room(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningRelay]:
    """A two-seat room replaying the workbook's own cassettes, and a clean environment restored afterwards."""
    clean_workbook_env(monkeypatch)  # proxy variables too: setup() adds the room's host to NO_PROXY
    monkeypatch.setenv("WORKBOOK_DATA_DIR", str(tmp_path / "data"))
    with relay(tmp_path / "seats.txt", "--seats", "2") as running_relay:
        yield running_relay
    stop_workbook_servers()


def checked(problem: Any, code: str, ns: dict[str, Any] | None = None) -> None:
    """Run ``qN.check()`` as a learner's cell would, after ``code`` (in ``ns``, a namespace made before)."""
    ns = problem.namespace(code) if ns is None else ns
    ns["q"] = problem
    exec("q.check()", ns)


def test_a_lesson_in_a_room_posts_its_checks_and_goes_on_when_the_relay_is_down(
    lesson_room: RunningRelay, capsys: pytest.CaptureFixture[str]
) -> None:
    session = helpers.setup("00_setup", room=lesson_room.url, seat=lesson_room.seats[0])
    assert (session.mode, session.seat_number, session.server_url) == ("replay", 1, lesson_room.url)
    assert lesson_room.seats[0] not in repr(session)
    assert os.environ["GEMINI_API_KEY"] == lesson_room.seats[0]
    checked(name_the_mode, "mode = 'live'")
    checked(name_the_mode, "mode = session.mode")
    out = capsys.readouterr().out
    assert "mode: replay · room http://127.0.0.1" in out and "seat 1" in out
    assert "progress: 0 of 3 exercises done in this lesson" in out
    assert out.count("Incorrect:") == 1 and out.count("Correct:") == 1
    seat = lesson_room.seat(1)
    assert seat["lesson"] == "00_setup"
    assert seat["progress"]["00_setup"] == {
        "done": 1,
        "total": 3,
        "last": {"exercise": "q1", "status": "correct", "attempts": 2},
    }
    rows = call(f"{lesson_room.url}/_room/progress.csv?token={lesson_room.token}")[1].splitlines()
    assert rows[0] == "seat,lesson,exercise,status,done,attempts,last"
    assert rows[1].startswith("1,00_setup,q1,correct,True,2,") and rows[2] == "2,,,,,0,"
    assert progress.load()["00_setup"]["q1"]["attempts"] == 2, "kept on the learner's machine too"
    answered = name_the_mode.namespace("mode = 'replay'")  # the notebook's cells ran while the relay was up
    lesson_room.proc.terminate()
    lesson_room.proc.wait(timeout=10)
    for _ in range(2):
        checked(name_the_mode, "", answered)
    out = capsys.readouterr().out
    assert out.count("Correct:") == 2, "a relay that is down never breaks a check"
    assert out.count("note: the room's relay did not take this result") == 1, "one note, not one per check"
    assert progress.load()["00_setup"]["q1"]["attempts"] == 4


def test_joining_a_room_fails_with_what_to_do(lesson_room: RunningRelay) -> None:
    with pytest.raises(helpers.WorkbookError, match="seat token"):
        helpers.setup("00_setup", room=lesson_room.url)
    with pytest.raises(helpers.WorkbookError, match=r"refused it \(401\)"):
        helpers.setup("00_setup", room=lesson_room.url, seat="not-a-seat-of-this-room-at-all")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{free.getsockname()[1]}"
    with pytest.raises(helpers.WorkbookError, match="could not reach the room"):
        helpers.setup("00_setup", room=dead, seat=lesson_room.seats[0])
    with pytest.raises(helpers.WorkbookError, match="not a URL"):
        helpers.setup("00_setup", room="192.168.1.20:8000", seat=lesson_room.seats[0])


@pytest.mark.parametrize(("lesson", "speed"), [("02_async", 60), ("03_streaming", 5), ("04_multimodal", 1)])
def test_a_lessons_exercise_checks_pass_in_a_room(lesson_room: RunningRelay, lesson: str, speed: float) -> None:
    # The checks read the seat's replay server through the relay (stats, limits, held streams: 02, 03), run the
    # learner's code in a subprocess (03's CLI) and upload files, whose bytes the SDK sends without a key (04).
    helpers.setup(lesson, speed=speed, room=lesson_room.url, seat=lesson_room.seats[1])
    for problem in importlib.import_module(f"helpers.exercises.ex{lesson}").PROBLEMS:
        problem.check_reference()
    seat = lesson_room.seat(2)
    assert seat["lesson"] == lesson and seat["requests"] > 0 and seat["limited"] == 0


def test_with_a_certificate_the_relay_serves_https(tmp_path: Path) -> None:
    cert, key = tmp_path / "room.pem", tmp_path / "room-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    args = ("--seats", "1", "--certfile", str(cert), "--keyfile", str(key))
    with relay(tmp_path / "seats.txt", *args) as secure:
        assert re.fullmatch(r"serving https://127\.0\.0\.1:\d+", secure.lines[0])
        context = ssl.create_default_context(cafile=str(cert))
        request = urllib.request.Request(f"{secure.url}/_room/seat", headers=as_seat(secure.seats[0]))
        with urllib.request.urlopen(request, context=context, timeout=TIMEOUT_S) as answer:
            assert json.loads(answer.read())["seat"] == 1
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP to it gets nowhere
            urllib.request.urlopen(secure.url.replace("https", "http") + "/_room/seat", timeout=TIMEOUT_S)
