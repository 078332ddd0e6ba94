"""Issue 12's findings, each reproduced against a real server on loopback and shown fixed (``SECURITY.md``).

An attacker here is a web page the learner has open (it can send "simple" requests to loopback, or rebind its own
name to 127.0.0.1), or a machine on the LAN. Record mode runs against local stand-in upstreams, never the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import io
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from google import genai
from google.genai import errors, types

import helpers
from helpers import control, workbook
from helpers.models import FLASH
from helpers.replay.__main__ import parser
from helpers.replay.app.replay_server import CassetteStore, Mode, ReplayServer
from helpers.replay.cassettes.cassette import Cassette, CassetteError
from helpers.replay.pipeline.api_request import json_response
from helpers.replay.pipeline.socket_server import bind, running
from helpers.replay.services.files_api import FileLimits
from helpers.replay.upstream.synthetic import Script, SyntheticUpstream
from helpers.workbook import ServerProcess, WorkbookError

from .conftest import PROMPT, TEXT, Server, generate_exchange, start_server, stream_exchange, write_cassette
from .test_record import stand_in_upstream

KEY = "AIza" + "Sy" + "S3cur1tyT3stK3yN0tRea1xyz123456"  # key-shaped on purpose; built in pieces
ATTACKER = "attacker.example"
GENERATE = f"v1beta/models/{FLASH}:generateContent"
BODY = {"contents": [{"parts": [{"text": PROMPT}], "role": "user"}]}
TOKEN_HEADER = "x-workbook-token"


def token_of(srv: Server) -> str:
    from helpers.replay.pipeline import (
        server_token,  # here, not above: each test fails on its own on a server without tokens
    )

    found = server_token.find(srv.url)
    assert found, f"{srv.url} published no token"
    return found


def control_token(url: str) -> dict[str, str]:
    """The token header a control call to ``url`` needs (what ``helpers.control`` sends), else nothing."""
    from helpers.replay.pipeline import server_token

    base, found, _ = url.partition("/_control/")
    token = server_token.find(base) if found else None
    return {TOKEN_HEADER: token} if token else {}


def port_of(srv: Server) -> int:
    return int(srv.url.rsplit(":", 1)[1])


# --- the guard, the token and key hygiene (12a) ---


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Host": ATTACKER, "Origin": f"http://{ATTACKER}", "Content-Type": "text/plain"}, 403),
        ({"Host": f"{ATTACKER}:PORT"}, 403),  # DNS rebinding: the page's own name, resolved to 127.0.0.1
        ({"Origin": f"http://{ATTACKER}"}, 403),  # a cross-site simple request, right Host
        ({"Origin": "null"}, 403),  # a sandboxed page or a file:// page
        ({"Content-Type": "text/plain"}, 415),  # a form or no-cors fetch cannot send application/json
    ],
)
def test_a_web_page_cannot_inject_a_fault(server: Server, headers: dict[str, str], status: int) -> None:
    """The finding: a text/plain control call from another site set a 3599 s latency that hung the next call."""
    headers = {k: v.replace("PORT", str(port_of(server))) for k, v in headers.items()}
    sent = {"Content-Type": "application/json", **headers}
    if status == 415:
        sent[TOKEN_HEADER] = token_of(server)  # only the content type is wrong
    try:
        reply = httpx.post(
            f"{server.url}/_control/t/faults/latency", content=json.dumps({"seconds": 3599}), headers=sent, timeout=10
        )
        assert reply.status_code == status, reply.text
        error = reply.json()["error"]
        assert error["status"] == ("PERMISSION_DENIED" if status == 403 else "INVALID_ARGUMENT")
        assert any(hint in error["message"] for hint in ("helpers.setup", "SDK", "Python")), error["message"]
        # The SDK's next call is answered at its recorded pace: no latency was injected.
        c = genai.Client(
            api_key="test-key", http_options=types.HttpOptions(base_url=f"{server.url}/t/", timeout=20_000)
        )
        assert c.models.generate_content(model=FLASH, contents=PROMPT).text
    finally:
        control.clear_faults(cassette="t", server_url=server.url)  # a server without the guard took the fault


def test_the_sdk_and_the_servers_own_origin_pass(server: Server) -> None:
    own = {"Origin": server.url, "Content-Type": "application/json"}
    reply = httpx.post(f"{server.url}/t/{GENERATE}", json=BODY, headers=own, timeout=10)
    assert reply.status_code == 200, reply.text
    for host in ("localhost", "127.0.0.1"):
        reply = httpx.get(f"{server.url}/t/v1beta/files", headers={"Host": f"{host}:{port_of(server)}"}, timeout=10)
        assert reply.status_code == 200, reply.text


def test_a_forged_host_cannot_list_or_download_an_uploaded_file(server: Server) -> None:
    c = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=f"{server.url}/t/"))
    file = c.files.upload(file=io.BytesIO(b"the learner's private notes"), config={"mime_type": "text/plain"})
    assert c.files.download(file=file.name) == b"the learner's private notes"
    forged = {"Host": f"{ATTACKER}:{port_of(server)}"}
    listing = httpx.get(f"{server.url}/t/v1beta/files", headers=forged, timeout=10)
    download = httpx.get(f"{server.url}/t/v1beta/{file.name}:download?alt=media", headers=forged, timeout=10)
    for reply in (listing, download):
        assert reply.status_code == 403, reply.text
        assert file.name not in reply.text and "private" not in reply.text


def test_control_needs_the_token_and_helpers_control_finds_it(server: Server) -> None:
    bare = httpx.get(f"{server.url}/_control/t/stats", timeout=10)
    wrong = httpx.get(f"{server.url}/_control/t/stats", headers={TOKEN_HEADER: "guess"}, timeout=10)
    for reply in (bare, wrong):
        assert reply.status_code == 403
        assert TOKEN_HEADER in reply.json()["error"]["message"]
    right = httpx.get(f"{server.url}/_control/t/stats", headers={TOKEN_HEADER: token_of(server)}, timeout=10)
    assert right.status_code == 200
    assert control.stats(cassette="t", server_url=server.url).received >= 0  # no token passed: found by itself


def test_the_runtime_file_is_private_and_goes_with_its_server(cassette_dir: Path) -> None:
    from helpers.replay.pipeline import server_token

    srv = start_server("--port", "0", "--cassettes", str(cassette_dir))
    (path,) = [p for p in server_token.runtime_dir().glob(f"replay-{srv.proc.pid}-*.json")]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text())["url"] == srv.url
    srv.stop()
    assert not path.exists()
    assert server_token.find(srv.url) is None


async def test_a_keyless_cross_site_post_in_record_mode_records_nothing(tmp_path: Path) -> None:
    """The finding: the upstream's 403 replaced a good recording, and a new cassette file was created."""
    seen: list[str] = []
    async with running(stand_in_upstream(seen)) as upstream:
        recorder = start_server("--port", "0", "--cassettes", str(tmp_path), "--record", "--upstream", upstream)
        try:
            simple = {"Content-Type": "text/plain", "Origin": f"http://{ATTACKER}"}
            url = f"{recorder.url}/planted/v1/models/{FLASH}:countTokens"
            async with httpx.AsyncClient(timeout=10) as client:
                cross_site = await client.post(url, content=json.dumps(BODY), headers=simple)
                plain = await client.post(url, content=json.dumps(BODY), headers={"Content-Type": "text/plain"})
        finally:
            recorder.stop()
    assert (cross_site.status_code, plain.status_code) == (403, 415)
    assert seen == [], "nothing was forwarded upstream"
    assert not (tmp_path / "planted.json").exists()


