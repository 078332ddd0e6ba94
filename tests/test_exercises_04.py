"""The 04_multimodal exercises, tested both ways against the lesson's own shipped cassette.

Each exercise lists the mistakes its lesson warns about and the shortcuts a learner tries, each rejected with a
message naming it; honest variants pass (a ``types.Content``, PIL images, a limit read through an alias).
"""

from __future__ import annotations

import pytest

from helpers.checks import assert_check_failed, assert_check_passed
from helpers.exercises.ex04_multimodal import CLIP, DATA, PROBLEMS, q1, q2, q3

from .exercising import lesson_tests

# At 4x a video is PROCESSING for 0.5 s.
replay, test_reference_passes_and_starter_is_not_attempted = lesson_tests("04_multimodal", PROBLEMS, speed=4)


PART = "types.Part.from_bytes(data=(DATA / {!r}).read_bytes(), mime_type={!r})"
BEFORE, AFTER = PART.format("dots_before.png", "image/png"), PART.format("dots_after.png", "image/png")
QUESTION = "'How many dots are in each picture?'"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (f"contents = [{AFTER}, {BEFORE}, {QUESTION}]", "the images are in the wrong order"),
        (f"contents = [{QUESTION}, {BEFORE}, {AFTER}]", "the question comes before the pictures"),
        (f"contents = [(DATA / 'dots_before.png').read_bytes(), {AFTER}, {QUESTION}]", "raw bytes"),
        (f"contents = ['data/dots_before.png', 'data/dots_after.png', {QUESTION}]", "the SDK sends a string as text"),
        (
            f"contents = [DATA / 'dots_before.png', {AFTER}, {QUESTION}]",
            "the path of dots_before.png: the SDK does not open files",
        ),
        (f"contents = [{PART.format('dots_before.png', 'image/jpeg')}, {AFTER}, {QUESTION}]", "'image/jpeg'"),
        (f"contents = [{BEFORE}, {QUESTION}]", "holds 1 image(s)"),
        (f"contents = [{BEFORE}, {BEFORE}, {QUESTION}]", "dots_before.png twice"),
        (f"contents = [{BEFORE}, {AFTER}, 'Count the dots.']", "ends with 'Count the dots.'"),
        (f"contents = [{BEFORE}, {AFTER}]", "does not end with the question"),
        (f"contents = ({BEFORE}, {AFTER}, {QUESTION})", "the exercise wants a list"),
        (
            "before = {'mime_type': 'image/png', 'data': (DATA / 'dots_before.png').read_bytes()}\n"
            f"contents = [before, {AFTER}, {QUESTION}]",
            "the old google-generativeai SDK's part: google-genai 3.6 refuses it",
        ),
    ],
)
def test_q1_wrong_orders_and_parts_fail_with_their_message(code: str, expected: str) -> None:
    assert_check_failed(q1, code, expected)


PIL_IMAGE = "PIL.Image.open(DATA / {!r})"
TEXT = f"types.Part(text={QUESTION})"
HONEST_Q1 = {
    "labels between the parts": f"contents = ['Before:', {BEFORE}, 'After:', {AFTER}, {QUESTION}]",
    "PIL images": "import PIL.Image\ncontents = ["
    + f"{PIL_IMAGE.format('dots_before.png')}, {PIL_IMAGE.format('dots_after.png')}, {QUESTION}]",
    "one types.Content": f"contents = types.Content(role='user', parts=[{BEFORE}, {AFTER}, {TEXT}])",
    "a list of one types.Content": f"contents = [types.UserContent(parts=[{BEFORE}, {AFTER}, {TEXT}])]",
    "a Content as a dict": f"contents = [{{'role': 'user', 'parts': [{BEFORE}, {AFTER}, {{'text': {QUESTION}}}]}}]",
}


@pytest.mark.parametrize("name", HONEST_Q1)
def test_q1_honest_variants_pass(name: str) -> None:
    assert_check_passed(q1, HONEST_Q1[name])


def test_q1_a_content_in_the_wrong_order_is_still_judged() -> None:
    wrong = f"contents = types.Content(role='user', parts=[{AFTER}, {BEFORE}, types.Part(text={QUESTION})])"
    assert_check_failed(q1, wrong, "the images are in the wrong order")


def video(body: str) -> str:
    """A learner's ``describe_video`` with ``body`` (indented by four spaces) after the upload."""
    return (
        "from google.genai import errors\n\n"
        "def describe_video(path, question):\n"
        "    file = client.files.upload(file=path)\n" + body
    )


