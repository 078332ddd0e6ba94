"""The 03_streaming exercises, tested both ways against the lesson's own shipped cassette.

Each exercise lists the mistakes its lesson warns about and the shortcuts a learner tries, each rejected with a
message naming it; honest variants pass.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers.checks import assert_check_failed, assert_check_passed
from helpers.exercises.ex03_streaming import CLI_PROMPT, PROBLEMS, q1, q2, q3, q4

from .exercising import change, lesson_tests

SPEED = 2
"""Replay at 2x: fast, yet the CLI's stream still spans long enough (about 0.15 s) to tell streamed output from
output printed all at once."""


replay, test_reference_passes_and_starter_is_not_attempted = lesson_tests("03_streaming", PROBLEMS, speed=SPEED)


def test_a_cli_script_not_written_yet_is_not_attempted() -> None:
    assert q4.evaluate(q4.namespace()).status == "unattempted"  # no stream_cli.py in the tests' folder


STREAM = "client.models.generate_content_stream(model=MODEL, contents=prompt)"


def ttft(body: str, *, before: str = "") -> str:
    """A learner's ``time_to_first_token`` that streams ``prompt`` with the clock started first, then runs ``body``
    (indented by four spaces) with ``stream`` and ``start`` defined."""
    return (
        f"{before}def time_to_first_token(prompt):\n    start = time.perf_counter()\n    stream = {STREAM}\n"
        + "".join(f"    {line}\n" for line in body.splitlines())
    )


FIRST = (
    "for chunk in stream:\n    if chunk.text:\n        t = time.perf_counter() - start\n        break\nstream.close()"
)

TTFT_MISTAKES = {
    "a second added": ttft(FIRST + "\nreturn t + 1"),
    "NaN": ttft(FIRST + "\nreturn float('nan')"),
    "the first run's time, remembered": ttft(
        FIRST + "\nif not first:\n    first.append(t)\nreturn first[0]", before="first = []\n\n"
    ),
    "the stream left open": ttft(
        "kept.append(stream)\nfor chunk in stream:\n    if chunk.text:\n        return time.perf_counter() - start",
        before="kept = []\n\n",
    ),
}
TTFT_EXPECTED = {
    "a second added": "longer than the call itself took",
    "NaN": "returned nan, which is not a number of seconds",
    "the first run's time, remembered": "returned less than the server took to send the first text",
    "the stream left open": "returned with its stream still open",
}


@pytest.mark.parametrize("name", TTFT_MISTAKES)
def test_q2_ttfts_bounded_on_one_side_only_are_rejected(name: str) -> None:
    assert_check_failed(q2, TTFT_MISTAKES[name], TTFT_EXPECTED[name])


def test_q2_a_typed_in_time_is_rejected() -> None:
    """A constant passes one run at most: the second delays the first text past the whole first call."""
    assert_check_failed(q2, ttft(FIRST + "\nreturn 0.4"), "time_to_first_token(")


@pytest.mark.parametrize(
    ("problem", "code", "expected"),
    [
        (q1, "def collect_text(stream):\n    return ''.join(c.text for c in stream)", "A chunk's text can be None"),
        (q1, "def collect_text(stream):\n    return ''.join(str(c.text) for c in stream)", "into the word 'None'"),
        (
            q1,
            "def collect_text(stream):\n    return ''.join(p.text for c in stream if c.candidates[0].content"
            " for p in c.candidates[0].content.parts)",
            "includes the model's thought summary",
        ),
        (q1, "def collect_text(stream):\n    return [c.text for c in stream]", "wants the whole answer as one str"),
        (
            q1,
            "def collect_text(stream):\n    last = ''\n    for c in stream:\n        last = c.text or last\n"
            "    return last",
            "returned only part of the answer",
        ),
        (q1, "def collect_text(stream):\n    print(list(stream))", "did you forget `return`"),
        (  # the check's second stream ends with text: dropping the last chunk loses it
            q1,
            "def collect_text(stream):\n    return ''.join(c.text or '' for c in list(stream)[:-1])",
            "returned only part of the answer",
        ),
        (
            q2,
            f"def time_to_first_token(prompt):\n    for chunk in {STREAM}:\n        start = time.perf_counter()\n"
            "        if chunk.text:\n            return time.perf_counter() - start",
            "start the clock before the request goes out",
        ),
        (
            q2,
            f"def time_to_first_token(prompt):\n    start = time.perf_counter()\n    for chunk in {STREAM}:\n"
            "        pass\n    return time.perf_counter() - start",
            "about the time to the last chunk",
        ),
        (
            q2,
            f"def time_to_first_token(prompt):\n    start = time.perf_counter()\n    for chunk in {STREAM}:\n"
            "        return (time.perf_counter() - start) * 1000",
            "looks like milliseconds",
        ),
        (
            q2,
            "def time_to_first_token(prompt):\n    start = time.perf_counter()\n"
            "    client.models.generate_content(model=MODEL, contents=prompt)\n    return time.perf_counter() - start",
            "has no first token: use generate_content_stream",
        ),
        (q2, f"def time_to_first_token(prompt):\n    list({STREAM})", "did you forget `return`"),
        (
            q3,
            f"def robust_text(prompt):\n    return ''.join(c.text or '' for c in {STREAM})",
            "does not wrap a dropped connection in errors.APIError",
        ),
        (
            q3,
            "def robust_text(prompt):\n    for _ in range(3):\n        try:\n"
            f"            return ''.join(c.text or '' for c in {STREAM})\n"
            "        except errors.APIError:\n            pass",
            "does not wrap a dropped connection in errors.APIError",
        ),
        (
            q3,
            "def robust_text(prompt):\n    pieces = []\n    try:\n"
            f"        for c in {STREAM}:\n            pieces.append(c.text or '')\n"
            "    except httpx2.TransportError:\n        pass\n    return ''.join(pieces)",
            "returned only what arrived before the stream broke",
        ),
        (
            q3,
            "def robust_text(prompt):\n    pieces = []\n    for _ in range(3):\n        try:\n"
            f"            for c in {STREAM}:\n                pieces.append(c.text or '')\n"
            "            return ''.join(pieces)\n        except httpx2.TransportError:\n            pass",
            "starts with the broken attempt's text",
        ),
        (
            q3,
            "def robust_text(prompt):\n    while True:\n        try:\n"
            f"            return ''.join(c.text or '' for c in {STREAM})\n"
            "        except httpx2.TransportError:\n            pass",
            "when every stream broke, robust_text('Explain why the ocean is salty, in one paragraph.') tried 6 times",
        ),
        (
            q3,
            "def robust_text(prompt):\n    for _ in range(3):\n        pieces = []\n        try:\n"
            f"            for c in {STREAM}:\n                pieces.append(c.text or '')\n"
            "            return ''.join(pieces)\n        except httpx2.TransportError:\n            pass\n"
            "    return ''.join(pieces)",
            "after 3 attempts: raise an error instead",
        ),
        (  # the check refuses a request with 400: it must escape, not be retried
            q3,
            "def robust_text(prompt):\n    for _ in range(3):\n        try:\n"
            f"            return ''.join(c.text or '' for c in {STREAM})\n"
            "        except Exception:\n            pass\n    raise RuntimeError('no answer')",
            "A catch-all (except Exception) hides it",
        ),
    ],
)
def test_typical_wrong_answers_fail_with_their_message(problem, code: str, expected: str) -> None:
    assert_check_failed(problem, code, expected)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (change(q4, 'end="", flush=True)', 'end="")'), "output arrived all at once at the end"),
        (change(q4, "config = types.GenerateContentConfig(seed=0)", "config = None"), "printed different answers"),
        (
            change(q4, "if ttft is None:\n", "if ttft is None:\n                sent = time.perf_counter()\n"),
            "start the clock before the request goes out",
        ),
        (
            change(
                q4, "tokens = last.usage_metadata.total_token_count", "tokens = last.usage_metadata.prompt_token_count"
            ),
            "that is the prompt's count",
        ),
        (change(q4, " · TTLT {ttlt:.2f} s", ""), "last line has no TTLT figure"),
        (change(q4, 'prompt = " ".join(argv[1:])', "prompt = argv[5]"), "IndexError: list index out of range"),
        (
            change(q4, 'print(f"\\ntokens', 'print(f"tokens'),
            "printed the figures on the same line as the end of the answer",
        ),
    ],
)
def test_typical_wrong_cli_scripts_fail_with_their_message(code: str, expected: str) -> None:
    assert_check_failed(q4, code, expected)


@pytest.mark.parametrize(
    ("problem", "code"),
    [
        (q1, "def collect_text(stream):\n    return ''.join(c.text for c in stream if c.text)"),
        (
            q2,
            "async def time_to_first_token(prompt):\n    start = time.perf_counter()\n"
            "    async for c in await client.aio.models.generate_content_stream(model=MODEL, contents=prompt):\n"
            "        if c.text:\n            return time.perf_counter() - start",
        ),
        (  # reads the whole stream, but stops the clock at the first text: the hold must not fail it
            q2,
            f"def time_to_first_token(prompt):\n    start, ttft = time.perf_counter(), None\n    for c in {STREAM}:\n"
            "        if c.text and ttft is None:\n            ttft = time.perf_counter() - start\n    return ttft",
        ),
    ],
)
def test_other_correct_answers_pass(problem, code: str) -> None:
    assert_check_passed(problem, code)


def test_the_cli_script_runs_offline_in_a_terminal_with_the_documented_command(tmp_path) -> None:
    script = tmp_path / "stream_cli.py"
    script.write_text(q4.solution_code.split("\n", 1)[1], encoding="utf-8")  # without its %%writefile line
    env = {
        k: v for k, v in os.environ.items() if k not in ("WORKBOOK_MODE", "GOOGLE_GEMINI_BASE_URL", "GEMINI_API_KEY")
    }
    command = [sys.executable, "-m", "helpers.offline", "03_streaming", "--speed", "20", "--"]
    done = subprocess.run(
        [*command, sys.executable, str(script), CLI_PROMPT], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    setup_line, *answer, figures = done.stdout.strip().splitlines()
    assert setup_line.startswith("mode: replay · cassette: 03_streaming")
    assert answer and figures.startswith("tokens ")


def test_the_offline_runner_says_what_is_missing_without_a_command() -> None:
    done = subprocess.run([sys.executable, "-m", "helpers.offline", "03_streaming"], capture_output=True, text=True)
    assert done.returncode == 2 and "give the command to run after --" in done.stderr
