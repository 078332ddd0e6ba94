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
import statistics
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
from helpers.replay.cassettes.cassette import Cassette, CassetteError, journal_path
from helpers.replay.pipeline.api_request import json_response
from helpers.replay.pipeline.socket_server import bind, running
from helpers.replay.services.batches_api import BatchService
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


# --- Issue 26: other accounts, browsers by Fetch Metadata, crashes while recording, stalls, bad input -------------

SECRET_SERVE = ["--require-token"]
LEARNER_FILE = b"the learner's notes, 6 MB in the finding " * 1000


def setup_style_server(folder: Path, *extra: str) -> tuple[Server, str]:
    """A server started as ``helpers.setup`` starts one (``--require-token``); its URL and the token it printed."""
    srv = start_server(*SECRET_SERVE, "--port", "0", "--cassettes", str(folder), *extra)
    words = srv.proc.stdout.readline().split()
    assert words[:1] == ["token"], words
    return srv, words[1]


def learner_client(url: str, token: str, key: str = "test-key") -> genai.Client:
    """What ``helpers.setup`` hands a notebook: the key variable is ``KEY.TOKEN``."""
    return genai.Client(api_key=f"{key}.{token}", http_options=types.HttpOptions(base_url=f"{url}/t/"))


ATTACKS = [
    ("GET", "t/v1beta/files", b""),
    ("GET", "t/v1beta/files/FILE", b""),
    ("GET", "t/v1beta/files/FILE:download?alt=media", b""),
    ("DELETE", "t/v1beta/files/FILE", b""),
    ("GET", "t/v1beta/batches", b""),
    ("POST", f"t/{GENERATE}", json.dumps(BODY).encode()),
    ("POST", f"planted/v1beta/models/{FLASH}:countTokens", json.dumps(BODY).encode()),
    ("POST", "t/v1beta/openai/chat/completions", b'{"model": "x", "messages": [{"role": "user", "content": "hi"}]}'),
]
"""What another account tried in the finding: list, download and delete an upload, list batches, and (record mode)
write a new exchange into a cassette; with the placeholder key the SDK would send without setup's token."""

OTHER_ACCOUNT_SCRIPT = """
import json, sys, urllib.request, urllib.error
url, attacks = sys.argv[1], json.loads(sys.argv[2])
out = []
for method, path, body in attacks:
    req = urllib.request.Request(f"{url}/{path}", data=body.encode() or None, method=method, headers={
        "Content-Type": "application/json", "x-goog-api-key": "workbook-replay-placeholder-key"})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            out.append([r.status, r.read(300).decode(errors="replace")])
    except urllib.error.HTTPError as e:
        out.append([e.code, e.read(300).decode(errors="replace")])
print(json.dumps(out))
"""


