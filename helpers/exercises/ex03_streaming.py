"""The checked exercises of ``03_streaming``: collect a stream's text, time its first token, survive a broken stream,
and write a streaming command-line tool.

The notebook imports them with ``from helpers.exercises.ex03_streaming import ____, q1, q2, q3, q4``; its setup cells
define ``client = genai.Client()`` and ``MODEL`` (:data:`helpers.models.FLASH`), which the checks use. The prompts
below are the ones the lesson's synthetic script answers (``notebooks/scripts/03_streaming.json``). The checks of
q2, q3 and q4 read the replay server's record of the learner's requests, hold a stream back or cut it
(``helpers.control``); q4 runs the learner's script in a subprocess that reaches the server through the environment
``helpers.setup`` set. No check compares the learner's clock with the server's except by a bound a busy machine
cannot break (see :data:`ROUNDING_S`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
from google import genai
from google.genai import errors, types

from .. import control
from ..checks import (
    Incorrect,
    Problem,
    ScriptProblem,
    ServerView,
    TimeLimitExceeded,
    Watched,
    ____,
    expect_returned,
    expect_ttft,
    function_names,
    holding_stream,
    lesson,
    lesson_context,
    run_bounded,
    show,
    stream_ended,
    stream_seen,
    watching,
)
from ..models import FLASH
from ..workbook import current_session

USES_PROMPT = "Name three uses of streaming, in one sentence each."
STAR_PROMPT = "Describe the life cycle of a star, in one paragraph."
OCEAN_PROMPT = "Explain why the ocean is salty, in one paragraph."
ATTEMPTS = 3
"""Exercise 3's retry budget: up to this many attempts, then raise."""
CLI_PROMPT = "Explain what a token is, in one short paragraph."
THOUGHT = "Planning the answer: three uses, one sentence each."

ROUNDING_S = 0.02
"""Slack, in seconds, when a learner's time is compared with the replay server's record: figures printed with two
decimals. Every such comparison is one a busy machine cannot upset: the learner's clock starts before the server
sees the request and stops after the server sent what it waited for (a lower bound), and within the check's call of
the learner's code (an upper bound)."""

__all__ = ["PROBLEMS", "____", "context", "q1", "q2", "q3", "q4"]


context = lesson_context(types=types, errors=errors, time=time, httpx2=httpx2, aiohttp=aiohttp)
"""What ``03_streaming``'s setup cells leave in the notebook that the exercises use: ``client``, ``MODEL``,
``genai``, ``types``, ``errors``, ``time``, ``httpx2``, ``aiohttp`` and ``____``."""


