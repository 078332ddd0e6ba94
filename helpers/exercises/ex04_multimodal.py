"""The checked exercises of ``04_multimodal``: order two images and a question, wait for a video, inline or upload.

The notebook imports them with ``from helpers.exercises.ex04_multimodal import ____, q1, q2, q3``; its setup cell
defines ``client``, ``MODEL``, ``DATA`` (the sample media folder), ``INLINE_LIMIT_BYTES``, ``types``, ``time`` and
``Path``, which the checks use. The question of q2 is the one the lesson's synthetic script answers for the clip
(``notebooks/scripts/04_multimodal.json``), asked exactly as the lesson asks it, so the check's request is recorded.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import PIL.Image
from google import genai
from google.genai import errors, types

from .. import control
from ..checks import (
    Incorrect,
    Problem,
    Slept,
    ____,
    expect_returned,
    expect_text,
    function_of,
    lesson,
    lesson_context,
    show,
    watching,
    watching_sleep,
)
from ..media import INLINE_LIMIT_BYTES
from ..paths import NOTEBOOKS_DIR
from ..replay.services.files_api import PROCESSING_S
from ..workbook import current_session

DATA = NOTEBOOKS_DIR / "data"
"""The lesson's sample media (``notebooks/data``); the notebook's ``DATA`` is the same folder, relative."""
BEFORE, AFTER = "dots_before.png", "dots_after.png"
DOTS_QUESTION = "How many dots are in each picture?"
"""q1's question (q1 builds a request without sending it)."""
CLIP = "clip.mp4"
CLIP_PROMPT = "Describe what happens in this clip."
"""q2's question: the lesson's own, so its answer is in the cassette whichever of the clip's ids the upload gets."""

__all__ = ["PROBLEMS", "____", "context", "q1", "q2", "q3"]


context = lesson_context(DATA=DATA, INLINE_LIMIT_BYTES=INLINE_LIMIT_BYTES, types=types, time=time, Path=Path)
"""What ``04_multimodal``'s setup cell leaves in the notebook: ``client``, ``MODEL``, ``DATA``,
``INLINE_LIMIT_BYTES``, ``types``, ``time``, ``Path``, ``genai`` and ``____``."""


def _image(item: Any) -> tuple[str, bytes] | None:
    """``(mime_type, bytes)`` of an inline image item (a ``Part`` or its dict), ``("PIL", pixels)`` for a PIL image
    (the SDK re-encodes those), or ``None`` when ``item`` is not an image."""
    if isinstance(item, PIL.Image.Image):
        return "PIL", item.convert("RGB").tobytes()
    if isinstance(item, dict):
        try:
            item = types.Part.model_validate(item)
        except ValueError:
            return None
    if isinstance(item, types.Part) and item.inline_data is not None:
        blob = item.inline_data
        data = blob.data if isinstance(blob.data, bytes) else base64.b64decode(blob.data or "")
        return blob.mime_type or "", data
    return None


def _parts_of(contents: Any) -> list[Any] | None:
    """The parts a ``contents`` value sends, in order: a list's items, with each ``types.Content`` (or its dict) in it
    opened into its parts; a lone ``types.Content``'s parts. ``None`` for anything else (a tuple, a string)."""
    if isinstance(contents, (types.Content, dict)):
        contents = [contents]
    if not isinstance(contents, list):
        return None
    parts: list[Any] = []
    for item in contents:
        if isinstance(item, dict) and "parts" in item:
            try:
                item = types.Content.model_validate(item)
            except ValueError:
                return None
        parts.extend(item.parts or [] if isinstance(item, types.Content) else [item])
    return parts


def _text(item: Any) -> str | None:
    """The text of a text item (a ``str``, or a ``Part`` with ``text``), else ``None``."""
    if isinstance(item, str):
        return item
    if isinstance(item, types.Part) and item.text is not None:
        return item.text
    return None


