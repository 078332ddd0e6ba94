"""The checked exercises of ``08_protocols``: join a streamed tool call, text and usage from one stream, and a
generator that survives a broken stream without repeating itself.

The notebook imports them with ``from helpers.exercises.ex08_protocols import ____, q1, q2, q3``; its setup cells
define ``client = OpenAI(base_url=session.openai_base_url, ...)``, ``MODEL`` (:data:`helpers.models.FLASH`) and
``WEATHER_TOOL``, which the checks use. The prompts below are ones the lesson's synthetic script answers
(``notebooks/scripts/08_protocols.json``). The checks judge by the replay server's record (``helpers.control``):
whether an answer was streamed, how many requests a retry made; never by the client's clock.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

import openai

from .. import control
from ..checks import Incorrect, Problem, ____, lesson, lesson_context, recording, show
from ..workbook import current_session

WEATHER = "What's the weather in Paris right now?"
TWO_CITIES = "What's the weather in Paris and in Tokyo right now?"
"""Answered with two parallel calls, whose fragments interleave by index."""
USAGE_PROMPT = "Explain what a server-sent event is, in two short sentences."
"""The lesson's SSE_PROMPT: its cells make this request streamed (with and without ``stream_options``) and not."""
STEAM = "Describe how a steam engine works, in one paragraph."
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Returns the current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
"""The lesson's tool, as its cell declares it."""

__all__ = ["PROBLEMS", "____", "context", "q1", "q2", "q3"]


def _openai_client(ns: Mapping[str, Any]) -> openai.OpenAI:
    """The lesson's ``client``: an ``OpenAI`` client on the current session's compatible endpoint."""
    return openai.OpenAI(base_url=current_session().openai_base_url, api_key=os.environ.get("GEMINI_API_KEY", ""))


context = lesson_context(fresh={"client": _openai_client}, WEATHER_TOOL=WEATHER_TOOL, openai=openai, json=json)
"""What ``08_protocols``'s setup cells leave in the notebook that the exercises use: ``client`` (an ``OpenAI``
client on the session's compatible endpoint, in place of the ``genai.Client()`` the notebook names ``native``),
``MODEL``, ``WEATHER_TOOL``, ``openai``, ``json``, ``genai`` and ``____``."""


def _streamed_requests() -> list[bool]:
    """For each chat completion the server saw since the last reset, whether it was answered as a stream."""
    return [bool(r.chunks_s) for r in control.stats().requests if r.path.endswith("chat/completions")]


class ReadChunks:
    """A stream handed to the learner's function that notes each chunk the function reads from it (``read``); it is
    used as the stream it wraps is (a loop, ``with``, ``close()``)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.read: list[Any] = []

    def __iter__(self) -> Iterator[Any]:
        for chunk in self._stream:
            self.read.append(chunk)
            yield chunk

    def __enter__(self) -> ReadChunks:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _city(call: Any) -> Any:
    """The ``city`` of a joined weather call; the call itself when its arguments are not a JSON object."""
    try:
        return json.loads(call["arguments"]).get("city")
    except (TypeError, KeyError, AttributeError, json.JSONDecodeError):
        return call


class CollectCalls(Problem):
    """q1: ``collect_calls(stream)`` joins a streamed tool call's fragments by ``index``.

    Judged on the weather question's stream, which the function must read (:class:`ReadChunks`): one call, the ``id``
    the model sent (only the first fragment has it), its name, and its arguments joined into the JSON the model sent
    (``{"city": "Paris"}``). Then on a stream of two parallel calls (Paris, Tokyo) whose fragments interleave by index:
    both calls, in index order (keeping only the first fails, naming the call dropped).
    """

    title = "Join a streamed tool call"
    variables = ("collect_calls",)
    needs = ("client", "MODEL", "WEATHER_TOOL")
    hints = (
        "Loop over the chunks; each chunk.choices[0].delta.tool_calls (or []) holds fragments, each with an .index.",
        "Keep a dict keyed by fragment.index: set the id when the fragment has one, and add (+=) "
        "fragment.function.name and fragment.function.arguments (either may be None) to what you have.",
    )
    starter = """\
def collect_calls(stream) -> list[dict]:
    ____
"""
    solution_code = """\
def collect_calls(stream) -> list[dict]:
    calls = {}
    for chunk in stream:
        for part in chunk.choices[0].delta.tool_calls or []:
            call = calls.setdefault(part.index, {"id": None, "name": "", "arguments": ""})
            call["id"] = part.id or call["id"]
            call["name"] += part.function.name or ""
            call["arguments"] += part.function.arguments or ""
    return [calls[i] for i in sorted(calls)]
