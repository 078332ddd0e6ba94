"""The 07_web exercises, tested both ways against the lesson's own shipped cassette."""

from __future__ import annotations

import pytest

from helpers.checks import assert_check_failed, assert_check_passed
from helpers.exercises.ex07_web import PROBLEMS, q1, q2, q3

from .exercising import change, lesson_tests

replay, test_reference_passes_and_starter_is_not_attempted = lesson_tests("07_web", PROBLEMS, speed=1)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (change(q1, "or ''})}\\n\\n", "or ''})}\\n"), "events run together"),
        (change(q1, "json.dumps({'text': chunk.text or ''})", "chunk.text"), "send each chunk as JSON"),
        (change(q1, "headers=headers", "headers={'Cache-Control': 'no-cache'}"), "X-Accel-Buffering: no"),
        (change(q1, "headers=headers", "headers={'X-Accel-Buffering': 'no'}"), "Cache-Control: no-cache"),
        (
            change(q1, '    yield f"event: done', '    return\n        yield f"event: done'),
            "sent no 'done' event",
        ),
        (
            change(q1, "Response(events()", "Response(list(events())"),
            "collected the answer before sending it",
        ),
        (
            change(
                q1,
                'prompt = request.args["prompt"]  # read it here: inside events(), the request is over\n',
                "",
            ).replace("contents=prompt", 'contents=request.args["prompt"]'),
            "read request.args in the view",
        ),
    ],
)
def test_typical_wrong_flask_endpoints_fail_with_their_message(code: str, expected: str) -> None:
    assert_check_failed(q1, code, expected)


STREAM = "await client.aio.models.generate_content_stream(model=MODEL, contents=prompt)"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            change(q2, "    except errors.APIError as e:", "    except ValueError as e:"),
            "stream broke without an event",
        ),
        (change(q2, '{"message": f"{e.code} {e.status}: {e.message}"}', '{"message": "sorry"}'), "naming the status"),
        (change(q2, 'data={"text": chunk.text or ""}', "data=chunk.text"), "send each chunk as JSON"),
        (change(q2, "{'usage_metadata': usage}".replace("'", '"'), "{}"), "'done' event's data"),
        (
            "async def answer_events(prompt: str):\n"
            "    response = await client.aio.models.generate_content(model=MODEL, contents=prompt)\n"
            "    yield ServerSentEvent(data={'text': response.text})\n"
            "    yield ServerSentEvent(event='done', data={})",
            "use generate_content_stream",
        ),
        (
            "async def answer_events(prompt: str):\n"
            f"    chunks = [c async for c in {STREAM}]\n"
            "    for c in chunks:\n"
            "        yield ServerSentEvent(data={'text': c.text or ''})\n"
            "    usage = chunks[-1].usage_metadata.model_dump(mode='json', exclude_none=True)\n"
            "    yield ServerSentEvent(event='done', data={'usage_metadata': usage})",
            "collected the answer before sending it",
        ),
        ("async def answer_events(question: str):\n    yield ServerSentEvent(data={})", "take exactly one argument"),
    ],
)
def test_typical_wrong_fastapi_endpoints_fail_with_their_message(code: str, expected: str) -> None:
    assert_check_failed(q2, code, expected)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (change(q3, "sse.data and json.loads", "json.loads"), "skip events whose data is empty"),
        (
            change(q3, "                    return time.perf_counter() - start", "                    pass").replace(
                'raise RuntimeError("the stream sent no text")', "return time.perf_counter() - start"
            ),
            "the model's stream ran on",
        ),
        (
            change(q3, "return time.perf_counter() - start", "return (time.perf_counter() - start) * 1000"),
            "milliseconds",
        ),
        (
            change(q3, "    start = time.perf_counter()\n", "").replace(
                "if sse.event", "start = time.perf_counter()\n                if sse.event"
            ),
            "start the clock before the request goes out",
        ),
        (change(q3, "return time.perf_counter() - start", "return None"), "did you forget `return`"),
    ],
)
def test_typical_wrong_clients_fail_with_their_message(code: str, expected: str) -> None:
    assert_check_failed(q3, code, expected)