def attack(url: str, file_name: str, run: list[str]) -> list[tuple[int, str]]:
    """Run :data:`ATTACKS` against ``url`` through ``run`` (a command prefix that runs Python as someone)."""
    attacks = [(m, p.replace("FILE", file_name.removeprefix("files/")), b.decode()) for m, p, b in ATTACKS]
    done = subprocess.run(
        [*run, "-c", OTHER_ACCOUNT_SCRIPT, url, json.dumps(attacks)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return [tuple(r) for r in json.loads(done.stdout)]


def second_account() -> list[str]:
    """A command prefix that runs the system's Python as another account of this machine, made for the test.

    Skips (with the reason) where the test cannot make one: it needs root, ``useradd`` and ``setpriv``.
    """
    import shutil

    geteuid = getattr(os, "geteuid", None)  # POSIX only: Windows has no user ids
    if geteuid is None or geteuid() != 0:
        pytest.skip("a second account can be made only by root on Linux (useradd); run the suite as root to check this")
    python = shutil.which("python3", path="/usr/bin:/bin")
    if not (shutil.which("useradd") and shutil.which("setpriv") and python):
        pytest.skip("useradd, setpriv or /usr/bin/python3 is missing: no second account to attack from")
    name = "wbattacker"
    if subprocess.run(["id", "-u", name], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    uid = subprocess.run(["id", "-u", name], capture_output=True, text=True, check=True).stdout.strip()
    gid = subprocess.run(["id", "-g", name], capture_output=True, text=True, check=True).stdout.strip()
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", python]


@pytest.mark.parametrize("mode", ["replay", "record"])
def test_another_account_on_the_machine_cannot_use_a_setup_server(tmp_path: Path, mode: str) -> None:
    """The finding: as another user, without the token, listing, downloading and deleting a learner's upload, listing
    batches and (record mode) writing a new exchange into the learner's cassette all got 200."""
    run = second_account()
    folder = replay_folder()
    upstream = CountingUpstream()
    extra = ["--record", "--local-files-batches", "--upstream", upstream.url] if mode == "record" else []
    srv, token = setup_style_server(folder, *extra)
    try:
        c = learner_client(srv.url, token)
        file = c.files.upload(file=io.BytesIO(LEARNER_FILE), config={"mime_type": "text/plain"})
        results = attack(srv.url, file.name, run)
        assert c.files.download(file=file.name) == LEARNER_FILE, "the learner's own client still works"
    finally:
        srv.stop()
        upstream.close()
    for (method, path, _), (status, text) in zip(ATTACKS, results, strict=True):
        assert status == 403, (method, path, status, text)
        assert "token" in text and "notes" not in text
    assert upstream.hits == 0 and not (folder / "planted.json").exists()


def test_every_route_of_a_token_server_needs_the_token_and_a_plain_client_works(tmp_path: Path) -> None:
    """Without a second account: the same calls without the token are refused, on every route; the CLI contract
    (no flag: a plain client, no token) stays."""
    srv, token = setup_style_server(replay_folder())
    try:
        c = learner_client(srv.url, token)
        assert c.models.generate_content(model=FLASH, contents=PROMPT).text == TEXT
        file = c.files.upload(file=io.BytesIO(b"notes"), config={"mime_type": "text/plain"})
        results = attack(srv.url, file.name, [sys.executable])
        assert c.files.download(file=file.name) == b"notes"
        bare = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=f"{srv.url}/t/"))
        with pytest.raises(errors.ClientError) as refused:
            bare.models.generate_content(model=FLASH, contents=PROMPT)
        assert refused.value.code == 403
        headers = {TOKEN_HEADER: token}  # the header, as a LAN client sends it, works too
        assert httpx.post(f"{srv.url}/t/{GENERATE}", json=BODY, headers=headers, timeout=10).status_code == 200
        bearer = {"Authorization": f"Bearer\tsk-anything.{token}"}  # the openai SDK's way, any whitespace
        assert httpx.get(f"{srv.url}/t/v1beta/openai/models", headers=bearer, timeout=10).status_code == 200
        assert httpx.get(f"{srv.url}/t/v1beta/files?key=x.{token}", timeout=10).status_code == 200
    finally:
        srv.stop()
    assert [status for status, _ in results] == [403] * len(ATTACKS)
    assert token not in srv.proc.stderr.read()
    plain = start_server("--port", "0", "--cassettes", str(replay_folder()))
    try:
        client = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=f"{plain.url}/t/"))
        assert client.models.generate_content(model=FLASH, contents=PROMPT).text == TEXT
    finally:
        plain.stop()


def header_capturing_upstream(sent: list[str]) -> web.Application:
    """Answers countTokens with 7 tokens, noting every header value and the query string it was sent."""

    async def count(request: web.Request) -> web.Response:
        sent.extend([*request.headers.values(), request.query_string])
        return json_response({"totalTokens": 7})

    app = web.Application()
    app.router.add_post(f"/v1/models/{FLASH}:countTokens", count)
    return app


