"""The 08_protocols exercises, tested both ways against the lesson's own shipped cassette."""

from __future__ import annotations

import pytest

from helpers.checks import assert_check_failed, assert_check_passed
from helpers.exercises.ex08_protocols import PROBLEMS, q1, q2, q3

from .exercising import change, lesson_tests

replay, test_reference_passes_and_starter_is_not_attempted = lesson_tests("08_protocols", PROBLEMS, speed=4)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            change(q1, "part.index, {", "part.id, {").replace(
                "[calls[i] for i in sorted(calls)]", "list(calls.values())"
            ),
            "key the calls by fragment.index",
        ),
        (
            change(q1, 'call["arguments"] += part.function.arguments', 'call["arguments"] = part.function.arguments'),
            "add (+=) each fragment's arguments",
        ),
        (change(q1, 'call["id"] = part.id or call["id"]', 'call["id"] = part.id'), "take it from the first fragment"),
        (change(q1, "    return [calls[i] for i in sorted(calls)]\n", ""), "forget to `return`"),
        (
            change(q1, "return [calls[i] for i in sorted(calls)]", "return [calls[i] for i in sorted(calls)][:1]"),
            "missing: index 1, get_weather for Tokyo",
        ),
    ],
)
def test_wrong_tool_call_joins_fail_with_their_message(code: str, expected: str) -> None:
    assert_check_failed(q1, code, expected)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            change(q2, "        if chunk.choices:\n            text", "        if True:\n            text"),
            "empty choices",
        ),
        (
            change(q2, '        stream_options={"include_usage": True},\n', "").replace(
                "        if chunk.usage is not None:\n", "        if True:\n"
            ),
            "stream_options={'include_usage': True}",
        ),
        (
            change(q2, '        stream=True,\n        stream_options={"include_usage": True},\n', "").replace(
                "    for chunk in stream:\n        if chunk.choices:\n            text += "
                'chunk.choices[0].delta.content or ""\n        if chunk.usage is not None:\n'
                "            total = chunk.usage.total_tokens\n",
                "    text, total = stream.choices[0].message.content, stream.usage.total_tokens\n",
            ),
            "was not streamed",
        ),
    ],
)
def test_wrong_text_and_usage_fail_with_their_message(code: str, expected: str) -> None:
    assert_check_failed(q2, code, expected)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            change(
                q3,
                "if len(text) > len(sent):\n                    yield text[len(sent) :]",
                'if True:\n                    yield chunk.choices[0].delta.content or ""',
            ),
            "start appears twice",
        ),
        (
            change(
                q3,
                "        except openai.APIConnectionError:\n            continue\n",
                "        finally:\n            pass\n",
            ),
            "nothing retried it",
        ),
        (
            change(
                q3,
                "        except openai.APIConnectionError:\n            continue\n",
                "        except openai.APIConnectionError:\n            return\n",
            ),
            "was not retried",
        ),
    ],
)
def test_wrong_retries_fail_with_their_message(code: str, expected: str) -> None:
    assert_check_failed(q3, code, expected)


HARD_CODED_CALL = """\
def collect_calls(stream) -> list[dict]:
    return [{"id": "call_0", "name": "get_weather", "arguments": '{"city": "Paris"}'}]
"""
OWN_STREAM = (
    "client.chat.completions.create(model=MODEL, messages=[{'role': 'user', 'content': "
    '"What\'s the weather in Paris right now?"}], tools=[WEATHER_TOOL], stream=True)'
)
USAGE_FROM_ANOTHER_REQUEST = """\
def text_and_usage(prompt: str) -> tuple[str, int]:
    messages = [{"role": "user", "content": prompt}]
    text = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(model=MODEL, messages=messages, stream=True)
    )
    return text, client.chat.completions.create(model=MODEL, messages=messages).usage.total_tokens
"""
RETURNS_A_STRING = """\
def resilient_text(messages):
    for _ in range(3):
        text = ""
        try:
            for chunk in client.chat.completions.create(model=MODEL, messages=messages, stream=True, seed=0):
                text += chunk.choices[0].delta.content or ""
            return text
        except openai.APIConnectionError:
            continue
"""


def returned_total(expression: str) -> str:
    return change(q2, "    return text, total\n", f"    return text, {expression}\n")


@pytest.mark.parametrize(
    ("problem", "code", "expected"),
    [
        pytest.param(q1, HARD_CODED_CALL, "never read the stream", id="q1-hard-coded-never-reads"),
        pytest.param(
            q1,
            change(q1, "    for chunk in stream:\n", f"    for chunk in {OWN_STREAM}:\n"),
            "never read the stream",
            id="q1-ignores-its-argument",
        ),
        pytest.param(
            q1,
            change(q1, "    return [calls[i] for i in sorted(calls)]\n", HARD_CODED_CALL.splitlines()[1] + "\n"),
            "not the id the model sent",
            id="q1-reads-the-stream-returns-a-hard-coded-call",
        ),
        pytest.param(q2, returned_total("True"), "return the usage's total_tokens, an int", id="q2-usage-true"),
        pytest.param(
            q2,
            returned_total("len(text) // 4"),
            "not the total_tokens the server sent",
            id="q2-usage-estimated-from-the-text",
        ),
        pytest.param(
            q2,
            change(q2, '        stream_options={"include_usage": True},\n', ""),
            "stream_options={'include_usage': True}",
            id="q2-no-include-usage",
        ),
        pytest.param(q2, USAGE_FROM_ANOTHER_REQUEST, "second request", id="q2-usage-from-a-second-request"),
        pytest.param(q3, RETURNS_A_STRING, "make it a generator", id="q3-returns-instead-of-yielding"),
    ],
)
def test_warned_mistakes_and_shortcuts_are_rejected_by_name(problem, code: str, expected: str) -> None:
    """Issue 25: the tool call and the usage compared with what the model sent, and a generator that yields."""
    assert_check_failed(problem, code, expected)


@pytest.mark.parametrize(
    ("problem", "code"),
    [
        pytest.param(
            q1,
            "from collections import defaultdict\n\n\ndef collect_calls(stream):\n"
            "    calls = defaultdict(lambda: {'id': None, 'name': '', 'arguments': ''})\n"
            "    for chunk in stream:\n        if not chunk.choices:\n            continue\n"
            "        for part in chunk.choices[0].delta.tool_calls or []:\n"
            "            call = calls[part.index]\n            call['id'] = call['id'] or part.id\n"
            "            call['name'] += part.function.name or ''\n"
            "            call['arguments'] += part.function.arguments or ''\n"
            "    return [calls[i] for i in sorted(calls)]",
            id="q1-defaultdict",
        ),
        pytest.param(
            q2,
            "def text_and_usage(prompt):\n    with client.chat.completions.create(\n"
            "        model=MODEL, messages=[{'role': 'user', 'content': prompt}], stream=True,\n"
            "        stream_options={'include_usage': True},\n    ) as stream:\n        chunks = list(stream)\n"
            "    text = ''.join(c.choices[0].delta.content or '' for c in chunks if c.choices)\n"
            "    return text, chunks[-1].usage.total_tokens",
            id="q2-with-and-the-last-chunk",
        ),
    ],
)
def test_honest_variants_pass(problem, code: str) -> None:
    assert_check_passed(problem, code)