"""
    correct_message = "the fragments joined by index give the whole call: its id, name and arguments."

    def _collect(self, ns: Mapping[str, Any], question: str) -> tuple[ReadChunks, Any]:
        """The stream of the answer to ``question`` (with the lesson's tool) and what ``collect_calls`` made of it."""
        messages = [{"role": "user", "content": question}]
        stream = ReadChunks(
            ns["client"].chat.completions.create(
                model=ns["MODEL"], messages=messages, tools=[ns["WEATHER_TOOL"]], stream=True
            )
        )
        return stream, self.call("collect_calls", ns["collect_calls"], stream, shown="stream")

    def verify(self, ns: Mapping[str, Any]) -> None:
        stream, calls = self._collect(ns, WEATHER)
        if not stream.read:
            raise Incorrect(
                "collect_calls never read the stream, so its calls are not the model's: loop over the chunks and "
                "join each tool call's fragments."
            )
        if calls is None:
            raise Incorrect("collect_calls returned None: did you forget to `return` the list?")
        if not isinstance(calls, list):
            raise Incorrect(f"collect_calls returned {show(calls)}; return a list of dicts, one per call.")
        if len(calls) != 1:
            raise Incorrect(
                f"collect_calls found {len(calls)} calls in a stream with one: key the calls by fragment.index "
                "(only the first fragment has an id; the others have id None)."
            )
        (call,) = calls
        if not isinstance(call, dict) or not {"id", "name", "arguments"} <= call.keys():
            raise Incorrect(f'each call must be a dict with "id", "name" and "arguments"; got {show(call)}.')
        if not call["id"]:
            raise Incorrect("the call has no id: take it from the first fragment (later ones have id None).")
        sent = [p.id for c in stream.read for choice in c.choices for p in choice.delta.tool_calls or [] if p.id]
        if call["id"] not in sent:
            raise Incorrect(
                f"the call's id {show(call['id'])} is not the id the model sent: take it from the first fragment, "
                "so that the tool's result can name the call it answers."
            )
        try:
            arguments = json.loads(call["arguments"])
        except (TypeError, json.JSONDecodeError):
            raise Incorrect(
                f"the arguments {show(call['arguments'])} are not the JSON the model sent: add (+=) each fragment's "
                "arguments to the call's, don't replace them."
            ) from None
        if call["name"] != "get_weather" or arguments != {"city": "Paris"}:
            raise Incorrect(f"the call is {show(call)}; expected get_weather with {{'city': 'Paris'}}.")
        _, calls = self._collect(ns, TWO_CITIES)
        cities = ["Paris", "Tokyo"]
        got = [_city(c) for c in calls or []]
        missing = [f"index {i}, get_weather for {city}" for i, city in enumerate(cities) if city not in got]
        if missing:
            raise Incorrect(
                f"collect_calls returned {len(got)} call(s) for a stream of two parallel calls; missing: "
                f"{'; '.join(missing)}. Return every call, one per fragment.index, in index order."
            )
        if got != cities:
            raise Incorrect(f"the parallel calls are for {show(got)}; return them in index order: {cities}.")


class TextAndUsage(Problem):
    """q2: ``text_and_usage(prompt)`` streams, and reads the usage from the extra last chunk.

    Judged by the server's record of the learner's requests: one streamed answer, whose text the learner returned,
    and whose last chunk carried the usage (asked for with ``stream_options``) whose ``total_tokens`` the learner
    returned; a second request for the usage, a stream without it, or a figure of one's own fail.
    """

    title = "Text and usage from one stream"
    variables = ("text_and_usage",)
    needs = ("client", "MODEL")
    hints = (
        "Ask for the usage with stream_options={'include_usage': True}; it comes in one more chunk, at the end.",
        "That last chunk's choices is an empty list: check chunk.choices before reading chunk.choices[0], and "
        "read chunk.usage.total_tokens when chunk.usage is not None.",
    )
    starter = """\
def text_and_usage(prompt: str) -> tuple[str, int]:
    ____
"""
    solution_code = """\
def text_and_usage(prompt: str) -> tuple[str, int]:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, total = "", 0
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage is not None:
            total = chunk.usage.total_tokens
    return text, total
"""
    correct_message = "the text from the deltas, the usage from the last chunk, whose choices are empty."

    def explain(self, error: Exception, fn: Any) -> str:
        if isinstance(error, IndexError):
            return "The usage chunk has empty choices: check chunk.choices before reading chunk.choices[0]."
        if isinstance(error, AttributeError) and "NoneType" in str(error):
            return "Without stream_options={'include_usage': True} the chunks' usage is None."
        return ""

    def verify(self, ns: Mapping[str, Any]) -> None:
        call = "text_and_usage(prompt)"
        with recording() as record:
            result = self.call("text_and_usage", ns["text_and_usage"], USAGE_PROMPT, shown="prompt")
        if result is None:
            raise Incorrect(f"{call} returned None: did you forget to `return` (text, total_tokens)?")
        if not (isinstance(result, tuple) and len(result) == 2):
            raise Incorrect(f"{call} returned {show(result)}; return a tuple (text, total_tokens).")
        text, total = result
        if isinstance(total, bool) or not isinstance(total, int):
            raise Incorrect(f"total_tokens is {show(total)}; return the usage's total_tokens, an int.")
        if record.calls is None:  # live: no server record
            return
        streams = [r for r in record.calls if r.streamed]
        if not streams:
            raise Incorrect("the answer was not streamed: pass stream=True (and read the chunks as they come).")
        stream = streams[-1]
        if text != stream.text:
            raise Incorrect(f"the text is {show(text)}; join every chunk's delta.content (skipping None).")
        if len(record.calls) > len(streams):
            raise Incorrect(
                f"{call} made a second request besides the stream, which cost as much again: ask the stream for its "
                "usage with stream_options={'include_usage': True} and read it from the last chunk."
            )
        sent = (stream.usage or {}).get("total_tokens")
        if sent is None:
            raise Incorrect(
                f"total_tokens is {show(total)}, but the stream carried no usage: ask for "
                "stream_options={'include_usage': True}, and read chunk.usage.total_tokens from its last chunk."
            )
        if total != sent:
            raise Incorrect(
                f"total_tokens is {total}, not the total_tokens the server sent in the stream's last chunk: read "
                "chunk.usage.total_tokens from the chunk whose choices are empty, not a figure of your own."
            )


class ResilientText(Problem):
    """q3: ``resilient_text(messages)`` retries a broken stream and yields only what is new.

    Judged with the stream cut after two chunks (``helpers.control.cut_stream``): it must be a generator (a function
    returning the whole text fails), the pieces must join to the answer once (not its start twice), and the server
    must have seen a second request (a retry, not a give-up).
    """

    title = "A generator that survives a break"
    variables = ("resilient_text",)
    needs = ("client", "MODEL")
    hints = (
        "Catch openai.APIConnectionError around the loop over a new stream, inside a loop over the attempts.",
        "Keep the text already yielded in a variable outside the attempts loop; in each attempt build that "
        "attempt's text, and yield only text[len(sent):] once it is longer than what you sent.",
    )
    starter = """\
def resilient_text(messages):
    ____
"""
    solution_code = """\
def resilient_text(messages):
    sent = ""
    for _ in range(3):
        text = ""
        try:
            for chunk in client.chat.completions.create(model=MODEL, messages=messages, stream=True, seed=0):
                text += chunk.choices[0].delta.content or ""
                if len(text) > len(sent):
                    yield text[len(sent) :]
                    sent = text
            return
        except openai.APIConnectionError:
            continue
"""
    correct_message = "one break, one retry, and the answer once, without its start repeated."

    def explain(self, error: Exception, fn: Any) -> str:
        if isinstance(error, openai.APIConnectionError):
            return "The stream broke and nothing retried it: catch openai.APIConnectionError and stream again."
        return ""

    def verify(self, ns: Mapping[str, Any]) -> None:
        messages = [{"role": "user", "content": STEAM}]
        expected = "".join(
            c.choices[0].delta.content or ""
            for c in ns["client"].chat.completions.create(model=ns["MODEL"], messages=messages, stream=True, seed=0)
        )
        control.reset_stats()
        control.cut_stream(after_chunks=2)
        try:
            generator = self.call("resilient_text", ns["resilient_text"], messages, shown="messages")
            if isinstance(generator, (str, bytes)) or not isinstance(generator, Iterator):
                raise Incorrect(
                    f"resilient_text(messages) returned {show(generator)} instead of yielding: make it a generator "
                    "(`yield` each new piece as it arrives), so its caller can show the text while it streams."
                )
            pieces = self.call("resilient_text", list, generator, shown="messages")
        finally:
            control.clear_faults()
        text = "".join(p for p in pieces if isinstance(p, str))
        requests = len(_streamed_requests())
        if text == expected[: len(text)] and len(text) < len(expected):
            raise Incorrect(
                f"the text stopped after {len(text)} of {len(expected)} characters: the stream broke and was not "
                "retried. Catch openai.APIConnectionError and stream again."
            )
        if text != expected:
            if expected[:20] and text.count(expected[:20]) > 1:
                raise Incorrect(
                    "the answer's start appears twice: after the break your retry re-yields the new stream from the "
                    "start. Yield only the text beyond what you already yielded."
                )
            raise Incorrect(f"the pieces join to {show(text)}, which is not the answer.")
        if requests < 2:
            raise Incorrect("the server saw one request: the break was not retried.")


PROBLEMS = q1, q2, q3 = lesson(context, CollectCalls, TextAndUsage, ResilientText)
"""Every problem of the lesson, in order: for pytest and for recording the checks' requests into the cassette."""
"""Every problem of the lesson, in order: for pytest and for recording the checks' requests into the cassette."""