async def test_record_mode_forwards_the_learners_key_never_the_token(tmp_path: Path) -> None:
    sent: list[str] = []
    async with running(header_capturing_upstream(sent)) as upstream:
        srv, token = setup_style_server(tmp_path, "--record", "--upstream", upstream)
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                url = f"{srv.url}/rec/v1/models/{FLASH}:countTokens"
                replies = [
                    await client.post(url, json=BODY, headers={"x-goog-api-key": f"{KEY}.{token}"}),
                    await client.post(f"{url}?key={KEY}.{token}", json=BODY),
                    await client.post(url, json=BODY, headers={"Authorization": f"Bearer {KEY}.{token}"}),
                    await client.post(
                        url, json=BODY, headers={"Authorization": f"Bearer {token}", "x-goog-api-key": KEY}
                    ),
                ]
        finally:
            srv.stop()
    assert [r.status_code for r in replies] == [200] * 4
    assert sum(KEY in value for value in sent) == 4, "the key alone went upstream, each time"
    assert not any(token in value for value in sent), "the token never left the server"
    text = (tmp_path / "rec.json").read_text()
    assert KEY not in text and token not in text and '"totalTokens": 7' in text


def test_setup_gives_the_sdk_the_token_in_its_key_and_prints_no_secret(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_cassette(env, "t", [generate_exchange(PROMPT, TEXT, 0.0)])
    session = helpers.setup("t")
    token = workbook._servers["serve"].token
    assert token and os.environ["GEMINI_API_KEY"].endswith(f".{token}")
    assert token not in capsys.readouterr().out and token not in session.base_url + session.openai_base_url
    assert genai.Client().models.generate_content(model=FLASH, contents=PROMPT).text == TEXT
    # Another account knows the port (it can list sockets), not the token.
    assert httpx.get(f"{session.rest_base_url}files", timeout=10).status_code == 403


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
@pytest.mark.parametrize("site", ["cross-site", "same-site"])
async def test_record_mode_refuses_requests_browsers_mark_as_from_another_site(
    tmp_path: Path, method: str, site: str
) -> None:
    """The finding: an ``<img>`` tag's GET (``Sec-Fetch-Site: cross-site``, ``no-cors``, no ``Origin``) to
    ``/<new-name>/v1beta/models/...`` was forwarded upstream and created ``<new-name>.json``; HEAD too."""
    upstream = CountingUpstream()
    try:
        recorder = start_server("--port", "0", "--cassettes", str(tmp_path), "--record", "--upstream", upstream.url)
        try:
            headers = {"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "no-cors", "Content-Type": "application/json"}
            url = f"{recorder.url}/planted/v1beta/models/{FLASH}"
            refused = httpx.request(method, url, headers=headers, timeout=10)
            own = httpx.get(url, headers={"Sec-Fetch-Site": "same-origin"}, timeout=10)
            typed = httpx.get(url, headers={"Sec-Fetch-Site": "none"}, timeout=10)
        finally:
            recorder.stop()
    finally:
        upstream.close()
    assert refused.status_code == 403
    assert (own.status_code, typed.status_code) == (200, 200), "the server's own pages and typed URLs pass"
    assert upstream.hits == 2, "only those two were forwarded"
    assert not (tmp_path / "planted.json").exists() or "Sec-Fetch" not in (tmp_path / "planted.json").read_text()


# Crash-safe recording ----------------------------------------------------------------------------------------------

BIG_ANSWER = "x" * 8_000_000


def big_answer_upstream() -> web.Application:
    """Answers every generateContent with its prompt, and a prompt ending in ``big`` with an 8 MB text too: an append
    of that writes for milliseconds (as the finding's large answers did), long enough to be killed in the middle."""

    async def generate(request: web.Request) -> web.Response:
        prompt = (await request.json())["contents"][0]["parts"][0]["text"]
        text = prompt + (BIG_ANSWER if prompt.endswith("big") else "")
        return json_response({"candidates": [{"content": {"parts": [{"text": text}]}}]})

    app = web.Application()
    app.router.add_post(f"/v1/models/{FLASH}:generateContent", generate)
    return app


def recorded_prompts(folder: Path) -> set[str]:
    return {e.request["body"]["contents"][0]["parts"][0]["text"] for e in Cassette.load(folder / "rec.json").exchanges}


def cassette_bytes(folder: Path) -> int:
    """The bytes of cassette ``rec`` in ``folder`` now: its file and its journal (a file missing counts as empty)."""
    total = 0
    for path in (folder / "rec.json", journal_path(folder / "rec.json")):
        with contextlib.suppress(OSError):
            total += os.stat(path).st_size
    return total


def kill_mid_write(srv: Server, folder: Path, ready: threading.Event, limit_s: float) -> None:
    """Once ``ready`` is set, kill ``srv`` (``Popen.kill``) the moment the cassette's files change size, a write
    under way, or after ``limit_s`` at the latest."""
    ready.wait(120)
    before = cassette_bytes(folder)
    deadline = time.monotonic() + limit_s
    while cassette_bytes(folder) == before and time.monotonic() < deadline:
        pass
    srv.proc.kill()


async def record_then_kill(srv: Server, folder: Path, kill_after: int, limit_s: float) -> list[str]:
    """Send 50 appends to the recorder ``srv`` (cassette folder ``folder``), 5 at a time, and kill it in the middle
    of a write that follows the ``kill_after``-th answer (:func:`kill_mid_write`); the prompts answered before."""
    answered: list[str] = []
    ready = threading.Event()
    killer = threading.Thread(target=kill_mid_write, args=(srv, folder, ready, limit_s), daemon=True)
    killer.start()
    gate = asyncio.Semaphore(5)
    url = f"{srv.url}/rec/v1/models/{FLASH}:generateContent"

    async def one(i: int, session: aiohttp.ClientSession) -> None:
        prompt = f"prompt {i}" + (" big" if i >= kill_after else "")  # large answers from the kill's round on
        body = json.dumps({"contents": [{"parts": [{"text": prompt}], "role": "user"}]})
        async with gate:
            if srv.proc.poll() is not None:
                return
            with contextlib.suppress(aiohttp.ClientError):
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
                    await r.read()
                    if r.status == 200 and srv.proc.poll() is None:
                        answered.append(prompt)
                        if len(answered) >= kill_after:
                            ready.set()

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(one(i, session) for i in range(50)))
    ready.set()
    await asyncio.to_thread(killer.join, 30)
    await asyncio.to_thread(srv.proc.wait, 30)
    return answered


async def test_a_recorder_killed_while_appending_loses_nothing_answered_before(tmp_path: Path) -> None:
    """The finding: SIGKILL during an append left 4 of 4 cassettes unloadable ("Unterminated string"). Here the
    recorder is killed (``Popen.kill``: SIGKILL, or TerminateProcess on Windows) at a random point of 50 appends sent
    5 at a time (after a random number of answers, as soon as a file of the cassette folder grows: in the middle of a
    write of the cassette or its journal), eight times; every exchange answered before the kill must load."""
    import random

    rng = random.Random()
    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # the killing thread must see a write begin within microseconds, not 5 ms
    try:
        await kill_eight_times(rng, tmp_path)
    finally:
        sys.setswitchinterval(switching)


async def kill_eight_times(rng: Any, tmp_path: Path) -> None:
    async with running(big_answer_upstream()) as upstream:
        for trial in range(8):
            folder = tmp_path / f"trial{trial}"
            args = ("--port", "0", "--cassettes", str(folder), "--record", "--upstream", upstream)
            answered = await record_then_kill(start_server(*args), folder, rng.randint(5, 40), 10.0)
            assert set(answered) <= recorded_prompts(folder), f"trial {trial}: lost some of {answered}"
            start_server(*args).stop()  # a new run merges the journal the killed one left into the file
            assert set(answered) <= recorded_prompts(folder)
            assert sorted(p.name for p in folder.iterdir()) == ["rec.json"]


# Nothing stalls the loop; what a client can make the server hold ------------------------------------------------


def batch_body(n: int, prompt: str = PROMPT) -> bytes:
    request = {"contents": [{"parts": [{"text": prompt}], "role": "user"}]}
    requests = [{"request": request, "metadata": {"i": i}} for i in range(n)]
    return json.dumps({"batch": {"displayName": "big", "inputConfig": {"requests": {"requests": requests}}}}).encode()


async def test_a_huge_inline_batch_does_not_keep_other_clients_waiting() -> None:
    """The finding: an inline batch of 20,000 requests (1.8 MB) held the event loop 25.6 s; another client's
    ``GET /files`` got no answer meanwhile. Judged by order in the server's own record: a ``GET /files`` sent while
    the batch is being worked on is answered before the batch is."""
    folder = replay_folder()
    server = ReplayServer(CassetteStore(folder))
    async with running(server.app()) as url, aiohttp.ClientSession() as session:
        await asyncio.to_thread(control.reset_stats, cassette="t", server_url=url)
        batch = asyncio.ensure_future(
            call(session, "POST", f"{url}/t/v1beta/{MODEL}:batchGenerateContent", batch_body(20_000))
        )
        while (await asyncio.to_thread(control.stats, cassette="t", server_url=url)).received < 1:
            await asyncio.sleep(0.01)  # the batch is in the server's hands (parsed, being answered)
        listed = await call(session, "GET", f"{url}/t/v1beta/files")
        created = await batch
        stats = await asyncio.to_thread(control.stats, cassette="t", server_url=url)
    assert listed[0] == 200 and created[0] == 200
    assert created[2]["metadata"]["batchStats"]["requestCount"] == "20000"
    timeline = {r.path: r for r in stats.requests}
    files, job = timeline["v1beta/files"], timeline[f"v1beta/{MODEL}:batchGenerateContent"]
    assert job.start_s < files.start_s and files.end_s is not None and job.end_s is not None
    assert files.end_s < job.end_s, "the listing waited for the whole batch"


async def test_an_inline_batch_over_the_apis_20_mb_is_refused_naming_the_limit() -> None:
    server = ReplayServer(CassetteStore(replay_folder()))
    async with running(server.app()) as url, aiohttp.ClientSession() as session:
        padded = batch_body(1, "x" * 20_100_000)
        result = await call(session, "POST", f"{url}/t/v1beta/{MODEL}:batchGenerateContent", padded)
    assert_api_error(result, 400, "batch.inputConfig.requests", "20 MB", "JSONL")


async def test_a_batch_job_and_its_results_are_let_go_when_it_expires() -> None:
    """The finding: each batch's memory was kept for ever (+12 MB each)."""
    server = ReplayServer(CassetteStore(replay_folder()), file_limits=FileLimits(file_ttl_s=0.5))
    app = server.app()
    async with running(app) as url, aiohttp.ClientSession() as session:
        created = await call(session, "POST", f"{url}/t/v1beta/{MODEL}:batchGenerateContent", batch_body(50))
        name = created[2]["name"]
        (batches,) = {r.handler.__self__ for r in app.router.routes() if isinstance(r.handler.__self__, BatchService)}
        assert name.removeprefix("batches/") in batches.jobs["t"]
        await asyncio.sleep(0.6)
        gone = await call(session, "GET", f"{url}/t/v1beta/{name}")
        assert_api_error(gone, 404, name.removeprefix("batches/"))
        assert not batches.jobs.get("t"), "the job's results are still held"


def rss_bytes(pid: int) -> int:
    """A process's resident memory (Linux's /proc; the test is skipped elsewhere)."""
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        pytest.skip("needs /proc to read a process's memory")
    (line,) = [x for x in status.read_text().splitlines() if x.startswith("VmRSS:")]
    return int(line.split()[1]) * 1024


def test_downloads_that_nobody_reads_are_let_go_and_hold_little(tmp_path: Path) -> None:
    """The finding: 100 clients that requested a 6 MB download and never read took the server from 186 MB to 749 MB,
    still held past the idle timeout. A download is written as the client takes it, and a client that takes nothing
    for the idle timeout has its connection closed."""
    srv, token = setup_style_server(replay_folder(), "--idle-timeout", "1")
    try:
        c = learner_client(srv.url, token)
        data = os.urandom(6 * 1024 * 1024)
        file = c.files.upload(file=io.BytesIO(data), config={"mime_type": "application/octet-stream"})
        before = rss_bytes(srv.proc.pid)
        host, port = srv.url.removeprefix("http://").split(":")
        readers = []
        for _ in range(40):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
            s.connect((host, int(port)))
            s.sendall(
                f"GET /t/v1beta/{file.name}:download?alt=media HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"x-goog-api-key: k.{token}\r\n\r\n".encode()
            )
            readers.append(s)
        time.sleep(0.5)
        held = rss_bytes(srv.proc.pid) - before
        time.sleep(3)  # three times the idle timeout without reading a byte
        closed = 0
        for s in readers:
            s.settimeout(5)
            try:
                while s.recv(1 << 20):  # what the kernel buffered before the server gave up, then the end
                    pass
                closed += 1
            except ConnectionResetError:
                closed += 1
            except TimeoutError:
                pass  # still open: the server holds it (a whole response read, then kept alive, counts too)
            s.close()
        assert c.files.download(file=file.name) == data, "a client that reads gets the whole file"
    finally:
        srv.stop()
    assert held < 40 * 1024 * 1024, f"40 stalled downloads of 6 MB held {held / 1e6:.0f} MB"
    assert closed == len(readers), f"{len(readers) - closed} stalled downloads were never let go"


async def test_upload_cost_does_not_grow_with_the_number_of_uploads() -> None:
    """The finding: 1,500 uploads got 40x slower one by one (1.7 ms at #100, 74 ms at #1500). Judged by the server's
    own record: how long it took to answer the finishing chunk of uploads 100-199 and of 1400-1499."""
    server = ReplayServer(CassetteStore(replay_folder()))
    async with running(server.app()) as url, aiohttp.ClientSession() as session:
        await asyncio.to_thread(control.reset_stats, cassette="t", server_url=url)
        for _ in range(1500):
            headers = {**START, "X-Goog-Upload-Header-Content-Length": "5"}
            meta = b'{"file": {"mime_type": "text/plain"}}'
            async with session.post(f"{url}/t/upload/v1beta/files", data=meta, headers=headers) as r:
                upload_url = r.headers["x-goog-upload-url"]
            chunk = {"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"}
            async with session.post(upload_url, data=b"notes", headers=chunk) as r:
                assert r.status == 200
        stats = await asyncio.to_thread(control.stats, cassette="t", server_url=url)
    seconds = [r.end_s - r.start_s for r in stats.requests[1::2] if r.end_s is not None]  # the finishing chunks
    assert len(seconds) == 1500
    early, late = statistics.median(seconds[100:200]), statistics.median(seconds[1400:1500])
    assert late < 3 * early + 0.002, f"upload #1400-1499 took {late * 1e3:.2f} ms, #100-199 {early * 1e3:.2f} ms"


# Every bad input is a 400 naming the field --------------------------------------------------------------------

LONE = b'"\\ud800"'
BAD_INPUTS = [
    ("POST", f"{MODEL}:generateContent", b'{"contents": [{"parts": [{"text": ' + LONE + b"}]}]}", {}, "parts[0].text"),
    ("POST", f"{MODEL}:generateContent", b'{"contents": [{"parts": [{' + LONE + b': "x"}]}]}', {}, "field name"),
    ("POST", f"{MODEL}:countTokens", b'{"contents": [{"parts": [{"text": ' + LONE + b"}]}]}", {}, "parts[0].text"),
    (
        "POST",
        "openai/chat/completions",
        b'{"model": "m", "messages": [{"role": "user", "content": ' + LONE + b"}]}",
        {},
        "messages[0].content",
    ),
    ("POST", "interactions", b'{"model": "m", "input": ' + LONE + b"}", {}, "'input'"),
    ("POST", f"{MODEL}:batchGenerateContent", b'{"batch": {"displayName": ' + LONE + b"}}", {}, "batch.displayName"),
    (
        "UPLOAD",
        "files",
        b'{"file": {"mime_type": "text/plain", "display_name": ' + LONE + b"}}",
        {},
        "file.display_name",
    ),
    ("GET", "files?pageToken=abc", b"", {}, "pageToken"),
    ("GET", "files?pageToken=%C2%B2", b"", {}, "pageToken"),  # '²' is a digit to str.isdigit, not to int()
    ("GET", "files?pageToken=" + "9" * 5000, b"", {}, "pageToken"),
    ("GET", "batches?pageToken=" + "9" * 5000, b"", {}, "pageToken"),
    ("POST", f"{MODEL}:generateContent", b"not gzip", {"Content-Encoding": "gzip"}, "Content-Encoding"),
    ("POST", f"{MODEL}:generateContent", b"not deflate", {"Content-Encoding": "deflate"}, "Content-Encoding"),
    ("UPLOAD", "files", '{"file": {"mime_type": "ü/ü"}}'.encode(), {}, "file.mime_type"),
    (
        "UPLOAD",
        "files",
        b'{"file": {"mime_type": "text/plain"}}',
        {"X-Goog-Upload-Header-Content-Type": "a b/c"},
        "file.mime_type",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "headers", "field"), BAD_INPUTS)
async def test_bad_input_is_a_400_naming_the_field_never_a_500(
    method: str, path: str, body: bytes, headers: dict[str, str], field: str
) -> None:
    server = ReplayServer(CassetteStore(replay_folder()))
    async with running(server.app()) as url, aiohttp.ClientSession() as session:
        if method == "UPLOAD":
            sent = {**START, "X-Goog-Upload-Header-Content-Length": "1", **headers}
            result = await call(session, "POST", f"{url}/t/upload/v1beta/{path}", body, sent)
        else:
            result = await call(session, method, f"{url}/t/v1beta/{path}", body, headers)
        assert (await call(session, "GET", f"{url}/t/v1beta/files"))[0] == 200, "the server serves on"
    assert_api_error(result, 400, field)


# Keys anywhere, provenance, downloads, Host ----------------------------------------------------------------------


def fresh_key() -> str:
    """A key-shaped string no other test sent (``AIza`` and 35 more characters)."""
    import secrets

    return "AIza" + secrets.token_urlsafe(27)[:35]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer\t{KEY}"},  # the finding: a tab after Bearer, echoed by the upstream
        {"X-Proxy-Key": f"key={KEY}"},  # a key in a header no API reads
    ],
)
async def test_a_key_in_any_header_is_never_written(tmp_path: Path, headers: dict[str, str]) -> None:
    key = fresh_key()  # this process's servers share the keys they were sent: one no other test sent
    headers = {name: value.replace(KEY, key) for name, value in headers.items()}
    seen: list[str] = []
    echoed = {"contents": [{"parts": [{"text": f"my key is {key}"}], "role": "user"}]}
    async with running(stand_in_upstream(seen)) as upstream:
        server = ReplayServer(CassetteStore(tmp_path), mode=Mode.RECORD, upstream=upstream)
        async with running(server.app()) as url, httpx.AsyncClient(timeout=10) as client:
            reply = await client.post(f"{url}/rec/v1/models/{FLASH}:countTokens", json=echoed, headers=headers)
    assert reply.status_code == 500 and "API key" in reply.json()["error"]["message"]
    assert not (tmp_path / "rec.json").exists() or key not in (tmp_path / "rec.json").read_text()


