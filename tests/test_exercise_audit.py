"""A learner-style audit of every lesson's exercise checks (issue 25): wrong answers the lessons' own tests do not
list, each of which must be rejected, and honest rewordings, each of which must pass, through the same path
``qN.check()`` takes, against the lesson's own shipped cassette."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from helpers.checks import assert_check_failed, assert_check_passed
from helpers.exercises import (
    ex00_setup,
    ex01_sync,
    ex02_async,
    ex03_streaming,
    ex04_multimodal,
    ex05_batch,
    ex06_interactions,
    ex07_web,
    ex08_protocols,
    ex09_frameworks,
)

from .conftest import lesson_replay
from .exercising import change

WRONG, HONEST = "wrong", "honest"


def probes(module, notebook: str, speed: float, cases: dict[str, tuple[str, str]]):
    """A test class replaying ``notebook`` for its probes: each case is (q1..qN, verdict, code)."""

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def replay(cls) -> Iterator[None]:
        with lesson_replay(notebook, speed=speed):
            yield

    @pytest.mark.parametrize("name", list(cases))
    def test_probe(self, name: str) -> None:
        verdict, code = cases[name]
        problem = getattr(module, name.split(":")[0])
        if verdict == WRONG:
            assert_check_failed(problem, code)
        else:
            assert_check_passed(problem, code)

    return type(f"TestAudit{notebook[:2]}", (), {"replay": replay, "test_probe": test_probe})


m = ex00_setup
TestAudit00 = probes(
    m,
    "00_setup",
    20,
    {
        "q1: upper-cased": (WRONG, "mode = session.mode.upper()"),
        "q2: the family only": (
            WRONG,
            change(m.q2, "return response.model_version", "return response.model_version.split('-')[0]"),
        ),
        "q2: str() of it": (
            HONEST,
            change(m.q2, "return response.model_version", "return str(response.model_version)"),
        ),
        "q3: three characters at the end": (WRONG, change(m.q3, "key[-4:]", "key[-3:]")),
        "q3: a conditional expression": (
            HONEST,
            "def mask(key):\n    return key[:4] + '...' + key[-4:] if len(key) > 12 else '***'\n",
        ),
    },
)

m = ex01_sync
TestAudit01 = probes(
    m,
    "01_sync",
    20,
    {
        "q1: a lambda": (
            HONEST,
            "ask = lambda prompt: client.models.generate_content(model=MODEL, contents=prompt).text\n",
        ),
        "q1: calls the model, returns the prompt": (WRONG, change(m.q1, "return response.text", "return prompt")),
        "q1: the first part's text": (
            HONEST,
            change(m.q1, "return response.text", "return response.candidates[0].content.parts[-1].text"),
        ),
        "q2: total minus thinking": (
            WRONG,
            change(m.q2, "total_token_count", "total_token_count - response.usage_metadata.thoughts_token_count"),
        ),
        "q3: a hard-coded 404": (WRONG, change(m.q3, 'return f"error {e.code}"', 'return "error 404"')),
        "q3: ClientError and ServerError": (
            HONEST,
            change(m.q3, "except errors.APIError as e:", "except (errors.ClientError, errors.ServerError) as e:"),
        ),
        "q3: the whole exception text": (WRONG, change(m.q3, 'return f"error {e.code}"', 'return f"error {e}"')),
        "q4: ten times the tokens": (WRONG, change(m.q4, "max_output_tokens=100", "max_output_tokens=1000")),
        "q4: the instruction as a types.Content": (
            HONEST,
            change(
                m.q4,
                "system_instruction='Answer in one sentence.'",
                "system_instruction=types.Content(parts=[types.Part(text='Answer in one sentence.')])",
            ),
        ),
    },
)

m = ex02_async
TestAudit02 = probes(
    m,
    "02_async",
    120,
    {
        "q1: sorted": (
            WRONG,
            change(m.q1, "return [r.text for r in responses]", "return sorted(r.text for r in responses)"),
        ),
        "q1: the last prompt left out": (WRONG, change(m.q1, "for p in prompts)", "for p in prompts[:-1])")),
        "q1: create_task": (
            HONEST,
            change(
                m.q1,
                "client.aio.models.generate_content(model=MODEL, contents=p)",
                "asyncio.create_task(client.aio.models.generate_content(model=MODEL, contents=p))",
            ),
        ),
        "q2: the semaphore held only while making the coroutine": (
            WRONG,
            change(
                m.q2,
                "            response = await client.aio.models.generate_content(model=MODEL, contents=prompt)\n",
                "            pending = client.aio.models.generate_content(model=MODEL, contents=prompt)\n"
                "        response = await pending\n",
            ),
        ),
        "q2: a cap of 2 from a list of two workers": (
            HONEST,
            """\