ASK_AND_DELETE = (
    "    response = client.models.generate_content(model=MODEL, contents=[file, question])\n"
    "    client.files.delete(name=file.name)\n"
    "    return response.text\n"
)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (video(ASK_AND_DELETE), "raised ClientError 400 FAILED_PRECONDITION: The File"),
        (video(ASK_AND_DELETE), "The video was still PROCESSING: wait until client.files.get"),
        (
            video(
                "    while True:\n"
                "        try:\n"
                "            response = client.models.generate_content(model=MODEL, contents=[file, question])\n"
                "            break\n"
                "        except errors.ClientError:\n"
                "            time.sleep(0.1)\n"
                "    client.files.delete(name=file.name)\n"
                "    return response.text\n"
            ),
            "while it was still PROCESSING (400 FAILED_PRECONDITION) before it worked",
        ),
        (video("    time.sleep(1)\n" + ASK_AND_DELETE), "never asked the API for the file's state"),
        (
            video("    while file.state == types.FileState.PROCESSING:\n        time.sleep(0.2)\n" + ASK_AND_DELETE),
            "raised StillWaitingError",
        ),
        (
            video(
                "    while file.state == types.FileState.PROCESSING:\n"
                "        time.sleep(0.1)\n"
                "        file = client.files.get(name=file.name)\n"
                "    return client.models.generate_content(model=MODEL, contents=[file, question]).text\n"
            ),
            "left files/",
        ),
        (
            video(
                "    while file.state == types.FileState.PROCESSING:\n"
                "        time.sleep(0.1)\n"
                "        file = client.files.get(name=file.name)\n"
                "    response = client.models.generate_content(model=MODEL, contents=[file, question])\n"
                "    client.files.delete(name=file.name)\n"
                "    return response\n"
            ),
            "returned a GenerateContentResponse",
        ),
    ],
)
def test_q2_using_the_video_too_early_or_never_asking_fails_with_its_message(code: str, expected: str) -> None:
    assert_check_failed(q2, code, expected)


def test_q2_checks_leave_no_file_behind_so_the_reference_still_passes() -> None:
    """Every failed attempt above deleted its upload: the clip gets the id its answer was recorded with again."""
    client = q2.context()["client"]
    assert [f.name for f in client.files.list()] == []
    q2.check_reference()


def test_q2_says_what_to_do_when_an_earlier_upload_of_the_clip_is_still_there() -> None:
    client = q2.context()["client"]
    earlier = client.files.upload(file=DATA / CLIP)
    try:
        assert_check_failed(q2, q2.solution_code, "404 NOT_FOUND", "delete any earlier upload of the clip")
    finally:
        client.files.delete(name=earlier.name)
    q2.check_reference()


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("def send_as(sizes):\n    return 'inline' if sum(sizes) <= INLINE_LIMIT_BYTES else 'files'", "a third bigger"),
        (
            "import math\ndef send_as(sizes):\n"
            "    fits = all(4 * math.ceil(s / 3) <= INLINE_LIMIT_BYTES for s in sizes)\n"
            "    return 'inline' if fits else 'files'",
            "not for each file",
        ),
        ("def send_as(sizes):\n    return 'inline' if sum(sizes) * 4 / 3 <= 20_000_000 else 'files'", "not 20 MB"),
        (
            "def send_as(sizes):\n    return sum(sizes) * 4 / 3 <= INLINE_LIMIT_BYTES",
            "the exercise wants 'inline' or 'files'",
        ),
        ("def send_as(sizes):\n    print('inline')", "did you forget `return`"),
        (  # the lesson derives the threshold from INLINE_LIMIT_BYTES and base64's 4/3: typed in, it fails another limit
            "def send_as(sizes):\n    return 'inline' if sum(sizes) <= 75_000_000 else 'files'",
            "the threshold is typed into send_as rather than worked out from INLINE_LIMIT_BYTES",
        ),
        (
            "def send_as(sizes):\n    return 'inline' if sum(sizes) * 4 / 3 <= 100_000_000 else 'files'",
            "with INLINE_LIMIT_BYTES set to 20 MB, send_as([16000000]) returned 'inline'",
        ),
        ("def send_as(sizes):\n    return 'inline' if len(sizes) < 2 else 'files'", "which is wrong"),
    ],
)
def test_q3_raw_sizes_per_file_limits_and_old_limits_fail_with_their_message(code: str, expected: str) -> None:
    assert_check_failed(q3, code, expected)


@pytest.mark.parametrize(
    "code",
    [
        "def send_as(sizes):\n    return 'inline' if sum(sizes) * 4 / 3 <= INLINE_LIMIT_BYTES else 'files'",
        "LIMIT = INLINE_LIMIT_BYTES\n\n"
        "def send_as(sizes):\n    return 'inline' if sum(sizes) * 4 / 3 <= LIMIT else 'files'",
        "def send_as(sizes):\n    encoded = sum(4 * -(-s // 3) for s in sizes)\n"
        "    return 'inline' if encoded <= INLINE_LIMIT_BYTES else 'files'",
    ],
)
def test_q3_honest_variants_pass(code: str) -> None:
    assert_check_passed(q3, code)
