"""The checked exercises of ``01_sync``: return the text, count tokens, catch the right error, configure a call.

The notebook imports them with ``from helpers.exercises.ex01_sync import ____, q1, q2, q3, q4``; its setup cells
define ``client = genai.Client()`` and ``MODEL`` (:data:`helpers.models.FLASH`), which the checks use. The prompts
below are the ones the lesson's synthetic script answers (``notebooks/scripts/01_sync.json``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from google.genai import chats, errors, types

from .. import control
from ..checks import (
    Incorrect,
    Problem,
    ____,
    expect_answer,
    expect_returned,
    function_names,
    global_values,
    lesson,
    lesson_context,
    recording,
    run_bounded,
    show,
    watching,
)
from ..models import MISSING_MODEL
from ..workbook import current_session

COLOURS_PROMPT = "Name three primary colours."
FRENCH_PROMPT = "Say hello in French."

HELLO_PROMPT = "Hello"
INSTRUCTION = "Answer in one sentence."
ONE_SENTENCE = re.compile(r"\b(one|single|1|a)\b[^.;]*\bsentence\b|\bsentence\b[^.;]*\bone\b", re.IGNORECASE)
"""q4's test of a system instruction: it asks for one sentence, in whatever words ("Reply with a single sentence.")."""

__all__ = ["PROBLEMS", "____", "context", "q1", "q2", "q3", "q4"]

context = lesson_context(types=types)
"""What ``01_sync``'s setup cells leave in the notebook: ``client``, ``MODEL``, ``genai``, ``types``, ``____``."""


class ReturnTheText(Problem):
    """q1: ``ask(prompt) -> str`` returns ``response.text``; checked with two prompts against the server's record of
    what it received and sent, so an ``ask`` that ignores its prompt, or answers without asking, fails."""

    title = "Return just the text"
    variables = ("ask",)
    needs = ("client", "MODEL")
    hints = (
        "client.models.generate_content(...) returns a GenerateContentResponse object, not a string.",
        "The response has a property that joins the answer's text parts into one string.",
    )
    starter = """\
def ask(prompt: str) -> str:
    response = ____  # call the model
    return ____  # just the text
"""
    solution_code = """\
def ask(prompt: str) -> str:
    response = client.models.generate_content(model=MODEL, contents=prompt)
    return response.text
"""
    correct_message = (
        "ask() returns the answer's text. response.text joins the text parts of the first candidate; the response "
        "itself also carries usage_metadata, the finish reason and more."
    )

    def explain(self, error: Exception, fn: Callable[..., Any]) -> str:
        chat = any(isinstance(v, (chats.Chat, chats.AsyncChat)) for v in global_values(fn).values())
        if isinstance(error, errors.ClientError) and error.code == 404 and chat:
            return (
                "A chat made outside ask() resends its whole history with every message, so each call asks "
                "something new: make the chat inside ask(), or call client.models.generate_content."
            )
        return ""

    def verify(self, ns: Mapping[str, Any]) -> None:
        for prompt in (COLOURS_PROMPT, FRENCH_PROMPT):  # two prompts: an ask() that ignores its own is seen
            with recording() as record, watching(ns["client"].models, "generate_content") as seen:
                result = self.call("ask", ns["ask"], prompt)
            expect_answer(f"ask({prompt!r})", result, prompt, record, seen)


class CountTokens(Problem):
    """q2: ``tokens_used(response) -> int`` returns ``usage_metadata.total_token_count`` of a real response."""

    title = "Count what you pay for"
    variables = ("tokens_used",)
    needs = ("client", "MODEL")
    hints = (
        "Every response carries response.usage_metadata: how many tokens went in and came out.",
        "usage_metadata has several counts; you pay for the prompt and for the answer, so find the one that "
        "counts everything.",
    )
    starter = """\
def tokens_used(response) -> int:
    return ____
"""
    solution_code = """\
def tokens_used(response) -> int:
    return response.usage_metadata.total_token_count
"""
    correct_message = (
        "total_token_count counts everything the call used: the prompt, the answer and, on models that think, "
        "the thinking tokens."
    )

    def verify(self, ns: Mapping[str, Any]) -> None:
        for prompt in (FRENCH_PROMPT, COLOURS_PROMPT):  # two responses of different sizes: a typed-in count fails
            response = ns["client"].models.generate_content(model=ns["MODEL"], contents=prompt)
            self.judge(self.call("tokens_used", ns["tokens_used"], response), response.usage_metadata)

    def judge(self, result: Any, usage: types.GenerateContentResponseUsageMetadata) -> None:
        """Judge one result against the usage of the response it was given."""
        call = "tokens_used(response)"
        if isinstance(result, types.GenerateContentResponseUsageMetadata):
            raise Incorrect(f"{call} returned the whole usage_metadata; the exercise wants one number from it.")
        expect_returned(call, result, int, "a number of tokens (an int)")
        if result == usage.total_token_count:
            return
        if result == usage.candidates_token_count:
            raise Incorrect(f"{call} returned only the output tokens; you pay for the prompt's tokens too.")
        if result == usage.prompt_token_count:
            raise Incorrect(f"{call} returned only the prompt (input) tokens; the answer's tokens count too.")
        if usage.thoughts_token_count and result == (usage.prompt_token_count or 0) + (
            usage.candidates_token_count or 0
        ):
            raise Incorrect(
                f"{call} added the prompt and the answer but left out the {usage.thoughts_token_count} thinking "
                "tokens (thoughts_token_count), which Gemini 3 bills as output."
            )
        raise Incorrect(
            f"{call} returned {result}, which is not the number of tokens that response used in total (read it from "
            "the response you are given)."
        )