async def ask_two_at_a_time(prompts):
    answers = [None] * len(prompts)
    queue = list(enumerate(prompts))

    async def worker():
        while queue:
            i, p = queue.pop(0)
            answers[i] = (await client.aio.models.generate_content(model=MODEL, contents=p)).text

    await asyncio.gather(worker(), worker())
    return answers
""",
        ),
        "q3: retryDelay read as milliseconds": (
            WRONG,
            change(m.q3, 'float(delays[0].removesuffix("s"))', 'float(delays[0].removesuffix("s")) / 1000'),
        ),
        "q3: gives up after two tries": (WRONG, change(m.q3, "attempt == 9", "attempt == 1")),
        "q3: a regex for the delay": (
            HONEST,
            change(
                m.q3,
                'float(delays[0].removesuffix("s"))',
                "float(__import__('re').match(r'[\\d.]+', delays[0]).group())",
            ),
        ),
    },
)

m = ex03_streaming
TestAudit03 = probes(
    m,
    "03_streaming",
    2,
    {
        "q1: the last chunk dropped": (WRONG, change(m.q1, "for chunk in stream)", "for chunk in list(stream)[:-1])")),
        "q1: joined with spaces": (WRONG, change(m.q1, '"".join', '" ".join')),
        "q1: a loop": (
            HONEST,
            "def collect_text(stream):\n    text = ''\n    for c in stream:\n        if c.text:\n"
            "            text += c.text\n    return text\n",
        ),
        "q2: milliseconds": (
            WRONG,
            change(m.q2, "return time.perf_counter() - start", "return (time.perf_counter() - start) * 1000"),
        ),
        "q2: time.time": (
            HONEST,
            change(m.q2, "start = time.perf_counter()", "start = time.time()").replace(
                "return time.perf_counter() - start", "return time.time() - start"
            ),
        ),
        "q3: pieces kept across attempts": (
            WRONG,
            change(
                m.q3,
                "    for attempt in range(3):\n        pieces = []\n",
                "    pieces = []\n    for attempt in range(3):\n",
            ),
        ),
        "q3: a catch-all": (
            WRONG,
            change(
                m.q3, "except (httpx2.TransportError, aiohttp.ClientError, errors.ServerError):", "except Exception:"
            ),
        ),
        "q3: one try only": (WRONG, change(m.q3, "range(3)", "range(1)")),
    },
)

m = ex04_multimodal
TestAudit04 = probes(
    m,
    "04_multimodal",
    4,
    {
        "q1: the pictures swapped": (WRONG, change(m.q1, "contents = [before, after,", "contents = [after, before,")),
        "q1: one picture": (WRONG, change(m.q1, "contents = [before, after,", "contents = [before,")),
        "q1: the question first (the lesson says last)": (
            WRONG,
            change(
                m.q1,
                "contents = [before, after, 'How many dots are in each picture?']",
                "contents = ['How many dots are in each picture?', before, after]",
            ),
        ),
        "q2: never deleted": (WRONG, change(m.q2, "    client.files.delete(name=file.name)\n", "")),
        "q2: no wait for processing": (
            WRONG,
            change(
                m.q2,
                "    while file.state == types.FileState.PROCESSING:\n        time.sleep(0.5)\n"
                "        file = client.files.get(name=file.name)\n",
                "",
            ),
        ),
        "q3: no base64": (WRONG, change(m.q3, "4 * math.ceil(size / 3)", "size")),
        "q3: 4/3 of the total": (
            HONEST,
            change(m.q3, "sum(4 * math.ceil(size / 3) for size in sizes)", "sum(sizes) * 4 / 3"),
        ),
        "q3: hard-coded 75 MB of raw bytes": (
            WRONG,
            "def send_as(sizes):\n    return 'inline' if sum(sizes) <= 75_000_000 else 'files'\n",
        ),
        "q3: base64 itself": (
            HONEST,
            "import base64\n\ndef send_as(sizes):\n"
            "    n = sum(len(base64.b64encode(bytes(s))) for s in sizes)\n"
            "    return 'inline' if n <= INLINE_LIMIT_BYTES else 'files'\n",
        ),
    },
)

m = ex05_batch
TestAudit05 = probes(
    m,
    "05_batch",
    4,
    {
        "q1: no config": (WRONG, change(m.q1, "config=CONFIG, ", "")),
        "q1: the text as the key": (WRONG, change(m.q1, 'metadata={"key": key}', 'metadata={"key": text}')),
        "q2: never capped": (WRONG, change(m.q2, "min(delay * 2, max_delay_s)", "delay * 2")),
        "q2: a fixed pause": (WRONG, change(m.q2, "min(delay * 2, max_delay_s)", "delay")),
        "q3: empty string for a failure": (WRONG, change(m.q3, "None if r.error", '"" if r.error')),
        "q3: a loop": (
            HONEST,
            "def join(job):\n    out = {}\n    for r in job.dest.inlined_responses:\n"
            "        out[r.metadata['key']] = r.response.text if not r.error else None\n    return out\n",
        ),
        "q4: half the standard cost": (
            WRONG,
            change(
                m.q4,
                "prices.cost_usd(r.usage_metadata, MODEL) - prices.cost_usd(r.usage_metadata, MODEL, batch=True)",
                "prices.cost_usd(r.usage_metadata, MODEL) / 2",
            ),
        ),
        "q4: the last response left out": (WRONG, change(m.q4, "for r in responses", "for r in responses[:-1]")),
    },
)

m = ex06_interactions
TestAudit06 = probes(
    m,
    "06_interactions",
    4,
    {
        "q1: no previous id": (
            WRONG,
            change(m.q1, "previous_interaction_id=previous_id", "previous_interaction_id=None"),
        ),
        "q1: the first id for every turn": (
            WRONG,
            change(m.q1, "previous_id = step.id", "previous_id = previous_id or step.id"),
        ),
        "q2: milliseconds": (
            WRONG,
            change(m.q2, "return time.perf_counter() - start", "return (time.perf_counter() - start) * 1000"),
        ),
        "q3: the limit ignored": (WRONG, change(m.q3, "asyncio.Semaphore(limit)", "asyncio.Semaphore(len(prompts))")),
        "q3: no pacing": (WRONG, change(m.q3, "            await limiter.acquire()\n", "")),
        "q3: time.sleep pacing": (WRONG, change(m.q3, "await limiter.acquire()", "time.sleep(1 / rate_per_s)")),
    },
)

m = ex07_web
TestAudit07 = probes(
    m,
    "07_web",
    1,
    {
        "q1: no done event": (
            WRONG,
            change(m.q1, "        yield f\"event: done\\ndata: {json.dumps({'usage_metadata': usage})}\\n\\n\"\n", ""),
        ),
        "q2: no done event": (
            WRONG,
            change(m.q2, '    yield ServerSentEvent(event="done", data={"usage_metadata": usage})\n', ""),
        ),
        "q2: a catch-all that hides the error": (
            WRONG,
            change(
                m.q2,
                "    except errors.APIError as e:\n"
                '        yield ServerSentEvent(event="error", '
                'data={"message": f"{e.code} {e.status}: {e.message}"})\n        return\n',
                "    except Exception:\n        return\n",
            ),
        ),
        "q3: milliseconds": (
            WRONG,
            change(m.q3, "return time.perf_counter() - start", "return (time.perf_counter() - start) * 1000"),
        ),
        "q3: the first event even without text": (
            WRONG,
            change(m.q3, 'if sse.event == "message" and sse.data and json.loads(sse.data)["text"]:', "if True:"),
        ),
    },
)

m = ex08_protocols
TestAudit08 = probes(
    m,
    "08_protocols",
    4,
    {
        "q1: the arguments not joined": (
            WRONG,
            change(
                m.q1,
                'call["arguments"] += part.function.arguments or ""',
                'call["arguments"] = part.function.arguments or call["arguments"]',
            ),
        ),
        "q1: only the first call kept": (
            WRONG,
            change(m.q1, "return [calls[i] for i in sorted(calls)]", "return [calls[i] for i in sorted(calls)][:1]"),
        ),
        "q2: prompt tokens": (
            WRONG,
            change(m.q2, "total = chunk.usage.total_tokens", "total = chunk.usage.prompt_tokens"),
        ),
        "q3: no retry": (WRONG, change(m.q3, "range(3)", "range(1)")),
        "q3: the whole text again after a retry": (
            WRONG,
            change(
                m.q3,
                "                if len(text) > len(sent):\n                    yield text[len(sent) :]\n"
                "                    sent = text\n",
                "                yield chunk.choices[0].delta.content or ''\n",
            ),
        ),
    },
)

m = ex09_frameworks
TestAudit09 = probes(
    m,
    "09_frameworks",
    60,
    {
        "q1: the events without text kept": (WRONG, change(m.q1, ' and event["data"]["chunk"].text:', ":")),
        "q1: the topic ignored": (WRONG, change(m.q1, '{"topic": topic}', '{"topic": "cats"}')),
        "q2: no rate limiter": (
            WRONG,
            change(
                m.q2,
                "paced = ChatGoogleGenerativeAI(**LITE, rate_limiter=limiter)",
                "paced = ChatGoogleGenerativeAI(**LITE)",
            ),
        ),
        "q2: content (a list of blocks), not text": (WRONG, change(m.q2, "answer.text for", "answer.content for")),
        "q3: sequential": (
            WRONG,
            change(m.q3, "fan_out = retell // keywords // headline", "fan_out = retell + keywords + headline"),
        ),
    },
)