class CollectText(Problem):
    """q1: ``collect_text(stream) -> str`` joins the chunks' text, skipping chunks whose ``text`` is ``None``."""

    title = "Collect the text of a stream"
    variables = ("collect_text",)
    hints = (
        "chunk.text is the text of one chunk; join them all. What is chunk.text for a chunk that has no text?",
        "It is None, and ''.join(...) refuses None: use chunk.text or '' (or skip chunks without text).",
    )
    starter = """\
def collect_text(stream) -> str:
    return ____
"""
    solution_code = """\
def collect_text(stream) -> str:
    return "".join(chunk.text or "" for chunk in stream)
"""
    correct_message = (
        "chunk.text joins a chunk's text parts and skips thoughts; it is None for a chunk with no text (a thought, "
        "a function call, or only the finish reason and usage), so `or ''` keeps the join safe."
    )

    def explain(self, error: Exception, fn: Callable[..., Any]) -> str:
        if isinstance(error, (TypeError, AttributeError)) and "NoneType" in str(error):
            return "A chunk's text can be None (this stream has two such chunks): use chunk.text or ''."
        return ""

    def verify(self, ns: Mapping[str, Any]) -> None:
        chunks = list(ns["client"].models.generate_content_stream(model=ns["MODEL"], contents=USES_PROMPT))
        answer = "".join(c.text or "" for c in chunks)
        thinking = types.GenerateContentResponse(
            candidates=[
                types.Candidate(index=0, content=types.ModelContent(parts=[types.Part(text=THOUGHT, thought=True)]))
            ]
        )
        metadata_only = types.GenerateContentResponse(
            candidates=[types.Candidate(index=0, finish_reason=types.FinishReason.STOP)],
            usage_metadata=chunks[-1].usage_metadata,
        )
        last_text = max(i for i, c in enumerate(chunks) if c.text)
        # Twice: ending with a chunk without text, then with the answer's last text (dropping a last chunk fails).
        for stream in ([thinking, *chunks, metadata_only], [thinking, *chunks[: last_text + 1]]):
            self.judge(self.call("collect_text", ns["collect_text"], iter(stream)), answer)

    def judge(self, result: Any, answer: str) -> None:
        """Judge what ``collect_text`` returned for a stream that carried ``answer``."""
        call = "collect_text(stream)"
        expect_returned(call, result, str, "the whole answer as one str")
        if result == answer:
            return
        if THOUGHT in result:
            raise Incorrect(
                f"{call} includes the model's thought summary; the answer is the text that is not a thought."
            )
        if "None" in result and "None" not in answer:
            raise Incorrect(f"{call} turned a chunk's None text into the word 'None'; skip it or use chunk.text or ''.")
        if result and (answer.startswith(result) or answer.endswith(result)):
            raise Incorrect(f"{call} returned only part of the answer; join the text of every chunk.")
        raise Incorrect(f"{call} returned {show(result)}, which is not the text the stream carried.")