def test_a_lan_address_needs_allow_remote_and_then_the_token_everywhere(cassette_dir: Path) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "helpers.replay", "serve", "--host", "0.0.0.0", "--port", "0", "--watch-stdin"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (refused.returncode, refused.stdout) == (2, "")
    (line,) = refused.stderr.splitlines()
    assert "--allow-remote" in line and "not a loopback address" in line

    srv = start_server("--host", "0.0.0.0", "--allow-remote", "--port", "0", "--cassettes", str(cassette_dir))
    try:
        assert srv.first_line.startswith("serving http://0.0.0.0:")
        token = srv.proc.stdout.readline().split()[1]
        local = f"http://127.0.0.1:{port_of(srv)}"
        assert httpx.post(f"{local}/t/{GENERATE}", json=BODY, timeout=10).status_code == 403
        headers = {TOKEN_HEADER: token, "Host": f"{ATTACKER}:{port_of(srv)}"}  # any name may reach a LAN server
        assert httpx.post(f"{local}/t/{GENERATE}", json=BODY, headers=headers, timeout=10).status_code == 200
        c = genai.Client(
            api_key="test-key", http_options=types.HttpOptions(base_url=f"{local}/t/", headers={TOKEN_HEADER: token})
        )
        assert c.models.generate_content(model=FLASH, contents=PROMPT).text
        assert control.stats(cassette="t", server_url=local).received == 2
    finally:
        srv.stop()


def echoing_upload_upstream() -> web.Application:
    """A stand-in upstream whose finished upload's File echoes the key the upload was started with."""
    started: list[str] = []

    async def start(request: web.Request) -> web.Response:
        started.append(request.headers.get("x-goog-api-key", ""))
        headers = {"x-goog-upload-url": f"http://{request.host}/session", "x-goog-upload-status": "active"}
        return web.Response(headers=headers)

    async def finish(request: web.Request) -> web.Response:
        await request.read()
        file = {"name": "files/echoed", "displayName": f"uploaded with {started[-1]}", "mimeType": "text/plain"}
        return json_response({"file": file}, headers={"x-goog-upload-status": "final"})

    app = web.Application()
    app.router.add_post("/upload/{version}/files", start)
    app.router.add_post("/session", finish)
    return app