async def test_a_key_shaped_user_agent_is_scrubbed_from_provenance(tmp_path: Path) -> None:
    """The finding: a key-shaped ``User-Agent`` was recorded in ``provenance``."""
    seen: list[str] = []
    async with running(stand_in_upstream(seen)) as upstream:
        server = ReplayServer(CassetteStore(tmp_path), mode=Mode.RECORD, upstream=upstream)
        async with running(server.app()) as url, httpx.AsyncClient(timeout=10) as client:
            key = fresh_key()
            headers = {"User-Agent": f"my-app/1.0 {key}", "x-goog-api-key": "test-key"}
            reply = await client.post(f"{url}/rec/v1/models/{FLASH}:countTokens", json=BODY, headers=headers)
    assert reply.status_code == 200
    (exchange,) = Cassette.load(tmp_path / "rec.json").exchanges
    assert exchange.provenance["sdk"] == "my-app/1.0 [redacted]"
    assert key not in (tmp_path / "rec.json").read_text()


async def test_downloads_are_attachments_never_sniffed() -> None:
    """The finding: an upload declared ``text/html`` was downloaded as such, without ``nosniff`` or
    ``Content-Disposition``: a browser would render it as a page of the server's origin."""
    server = ReplayServer(CassetteStore(replay_folder()))
    async with running(server.app()) as url:
        c = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=f"{url}/t/"))
        page = b"<script>alert(1)</script>"
        file = await c.aio.files.upload(file=io.BytesIO(page), config={"mime_type": "text/html"})
        await c.aio.aclose()
        async with httpx.AsyncClient(timeout=10) as client:
            reply = await client.get(f"{url}/t/v1beta/{file.name}:download?alt=media")
    assert reply.content == page
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Content-Disposition"].startswith("attachment")