class CatchTheRightError(Problem):
    """q3: ``safe_ask(model, prompt)`` returns the text, or ``"error {code}"`` when the API raises ``APIError``."""

    title = "Catch the right error"
    variables = ("safe_ask",)
    needs = ("client", "MODEL")
    hints = (
        "Wrap the call in try/except. Which exception does google-genai raise? Look in google.genai.errors.",
        "Catch errors.APIError as e (ClientError and ServerError are its subclasses); e.code is the HTTP status.",
    )
    starter = """\
from google.genai import errors


def safe_ask(model: str, prompt: str) -> str:
    ____
"""
    solution_code = """\
from google.genai import errors


def safe_ask(model: str, prompt: str) -> str:
    try:
        response = client.models.generate_content(model=model, contents=prompt)
    except errors.APIError as e:
        return f"error {e.code}"
    return response.text
"""
    correct_message = (
        "safe_ask() gave 'error 404' for a missing model, the text otherwise, and (in replay, where the check can "
        "make the server answer 503) 'error 503' for a server error: google-genai raises errors.APIError "
        "(ClientError for 4xx, ServerError for 5xx) with the HTTP status in e.code, the status name in e.status and "
        "the message in e.message."
    )

    def explain(self, error: Exception, fn: Callable[..., Any]) -> str:
        if _refers_to(fn, "google.api_core"):
            return (
                "safe_ask() catches google.api_core.exceptions, which google-genai never raises: catch "
                "google.genai.errors.APIError instead."
            )
        if isinstance(error, errors.ServerError):
            return (
                f"The check's server answered {error.code}, a ServerError (5xx), which is not a ClientError (4xx): "
                "catch errors.APIError, the base of both."
            )
        if isinstance(error, errors.APIError):
            return "safe_ask() let the API's error escape: catch google.genai.errors.APIError and use its code."
        return ""

    def verify(self, ns: Mapping[str, Any]) -> None:
        fn = ns["safe_ask"]
        call = f"safe_ask({MISSING_MODEL!r}, {HELLO_PROMPT!r})"
        with recording() as record:
            failed = self.call("safe_ask", fn, MISSING_MODEL, HELLO_PROMPT)
        if record.calls and not any(MISSING_MODEL in r.path for r in record.calls):
            raise Incorrect(
                f"{call} sent its request to another model than the one it was given: pass the `model` argument on "
                "(the server's record shows no request for it)."
            )
        if failed == "error NOT_FOUND":
            raise Incorrect(f"{call} returned 'error NOT_FOUND': that is e.status; the exercise wants e.code.")
        if isinstance(failed, str) and failed.strip().lower() == "error":
            raise Incorrect(f"{call} returned 'error' without the HTTP status; add the exception's code.")
        if failed is None:
            raise Incorrect(f"{call} returned None: did you forget `return` in the except block?")
        if failed != "error 404":
            raise Incorrect(
                f"{call} returned {show(failed)}; for a model that does not exist the exercise wants 'error' and "
                "the HTTP status code, separated by a space."
            )
        with recording() as record, watching(ns["client"].models, "generate_content") as seen:
            result = self.call("safe_ask", fn, ns["MODEL"], COLOURS_PROMPT)
        expect_answer(f"safe_ask(MODEL, {COLOURS_PROMPT!r})", result, COLOURS_PROMPT, record, seen)
        self.verify_lets_bugs_through(fn)
        if current_session().server_url is None:
            return  # live: there is no server to answer 503 on purpose
        control.fail_next(1, 503)
        try:
            unavailable = self.call("safe_ask", fn, ns["MODEL"], FRENCH_PROMPT)
        finally:
            control.clear_faults()
        if unavailable != "error 503":
            raise Incorrect(
                f"when the server answered 503 (unavailable), safe_ask(MODEL, {FRENCH_PROMPT!r}) returned "
                f"{show(unavailable)}; the exercise wants 'error 503' for a server error too."
            )

    def verify_lets_bugs_through(self, fn: Callable[..., Any]) -> None:
        """A call the SDK refuses before anything is sent (an empty model name: ``ValueError``) must raise: a
        catch-all that turns it into an "error" string hides a bug in the caller's own code."""
        try:
            result = run_bounded(fn, "", HELLO_PROMPT, limit_s=self.limit_s())
        except Exception:
            return
        raise Incorrect(
            f"safe_ask('', {HELLO_PROMPT!r}) returned {show(result)}, but the API sent no error: the SDK raised "
            "ValueError ('model is required') before any request. A catch-all (except Exception) hides bugs like "
            "that one; catch errors.APIError only."
        )


