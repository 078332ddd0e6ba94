"""Behind a proxy (a managed laptop's ``HTTP_PROXY``/``HTTPS_PROXY``): replay, record and the local servers reach
loopback directly whatever proxy variables are set, and calls for the real API still go through the proxy.

The proxies here are on loopback: a dead one (nothing listens on port 9) and :class:`RecordingProxy`, which notes
what it is asked and refuses it, so no test call leaves this machine.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helpers import control, proxies, web
from helpers.models import FLASH
from helpers.replay.pipeline.socket_server import running
from helpers.replay.wire.defaults import DEFAULT_UPSTREAM

from .conftest import PROMPT, TEXT, generate_exchange, start_server, stream_exchange, write_cassette
from .test_record import FAKE_KEY, PIECES, stand_in_upstream
from .test_web import events_app

DEAD_PROXY = "http://127.0.0.1:9"
"""A proxy nobody answers for: a call sent to it fails at once."""
API_CONNECT = "CONNECT generativelanguage.googleapis.com:443 HTTP/1.1"
"""What a client asks its proxy for a call to the real API (an https URL: a tunnel)."""
PROXY_NAMES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


class RecordingProxy:
    """An HTTP proxy on loopback that notes each request line it is sent and answers 502, so nothing goes further."""

    def __init__(self) -> None:
        seen: list[str] = []

        class Refuse(http.server.BaseHTTPRequestHandler):
            def refuse(self) -> None:
                seen.append(self.requestline)
                self.send_response(502)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_CONNECT = do_GET = do_POST = refuse

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.seen = seen
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy() -> Iterator[RecordingProxy]:
    recording = RecordingProxy()
    yield recording
    recording.close()


def behind(https_proxy: str) -> dict[str, str]:
    """Proxy variables as a managed laptop sets them, in both cases: plain-http calls (loopback's) to the dead proxy,
    https ones (the real API's) to ``https_proxy``; no ``NO_PROXY``."""
    variables = {"http_proxy": DEAD_PROXY, "all_proxy": DEAD_PROXY, "https_proxy": https_proxy}
    return {**variables, **{name.upper(): value for name, value in variables.items()}}


def clear_proxies(mp: pytest.MonkeyPatch) -> None:
    """Unset every proxy variable; undoing ``mp`` restores them and removes those the test set (``setenv`` first: it
    records the previous value or its absence, which ``delenv`` of an unset variable does not)."""
    for name in (*PROXY_NAMES, *(n.upper() for n in PROXY_NAMES)):
        mp.setenv(name, "")
        mp.delenv(name)


def set_behind(mp: pytest.MonkeyPatch, https_proxy: str) -> None:
    clear_proxies(mp)
    for name, value in behind(https_proxy).items():
        mp.setenv(name, value)


KERNEL = """
import asyncio, json
import helpers
from google import genai
from google.genai import types
from helpers import control

helpers.setup("t")
client = genai.Client()
out = {{"sync": client.models.generate_content(model={model!r}, contents={prompt!r}).text}}
out["stream"] = "".join(c.text for c in client.models.generate_content_stream(model={model!r}, contents={prompt!r}))

async def aio():
    reply = await client.aio.models.generate_content(model={model!r}, contents={prompt!r})
    stream = await client.aio.models.generate_content_stream(model={model!r}, contents={prompt!r})
    return reply.text, "".join([c.text async for c in stream])

out["async"], out["async_stream"] = asyncio.run(aio())
out["received"] = control.stats().received

# A live call: to the real API, through the proxy (which refuses it).
options = types.HttpOptions(base_url={upstream!r}, retry_options=types.HttpRetryOptions(attempts=1), timeout=10_000)
live = genai.Client(api_key="not-a-key", http_options=options)
out["live"] = []
for call in (lambda: live.models.count_tokens(model={model!r}, contents="x"),
             lambda: asyncio.run(live.aio.models.count_tokens(model={model!r}, contents="x"))):
    try:
        call()
    except Exception as e:
        out["live"].append(type(e).__name__)
print(json.dumps(out))
"""


def test_replay_works_behind_a_dead_proxy_and_live_calls_still_use_the_proxy(
    tmp_path: Path, proxy: RecordingProxy
) -> None:
    """A kernel-like process on a managed laptop: after setup(), the SDK's sync, async and streamed calls reach the
    replay server on loopback (through the dead proxy they would fail), helpers.control too; a call for the real
    API goes to the proxy, from the sync client (httpx2) and the async one (aiohttp) alike."""
    pieces = [(0.01, "Sunlight "), (0.02, "scatters.")]
    write_cassette(tmp_path, "t", [generate_exchange(PROMPT, TEXT, 0.01), stream_exchange(PROMPT, pieces)])
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_NAMES and not k.startswith("WORKBOOK_")}
    env = {k: v for k, v in env.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL")}
    env.update(behind(proxy.url), WORKBOOK_CASSETTES=str(tmp_path))
    code = KERNEL.format(model=FLASH, prompt=PROMPT, upstream=f"{DEFAULT_UPSTREAM}/")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.splitlines()[-1])
    assert (out["sync"], out["async"]) == (TEXT, TEXT)
    assert out["stream"] == out["async_stream"] == "Sunlight scatters."
    assert out["received"] == 4
    assert len(out["live"]) == 2, out["live"]
    assert proxy.seen == [API_CONNECT, API_CONNECT], "only the two live calls went to the proxy"


async def test_the_recorder_reaches_a_loopback_upstream_directly_and_the_api_through_the_proxy(
    tmp_path: Path, proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``serve --record`` started from a terminal behind a proxy (no NO_PROXY, no setup()): the synthetic or a
    stand-in upstream on loopback is recorded from directly, the real API is asked through the proxy; helpers.control
    reaches the server directly too."""
    set_behind(monkeypatch, proxy.url)
    seen: list[str] = []
    body = {"contents": [{"parts": [{"text": "Count"}], "role": "user"}]}
    headers = {"x-goog-api-key": FAKE_KEY}
    async with running(stand_in_upstream(seen)) as upstream, httpx.AsyncClient(trust_env=False, timeout=30) as http:
        local = start_server("--port", "0", "--cassettes", str(tmp_path), "--record", "--upstream", upstream)
        real = start_server("--port", "0", "--cassettes", str(tmp_path / "real"), "--record")
        try:
            path = f"rec/v1/models/{FLASH}:streamGenerateContent?alt=sse"
            recorded = await http.post(f"{local.url}/{path}", json=body, headers=headers)
            assert control.stats(cassette="rec", server_url=local.url).answered == 1
            forwarded = await http.post(f"{real.url}/rec/v1/models/{FLASH}:countTokens", json=body, headers=headers)
        finally:
            local.stop()
            real.stop()
    assert recorded.status_code == 200 and all(piece in recorded.text for piece in PIECES)
    assert seen == [FAKE_KEY], "the loopback upstream was reached directly"
    assert forwarded.status_code == 502 and DEFAULT_UPSTREAM in forwarded.json()["error"]["message"]
    assert proxy.seen == [API_CONNECT], "the real API was asked through the proxy, and only it"


def test_the_author_cli_records_behind_a_dead_proxy(tmp_path: Path) -> None:
    """``python -m helpers.replay author``: its SDK client reaches the recorder on loopback, not the proxy."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_NAMES}
    command = [sys.executable, "-m", "helpers.replay", "author", "demo", "--prompt", PROMPT, "--text", TEXT]
    run = subprocess.run(
        [*command, "--cassettes", str(tmp_path)], env={**env, **behind(DEAD_PROXY)}, capture_output=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout == b"authored 1 synthetic exchange(s) into demo\n"


async def test_lesson_apps_are_read_directly_behind_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """07_web's local servers: read_events' own client, and the buffering proxy stand-in, go to loopback directly."""
    set_behind(monkeypatch, DEAD_PROXY)
    with web.ThreadServer(events_app(header=True)) as server, web.BufferingProxy(server.url) as buffering:
        direct = await web.read_events(f"{server.url}/stream", {"prompt": "p"})
        buffered = await web.read_events(f"{buffering.url}/stream", {"prompt": "p"})
    assert direct.events and [e.data for e in buffered.events] == [e.data for e in direct.events]


def test_setup_adds_loopback_to_no_proxy_keeping_what_is_there(monkeypatch: pytest.MonkeyPatch) -> None:
    set_behind(monkeypatch, DEAD_PROXY)
    monkeypatch.setenv("NO_PROXY", "intranet.example, localhost")
    monkeypatch.setenv("no_proxy", ".corp.example")
    proxies.keep_loopback_off_proxies()
    proxies.keep_loopback_off_proxies()  # again, as each setup cell does: nothing doubles
    expected = "intranet.example,localhost,.corp.example,127.0.0.1,::1"
    assert (os.environ["NO_PROXY"], os.environ["no_proxy"]) == (expected, expected)
    assert urllib.request.getproxies()["https"] == DEAD_PROXY, "the proxy stays for everything else"
    assert urllib.request.proxy_bypass("127.0.0.1") and urllib.request.proxy_bypass("::1")
    assert not urllib.request.proxy_bypass(API_CONNECT.split()[1].partition(":")[0])


def test_a_system_proxy_is_kept_when_no_proxy_variable_was_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows and macOS: a proxy from the system's settings, which Python ignores once any proxy variable (NO_PROXY
    too) is set, is written to the variables first."""
    clear_proxies(monkeypatch)
    system = {"http": "http://proxy.corp.example:3128", "https": "http://proxy.corp.example:3128"}
    monkeypatch.setattr(urllib.request, "getproxies", lambda: urllib.request.getproxies_environment() or system)
    proxies.keep_loopback_off_proxies()
    assert os.environ["https_proxy"] == os.environ["http_proxy"] == "http://proxy.corp.example:3128"
    assert os.environ["no_proxy"] == "127.0.0.1,localhost,::1"