class TwoImagesThenTheQuestion(Problem):
    """q1: ``contents`` holds ``dots_before.png``, then ``dots_after.png``, then :data:`DOTS_QUESTION`."""

    title = "Two images, then the question"
    variables = ("contents",)
    needs = ("DATA",)
    hints = (
        "types.Part.from_bytes(data=..., mime_type=...) wraps a file's bytes; (DATA / name).read_bytes() reads them.",
        "The model reads the parts in the order of the list, so the first picture you mean must come first.",
    )
    starter = f"""\
before = ____  # a Part holding the bytes of DATA / {BEFORE!r}
after = ____  # the same for DATA / {AFTER!r}
contents = ____  # a list: the two pictures, then the question
"""
    solution_code = f"""\
before = types.Part.from_bytes(data=(DATA / {BEFORE!r}).read_bytes(), mime_type="image/png")
after = types.Part.from_bytes(data=(DATA / {AFTER!r}).read_bytes(), mime_type="image/png")
contents = [before, after, {DOTS_QUESTION!r}]
"""
    correct_message = (
        "The SDK turns the list into one user turn whose parts keep your order: the model sees the before picture, "
        "then the after picture, then your question about both."
    )

    def verify(self, ns: Mapping[str, Any]) -> None:
        contents = _parts_of(ns["contents"])
        if contents is None:
            raise Incorrect(f"contents is {show(ns['contents'])}; the exercise wants a list of the request's parts.")
        for item in contents:
            if isinstance(item, (bytes, bytearray)):
                raise Incorrect(
                    "contents holds raw bytes; wrap them in types.Part.from_bytes(data=..., mime_type=...) so the "
                    "SDK knows what they are."
                )
            if isinstance(item, dict) and {"mime_type", "data"} <= item.keys():
                raise Incorrect(
                    "contents holds a dict {'mime_type': ..., 'data': ...}, the old google-generativeai SDK's part: "
                    "google-genai 3.6 refuses it (a pydantic ValidationError, 'Extra inputs are not permitted'). "
                    "Use types.Part.from_bytes(data=..., mime_type=...)."
                )
            if isinstance(item, Path):
                raise Incorrect(f"contents holds the path of {item.name}: the SDK does not open files. Send its bytes.")
            if isinstance(item, str) and item.strip().endswith(".png"):
                raise Incorrect(
                    f"contents holds the file name {item!r}: the SDK sends a string as text and does not open files. "
                    "Send the image's bytes."
                )
        images = [_image(item) for item in contents]
        wanted = {name: (ns["DATA"] / name).read_bytes() for name in (BEFORE, AFTER)}
        pixels = {name: PIL.Image.open(ns["DATA"] / name).convert("RGB").tobytes() for name in wanted}
        found = [image for image in images if image is not None]
        # Which picture each image is (its file's bytes, or a PIL image's pixels), or None.
        names = [next((n for n in wanted if image[1] in (wanted[n], pixels[n])), None) for image in found]
        if len(found) != 2:
            raise Incorrect(f"contents holds {len(found)} image(s); the exercise wants the two pictures.")
        if None in names:
            raise Incorrect(f"contents holds an image that is neither {BEFORE} nor {AFTER}.")
        for mime_type, _ in found:
            if mime_type not in ("image/png", "PIL"):
                raise Incorrect(f"an image is labelled {mime_type!r}; the pictures are PNGs: 'image/png'.")
        if names == [AFTER, BEFORE]:
            raise Incorrect(
                f"the images are in the wrong order: the model reads parts in order, so {BEFORE} must come first."
            )
        if names != [BEFORE, AFTER]:
            raise Incorrect(f"contents holds {names[0]} twice; it needs {BEFORE}, then {AFTER}.")
        last = _text(contents[-1])
        if last is None:
            first_text = next((t for t in map(_text, contents) if t is not None), None)
            if first_text is not None and first_text.strip() == DOTS_QUESTION:
                raise Incorrect(
                    "the question comes before the pictures; put it last, after both images (Google's advice for "
                    "prompts with images)."
                )
            raise Incorrect(f"contents does not end with the question {DOTS_QUESTION!r}.")
        if last.strip() != DOTS_QUESTION:
            raise Incorrect(f"contents ends with {show(last)}; the exercise's question is {DOTS_QUESTION!r}.")


SNAPSHOT_ADVICE = "A File is a snapshot: ask client.files.get(name=file.name) for its state each time round."


class StillWaitingError(Exception):
    """Raised into a learner's loop that has slept long after the file must have become ``ACTIVE`` without asking
    the API for its state: the state it checks can never change."""