async def test_an_upload_response_echoing_the_key_never_reaches_disk(tmp_path: Path) -> None:
    """The finding: the final upload chunk carries no key, so a File echoing it was saved unchecked."""
    async with (
        running(echoing_upload_upstream()) as upstream,
        running(ReplayServer(CassetteStore(tmp_path), mode=Mode.RECORD, upstream=upstream).app()) as url,
    ):
        c = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=f"{url}/rec/"))
        with pytest.raises(errors.ServerError, match="API key") as caught:
            await c.aio.files.upload(file=io.BytesIO(b"notes"), config={"mime_type": "text/plain"})
        assert KEY not in str(caught.value)
        await c.aio.aclose()
    text = (tmp_path / "rec.json").read_text()
    assert KEY not in text and '"upload/files"' in text, "the start was recorded, the echoing File was not"


async def test_a_key_in_upload_metadata_never_reaches_disk(tmp_path: Path) -> None:
    """A ``display_name`` that is the key: neither the start nor the File echoing it is written."""
    upstream_dir, recorded_dir = tmp_path / "upstream", tmp_path / "recorded"
    write_cassette(upstream_dir, "up", [generate_exchange(PROMPT, "Blue.", 0.01)])
    # The stand-in upstream is a replay server: it keeps the display name and echoes it in the File.
    async with (
        running(ReplayServer(CassetteStore(upstream_dir), speed=10).app()) as upstream,
        running(ReplayServer(CassetteStore(recorded_dir), mode=Mode.RECORD, upstream=f"{upstream}/up").app()) as url,
    ):
        c = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=f"{url}/rec/"))
        with pytest.raises(errors.ServerError, match="API key") as caught:
            await c.aio.files.upload(file=io.BytesIO(b"notes"), config={"mime_type": "text/plain", "display_name": KEY})
        assert KEY not in str(caught.value)
        await c.aio.aclose()
    assert not any(KEY in p.read_text(errors="replace") for p in recorded_dir.rglob("*") if p.is_file())


def test_a_key_smuggled_into_the_path_is_refused_and_never_forwarded(tmp_path: Path) -> None:
    srv = start_server("--port", "0", "--cassettes", str(tmp_path), "--record", "--upstream", "http://127.0.0.1:9")
    try:
        url = f"{srv.url}/rec/v1/models/{FLASH}:countTokens%3Fkey={KEY}"
        reply = httpx.post(url, json=BODY, timeout=10)
    finally:
        srv.stop()
    assert reply.status_code == 400 and "%3F" in reply.json()["error"]["message"]
    assert KEY not in reply.text
    assert KEY not in srv.proc.stderr.read()
    assert not (tmp_path / "rec.json").exists()


def test_a_malformed_request_line_carrying_the_key_is_not_echoed_or_logged(cassette_dir: Path) -> None:
    """The finding: aiohttp echoed the raw line into its 400 body and its log (``helpers.setup``'s, 0644)."""
    server = ServerProcess(["serve", "--cassettes", str(cassette_dir)])
    try:
        mode = stat.S_IMODE(server.log.stat().st_mode)
        host, port_text = server.url.removeprefix("http://").rsplit(":", 1)
        bodies = []
        for raw in (
            f"GET /t/v1beta/models?key={KEY} HTTP/1.1 trailing\r\nHost: {host}\r\n\r\n",
            f"GET /t/v1beta/models HTTP/1.1\r\nHost: {host}\r\nx-goog-api-key {KEY}\r\n\r\n",
        ):
            with socket.create_connection((host, int(port_text)), timeout=10) as s:
                s.sendall(raw.encode())
                bodies.append(s.makefile("rb").read().decode(errors="replace"))
    finally:
        server.stop()
    for body in bodies:
        assert body.split()[1] == "400", body
        assert KEY not in body and '"INVALID_ARGUMENT"' in body
    assert not server.log.exists() or KEY not in server.log.read_text(errors="replace")
    assert mode == 0o600, "only its user may read the server's log"


async def test_key_only_in_the_query_is_forwarded_as_the_header_and_never_recorded(tmp_path: Path) -> None:
    """The finding: ``?key=`` alone (as Google's curl examples send it) was dropped; the upstream's 403 recorded."""
    seen: list[str] = []
    async with running(stand_in_upstream(seen)) as upstream:
        recorder = start_server("--port", "0", "--cassettes", str(tmp_path), "--record", "--upstream", upstream)
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                url = f"{recorder.url}/rec/v1/models/{FLASH}:countTokens?key={KEY}"
                reply = await client.post(url, json=BODY)
        finally:
            recorder.stop()
    assert (reply.status_code, reply.json()) == (200, {"totalTokens": 7})
    assert seen == [KEY], "the key went upstream, as the x-goog-api-key header"
    text = (tmp_path / "rec.json").read_text()
    assert KEY not in text and '"totalTokens": 7' in text