def _refers_to(fn: Callable[..., Any], module: str) -> bool:
    """True when ``fn``'s code names ``module``'s last part, or a global from that module (``except exceptions.X``)."""
    names = function_names(fn)
    if module.rsplit(".", 1)[-1] in names:
        return True
    found = list(global_values(fn).values())
    return any(str(getattr(v, "__name__", "")).startswith(module) or _module_of(v).startswith(module) for v in found)


def _module_of(value: Any) -> str:
    return str(getattr(value, "__module__", "") or "")


def _instruction_text(value: Any) -> str | None:
    """The text of a ``system_instruction``, whichever form the SDK accepts (str, Part, Content, or a list)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, types.Part):
        return value.text or ""
    if isinstance(value, types.Content):
        return "".join(p.text or "" for p in value.parts or [])
    if isinstance(value, list):
        return "".join(_instruction_text(v) or "" for v in value)
    return None


class RepeatableConfig(Problem):
    """q4: ``config`` is a ``GenerateContentConfig`` with thinking level LOW, seed 7, <= 100 tokens, a system
    instruction asking for one-sentence answers in any words (:data:`ONE_SENTENCE`; the check sends nothing, so no
    wording is refused by the replay matcher), and no ``temperature`` (deprecated on Gemini 3.6 and later, ignored
    by 3.5 Flash-Lite)."""

    title = "Make the output repeatable and short"
    variables = ("config",)
    hints = (
        "Every setting is a keyword argument of types.GenerateContentConfig(...).",
        "You need four of them: thinking_config (a types.ThinkingConfig), seed, max_output_tokens and "
        "system_instruction (a sentence telling the model to answer in one sentence).",
    )
    starter = """\
config = ____  # a types.GenerateContentConfig
"""
    solution_code = f"""\
config = types.GenerateContentConfig(
    thinking_config=types.ThinkingConfig(thinking_level="LOW"),
    seed=7,
    max_output_tokens=100,
    system_instruction={INSTRUCTION!r},
)
"""
    correct_message = (
        "A fixed seed makes answers as repeatable as the API allows (Google documents it as best effort), thinking "
        "level LOW keeps the hidden reasoning short, max_output_tokens caps the answer's length, and the system "
        "instruction shapes every answer; no temperature, which today's models deprecate."
    )

    def verify(self, ns: Mapping[str, Any]) -> None:
        config = ns["config"]
        if isinstance(config, dict):
            raise Incorrect(
                "config is a dict. The SDK accepts one, but build a types.GenerateContentConfig: it rejects a "
                "misspelt setting as soon as you write it."
            )
        if not isinstance(config, types.GenerateContentConfig):
            raise Incorrect(f"config is {show(config)}; build it with types.GenerateContentConfig(...).")
        if config.temperature is not None or config.top_p is not None or config.top_k is not None:
            raise Incorrect(
                "config sets temperature, top_p or top_k. Older tutorials do (temperature=0 'for predictable "
                "answers'), but Google deprecated them for Gemini 3.6 and later and 3.5 Flash-Lite ignores them: "
                "leave them out and let the seed make answers repeatable."
            )
        thinking = config.thinking_config
        level = thinking.thinking_level if thinking else None
        if thinking is None or level is None:
            raise Incorrect(
                "config has no thinking level; set thinking_config=types.ThinkingConfig(thinking_level=...)."
            )
        if level != types.ThinkingLevel.LOW:
            raise Incorrect(f"the thinking level is {level.value}; the exercise asks for LOW.")
        if thinking.thinking_budget is not None:
            raise Incorrect("config sets a thinking_budget as well as a level; the API refuses both together (400).")
        if config.seed is None:
            raise Incorrect("config has no seed; a fixed seed is what makes sampling repeatable.")
        if config.seed != 7:
            raise Incorrect(f"config.seed is {config.seed}; the exercise asks for 7.")
        if config.max_output_tokens is None:
            raise Incorrect("config has no max_output_tokens, so answers could run long.")
        if not 1 <= config.max_output_tokens <= 100:
            raise Incorrect(f"config.max_output_tokens is {config.max_output_tokens}; the exercise asks for 1 to 100.")
        instruction = _instruction_text(config.system_instruction)
        if instruction is None or not instruction.strip():
            raise Incorrect("config has no system_instruction telling the model how to answer.")
        if not ONE_SENTENCE.search(instruction):
            raise Incorrect(
                f"config.system_instruction is {show(instruction)}, which does not ask for one-sentence answers "
                f"(e.g. {INSTRUCTION!r}; any wording that says one sentence will do)."
            )


PROBLEMS = q1, q2, q3, q4 = lesson(context, ReturnTheText, CountTokens, CatchTheRightError, RepeatableConfig)
"""Every problem of the lesson, in order: for pytest and for recording the checks' requests into the cassette."""
