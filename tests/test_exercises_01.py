"""The 01_sync exercises, tested both ways against the lesson's own shipped cassette.

Each exercise lists the mistakes its lesson warns about and the shortcuts a learner tries, each rejected with a
message naming it; honest variants pass (a chat instead of ``generate_content``, a reworded system instruction).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.checks import assert_check_failed, assert_check_passed
from helpers.exercises.ex01_sync import PROBLEMS, q1, q2, q3, q4
from helpers.models import FLASH
from helpers.replay.cassettes.cassette import Cassette

from .exercising import lesson_tests

replay, test_reference_passes_and_starter_is_not_attempted = lesson_tests("01_sync", PROBLEMS, speed=20)


ASK = "def ask(prompt):\n    response = client.models.generate_content(model=MODEL, contents={})\n    return {}\n"
TOKENS = "def tokens_used(response):\n    u = response.usage_metadata\n    return {}\n"
SAFE_ASK = """\
from google.genai import errors


def safe_ask(model, prompt):
    try:
        return client.models.generate_content(model={model}, contents={prompt}).text
    except {caught} as e:
        return {returned}
"""
CONFIG = """\
config = types.GenerateContentConfig(
    thinking_config=types.ThinkingConfig(thinking_level="LOW"), seed=7, max_output_tokens=100,
    system_instruction={instruction!r}{extra}
)
"""


def safe_ask(caught: str = "errors.APIError", returned: str = 'f"error {e.code}"', **call: str) -> str:
    return SAFE_ASK.format(caught=caught, returned=returned, **{"model": "model", "prompt": "prompt", **call})


def config(instruction: str = "Answer in one sentence.", extra: str = "") -> str:
    return CONFIG.format(instruction=instruction, extra=extra)


MISTAKES = {
    "q1: the response, not its text": (q1, ASK.format("prompt", "response"), "returned a GenerateContentResponse"),
    "q1: str(response)": (q1, ASK.format("prompt", "str(response)"), "the whole response turned into a string"),
    "q1: printed, not returned": (q1, ASK.format("prompt", "print(response.text)"), "did you forget `return`"),
    "q1: ignores its prompt": (
        q1,
        ASK.format("'Name three primary colours.'", "response.text"),
        "ask('Say hello in French.') sent 'Name three primary colours.' to the model, not the prompt it was given",
    ),
    "q1: no API call, a typed-in answer": (
        q1,
        "def ask(prompt):\n    return 'Red, yellow and blue.'\n",
        "never called the model, so it cannot have the model's answer",
    ),
    "q1: the text changed": (q1, ASK.format("prompt", "response.text.strip('.')"), "not the text the server sent"),
    "q1: a chat made once, outside ask()": (
        q1,
        "chat = client.chats.create(model=MODEL)\n\ndef ask(prompt):\n    return chat.send_message(prompt).text\n",
        "A chat made outside ask() resends its whole history",
    ),
    "q2: output tokens only": (q2, TOKENS.format("u.candidates_token_count"), "only the output tokens"),
    "q2: prompt tokens only": (q2, TOKENS.format("u.prompt_token_count"), "only the prompt (input) tokens"),
    "q2: thinking left out": (
        q2,
        TOKENS.format("u.prompt_token_count + u.candidates_token_count"),
        "thinking tokens (thoughts_token_count)",
    ),
    "q2: the whole usage_metadata": (q2, TOKENS.format("u"), "returned the whole usage_metadata"),
    "q2: a count typed in": (
        q2,
        "def tokens_used(response):\n    return {}\n",  # filled in below with the first response's real total
        "not the number of tokens that response used in total",
    ),
    "q3: e.status, not e.code": (q3, safe_ask(returned='f"error {e.status}"'), "that is e.status"),
    "q3: no status": (q3, safe_ask(returned='"error"'), "without the HTTP status"),
    "q3: ClientError only (a 503 escapes)": (q3, safe_ask(caught="errors.ClientError"), "a ServerError (5xx)"),
    "q3: ignores its model argument": (
        q3,
        safe_ask(model="MODEL"),
        "sent its request to another model than the one it was given",
    ),
    "q3: ignores its prompt": (q3, safe_ask(prompt="'Say hello in French.'"), "not the prompt it was given"),
    "q3: a catch-all that hides a bug": (
        q3,
        safe_ask(caught="Exception", returned="f\"error {getattr(e, 'code', 500)}\""),
        "A catch-all (except Exception) hides bugs",
    ),
    "q4: temperature": (q4, config(extra=", temperature=0"), "config sets temperature"),
    "q4: another seed": (q4, config().replace("seed=7", "seed=8"), "config.seed is 8"),
    "q4: another thinking level": (q4, config().replace('"LOW"', '"HIGH"'), "the thinking level is HIGH"),
    "q4: no system instruction": (q4, config(instruction=""), "config has no system_instruction"),
    "q4: an instruction that asks for something else": (
        q4,
        config(instruction="Answer in two sentences."),
        "does not ask for one-sentence answers",
    ),
}


def code_of(name: str) -> str:
    problem, code, _ = MISTAKES[name]
    if name == "q2: a count typed in":
        ns = problem.namespace()
        response = ns["client"].models.generate_content(model=ns["MODEL"], contents="Say hello in French.")
        return code.format(response.usage_metadata.total_token_count)
    return code


@pytest.mark.parametrize("name", MISTAKES)
def test_each_warned_mistake_and_shortcut_is_rejected_with_its_message(name: str) -> None:
    problem, _, expected = MISTAKES[name]
    assert_check_failed(problem, code_of(name), expected)


HONEST = {
    "q1: a chat made in ask()": (
        q1,
        "def ask(prompt):\n    return client.chats.create(model=MODEL).send_message(prompt).text\n",
    ),
    "q1: contents as a list": (q1, ASK.format("[prompt]", "response.text")),
    "q1: a types.Content": (
        q1,
        ASK.format("types.Content(role='user', parts=[types.Part(text=prompt)])", "response.text"),
    ),
    "q2: the three counts added": (
        q2,
        TOKENS.format("u.prompt_token_count + u.candidates_token_count + u.thoughts_token_count"),
    ),
    "q4: reworded": (q4, config(instruction="Reply with a single sentence.")),
    "q4: reworded again": (q4, config(instruction="Keep every answer to one sentence, please.")),
}


@pytest.mark.parametrize(("problem", "code"), HONEST.values(), ids=HONEST.keys())
def test_honest_variants_pass(problem, code: str) -> None:
    assert_check_passed(problem, code)


def test_the_cassette_has_thinking_tokens_to_forget() -> None:
    ns = q2.namespace()
    usage = ns["client"].models.generate_content(model=ns["MODEL"], contents="Say hello in French.").usage_metadata
    assert usage.thoughts_token_count, "the check's recording has no thinking tokens to forget"


def test_the_setup_line_lists_only_models_that_answered() -> None:
    """The 404 demo's model (``gemini-0.0-nonexistent``) answered nothing: it is not a model the cassette replays."""
    cassette = Cassette.load(Path(__file__).resolve().parent.parent / "notebooks" / "cassettes" / "01_sync.json")
    assert any("nonexistent" in e.request["path"] for e in cassette.exchanges)
    assert cassette.models() == [FLASH]