class WaitUntilActive(Problem):
    """q2: ``describe_video(path, question)`` uploads, polls ``files.get`` until ``ACTIVE``, asks, deletes."""

    title = "Wait until the video is ACTIVE"
    variables = ("describe_video",)
    needs = ("client", "MODEL", "DATA")
    hints = (
        "A File object is a snapshot: its .state never changes by itself. Ask again with "
        "client.files.get(name=file.name) each time round the loop.",
        "Loop while the state is types.FileState.PROCESSING, sleeping a moment between two questions.",
    )
    starter = """\
def describe_video(path: Path, question: str) -> str:
    file = client.files.upload(file=path)
    while ____:  # still processing?
        time.sleep(0.5)
        file = ____  # the file as it is now
    response = client.models.generate_content(model=MODEL, contents=[file, question])
    client.files.delete(name=file.name)
    return response.text
"""
    solution_code = """\
def describe_video(path: Path, question: str) -> str:
    file = client.files.upload(file=path)
    while file.state == types.FileState.PROCESSING:
        time.sleep(0.5)
        file = client.files.get(name=file.name)
    if file.state != types.FileState.ACTIVE:
        raise RuntimeError(f"{file.name} is {file.state.name}: {file.error}")
    response = client.models.generate_content(model=MODEL, contents=[file, question])
    client.files.delete(name=file.name)
    return response.text
"""
    correct_message = (
        "describe_video() uses the video only once the API reports it ACTIVE, and deletes it when done. Real videos "
        "can take minutes to process: poll every few seconds, with a timeout."
    )

    def explain_timeout(self, fn: Any) -> str:
        return SNAPSHOT_ADVICE

    def explain(self, error: Exception, fn: Any) -> str:
        if isinstance(error, errors.APIError) and error.status == "FAILED_PRECONDITION":
            return "The video was still PROCESSING: wait until client.files.get(name=...) reports it ACTIVE."
        if isinstance(error, StillWaitingError):
            return SNAPSHOT_ADVICE
        if isinstance(error, errors.APIError) and error.code == 404:
            return (
                "Replay only answers the requests it recorded: send the file, then the question, and delete any "
                "earlier upload of the clip still on the server (the lesson's 'Delete what you uploaded' cell), so "
                "this upload gets the id the answer was recorded with."
            )
        return ""

    def verify(self, ns: Mapping[str, Any]) -> None:
        client, path = ns["client"], ns["DATA"] / CLIP
        replaying = current_session().server_url is not None
        if replaying:
            control.reset_stats()
        # Judged by the sleep the learner's code asks for, not by a clock: a busy machine changes neither.
        patience_s = max(3.0, 5 * PROCESSING_S / current_session().speed)
        fn = ns["describe_video"]

        with (
            watching(client.files, "upload") as uploads,
            watching(client.files, "get") as polls,
            watching(client.models, "generate_content") as answers,
        ):

            def stuck(slept: list[Slept]) -> None:
                if not polls and sum(s.seconds for s in slept) > patience_s:
                    raise StillWaitingError(f"still waiting after {patience_s:.0f} s of sleep")

            try:
                with watching_sleep(fn, then=stuck):
                    result = self.call("describe_video", fn, path, CLIP_PROMPT)
            finally:
                left = _delete_leftovers(client, [u.result for u in uploads])
        call = f"describe_video(DATA / {CLIP!r}, {CLIP_PROMPT!r})"
        rejected = control.stats().rejected.get(400, 0) if replaying else 0
        if rejected:
            raise Incorrect(
                f"{call} used the video {rejected} time(s) while it was still PROCESSING (400 FAILED_PRECONDITION) "
                "before it worked. Ask client.files.get for its state instead of retrying the call."
            )
        if not polls:
            raise Incorrect(
                f"{call} never asked the API for the file's state (client.files.get): a fixed sleep works only while "
                "processing is quick."
            )
        expect_text(call, result, answers)
        if left:
            raise Incorrect(
                f"{call} left {', '.join(left)} on the server: delete a file you no longer need (uploads count "
                "against your project's storage until they expire)."
            )


def _delete_leftovers(client: genai.Client, files: list[types.File]) -> list[str]:
    """Delete the ``files`` that still exist (so a check leaves the server as it found it); return their names."""
    left = []
    for name in [f.name for f in files if f.name is not None]:
        try:
            client.files.get(name=name)
        except errors.ClientError:
            continue  # deleted, as it should be
        client.files.delete(name=name)
        left.append(name)
    return left