class TimeToFirstToken(Problem):
    """q2: ``time_to_first_token(prompt) -> float``: seconds from sending the request to the first chunk with text.

    Bounded on both sides without comparing clocks in a way a busy machine could upset: below by the server's record
    of the same request (its first text went out that long after the request arrived), above by the call's own span;
    the stream is held back after its first text, so the call ends right after it (a TTFT plus a second, the whole
    stream's time, NaN, a stream left open are each seen, :meth:`judge_run`). A second run delays the first text past
    the whole first call, so a time typed in, or remembered from the first run, fails.
    """

    title = "Measure time to first token"
    variables = ("time_to_first_token",)
    needs = ("client", "MODEL")
    hints = (
        "Read time.perf_counter() before you start reading the stream, and again when the first chunk with text "
        "arrives; the difference is the TTFT.",
        "The SDK sends the request when the loop starts, so start the clock before the `for`, never inside it; "
        "stop it at the first chunk whose text is not empty, then return (or close the stream).",
    )
    starter = """\
def time_to_first_token(prompt: str) -> float:
    ____
"""
    solution_code = """\
def time_to_first_token(prompt: str) -> float:
    start = time.perf_counter()
    stream = client.models.generate_content_stream(model=MODEL, contents=prompt)
    try:
        for chunk in stream:
            if chunk.text:
                return time.perf_counter() - start
    finally:
        stream.close()  # stop the stream: only its first token was wanted
    raise ValueError("the stream sent no text")
"""
    correct_message = (
        "The clock starts before the request goes out and stops at the first chunk with text; closing the stream "
        "then stops the server from sending the rest."
    )

    def explain(self, error: Exception, fn: Callable[..., Any]) -> str:
        missing = isinstance(error, errors.ClientError) and error.code == 404
        if missing and "generate_content_stream" not in function_names(fn):
            return "A call that waits for the whole answer has no first token: use generate_content_stream."
        return ""

    def verify(self, ns: Mapping[str, Any]) -> None:
        call = f"time_to_first_token({STAR_PROMPT!r})"
        if current_session().server_url is None:  # live: no record to judge by, only the call's own span
            result, took = self.timed(ns)
            expect_ttft(call, result, took, ROUNDING_S)
            return
        first = self.judge_run(ns, call)
        # Again, with the first text delayed past the whole first call: a time typed in cannot follow.
        control.add_latency(first.took_s + LATER_S)
        try:
            second = self.judge_run(ns, call)
        finally:
            control.add_latency(0)
        if second.result == first.result:
            raise Incorrect(
                f"{call} returned {first.result:g} twice, although the first text took {LATER_S:g} s longer the "
                "second time: return the time you measured."
            )

    def timed(self, ns: Mapping[str, Any]) -> tuple[Any, float]:
        """Call the learner's function once; return its result and how long the call took, seconds (an upper bound
        of any time measured inside it)."""
        started = time.perf_counter()
        result = self.call("time_to_first_token", ns["time_to_first_token"], STAR_PROMPT)
        return result, time.perf_counter() - started

    def judge_run(self, ns: Mapping[str, Any], call: str) -> TtftRun:
        """One run in replay, judged both ways by the server's record of its request.

        The stream is held back after its first text (:func:`~helpers.checks.holding_stream`): a function that
        returns meanwhile stopped its clock at the first text, and must have closed its stream (the server sees it
        end); one still running when the hold ends that returns at least the time to the last chunk timed the whole
        stream. The result is at least the server's time to first text, and at most the call's own span.
        """
        control.reset_stats()
        with holding_stream() as hold:
            started = time.perf_counter()
            result = self.call("time_to_first_token", ns["time_to_first_token"], STAR_PROMPT, nudge=hold.nudge)
            took = time.perf_counter() - started
            kind, server = stream_seen()
            if kind == "generate":
                raise Incorrect(f"{call} used generate_content, which has no first token: stream the answer instead.")
            if server is None:
                raise Incorrect(f"{call} never read a stream from client.models.generate_content_stream.")
            expect_ttft(call, result, took, ROUNDING_S, server.first_text_s)
            if not hold.released and not stream_ended():
                raise Incorrect(
                    f"{call} returned with its stream still open (the server is still waiting to send the rest): "
                    "close it (stream.close() in a finally block), so the server stops sending what you don't read."
                )
        # Still running when the hold ended, and it timed at least until the last chunk, sent only after that.
        if hold.released and server.chunks_s and result >= server.chunks_s[-1] - ROUNDING_S:
            raise Incorrect(
                f"{call} returned about the time to the last chunk: stop the clock at the first chunk with text."
            )
        return TtftRun(float(result), took)


@dataclass(frozen=True)
class TtftRun:
    """One judged run of exercise 2: what the learner's function returned and how long the call took, seconds."""

    result: float
    took_s: float


LATER_S = 0.3
"""Exercise 2's second run delays the first text by the whole first call plus this many seconds (wall clock)."""