async def test_a_bearer_key_is_never_written(tmp_path: Path) -> None:
    """The OpenAI-compatible endpoint's clients send ``Authorization: Bearer KEY``; that key is kept out too."""
    seen: list[str] = []
    async with running(stand_in_upstream(seen)) as upstream:
        recorder = start_server("--port", "0", "--cassettes", str(tmp_path), "--record", "--upstream", upstream)
        try:
            echoed = {"contents": [{"parts": [{"text": f"my key is {KEY}"}], "role": "user"}]}
            async with httpx.AsyncClient(timeout=10) as client:
                reply = await client.post(
                    f"{recorder.url}/rec/v1/models/{FLASH}:countTokens",
                    json=echoed,
                    headers={"Authorization": f"Bearer {KEY}", "x-goog-api-key": "test-key"},
                )
        finally:
            recorder.stop()
    assert reply.status_code == 500 and "API key" in reply.json()["error"]["message"]
    assert KEY not in reply.text and KEY not in recorder.proc.stderr.read()
    assert not (tmp_path / "rec.json").exists() or KEY not in (tmp_path / "rec.json").read_text()


def test_the_server_log_redacts_every_key_it_was_sent(tmp_path: Path) -> None:
    """Whatever writes to the server's standard error (a traceback, aiohttp, the recorder), no key gets through."""
    code = (
        "import sys\n"
        "from helpers.replay.wire.api_keys import SEEN, RedactingStream\n"
        f"SEEN.note_request({{'authorization': 'Bearer {KEY}'}}, {{}})\n"
        "sys.stderr = RedactingStream(sys.stderr)\n"
        f"raise RuntimeError('upstream said: bad key {KEY}')\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, env=os.environ)
    assert "RuntimeError: upstream said: bad key [redacted]" in ran.stderr
    assert KEY not in ran.stderr


# --- bounded resources and input (12b) ---
MODEL = f"models/{helpers.FLASH}"
START = {"X-Goog-Upload-Command": "start", "X-Goog-Upload-Protocol": "resumable"}


def replay_folder() -> Path:
    """A fresh folder with cassette ``t``, readable by any user (a dropped-privilege server reads it too)."""
    folder = Path(tempfile.mkdtemp(prefix="security-"))
    folder.chmod(0o755)
    write_cassette(folder, "t", [generate_exchange(PROMPT, TEXT, 0.0)])
    return folder


async def call(
    session: aiohttp.ClientSession, method: str, url: str, data: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, str, Any]:
    """``(status, content type, parsed JSON or None)`` of one request."""
    headers = {"Content-Type": "application/json", **control_token(url), **(headers or {})}
    async with session.request(method, url, data=data, headers=headers) as r:
        raw = await r.read()
        body = json.loads(raw) if r.content_type == "application/json" and raw else None
        return r.status, r.content_type, body


def assert_api_error(result: tuple[int, str, Any], code: int, *words: str) -> None:
    """``result`` is the API's JSON error ``{"error": {"code", "message", "status"}}``, ``code``, naming ``words``."""
    status, content_type, body = result
    assert (status, content_type) == (code, "application/json"), result
    error = body["error"]
    assert error["code"] == code and isinstance(error["status"], str) and error["status"], body
    for word in words:
        assert word in error["message"], (word, error["message"])
    assert "Traceback" not in error["message"]


def serve_args(folder: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "helpers.replay", "serve", "--port", "0", "--cassettes", str(folder), *extra]


@contextlib.contextmanager
def serving(args: list[str], log: Path, **popen: Any) -> Iterator[str]:
    """Run a server subprocess with stderr to ``log``; yields its URL; stops it afterwards."""
    with log.open("wb") as err:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True, **popen)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first.startswith("serving http://"), (first, log.read_text())
        yield first.split()[1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class CountingUpstream:
    """A stand-in upstream on loopback (in a thread) that counts the requests it gets and answers 200 ``{}``."""

    def __init__(self) -> None:
        self.hits = 0
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                upstream.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            do_POST = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def writable(folder: Path) -> bool:
    """Whether this process can create a file in ``folder``."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def read_only_folder() -> Iterator[Path]:
    """A cassette folder nobody can write into: mode 0555, and for root (whom modes do not stop) immutable."""
    folder = Path(tempfile.mkdtemp(prefix="security-ro-")) / "cassettes"
    folder.mkdir(mode=0o555)
    immutable = writable(folder)  # root, or Windows (which ignores a folder's read-only mode)
    chattr = ["chattr", "+i", str(folder)]
    if immutable and (sys.platform != "linux" or subprocess.run(chattr, capture_output=True).returncode != 0):
        pytest.skip("only Linux's chattr +i makes a folder read-only for root (or on Windows), on some file systems")
    try:
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)


# Slow clients, idle sockets and file descriptors --------------------------------------------------------------------


def test_slow_header_clients_are_closed_within_the_idle_timeout(tmp_path: Path) -> None:
    with serving(serve_args(replay_folder(), "--idle-timeout", "1"), tmp_path / "log") as url:
        host, port = url.removeprefix("http://").split(":")
        clients = [socket.create_connection((host, int(port))) for _ in range(20)]
        for client in clients:
            client.sendall(b"POST /t/v1beta/models/x:generateContent HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            client.settimeout(0.05)
        closed: set[int] = set()
        deadline = time.monotonic() + 15  # 15 times the timeout: a bound, not a measurement
        while len(closed) < len(clients) and time.monotonic() < deadline:
            for i, client in enumerate(clients):
                if i in closed:
                    continue
                try:
                    client.sendall(b"X-Slow: 1\r\n")  # a header line now and then: a slowloris client
                    if client.recv(1024) == b"":
                        closed.add(i)
                except TimeoutError:
                    pass
                except OSError:
                    closed.add(i)
            time.sleep(0.2)
        for client in clients:
            client.close()
        assert len(closed) == len(clients), f"{len(clients) - len(closed)} slow-header clients were never closed"


def test_a_trickled_body_gets_a_408_within_the_idle_timeout(tmp_path: Path) -> None:
    with serving(serve_args(replay_folder(), "--idle-timeout", "1"), tmp_path / "log") as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as client:
            client.sendall(
                f"POST /t/v1beta/models/{FLASH}:generateContent HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode()
            )
            client.settimeout(0.2)
            reply, closed = b"", False
            deadline = time.monotonic() + 15  # 15 times the timeout: a bound, not a measurement
            while not closed and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    if not reply:
                        client.sendall(b" ")  # one byte now and then: the body never completes
                    data = client.recv(4096)
                    reply += data
                    closed = data == b""
                time.sleep(0.1)
    assert reply.startswith(b"HTTP/1.1 408") and b"DEADLINE_EXCEEDED" in reply, reply[:300]
    assert closed, "the connection stayed open after the 408"


def test_out_of_file_descriptors_is_one_log_line_and_the_server_serves_again(tmp_path: Path) -> None:
    resource = pytest.importorskip("resource", reason="Windows has no open-file limit (no resource module)")
    log = tmp_path / "log"
    limit = 40  # the server needs about 15 descriptors of its own

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    with serving(serve_args(replay_folder(), "--idle-timeout", "1"), log, preexec_fn=low_limit) as url:
        host, port = url.removeprefix("http://").split(":")
        idle = [socket.create_connection((host, int(port))) for _ in range(limit + 20)]
        deadline = time.monotonic() + 10
        while "out of file descriptors" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "out of file descriptors" in log.read_text(), "the idle sockets never exhausted the server's limit"
        # The idle sockets stay open on this side; the server closes them after its idle timeout and serves again.
        request = f"{url}/t/v1beta/{MODEL}:generateContent"
        body = json.dumps({"contents": [{"parts": [{"text": PROMPT}], "role": "user"}]}).encode()
        req = urllib.request.Request(request, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=20) as reply:
            answer = json.loads(reply.read())
        for sock in idle:
            sock.close()
    assert answer["candidates"][0]["content"]["parts"][0]["text"] == TEXT
    lines = log.read_text().splitlines()
    assert len([line for line in lines if "out of file descriptors" in line]) == 1, lines[:5]
    assert log.stat().st_size < 2000, f"the log grew to {log.stat().st_size} bytes"


# Fixed-size state --------------------------------------------------------------------------------------------------


async def test_the_stats_timeline_is_bounded_and_says_what_it_dropped() -> None:
    server = ReplayServer(CassetteStore(replay_folder()), stats_history=5)
    body = json.dumps({"contents": [{"parts": [{"text": PROMPT}], "role": "user"}]}).encode()
    async with running(server.app()) as url, aiohttp.ClientSession() as session:
        for _ in range(8):
            assert (await call(session, "POST", f"{url}/t/v1beta/{MODEL}:generateContent", body))[0] == 200
        stats = await asyncio.to_thread(control.stats, cassette="t", server_url=url)
    assert (stats.received, stats.answered, len(stats.requests), stats.requests_dropped) == (8, 8, 5, 3)


def server_state_keys(app: Any) -> set[str]:
    """Every string key (or string in a tuple key) of the dicts held by the server's own objects: its middlewares'
    and route handlers' owners, and the ``helpers.replay`` objects they hold (the matcher, the limiter, ...)."""
    owners = [getattr(h, "__self__", None) for h in app.middlewares]
    owners += [getattr(route.handler, "__self__", None) for route in app.router.routes()]
    seen: set[int] = set()
    keys: set[str] = set()
    while owners:
        obj = owners.pop()
        if obj is None or id(obj) in seen or not type(obj).__module__.startswith("helpers.replay"):
            continue
        seen.add(id(obj))
        for value in vars(obj).values():
            if isinstance(value, dict):
                for key in value:
                    keys.update(k for k in (key if isinstance(key, tuple) else (key,)) if isinstance(k, str))
            else:
                owners.append(value)
    return keys


async def test_requests_naming_unknown_cassettes_leave_no_state() -> None:
    server = ReplayServer(CassetteStore(replay_folder()))
    app = server.app()
    body = json.dumps({"contents": [{"parts": [{"text": PROMPT}], "role": "user"}]}).encode()
    async with running(app) as url, aiohttp.ClientSession() as session:
        for i in range(20):
            name = f"nobody-{i}"
            assert_api_error(await call(session, "POST", f"{url}/{name}/v1beta/{MODEL}:generateContent", body), 404)
            assert (await call(session, "GET", f"{url}/{name}/v1beta/files"))[0] == 200
            assert (await call(session, "GET", f"{url}/{name}/v1beta/files/abc"))[0] == 403
            assert (await call(session, "GET", f"{url}/{name}/v1beta/batches/abc"))[0] == 404
            assert (await call(session, "GET", f"{url}/_control/{name}/stats"))[0] == 400
        assert (await call(session, "POST", f"{url}/t/v1beta/{MODEL}:generateContent", body))[0] == 200
    keys = server_state_keys(app)
    assert "t" in keys, "the check sees the state of a cassette that exists"
    assert not {k for k in keys if k.startswith("nobody-")}, "requests naming unknown cassettes left state behind"


async def test_abandoned_uploads_expire_and_the_bytes_held_are_capped() -> None:
    limits = FileLimits(upload_ttl_s=0.5, max_stored_bytes=1000)
    server = ReplayServer(CassetteStore(replay_folder()), file_limits=limits)
    async with running(server.app()) as url, aiohttp.ClientSession() as session:

        async def start(size: int) -> tuple[int, str]:
            headers = {**START, "X-Goog-Upload-Header-Content-Length": str(size)}
            meta = json.dumps({"file": {"mime_type": "text/plain"}}).encode()
            async with session.post(f"{url}/t/upload/v1beta/files", data=meta, headers=headers) as r:
                return r.status, r.headers.get("x-goog-upload-url", "")

        async def chunk(upload_url: str, data: bytes, offset: int, command: str) -> tuple[int, str, Any]:
            headers = {"X-Goog-Upload-Command": command, "X-Goog-Upload-Offset": str(offset)}
            return await call(session, "POST", upload_url, data, headers)

        status, abandoned = await start(600)
        assert status == 200
        assert (await chunk(abandoned, b"a" * 500, 0, "upload"))[0] == 200  # then never finished
        refused = await call(
            session,
            "POST",
            f"{url}/t/upload/v1beta/files",
            b'{"file": {"mime_type": "text/plain"}}',
            {**START, "X-Goog-Upload-Header-Content-Length": "600"},
        )
        assert_api_error(refused, 429, "500 bytes", "1000 bytes", "client.files.delete")
        await asyncio.sleep(0.6)  # past the upload TTL: the abandoned upload and its bytes are let go
        status, fresh = await start(800)
        assert status == 200
        assert_api_error(await chunk(abandoned, b"a" * 100, 500, "upload, finalize"), 404, "start the upload again")
        done = await chunk(fresh, b"b" * 800, 0, "upload, finalize")
        assert done[0] == 200 and done[2]["file"]["sizeBytes"] == "800"
        status, parallel = await start(150)  # fits beside the file; the next one's bytes will not
        assert status == 200
        status, second = await start(150)
        assert status == 200
        assert (await chunk(parallel, b"c" * 150, 0, "upload, finalize"))[0] == 200
        assert_api_error(await chunk(second, b"c" * 150, 0, "upload, finalize"), 429, "limit of 1000 bytes")
        assert (await call(session, "DELETE", f"{url}/t/v1beta/{done[2]['file']['name']}"))[0] == 200
        status, third = await start(150)
        assert status == 200 and (await chunk(third, b"d" * 150, 0, "upload, finalize"))[0] == 200


# One error middleware: wrong-typed input gets the API's JSON error naming the field --------------------------------

WRONG_BODIES = [
    (f"{MODEL}:generateContent", b'{"contents": 5}', "'contents'"),
    (f"{MODEL}:generateContent", b'{"contents": [{"parts": 5}]}', "'contents[0].parts'"),
    (f"{MODEL}:streamGenerateContent?alt=sse", b'{"contents": [7]}', "'contents[0]'"),
    (f"{MODEL}:countTokens", b'{"generateContentRequest": []}', "'generateContentRequest'"),
    (f"{MODEL}:generateContent", b"[" * 100_000 + b"]" * 100_000, "deeper than 100 levels"),
    (f"{MODEL}:generateContent", b'{"contents": [], "n": ' + b"7" * 5000 + b"}", "4300 digits"),
    (f"{MODEL}:batchGenerateContent", b'{"batch": {"inputConfig": {"requests": [1]}}}', "'batch.inputConfig.requests'"),
]
WRONG_UPLOADS = [
    (b"[1, 2]", "upload metadata"),
    (b'{"file": "x"}', "'file'"),
    (b'{"file": {"mime_type": 7}}', "'file.mime_type'"),
]


async def test_wrong_typed_bodies_are_400s_naming_the_field_in_replay_record_and_the_synthetic_upstream() -> None:
    async with running(SyntheticUpstream(Script([])).app()) as upstream, aiohttp.ClientSession() as session:
        record = ReplayServer(CassetteStore(replay_folder()), mode=Mode.RECORD, upstream=upstream)
        local = ReplayServer(CassetteStore(replay_folder()), mode=Mode.RECORD_LOCAL, upstream=upstream)
        async with (
            running(ReplayServer(CassetteStore(replay_folder())).app()) as replay,
            running(record.app()) as recording,
            running(local.app()) as recording_local,
        ):
            for base in (f"{replay}/t", f"{recording}/t", upstream):
                for path, body, field in WRONG_BODIES:
                    assert_api_error(await call(session, "POST", f"{base}/v1beta/{path}", body), 400, field)
            for base in (replay, recording_local):
                for body, field in WRONG_UPLOADS:
                    result = await call(session, "POST", f"{base}/t/upload/v1beta/files", body, START)
                    assert_api_error(result, 400, field)
            # The control route and the Interactions stand-in read their bodies the same way.
            big = b'{"seconds": ' + b"7" * 5000 + b"}"
            latency = f"{replay}/_control/t/faults/latency"
            assert_api_error(await call(session, "POST", latency, big), 400, "4300 digits")
            deep = b"[" * 100_000 + b"]" * 100_000
            assert_api_error(await call(session, "POST", f"{upstream}/v1beta/interactions", deep), 400, "100 levels")
            # aiohttp's own refusals take the same shape (no route for "/").
            assert_api_error(await call(session, "GET", f"{replay}/"), 404, "base URL")


# Corrupt cassettes -------------------------------------------------------------------------------------------------


def corrupt_forms(folder: Path) -> dict[str, tuple[Path, str]]:
    """Each corrupt form of cassette file, written in ``folder``: name -> (path, what its message must say)."""
    good = write_cassette(folder, "good", [stream_exchange(PROMPT, [(0.1, "a"), (0.2, "b")])]).path.read_text()
    forms = {
        "binary": (b"\x89PNG\r\n\x1a\n\x00\xff" * 20, "byte 0x89 at offset 0"),
        "deep": (b"[" * 100_000 + b"]" * 100_000, "too deeply"),
        "provenance": (good.replace('"provenance": {', '"provenance": [1], "old": {', 1).encode(), "provenance"),
        "nan": (good.replace('"offset_s": 0.2', '"offset_s": NaN', 1).encode(), "NaN at line"),
        "infinity": (good.replace('"offset_s": 0.1', '"offset_s": Infinity', 1).encode(), "Infinity at line"),
    }
    found = {}
    for name, (data, words) in forms.items():
        path = folder / f"{name}.json"
        path.write_bytes(data)
        found[name] = (path, words)
    (folder / "folder.json").mkdir()
    found["folder"] = (folder / "folder.json", "is a folder")
    return found


def test_every_corrupt_cassette_form_is_one_message_naming_file_and_place(env: Path) -> None:
    for name, (path, words) in corrupt_forms(env).items():
        with pytest.raises(CassetteError) as loaded:
            Cassette.load(path)
        assert str(path) in str(loaded.value) and words in str(loaded.value), (name, str(loaded.value))
        with pytest.raises(WorkbookError) as setup:
            helpers.setup(name)
        assert str(loaded.value) == str(setup.value)


async def test_a_nan_chunk_offset_is_refused_not_served() -> None:
    folder = replay_folder()
    cassette = write_cassette(folder, "n", [stream_exchange(PROMPT, [(0.0, "a"), (0.1, "b")])])
    cassette.path.write_text(cassette.path.read_text().replace('"offset_s": 0.1', '"offset_s": NaN', 1))
    body = json.dumps({"contents": [{"parts": [{"text": PROMPT}], "role": "user"}]}).encode()
    async with running(ReplayServer(CassetteStore(folder)).app()) as url, aiohttp.ClientSession() as session:
        result = await call(session, "POST", f"{url}/n/v1beta/{MODEL}:streamGenerateContent?alt=sse", body)
    assert_api_error(result, 400, "NaN at line", str(cassette.path))


# Names, folders, ports, flags --------------------------------------------------------------------------------------


async def test_cassette_names_must_match_whole_and_fit_before_anything_is_forwarded() -> None:
    upstream = CountingUpstream()
    folder = replay_folder()
    body = json.dumps({"contents": [{"parts": [{"text": PROMPT}], "role": "user"}]}).encode()
    try:
        server = ReplayServer(CassetteStore(folder), mode=Mode.RECORD, upstream=upstream.url)
        async with running(server.app()) as url, aiohttp.ClientSession() as session:
            newline = await call(session, "POST", f"{url}/nl%0a/v1beta/{MODEL}:generateContent", body)
            long = await call(session, "POST", f"{url}/{'a' * 245}/v1beta/{MODEL}:generateContent", body)
            control_newline = await call(session, "GET", f"{url}/_control/nl%0a/stats")
    finally:
        upstream.close()
    assert_api_error(newline, 404, "not a cassette name")
    assert_api_error(long, 400, "at most 100 characters")
    assert_api_error(control_newline, 400, "not a cassette name")
    assert upstream.hits == 0, "a refused name was forwarded (and billed)"
    assert sorted(p.name for p in folder.iterdir()) == ["t.json"]


def test_a_read_only_folder_is_refused_by_serve_record_before_any_call(tmp_path: Path) -> None:
    upstream = CountingUpstream()
    try:
        with read_only_folder() as folder:
            args = serve_args(folder, "--record", "--upstream", upstream.url)
            done = subprocess.run(args, capture_output=True, text=True, timeout=30)
    finally:
        upstream.close()
    assert done.returncode == 2 and done.stdout == "", (done.stdout, done.stderr)
    assert done.stderr.startswith("error: record mode cannot write recordings into"), done.stderr
    assert len(done.stderr.splitlines()) == 1 and upstream.hits == 0


def test_a_read_only_folder_is_refused_by_setup_before_any_call() -> None:
    upstream = CountingUpstream()
    script = "import helpers\ntry:\n    helpers.setup('t')\nexcept helpers.WorkbookError as e:\n    print(e)\n"
    try:
        with read_only_folder() as folder:
            env = {
                **os.environ,
                "WORKBOOK_MODE": "record",
                "WORKBOOK_UPSTREAM": upstream.url,
                "WORKBOOK_CASSETTES": str(folder),
                "GEMINI_API_KEY": "test-key-not-real",
            }
            done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    finally:
        upstream.close()
    assert done.stdout.startswith(f"record mode cannot write recordings into {folder}"), (done.stdout, done.stderr)
    assert upstream.hits == 0, "setup() asked the upstream (and started a recorder) first"


def test_a_squatted_port_on_restart_is_detected_and_said(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_cassette(env, "07_demo", [generate_exchange(PROMPT, TEXT, 0.0)])
    first = helpers.setup("07_demo")
    old = workbook._servers["serve"]
    old.proc.kill()
    old.proc.wait()
    port = int(first.server_url.rsplit(":", 1)[1])
    squatter = bind("127.0.0.1", port)
    squatter.listen()
    try:
        capsys.readouterr()
        again = helpers.setup("07_demo")
    finally:
        squatter.close()
    out = capsys.readouterr().out.splitlines()
    assert again.server_url != first.server_url
    assert out[0] == workbook.squatted_port_message(port, again.server_url) and f"port {port}" in out[0]
    assert again.server_url in out[0] and "genai.Client()" in out[0]


@pytest.mark.parametrize("speed", ["nan", "inf", "-inf", "0", "-1", "fast"])
def test_the_cli_refuses_a_speed_that_is_not_a_finite_positive_number(
    speed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["serve", f"--speed={speed}"])
    assert exited.value.code == 2
    assert "--speed: must be a" in capsys.readouterr().err


@pytest.mark.parametrize("speed", [float("nan"), float("inf"), 0.0])
def test_setup_refuses_a_speed_that_is_not_a_finite_positive_number(env: Path, speed: float) -> None:
    write_cassette(env, "t", [generate_exchange(PROMPT, TEXT, 0.0)])
    with pytest.raises(WorkbookError, match="speed must be a finite number greater than 0"):
        helpers.setup("t", speed=speed)
    assert "serve" not in workbook._servers