class InlineOrUpload(Problem):
    """q3: ``send_as(sizes)`` is ``"inline"`` if the base64 of the files fits the inline limit, else ``"files"``."""

    title = "Inline or the Files API?"
    variables = ("send_as",)
    needs = ("INLINE_LIMIT_BYTES",)
    hints = (
        "Inline bytes travel as base64 text inside the request: every 3 bytes become 4 characters.",
        "Add up what all the files weigh once encoded, and compare that total with INLINE_LIMIT_BYTES.",
    )
    starter = """\
def send_as(sizes: list[int]) -> str:
    ____  # "inline" or "files"
"""
    solution_code = """\
import math


def send_as(sizes: list[int]) -> str:
    encoded = sum(4 * math.ceil(size / 3) for size in sizes)
    return "inline" if encoded <= INLINE_LIMIT_BYTES else "files"
"""
    correct_message = (
        "send_as() compares the base64-encoded total with the limit. Size is not the only reason to upload: a file "
        "you send in many requests (or in a chat, whose history resends it every turn) is cheaper to upload once."
    )

    def verify(self, ns: Mapping[str, Any]) -> None:
        fn, limit = ns["send_as"], ns["INLINE_LIMIT_BYTES"]
        for sizes, what, advice in CASES:
            self.judge(fn, sizes, limit, f"send_as({sizes}) returned {{}} for {what}, which is wrong. {advice}")
        # The same function with another limit: every global holding the limit is set to OTHER_LIMIT for a moment.
        function = function_of(fn)
        aliases = [n for n, v in (function.__globals__.items() if function else []) if v == limit and type(v) is int]
        if function is None or not aliases:
            return
        namespace = function.__globals__
        try:
            for name in aliases:
                namespace[name] = OTHER_LIMIT
            for sizes in OTHER_CASES:
                self.judge(fn, sizes, OTHER_LIMIT, HARD_CODED.format(sizes=sizes))
        finally:
            for name in aliases:
                namespace[name] = limit

    def judge(self, fn: Callable[..., Any], sizes: list[int], limit: int, wrong: str) -> None:
        """Call ``send_as(sizes)`` and compare with the answer for ``limit``; ``wrong`` (with ``{}`` for the result)
        is the message when it differs."""
        result = self.call("send_as", fn, sizes)
        expect_returned(f"send_as({sizes})", result, str, "'inline' or 'files'")
        if result not in ("inline", "files"):
            raise Incorrect(f"send_as({sizes}) returned {show(result)}; return 'inline' or 'files'.")
        encoded = sum(4 * math.ceil(size / 3) for size in sizes)
        if result != ("inline" if encoded <= limit else "files"):
            raise Incorrect(wrong.format(repr(result)).rstrip())


MB = 1000**2
CASES: tuple[tuple[list[int], str, str], ...] = (
    ([1_000], "a 1 KB image", ""),
    ([30 * MB], "a 30 MB file", "The limit is INLINE_LIMIT_BYTES (100 MB since January 2026), not 20 MB."),
    ([80 * MB], "an 80 MB file", "The limit counts the request's bytes: base64 makes a file a third bigger."),
    ([40 * MB, 40 * MB], "two 40 MB files", "The limit is for the whole request, not for each file."),
    ([], "no files", ""),
)
"""Exercise 3's cases under the notebook's limit: ``(sizes, what they are, advice when wrong)``."""
OTHER_LIMIT = 20 * MB
"""Exercise 3 runs again as if ``INLINE_LIMIT_BYTES`` were this (its value before January 2026)."""
OTHER_CASES = ([16 * MB], [14 * MB], [12 * MB, 4 * MB])
"""Under :data:`OTHER_LIMIT`: 16 MB encodes to over 21 MB (files), 14 MB to under 19 MB (inline)."""
HARD_CODED = (
    "with INLINE_LIMIT_BYTES set to 20 MB, send_as({sizes}) returned {{}}: the threshold is typed into send_as "
    "rather than worked out from INLINE_LIMIT_BYTES and base64's 4/3 (the limit changed in January 2026, and may "
    "again)."
)


PROBLEMS = q1, q2, q3 = lesson(context, TwoImagesThenTheQuestion, WaitUntilActive, InlineOrUpload)
"""Every problem of the lesson, in order: for pytest and for recording the checks' requests into the cassette."""