class SurviveABrokenStream(Problem):
    """q3: ``robust_text(prompt) -> str`` returns the whole answer although the check cuts its first stream."""

    title = "Survive a broken stream"
    variables = ("robust_text",)
    needs = ("client", "MODEL")
    hints = (
        "A broken stream raises while you iterate it. Catch that error and start the request again, in a loop.",
        "Sync streams raise httpx2.TransportError (RemoteProtocolError) when the connection drops, not an "
        "errors.APIError. Start each attempt with an empty list of pieces, or the broken attempt's text stays in.",
    )
    starter = """\
def robust_text(prompt: str) -> str:
    ____
"""
    solution_code = """\
def robust_text(prompt: str) -> str:
    for attempt in range(3):
        pieces = []
        try:
            for chunk in client.models.generate_content_stream(model=MODEL, contents=prompt):
                pieces.append(chunk.text or "")
            return "".join(pieces)
        except (httpx2.TransportError, aiohttp.ClientError, errors.ServerError):
            continue  # the stream broke: throw the pieces away and ask again
    raise RuntimeError("the stream broke 3 times")
"""
    correct_message = (
        "robust_text() returned the whole answer after a break, and raised when every stream broke, after at most "
        f"{ATTEMPTS} attempts. A started stream is never retried by the SDK, so you catch the break and ask again. "
        "Starting from nothing "
        "keeps the answer coherent; resuming from the partial text (lesson 03) saves output tokens."
    )

    def explain(self, error: Exception, fn: Callable[..., Any]) -> str:
        if isinstance(error, (httpx2.TransportError, aiohttp.ClientError)):
            return (
                "The check cut the stream part-way, on purpose. google-genai does not wrap a dropped connection in "
                "errors.APIError: catch httpx2.TransportError (sync) or aiohttp.ClientError (async), and request "
                "the answer again."
            )
        if isinstance(error, errors.ClientError) and error.code == 404:
            return "The replay server has no recording of that request: retry the same request from the start."
        return ""

    def verify(self, ns: Mapping[str, Any]) -> None:
        if current_session().server_url is None:
            raise Incorrect(
                "this check cuts a stream on purpose, which needs the replay server: unset WORKBOOK_MODE and re-run "
                "the setup cell."
            )
        stream = ns["client"].models.generate_content_stream(model=ns["MODEL"], contents=OCEAN_PROMPT)
        answer = "".join(c.text or "" for c in stream)
        control.cut_stream(after_chunks=2)
        try:
            result = self.call("robust_text", ns["robust_text"], OCEAN_PROMPT)
        finally:
            control.clear_faults()
        call = f"robust_text({OCEAN_PROMPT!r})"
        expect_returned(call, result, str, "the whole answer as one str")
        if result == answer:
            self.verify_gives_up(ns)
            return
        if result and answer.startswith(result):
            raise Incorrect(
                f"{call} returned only what arrived before the stream broke: request the answer again instead."
            )
        if len(result) > len(answer) and result.endswith(answer):
            raise Incorrect(
                f"{call} starts with the broken attempt's text, then the whole answer: start each attempt from an "
                "empty list of pieces."
            )
        raise Incorrect(f"{call} returned {show(result)}, which is not the answer the stream sends.")

    def verify_gives_up(self, ns: Mapping[str, Any]) -> None:
        """Break every stream the learner's function starts (up to :data:`ATTEMPTS` + 2 of them): it must raise
        after at most :data:`ATTEMPTS`, not return a partial answer nor keep trying."""
        call = f"robust_text({OCEAN_PROMPT!r})"

        def break_it(seen: list[Watched]) -> None:  # runs when a stream is made, before its request goes out
            if len(seen) <= ATTEMPTS + 2:
                control.cut_stream(after_chunks=2)

        raised = False
        try:
            with watching(ns["client"].models, "generate_content_stream", then=break_it) as seen:
                result = run_bounded(ns["robust_text"], OCEAN_PROMPT, limit_s=self.limit_s())
        except TimeLimitExceeded:
            raise Incorrect(
                f"when every stream broke, {call} kept retrying until the check stopped it: give up after "
                f"{ATTEMPTS} attempts and raise."
            ) from None
        except Exception:
            raised = True
        finally:
            control.clear_faults()
        if len(seen) > ATTEMPTS:
            raise Incorrect(
                f"when every stream broke, {call} tried {len(seen)} times; the exercise allows up to {ATTEMPTS} "
                "attempts, then raise."
            )
        if not raised:
            raise Incorrect(
                f"when every stream broke, {call} returned {show(result)} after {len(seen)} attempts: raise an error "
                "instead, so the caller knows there is no answer."
            )
        self.verify_lets_refusals_through(ns)

    def verify_lets_refusals_through(self, ns: Mapping[str, Any]) -> None:
        """Refuse the learner's first request with 400 INVALID_ARGUMENT: its ``errors.ClientError`` must escape, as
        no retry mends a request the API refuses; a catch-all (``except Exception``) retries it and hides the bug."""
        call = f"robust_text({OCEAN_PROMPT!r})"
        control.fail_next(1, 400)
        try:
            result = run_bounded(ns["robust_text"], OCEAN_PROMPT, limit_s=self.limit_s())
        except errors.ClientError as e:
            if e.code == 400:
                return
            outcome = f"raised {type(e).__name__} {e.code}"
        except Exception as e:
            outcome = f"raised {type(e).__name__}"
        else:
            outcome = f"returned {show(result)}"
        finally:
            control.clear_faults()
        raise Incorrect(
            f"when the server refused the request (400 INVALID_ARGUMENT), {call} {outcome}; a 400 is a mistake in "
            "the request that no retry mends, so its errors.ClientError must reach the caller. A catch-all "
            "(except Exception) hides it: catch only a broken stream (httpx2.TransportError, aiohttp.ClientError) "
            "and errors.ServerError."
        )


