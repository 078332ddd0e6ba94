"""The 08_protocols exercises, tested both ways against the lesson's own shipped cassette."""

from __future__ import annotations

import pytest

from helpers.checks import assert_check_failed
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
