"""The 01_sync exercises, tested both ways against the lesson's own shipped cassette."""

from __future__ import annotations

import pytest

from helpers.checks import assert_check_failed, assert_check_passed
from helpers.exercises.ex01_sync import PROBLEMS, q1, q2, q3, q4

from .exercising import lesson_tests

replay, test_reference_passes_and_starter_is_not_attempted = lesson_tests("01_sync", PROBLEMS, speed=20)


ASK = "def ask(prompt):\n    response = client.models.generate_content(model=MODEL, contents=prompt)\n    return {}\n"
TOKENS = "def tokens_used(response):\n    u = response.usage_metadata\n    return {}\n"
SAFE_ASK = """\
from google.genai import errors


def safe_ask(model, prompt):
    try:
        return client.models.generate_content(model=model, contents=prompt).text
    except {caught} as e:
        return {returned}
"""
CONFIG = """\
config = types.GenerateContentConfig(
    thinking_config=types.ThinkingConfig(thinking_level="LOW"), seed=7, max_output_tokens=100,
    system_instruction="Answer in one sentence."{extra}
)
"""


@pytest.mark.parametrize(
    ("problem", "code", "expected"),
    [
        (q1, ASK.format("response"), "returned a GenerateContentResponse"),
        (q1, ASK.format("str(response)"), "the whole response turned into a string"),
        (q1, ASK.format("None"), "did you forget `return`"),
        (q2, TOKENS.format("u.candidates_token_count"), "only the output tokens"),
        (q2, TOKENS.format("u.prompt_token_count"), "only the prompt (input) tokens"),
        (q2, TOKENS.format("u.prompt_token_count + u.candidates_token_count"), "left out the"),
        (
            q2,
            TOKENS.format("u.prompt_token_count + u.candidates_token_count"),
            "thinking tokens (thoughts_token_count)",
        ),
        (q2, TOKENS.format("u"), "returned the whole usage_metadata"),
        (q3, SAFE_ASK.format(caught="errors.APIError", returned='f"error {e.status}"'), "that is e.status"),
        (q3, SAFE_ASK.format(caught="errors.APIError", returned='"error"'), "without the HTTP status"),
        (q3, SAFE_ASK.format(caught="errors.ClientError", returned='f"error {e.code}"'), "a ServerError (5xx)"),
        (q3, SAFE_ASK.format(caught="errors.ClientError", returned='f"error {e.code}"'), "ServerError 503"),
        (q4, CONFIG.format(extra=", temperature=0"), "config sets temperature"),
        (q4, CONFIG.format(extra="").replace("seed=7", "seed=8"), "config.seed is 8"),
        (q4, CONFIG.format(extra=", ").replace('"LOW"', '"HIGH"'), "the thinking level is HIGH"),
    ],
)
def test_typical_wrong_answers_fail_with_their_message(problem, code: str, expected: str) -> None:
    assert_check_failed(problem, code, expected)


def test_a_sum_that_includes_thinking_passes_and_the_cassette_has_thinking_tokens() -> None:
    ns = q2.namespace()
    usage = ns["client"].models.generate_content(model=ns["MODEL"], contents="Say hello in French.").usage_metadata
    assert usage.thoughts_token_count, "the check's recording has no thinking tokens to forget"
    tokens = "u.prompt_token_count + u.candidates_token_count + u.thoughts_token_count"
    assert_check_passed(q2, TOKENS.format(tokens))