CLI_FIGURES = {
    "tokens": re.compile(r"tokens\D{0,3}(\d+)", re.IGNORECASE),
    "wall": re.compile(r"wall\D{0,3}(\d+(?:\.\d+)?)\s*s", re.IGNORECASE),
    "TTFT": re.compile(r"TTFT\D{0,3}(\d+(?:\.\d+)?)\s*s", re.IGNORECASE),
    "TTLT": re.compile(r"TTLT\D{0,3}(\d+(?:\.\d+)?)\s*s", re.IGNORECASE),
}
"""How the check finds each figure on the script's last line, e.g. ``tokens 143 · wall 1.21 s · TTFT 0.42 s ...``."""


@dataclass(frozen=True)
class CliRun:
    """One run of the learner's script.

    Attributes:
        text: what it printed before its last line (the streamed answer), stripped.
        figures: the figures on its last line, by name (``tokens`` as an int, times in seconds).
        streamed: whether it printed part of the answer while the check held the stream back after its first text
            (``None``: the stream was not held).
        took_s: seconds from starting the process to its exit.
        joined: what its last line holds before the first figure, stripped (``""`` when the figures start it):
            the answer's end, when no newline separates it from the figures.
    """

    text: str
    figures: dict[str, float]
    streamed: bool | None
    took_s: float
    joined: str = ""


