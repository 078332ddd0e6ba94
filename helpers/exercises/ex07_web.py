"""The checked exercises of ``07_web``: a Flask SSE endpoint, a FastAPI one, and TTFT measured in the client.

The notebook imports them with ``from helpers.exercises.ex07_web import ____, q1, q2, q3``; its setup cells define
``client = genai.Client()`` and ``MODEL`` (:data:`helpers.models.FLASH`), which the checks use. The prompts below are
the ones the lesson's synthetic script answers (``notebooks/scripts/07_web.json``). q1 and q2 serve the learner's
endpoint from a thread of the kernel (:class:`helpers.web.ThreadServer`), so it reaches the notebook's ``client``; q3
starts the lesson's app (``notebooks/web/app.py``) as the lesson does. Every check reads the events with
``httpx-sse`` and judges streaming by causality: in replay the model's stream is held back after its first text
(:func:`helpers.checks.holding_stream`), and the first event must reach the client while it is held.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import httpx_sse
from fastapi import FastAPI
from fastapi.sse import EventSourceResponse, ServerSentEvent
from flask import Flask, Response, request, stream_with_context
from google.genai import errors, types
from pydantic import ValidationError

from .. import control, web
from ..checks import (
    BLOCKING_LOOP,
    HOLD_S,
    Incorrect,
    Problem,
    TimeLimitExceeded,
    ____,
    call_kind,
    describe_error,
    expect_async,
    expect_ttft,
    holding_stream,
    lesson,
    lesson_context,
    probing_the_loop,
    recording,
    run_coroutine,
    show,
    stream_ended,
)
from ..workbook import current_session

FLASK_PROMPT = "Explain what a server-sent event is, in one short paragraph."
FASTAPI_PROMPT = "Explain why streaming makes an app feel faster, in one short paragraph."
TTFT_PROMPT = "Describe the northern lights, in one paragraph."
ROUNDING_S = 0.02
"""Slack, in seconds, when a learner's time is compared with the replay server's record: a lower bound only (the
learner's clock starts before the server sees the request), which no busy machine can break."""

__all__ = ["PROBLEMS", "____", "context", "q1", "q2", "q3"]


context = lesson_context(
    types=types,
    errors=errors,
    json=json,
    time=time,
    httpx=httpx,
    httpx_sse=httpx_sse,
    Response=Response,
    request=request,
    stream_with_context=stream_with_context,
    ServerSentEvent=ServerSentEvent,
)
"""What ``07_web``'s setup cells leave in the notebook that the exercises use: ``client``, ``MODEL``, ``genai``,
``types``, ``errors``, ``json``, ``time``, ``httpx``, ``httpx_sse``, Flask's ``Response``, ``request`` and
``stream_with_context``, FastAPI's ``ServerSentEvent``, and ``____``."""


def _replay() -> bool:
    return current_session().server_url is not None


@dataclass(frozen=True)
class Served:
    """What an endpoint sent for one prompt, and the model call behind it as the replay server saw it.

    Attributes:
        stream: the events the check read.
        streamed: whether the first event reached the client while the model's stream was held back after its first
            text, i.e. before its last chunk existed (``None`` unless replaying, or when no event came).
        paths: the API paths of the model calls the server saw (empty live).
        model: the endpoint's streamed model call: what the server sent (its texts and usage), or ``None`` (live, or
            no stream).
    """

    stream: web.EventStream
    streamed: bool | None
    paths: list[str]
    model: control.RequestTiming | None


def _read(url: str, prompt: str) -> Served:
    """Read ``url``'s events for ``prompt``, with the model's stream held back after its first text until the first
    event arrives (:func:`helpers.checks.holding_stream`), and the server's record of the model calls meanwhile.

    Raises:
        Incorrect: the connection broke or hung (the message says what that usually means).
    """
    streamed: list[bool] = []
    with recording() as record, holding_stream() as hold:

        def first(event: web.Event) -> None:
            if hold.active and not streamed:
                streamed.append(not hold.released)
                hold.release()

        try:
            stream = run_coroutine(
                web.read_events(f"{url}/stream", {"prompt": prompt}, on_event=first), nudge=hold.nudge
            )
        except httpx.HTTPError as e:
            raise Incorrect(f"the stream broke ({describe_error(e)}): the endpoint raised while streaming.") from None
        except TimeLimitExceeded as e:
            raise Incorrect(
                f"GET /stream had not ended after {e.limit_s:g} s, so the check stopped reading: the endpoint's "
                "generator never finished. End it after the done event."
            ) from None
    calls = record.calls or []
    streams = [r for r in calls if r.streamed]
    return Served(stream, streamed[0] if streamed else None, [r.path for r in calls], streams[-1] if streams else None)


def _same_usage(sent: dict[str, Any], given: Any) -> bool:
    """Whether ``given`` (what the learner's done event carried) is the usage the server ``sent``, in either
    spelling (``total_token_count`` or ``totalTokenCount``); a bool is never a count."""
    if not isinstance(given, dict) or any(isinstance(v, bool) for v in given.values()):
        return False
    try:
        theirs = types.GenerateContentResponseUsageMetadata.model_validate(given)
    except ValidationError:
        return False
    return theirs == types.GenerateContentResponseUsageMetadata.model_validate(sent)


def _judge_events(name: str, served: Served) -> None:
    """The verdict shared by q1 and q2 on one stream of events (see each problem's docstring)."""
    stream, model = served.stream, served.model
    if stream.status != 200:
        raise Incorrect(f"GET /stream answered HTTP {stream.status}; the endpoint raised: its traceback is above.")
    if not stream.headers.get("content-type", "").startswith("text/event-stream"):
        raise Incorrect(f"{name} answered {stream.headers.get('content-type')!r}; send mimetype='text/event-stream'.")
    if any(p.endswith(":generateContent") for p in served.paths):
        raise Incorrect(f"{name} waited for the whole answer (generate_content): use generate_content_stream.")
    if not stream.events:
        raise Incorrect(f"{name} sent no event: each event is 'data: ...' lines and then a blank line ('\\n\\n').")
    if any(isinstance(e.data, str) and "\n" in e.data for e in stream.events):
        raise Incorrect(f"{name}'s events run together: end each event with a blank line ('\\n\\n').")
    for event in stream.messages:
        if not isinstance(event.data, dict) or "text" not in event.data:
            raise Incorrect(
                f'{name} sent the data {show(event.data)}; send each chunk as JSON, data: {{"text": ...}} '
                "(json.dumps it)."
            )
    answer = model.text if model is not None else stream.text
    if stream.text != answer or not answer:
        if "None" in stream.text and "None" not in answer:
            raise Incorrect(f"{name} sent 'None' for a chunk without text: send chunk.text or ''.")
        raise Incorrect(f"the events' texts join to {show(stream.text)}, which is not the model's answer.")
    done = stream.last("done")
    if done is None:
        raise Incorrect(f"{name} sent no 'done' event after the chunks: the page would not know the answer ended.")
    usage = done.data.get("usage_metadata") if isinstance(done.data, dict) else None
    if not isinstance(usage, dict) or not usage:
        raise Incorrect(
            f"the 'done' event's data is {show(done.data)}; send {{\"usage_metadata\": "
            "chunk.usage_metadata.model_dump(mode='json', exclude_none=True)}} from the last chunk."
        )
    if model is not None and model.usage is not None and not _same_usage(model.usage, usage):
        raise Incorrect(
            "the 'done' event's usage_metadata is not the usage the model sent with the last chunk of this stream: "
            "keep the last chunk and send last.usage_metadata.model_dump(mode='json', exclude_none=True), not a "
            "figure of your own nor an earlier chunk's (only the last one counts the whole answer)."
        )
    total = usage.get("total_token_count", usage.get("totalTokenCount"))
    if model is None and (isinstance(total, bool) or not isinstance(total, int) or total <= 0):  # live: no record
        raise Incorrect("the 'done' event's usage_metadata has no total_token_count: send the last chunk's usage.")
    if served.streamed is False:
        raise Incorrect(
            f"the first event reached the client only once the model's stream could end: {name} collected the "
            "answer before sending it. Yield each event as its chunk arrives."
        )


class FlaskEndpoint(Problem):
    """q1: a Flask view ``flask_stream()`` that forwards ``?prompt=`` as SSE with the two headers streams need.

    Judged on the events its sync generator sends (data as JSON, a blank line after each, ``done`` with the usage),
    the ``Cache-Control: no-cache`` and ``X-Accel-Buffering: no`` headers, and on streaming: the first event must
    reach the client while the replay server holds the model's stream back after its first text.
    """

    title = "Stream from Flask"
    variables = ("flask_stream",)
    needs = ("client", "MODEL")
    hints = (
        "Each event is the line 'data: ' + json.dumps(...) and then a blank line: f\"data: {json.dumps(...)}\\n\\n\". "
        "The done event starts with the line 'event: done'.",
        "The last chunk carries the usage: keep it in a variable in the loop, then send "
        "{'usage_metadata': last.usage_metadata.model_dump(mode='json', exclude_none=True)}. The headers are "
        "{'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no'}.",
    )
    starter = """\
def flask_stream():
    prompt = request.args["prompt"]

    def events():
        last = None
        for chunk in client.models.generate_content_stream(model=MODEL, contents=prompt):
            last = chunk
            yield ____  # an event with chunk's text
        yield ____  # the done event, with last.usage_metadata

    return Response(events(), mimetype="text/event-stream", headers=____)
"""
    solution_code = """\
def flask_stream():
    prompt = request.args["prompt"]  # read it here: inside events(), the request is over

    def events():
        last = None
        for chunk in client.models.generate_content_stream(model=MODEL, contents=prompt):
            last = chunk
            yield f"data: {json.dumps({'text': chunk.text or ''})}\\n\\n"
        usage = last.usage_metadata.model_dump(mode="json", exclude_none=True)
        yield f"event: done\\ndata: {json.dumps({'usage_metadata': usage})}\\n\\n"

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return Response(events(), mimetype="text/event-stream", headers=headers)
"""
    correct_message = (
        "A sync generator holds one of Flask's threads for the whole stream; the two headers keep caches and nginx "
        "from holding the events back."
    )

    def verify(self, ns: Mapping[str, Any]) -> None:
        raised: list[BaseException] = []
        view = ns["flask_stream"]

        def guarded_view() -> Any:
            response = view()
            if isinstance(response, Response) and not isinstance(response.response, (list, tuple)):
                inner = response.response

                def guarded() -> Iterator[Any]:
                    try:
                        yield from inner
                    except Exception as e:  # reported to the learner below, with advice
                        raised.append(e)

                response.response = guarded()
            return response

        app = Flask("q1")
        app.add_url_rule("/stream", "stream", guarded_view)
        with web.ThreadServer(app) as server:
            served = _read(server.url, FLASK_PROMPT)
        if raised and call_kind(served.paths) != "generate":  # a model call the replay has no recording of
            error = raised[0]
            advice = ""
            if "request context" in str(error):
                advice = (
                    " Flask's request is over once the view returns and the generator runs: read request.args in the "
                    "view, before events(), or wrap the generator in stream_with_context(...)."
                )
            raise Incorrect(f"events() raised {describe_error(error)}.{advice}")
        _judge_events("flask_stream()", served)
        headers = served.stream.headers
        if headers.get("cache-control") != "no-cache":
            raise Incorrect("flask_stream() sent no 'Cache-Control: no-cache': a cache could store the stream.")
        if headers.get("x-accel-buffering") != "no":
            raise Incorrect("flask_stream() sent no 'X-Accel-Buffering: no': behind nginx, events would arrive late.")


class FastApiEndpoint(Problem):
    """q2: an async generator ``answer_events(prompt)`` of ``ServerSentEvent`` for FastAPI's ``EventSourceResponse``.

    Mounted by the check as ``GET /stream``. Judged like q1 on a stream read to its end, and on an error: when the
    replay server answers the model call with 503, the endpoint must send an ``error`` event with a message
    (naming the status) instead of breaking the stream.
    """

    title = "Stream from FastAPI"
    variables = ("answer_events",)
    needs = ("client", "MODEL")
    hints = (
        "`async for chunk in await client.aio.models.generate_content_stream(...)`, and yield "
        "ServerSentEvent(data={'text': ...}) for each chunk; then ServerSentEvent(event='done', data=...).",
        "Wrap the loop in try/except errors.APIError as e: and yield ServerSentEvent(event='error', "
        "data={'message': f'{e.code} {e.status}: {e.message}'}), then return.",
    )
    starter = """\
async def answer_events(prompt: str):
    ____
"""
    solution_code = """\
async def answer_events(prompt: str):
    last = None
    try:
        async for chunk in await client.aio.models.generate_content_stream(model=MODEL, contents=prompt):
            last = chunk
            yield ServerSentEvent(data={"text": chunk.text or ""})
    except errors.APIError as e:
        yield ServerSentEvent(event="error", data={"message": f"{e.code} {e.status}: {e.message}"})
        return
    usage = last.usage_metadata.model_dump(mode="json", exclude_none=True)
    yield ServerSentEvent(event="done", data={"usage_metadata": usage})
"""
    correct_message = (
        "An async generator streams from one event loop, and FastAPI cancels it when the client goes away, which "
        "closes the model's stream too. The error event tells the page the answer failed, in words."
    )

    def verify(self, ns: Mapping[str, Any]) -> None:
        raised: list[BaseException] = []
        app = FastAPI()
        try:
            app.get("/stream", response_class=EventSourceResponse)(_guarded(ns["answer_events"], raised))
        except Exception as e:  # FastAPI refuses a signature it cannot serve
            raise Incorrect(f"FastAPI could not serve answer_events: {describe_error(e)}.") from None
        with web.ThreadServer(app) as server:
            served = _read(server.url, FASTAPI_PROMPT)
            if served.stream.status == 422:
                raise Incorrect("GET /stream?prompt=... was refused (422): take exactly one argument, prompt: str.")
            if raised and call_kind(served.paths) != "generate":  # a model call the replay has no recording of
                raise Incorrect(f"answer_events raised {describe_error(raised[0])} while streaming.")
            _judge_events("answer_events", served)
            if not _replay():
                return
            control.fail_next(1, 503)
            try:
                failed = _read(server.url, FASTAPI_PROMPT).stream
            except Incorrect:
                failed = None
            finally:
                control.clear_faults()
        if failed is None or not failed.events or raised:
            why = f" (answer_events raised {describe_error(raised[0])})" if raised else ""
            raise Incorrect(
                f"when the model call failed (the check made it answer 503), the stream broke without an event{why}: "
                "catch errors.APIError and yield an 'error' event with a message."
            )
        error = failed.last("error")
        message = error.data.get("message") if error is not None and isinstance(error.data, dict) else None
        if not isinstance(message, str) or "503" not in message:
            raise Incorrect(
                "when the model call failed with 503 (the check made it fail), answer_events sent "
                f"{[e.event for e in failed.events]}; send an 'error' event whose data is {{\"message\": ...}} naming "
                "the status (e.code)."
            )


def _guarded(events: Callable[..., AsyncIterator[Any]], raised: list[BaseException]) -> Callable[..., Any]:
    """The learner's async generator function ``events`` as FastAPI serves it (its signature kept), ending its stream
    quietly when it raises: the error goes to ``raised`` for the check's one message, instead of a server traceback
    (uvicorn's ``ExceptionGroup``) printed above it."""

    @functools.wraps(events)
    async def guarded(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        try:
            async for event in events(*args, **kwargs):
                yield event
        except Exception as e:  # reported to the learner by the check, with advice
            raised.append(e)

    return guarded


class ClientTtft(Problem):
    """q3: ``client_ttft(url, prompt) -> float``: seconds from sending ``GET url?prompt=`` to the first event with
    text, read with ``httpx`` and ``httpx-sse``, closing the connection at once.

    Judged against the replay server's record of the model call behind it: no less than the model took to send its
    first chunk; and, since the connection closes after the first event, the app must have stopped the model's
    stream early (the lesson's app cancels it when its client goes away). In replay the model's stream is held back
    after its first text (:func:`helpers.checks.holding_stream`), so it can end before the check releases it only
    if the app cancelled it: causality, not a race against the recorded stream.
    """

    title = "Measure TTFT in the client"
    variables = ("client_ttft",)
    needs = ()
    hints = (
        "Start the clock, then `async with httpx.AsyncClient() as http:` and `async with httpx_sse.aconnect_sse(http, "
        "'GET', url, params={'prompt': prompt}) as source:`; read `source.aiter_sse()` until an event with text.",
        "Return from inside the `async for`: leaving the `async with` blocks closes the connection, and the app then "
        "stops the model. json.loads(sse.data)['text'] is the chunk's text; skip events whose data is empty (the "
        "app's first one only sets retry:).",
    )
    starter = """\
async def client_ttft(url: str, prompt: str) -> float:
    ____
"""
    solution_code = """\
async def client_ttft(url: str, prompt: str) -> float:
    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=30) as http:
        async with httpx_sse.aconnect_sse(http, "GET", url, params={"prompt": prompt}) as source:
            async for sse in source.aiter_sse():
                if sse.event == "message" and sse.data and json.loads(sse.data)["text"]:
                    return time.perf_counter() - start  # leaving the blocks closes the connection
    raise RuntimeError("the stream sent no text")
"""
    correct_message = (
        "The client's TTFT includes the app's own time and the network on top of the model's; closing at the first "
        "token made the app cancel the model's stream, as the replay server saw."
    )

    def explain(self, error: Exception, fn: Callable[..., Any]) -> str:
        if isinstance(error, json.JSONDecodeError):
            return (
                "The app's first event carries only `retry: 1000` and no data, which httpx-sse passes on (a browser "
                "would not): skip events whose data is empty."
            )
        return ""

    def verify(self, ns: Mapping[str, Any]) -> None:
        fn = ns["client_ttft"]
        expect_async(fn, "client_ttft")
        call = f"client_ttft(url, {TTFT_PROMPT!r})"
        shown = f"url, {TTFT_PROMPT!r}"  # never the app's address: its port differs from run to run
        with web.AppServer("uvicorn", "app:app", "--app-dir", str(web.WEB_DIR)) as server:
            url = f"{server.url}/stream"
            with probing_the_loop() as probe:
                self.call("client_ttft", probe.wrap(fn), url, TTFT_PROMPT, nudge=probe.nudge, shown=shown)
            if probe.active and not probe.turned:
                raise Incorrect(BLOCKING_LOOP.format(name="client_ttft"))
            with recording() as record, holding_stream() as hold:
                started = time.perf_counter()
                result = self.call("client_ttft", fn, url, TTFT_PROMPT, nudge=hold.nudge, shown=shown)
                took = time.perf_counter() - started
                # Held after its first text, the model's stream can only end early now: the app cancelled it.
                stopped = not hold.active or stream_ended(within_s=HOLD_S)
        streams = [r for r in record.calls or [] if r.streamed]
        model = streams[0] if streams else None
        if record.calls is not None and (model is None or model.first_text_s is None):
            raise Incorrect(f"{call} did not get the app to stream: send GET {{url}}?prompt=... and read its events.")
        first_text = None if model is None or model.first_text_s is None else model.first_text_s - model.start_s
        expect_ttft(call, result, took, ROUNDING_S, first_text)
        if hold.active and (hold.released or not stopped):
            raise Incorrect(
                f"the model's stream ran on after {call} returned: close the connection at the first event (return "
                "from inside the `async with` blocks), and the app stops the model."
            )


PROBLEMS = q1, q2, q3 = lesson(context, FlaskEndpoint, FastApiEndpoint, ClientTtft)
"""Every problem of the lesson, in order: for pytest and for recording the checks' requests into the cassette."""
"""Every problem of the lesson, in order: for pytest and for recording the checks' requests into the cassette."""
