"""helpers.web: servers started and stopped cleanly, SSE read and timed, the buffering proxy, the redraw count."""

from __future__ import annotations

import asyncio
import socket

import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from flask import Flask, Response

from helpers import WorkbookError, web


def events_app(header: bool) -> FastAPI:
    """Three events 0.2 s apart (a retry-only one first), with or without ``X-Accel-Buffering: no``."""
    app = FastAPI()

    @app.get("/stream")
    async def stream(prompt: str = "") -> StreamingResponse:
        async def body():
            yield "retry: 500\n\n"
            for i in range(3):
                await asyncio.sleep(0.2)
                yield f'id: {i}\ndata: {{"text": "{prompt}{i}"}}\n\n'
            yield 'event: done\ndata: {"ok": true}\n\n'

        headers = {"X-Accel-Buffering": "no"} if header else {}
        return StreamingResponse(body(), media_type="text/event-stream", headers=headers)

    return app


def test_free_port_is_bindable() -> None:
    port = web.free_port()
    with socket.socket() as s:
        s.bind((web.HOST, port))


async def test_read_events_parses_and_times_each_event() -> None:
    with web.ThreadServer(events_app(header=True)) as server:
        stream = await web.read_events(f"{server.url}/stream", {"prompt": "x"})
    assert stream.status == 200 and stream.retry_ms == 500
    assert [e.event for e in stream.events] == ["message", "message", "message", "done"]
    assert stream.text == "x0x1x2" and [e.id for e in stream.messages] == ["0", "1", "2"]
    assert stream.last("done").data == {"ok": True}
    times = [e.at_s for e in stream.messages]
    assert times == sorted(times) and stream.ttft_s == times[0] and stream.ttlt_s == times[-1]
    assert times[-1] - times[0] >= 0.35  # the app sleeps 0.2 s between events: a lower bound, never an upper one


async def test_read_events_stops_after_n_and_calls_back() -> None:
    seen = []
    with web.ThreadServer(events_app(header=True)) as server:
        stream = await web.read_events(f"{server.url}/stream", stop_after=2, on_event=seen.append)
    assert len(stream.events) == 2 and list(stream.events) == seen


async def test_a_wsgi_app_is_served_and_a_non_sse_answer_has_no_events() -> None:
    app = Flask("t")
    app.add_url_rule("/stream", "s", lambda: Response("nope", status=404))
    with web.ThreadServer(app) as server:
        stream = await web.read_events(f"{server.url}/stream")
    assert stream.status == 404 and stream.events == ()


async def test_the_proxy_buffers_unless_told_not_to() -> None:
    for header, spread in ((True, True), (False, False)):
        with web.ThreadServer(events_app(header)) as server, web.BufferingProxy(server.url) as proxy:
            stream = await web.read_events(f"{proxy.url}/stream", {"prompt": "p"})
        assert stream.text == "p0p1p2"
        gap = stream.messages[-1].at_s - stream.messages[0].at_s
        # Buffered, the events come in one read (gap ~0); streamed, 0.4 s apart at least.
        assert (gap >= 0.35) is spread, (header, gap)


def test_app_server_runs_a_module_and_stops_cleanly(tmp_path) -> None:
    (tmp_path / "tiny.py").write_text("from fastapi import FastAPI\napp = FastAPI()\n")
    server = web.AppServer("uvicorn", "tiny:app", "--app-dir", str(tmp_path))
    try:
        assert server.alive() and "serving" in repr(server) and "--port PORT" in repr(server)
        with socket.create_connection((web.HOST, server.port), timeout=5):
            pass
    finally:
        server.stop()
    assert not server.alive() and not server.log.exists()
    server.stop()  # twice is fine


def test_app_server_that_fails_says_why_and_keeps_its_log(tmp_path) -> None:
    with pytest.raises(WorkbookError, match="exited") as raised:
        web.AppServer("uvicorn", "missing:app", "--app-dir", str(tmp_path))
    assert "missing" in str(raised.value)


def test_wait_until() -> None:
    assert web.wait_until(lambda: True, timeout_s=0.1)
    assert not web.wait_until(lambda: False, timeout_s=0.1)


@pytest.mark.parametrize(
    ("every_s", "expected"),
    [(0, 5), (0.05, 5), (0.15, 3), (10, 1)],
)
def test_redraws_share_a_pending_redraw(every_s: float, expected: int) -> None:
    assert web.redraws([0.0, 0.1, 0.2, 0.3, 0.4], every_s) == expected


def test_redraws_of_nothing() -> None:
    assert web.redraws([], 0.05) == 0