class StreamingCli(ScriptProblem):
    """q4: a script, ``stream_cli.py``, that streams the answer to its argv prompt and prints four figures.

    The learner writes it with ``%%writefile stream_cli.py`` (in the notebook's folder); :meth:`namespace` writes
    given code to a temporary file instead, for tests and the cassette author. The check runs it twice with the
    current environment (``GOOGLE_GEMINI_BASE_URL``, ``GEMINI_API_KEY``), reads its stdout as it arrives, and compares
    the figures with the replay server's record of the same request (lower bounds only). In replay the first run's
    stream is held back after its first text until the script prints (:func:`~helpers.checks.holding_stream`): a
    script that streams prints then; one whose output is held back in a buffer cannot.
    """

    title = "A streaming command-line tool"
    script = "stream_cli.py"
    hints = (
        "Start a clock (time.perf_counter()) just before the loop; in the loop print each chunk's text with "
        "end='' and flush=True, note when the first text arrives, and keep the last chunk for its usage_metadata.",
        "Without flush=True, Python holds back output written to a pipe until the script ends, and nothing seems "
        "to stream. The total token count is last_chunk.usage_metadata.total_token_count; only the last chunk has "
        "it complete.",
    )
    starter = '''\
%%writefile stream_cli.py
"""Stream Gemini's answer to the prompt given on the command line, then print tokens, wall time, TTFT and TTLT."""
import sys
import time

from google import genai
from google.genai import types

from helpers.models import FLASH


def main(argv: list[str]) -> None:
    started = time.perf_counter()
    prompt = " ".join(argv[1:])
    client = genai.Client()  # GOOGLE_GEMINI_BASE_URL and GEMINI_API_KEY come from the environment
    ____


if __name__ == "__main__":
    main(sys.argv)
'''
    solution_code = '''\
%%writefile stream_cli.py
"""Stream Gemini's answer to the prompt given on the command line, then print tokens, wall time, TTFT and TTLT."""
import sys
import time

from google import genai
from google.genai import types

from helpers.models import FLASH


def main(argv: list[str]) -> None:
    started = time.perf_counter()
    prompt = " ".join(argv[1:])
    client = genai.Client()  # GOOGLE_GEMINI_BASE_URL and GEMINI_API_KEY come from the environment
    config = types.GenerateContentConfig(seed=0)
    sent = time.perf_counter()
    ttft = last = None
    for chunk in client.models.generate_content_stream(model=FLASH, contents=prompt, config=config):
        if chunk.text:
            if ttft is None:
                ttft = time.perf_counter() - sent
            print(chunk.text, end="", flush=True)
        last = chunk
    ttlt = time.perf_counter() - sent
    wall = time.perf_counter() - started
    tokens = last.usage_metadata.total_token_count
    print(f"\\ntokens {tokens} · wall {wall:.2f} s · TTFT {ttft:.2f} s · TTLT {ttlt:.2f} s")


if __name__ == "__main__":
    main(sys.argv)
'''
    correct_message = (
        "The script streams with flush=True, so text appears as it arrives even through a pipe; the seed makes two "
        "runs printed the same answer; and the figures agree with what the server saw. Try it in a terminal, from "
        "the repository's folder with the workbook's environment activated, offline: python -m helpers.offline "
        f'03_streaming -- python notebooks/stream_cli.py "{CLI_PROMPT}"'
    )

    def run_cli(self, path: Path, *, hold: bool = False) -> CliRun:
        """Run the script once on :data:`CLI_PROMPT` (:meth:`~helpers.checks.ScriptProblem.run`; ``hold``: hold its
        stream back after the first text until it prints) and read the figures on its last line.

        Raises:
            Incorrect: it failed, timed out, or its last line lacks a figure.
        """
        run = self.run(path, CLI_PROMPT, hold=hold)
        if run.returncode != 0:
            advice = ""
            if "NOT_FOUND" in run.stderr or "No recording" in run.stderr:
                advice = (
                    " The replay server has no recording of the request it sent: send model=FLASH, the prompt, and "
                    "config=types.GenerateContentConfig(seed=0), nothing else."
                )
            raise Incorrect(
                f"{self.script} exited with status {run.returncode}; its last error line: {run.last_error}." + advice
            )
        lines = run.stdout.rstrip().splitlines()
        if not lines:
            raise Incorrect(f"{self.script} printed nothing: stream the answer to stdout, then the figures.")
        figures, first = {}, len(lines[-1])
        for name, pattern in CLI_FIGURES.items():
            found = pattern.search(lines[-1])
            if found is None:
                raise Incorrect(
                    f"{self.script}'s last line has no {name} figure; it should read like "
                    "'tokens 143 · wall 1.21 s · TTFT 0.42 s · TTLT 1.18 s'."
                )
            figures[name] = float(found.group(1))
            first = min(first, found.start())
        text = "\n".join(lines[:-1]).strip()
        return CliRun(text, figures, run.printed_while_held, run.took_s, lines[-1][:first].strip())

    def verify_script(self, path: Path) -> None:
        """Run the script twice, then judge what it printed (see the class docstring).

        Raises:
            Incorrect: what is wrong, the likeliest cause first.
        """
        config = types.GenerateContentConfig(seed=0)
        client = genai.Client()  # kept in a variable: a client that is garbage-collected closes its connections
        reference = list(client.models.generate_content_stream(model=FLASH, contents=CLI_PROMPT, config=config))
        answer = "".join(c.text or "" for c in reference).strip()
        usage = reference[-1].usage_metadata
        if usage is None:
            raise Incorrect("the answer the check asked for carried no usage_metadata: run the check again.")
        replay = current_session().server_url is not None
        runs = []
        for i in range(2):
            if replay:
                control.reset_stats()
            run = self.run_cli(path, hold=i == 0)
            runs.append((run, stream_seen() if replay else None))
        if runs[0][0].text != runs[1][0].text:
            raise Incorrect(f"the two runs of {self.script} printed different answers: send the request with seed=0.")
        for run, seen in runs:
            self.judge(run, answer, usage)
            if seen is not None:
                self.judge_timing(run, *seen)

    def judge(self, run: CliRun, answer: str, usage: types.GenerateContentResponseUsageMetadata) -> None:
        """Judge one run's text and figures against the answer and usage the API gave for the same request."""
        f, name = run.figures, self.script
        if run.joined and answer.endswith(run.joined) and answer.startswith(run.text):
            raise Incorrect(
                f"{name} printed the figures on the same line as the end of the answer: the streamed text ends "
                "without a newline, so print one before the figures (print(f'\\n...'))."
            )
        if not run.text:
            raise Incorrect(f"{name} printed only the figures: print each chunk's text as it arrives.")
        if run.text != answer:
            if "None" in run.text:
                raise Incorrect(f"{name} printed 'None' for a chunk without text: print chunk.text only when set.")
            raise Incorrect(f"{name} printed {show(run.text)}, which is not the answer's text (and nothing else).")
        if f["tokens"] != usage.total_token_count:
            if f["tokens"] == usage.prompt_token_count:
                hint = "that is the prompt's count, which every chunk carries: use the last chunk's total."
            elif f["tokens"] == usage.candidates_token_count:
                hint = "that counts the answer only: print the total the API reports (prompt and answer)."
            else:
                hint = "print usage_metadata.total_token_count of the last chunk."
            raise Incorrect(f"{name} printed tokens {f['tokens']:g}; {hint}")
        if f["TTFT"] <= 0:
            raise Incorrect(
                f"{name} printed TTFT {f['TTFT']:g} s: start the clock before the request goes out, not when the first "
                "chunk arrives."
            )
        if f["TTFT"] > f["TTLT"] + ROUNDING_S:
            raise Incorrect(f"{name} printed a TTFT longer than its TTLT: the first token cannot come after the last.")
        if f["TTLT"] > f["wall"] + ROUNDING_S or f["wall"] > run.took_s + ROUNDING_S:
            raise Incorrect(
                f"{name} printed wall {f['wall']:g} s and TTLT {f['TTLT']:g} s; the wall-clock time is from the start "
                "of main() to the end, so it is at least the TTLT and at most the time the script ran."
            )

    def judge_timing(self, run: CliRun, kind: str | None, server: ServerView | None) -> None:
        """Judge one run's figures and output against the replay server's record of its request."""
        f, name = run.figures, self.script
        if kind != "stream" or server is None:
            raise Incorrect(f"{name} did not stream: call client.models.generate_content_stream.")
        if f["TTFT"] < server.first_byte_s - ROUNDING_S:
            raise Incorrect(
                f"{name} printed a TTFT shorter than the server took to send the first chunk: start the clock before "
                "the request goes out."
            )
        if server.chunks_s and f["TTLT"] < server.chunks_s[-1] - ROUNDING_S:
            raise Incorrect(f"{name} printed a TTLT shorter than the stream took: stop that clock after the loop ends.")
        if run.streamed is False:
            raise Incorrect(
                f"{name}'s output arrived all at once at the end, not as the answer streamed: print each piece with "
                "flush=True (output to a pipe is held back until the script ends)."
            )


PROBLEMS = q1, q2, q3, q4 = lesson(context, CollectText, TimeToFirstToken, SurviveABrokenStream, StreamingCli)
"""Every problem of the lesson, in order: for pytest and for recording the checks' requests into the cassette."""