def test_other_correct_answers_pass() -> None:
    # The Flask view may read the prompt inside the generator when stream_with_context keeps the request alive.
    code = change(q1, "Response(events()", "Response(stream_with_context(events())")
    code = code.replace('prompt = request.args["prompt"]  # read it here: inside events(), the request is over\n', "")
    assert_check_passed(q1, code.replace("contents=prompt", 'contents=request.args["prompt"]'))
    # The usage with its None fields kept, and a client that breaks out of the loop before it returns.
    assert_check_passed(q2, change(q2, 'model_dump(mode="json", exclude_none=True)', 'model_dump(mode="json")'))
    assert_check_passed(q3, BREAKING_CLIENT)


BREAKING_CLIENT = change(
    q3,
    "return time.perf_counter() - start  # leaving the blocks closes the connection",
    "ttft = time.perf_counter() - start\n                    break",
).replace('raise RuntimeError("the stream sent no text")', "return ttft")


FLASK_USAGE = 'usage = last.usage_metadata.model_dump(mode="json", exclude_none=True)'
FASTAPI_USAGE = 'usage = last.usage_metadata.model_dump(mode="json", exclude_none=True)'
BLOCKING_CLIENT = (
    change(q3, "async with httpx.AsyncClient(", "with httpx.Client(")
    .replace("async with httpx_sse.aconnect_sse(", "with httpx_sse.connect_sse(")
    .replace("async for sse in source.aiter_sse():", "for sse in source.iter_sse():")
)


def first_chunks_usage(problem) -> str:
    """The reference, keeping the first chunk's usage instead of the last's."""
    return change(problem, "            last = chunk\n", "            last = last or chunk\n")


def estimated_usage(problem) -> str:
    """The reference, sending len(text) // 4 as the usage: an estimate, not what the model counted."""
    code = change(problem, FLASK_USAGE, "usage = {'total_token_count': len(text) // 4}")
    code = code.replace("        last = None\n", "        last, text = None, ''\n", 1) if "def events" in code else code
    code = code.replace("    last = None\n", "    last, text = None, ''\n", 1)
    return code.replace(
        "            last = chunk\n", "            last = chunk\n            text += chunk.text or ''\n"
    )


@pytest.mark.parametrize(
    ("problem", "code", "expected"),
    [
        pytest.param(
            q1, change(q1, FLASK_USAGE, "usage = {'total_token_count': True}"), "not the usage", id="q1-usage-true"
        ),
        pytest.param(q1, first_chunks_usage(q1), "not the usage", id="q1-usage-of-the-first-chunk"),
        pytest.param(q1, estimated_usage(q1), "not the usage", id="q1-usage-estimated-from-the-text"),
        pytest.param(
            q2, change(q2, FASTAPI_USAGE, "usage = {'total_token_count': True}"), "not the usage", id="q2-usage-true"
        ),
        pytest.param(q2, first_chunks_usage(q2), "not the usage", id="q2-usage-of-the-first-chunk"),
        pytest.param(q2, estimated_usage(q2), "not the usage", id="q2-usage-estimated-from-the-text"),
        pytest.param(q3, BLOCKING_CLIENT, "blocked its event loop", id="q3-blocking-httpx-in-async-def"),
    ],
)
def test_warned_mistakes_and_shortcuts_are_rejected_by_name(problem, code: str, expected: str) -> None:
    """Issue 25: the usage must be what the server sent with the last chunk of the learner's own stream, and a sync
    httpx client inside `async def` blocks the event loop the function runs on."""
    assert_check_failed(problem, code, expected)


def test_q2_an_uncaught_error_gives_one_clean_message_and_no_traceback(capfd) -> None:
    code = change(q2, "    except errors.APIError as e:", "    except ValueError as e:")
    outcome = assert_check_failed(q2, code, "stream broke without an event", "ServerError 503")
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "ExceptionGroup" not in out + err, err
    assert outcome.message.count("\n") == 0


def test_q3_messages_name_the_url_and_never_show_the_apps_port() -> None:
    outcome = assert_check_failed(q3, change(q3, "sse.data and json.loads", "json.loads"), "client_ttft(url, ")
    assert "127.0.0.1" not in outcome.message and "PORT" not in outcome.message