@pytest.mark.parametrize("host", ["evil@127.0.0.1:PORT", "127.0.0.1:PORT/x"])
def test_the_host_check_refuses_userinfo_and_anything_but_host_and_port(server: Server, host: str) -> None:
    headers = {"Host": host.replace("PORT", str(port_of(server)))}
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as s:
        s.sendall(f"GET /t/v1beta/files HTTP/1.1\r\nHost: {headers['Host']}\r\nConnection: close\r\n\r\n".encode())
        reply = s.makefile("rb").read().decode(errors="replace")
    assert reply.split()[1] in ("400", "403"), reply[:200]
    assert '"files"' not in reply and '"error"' in reply


def test_setups_synthetic_upstream_needs_the_token_too(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every server ``helpers.setup`` starts: the synthetic stand-in a record run of ``WORKBOOK_UPSTREAM=synthetic``
    records from answers its recorder (which sends the token), nobody else."""
    from .test_workbook import record_from_the_synthetic_upstream

    record_from_the_synthetic_upstream(env, monkeypatch)
    write_cassette(env, "07_demo", [])
    helpers.setup("07_demo")
    assert genai.Client().models.generate_content(model=FLASH, contents=PROMPT).text == TEXT
    synth, token = workbook._servers["synth"], workbook._servers["serve"].token
    assert token and synth.token == token
    body = {"contents": [{"parts": [{"text": "sky"}], "role": "user"}]}
    url = f"{synth.url}/v1beta/models/{FLASH}:generateContent"
    assert httpx.post(url, json=body, timeout=10).status_code == 403
    assert httpx.post(url, json=body, headers={TOKEN_HEADER: token}, timeout=10).status_code == 200


async def test_a_connection_opened_ahead_times_its_request_from_the_request() -> None:
    """A connection's first request is timed from the accept only when its bytes follow within
    ``FIRST_REQUEST_WINDOW_S`` (a burst's client writes as soon as it connects): one opened ahead and used later is
    timed from its bytes, so no recorded delay is cut short by the wait. Judged by the server's own record: a request
    on a connection opened 0.5 s earlier starts when a request on a fresh connection sent at the same moment does."""
    from helpers.replay.pipeline.socket_server import FIRST_REQUEST_WINDOW_S

    server = ReplayServer(CassetteStore(replay_folder()))
    async with running(server.app()) as url:
        await asyncio.to_thread(control.reset_stats, cassette="t", server_url=url)
        host, port = url.removeprefix("http://").split(":")
        ahead = await asyncio.open_connection(host, int(port))
        await asyncio.sleep(10 * FIRST_REQUEST_WINDOW_S)
        fresh = await asyncio.open_connection(host, int(port))
        body = json.dumps(BODY).encode()
        head = (
            f"POST /t/{GENERATE} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        for _, writer in (ahead, fresh):
            writer.write(head + body)
        for reader, writer in (ahead, fresh):
            assert (await reader.read()).startswith(b"HTTP/1.1 200")
            writer.close()
        stats = await asyncio.to_thread(control.stats, cassette="t", server_url=url)
    first, second = sorted(r.start_s for r in stats.requests)
    assert second - first < 5 * FIRST_REQUEST_WINDOW_S, "the request on the early connection was timed from its open"
