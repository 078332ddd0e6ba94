"""helpers.checks and the 01_sync exercises, tested both ways against a replay server.

The cassette is authored the way the lesson's is: in record mode against the synthetic upstream, running each
problem's reference solution through its check (``check_reference``), so it holds exactly the requests the checks
make. Then every check runs in replay: the reference passes, the starter cell is "not attempted", and each typical
wrong answer fails with its own message.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import threading
import time

import pytest

import helpers
from helpers import checks
from helpers.checks import (
    Incorrect,
    Outcome,
    Problem,
    TimeLimitExceeded,
    ____,
    assert_check_failed,
    assert_check_passed,
    assert_check_unattempted,
    counting_calls,
    describe_error,
    run_bounded,
    show,
    uses_placeholder,
    watching,
    watching_sleep,
)
from helpers.exercises import ex01_sync
from helpers.exercises.ex01_sync import PROBLEMS, q1, q2, q3, q4
from helpers.models import FLASH
from helpers.paths import NOTEBOOKS_DIR
from helpers.replay.cassettes.cassette import Cassette
from helpers.replay.upstream.synthetic import Script

from .conftest import clean_workbook_env, stop_workbook_servers

SCRIPT = {
    "responses": [
        {"prompt": "Name three primary colours", "text": "Red, yellow and blue."},
        {"prompt": "Say hello in French", "text": "Bonjour !"},
    ]
}

LOW = "thinking_config=types.ThinkingConfig(thinking_level='LOW')"
"""q4's thinking level, as a learner writes it."""


@pytest.fixture(scope="module", autouse=True)
def replay(tmp_path_factory):
    """Record the checks' requests into a fresh 01_sync cassette, then replay it (20x faster) for every test."""
    root = tmp_path_factory.mktemp("workbook")
    (root / "scripts").mkdir()
    (root / "scripts" / "01_sync.json").write_text(json.dumps(SCRIPT))
    with pytest.MonkeyPatch.context() as mp:
        clean_workbook_env(mp)
        mp.setenv("WORKBOOK_CASSETTES", str(root / "cassettes"))
        mp.setenv("WORKBOOK_MODE", "record")
        mp.setenv("WORKBOOK_UPSTREAM", "synthetic")
        helpers.setup("01_sync")
        for problem in PROBLEMS:
            problem.check_reference()
        mp.setenv("WORKBOOK_MODE", "replay")
        helpers.setup("01_sync", speed=20)
        yield Cassette.load(root / "cassettes" / "01_sync.json")
        stop_workbook_servers()


def test_the_checks_requests_were_recorded(replay):
    recorded = [(e.request["path"], e.response["status"]) for e in replay.exchanges]
    assert recorded == [
        (f"models/{FLASH}:generateContent", 200),  # q1: ask(colours)
        (f"models/{FLASH}:generateContent", 200),  # q1: ask(French)
        (f"models/{FLASH}:generateContent", 200),  # q2: the responses tokens_used() is given (French, colours)
        (f"models/{FLASH}:generateContent", 200),
        ("models/gemini-0.0-nonexistent:generateContent", 404),  # q3: the missing model
        (f"models/{FLASH}:generateContent", 200),  # q3: the good call (colours, as q1's)
    ]


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.name)
def test_reference_passes_and_starter_is_not_attempted(problem):
    problem.check_reference()
    assert_check_passed(problem, problem.solution_code)
    outcome = assert_check_unattempted(problem, problem.starter)
    assert str(outcome) == (
        f"Not attempted yet: replace the ____ in `{problem.variables[0]}` with your code, "
        f"then run {problem.name}.check() again."
    )
    assert str(assert_check_unattempted(problem, "")).startswith("Not attempted yet: define ")


WRONG = [
    (
        q1,
        "def ask(prompt):\n    return client.models.generate_content(model=MODEL, contents=prompt)\n",
        ["ask('Name three primary colours.') returned a GenerateContentResponse; the exercise wants the text"],
    ),
    (
        q1,
        "def ask(prompt):\n    print(client.models.generate_content(model=MODEL, contents=prompt).text)\n",
        ["returned None", "forget `return`"],
    ),
    (
        q1,
        "def ask(prompt):\n    return clinet.models.generate_content(model=MODEL, contents=prompt).text\n",
        ["ask('Name three primary colours.') raised NameError: name 'clinet' is not defined"],
    ),
    (
        q1,
        "def ask(prompt):\n    return str(client.models.generate_content(model=MODEL, contents=prompt))\n",
        ["whole response turned into a string"],
    ),
    (
        q1,
        "def ask(prompt):\n    return 'Red, yellow and blue.'\n",
        ["never called the model, so it cannot have the model's answer"],
    ),
    (
        q1,
        "def ask(prompt):\n    return client.models.generate_content(model=MODEL, contents=prompt).text.upper()\n",
        ["returned 'RED, YELLOW AND BLUE.', which is not the text the server sent for that prompt"],
    ),
    (
        q1,
        "def ask(prompt):\n    return len(prompt)\n",
        ["returned 27; the exercise wants the text of the answer (a str)"],
    ),
    (
        q2,
        "def tokens_used(response):\n    return response.usage_metadata.candidates_token_count\n",
        ["only the output tokens"],
    ),
    (
        q2,
        "def tokens_used(response):\n    return response.usage_metadata.prompt_token_count\n",
        ["only the prompt (input) tokens"],
    ),
    (
        q2,
        "def tokens_used(response):\n    u = response.usage_metadata\n"
        "    return u.prompt_token_count + u.candidates_token_count\n",
        ["added the prompt and the answer but left out the", "thinking tokens (thoughts_token_count)"],
    ),
    (q2, "def tokens_used(response):\n    response.usage_metadata.total_token_count\n", ["returned None"]),
    (q2, "def tokens_used(response):\n    return response.usage_metadata\n", ["the whole usage_metadata"]),
    (q2, "def tokens_used(response):\n    return 1000\n", ["returned 1000, which is not the number of tokens"]),
    (q2, "def tokens_used(response):\n    return '8'\n", ["returned '8'; the exercise wants a number of tokens"]),
    (
        q2,
        "def tokens_used(response):\n    return response.usage.total\n",
        ["tokens_used(a GenerateContentResponse) raised AttributeError"],
    ),
    (
        q3,
        "def safe_ask(model, prompt):\n    return client.models.generate_content(model=model, contents=prompt).text\n",
        [
            "safe_ask('gemini-0.0-nonexistent', 'Hello') raised ClientError 404 NOT_FOUND: "
            "models/gemini-0.0-nonexistent is not found for API version v1, or is not supported for generateContent. "
            "safe_ask() let",
            "let the API's error escape: catch google.genai.errors.APIError",
        ],
    ),
    (
        q3,
        "import google\n\n"
        "def safe_ask(model, prompt):\n"
        "    try:\n"
        "        return client.models.generate_content(model=model, contents=prompt).text\n"
        "    except google.api_core.exceptions.NotFound as e:\n"
        "        return f'error {e.code}'\n",
        ["catches google.api_core.exceptions, which google-genai never raises"],
    ),
    (
        q3,
        "import types as pytypes\n"
        "exceptions = pytypes.ModuleType('google.api_core.exceptions')\n"
        "exceptions.GoogleAPICallError = type('GoogleAPICallError', (Exception,), {})\n\n"
        "def safe_ask(model, prompt):\n"
        "    try:\n"
        "        return client.models.generate_content(model=model, contents=prompt).text\n"
        "    except exceptions.GoogleAPICallError as e:\n"
        "        return f'error {e.code}'\n",
        ["raised ClientError 404", "google-genai never raises"],
    ),
    (
        q3,
        "def safe_ask(model, prompt):\n"
        "    try:\n"
        "        return client.models.generate_content(model=model, contents=prompt).text\n"
        "    except Exception:\n"
        "        return 'error'\n",
        ["returned 'error' without the HTTP status"],
    ),
    (
        q3,
        "from google.genai import errors\n\n"
        "def safe_ask(model, prompt):\n"
        "    try:\n"
        "        return client.models.generate_content(model=model, contents=prompt).text\n"
        "    except errors.APIError as e:\n"
        "        return f'error {e.status}'\n",
        ["'error NOT_FOUND': that is e.status; the exercise wants e.code"],
    ),
    (
        q3,
        "from google.genai import errors\n\n"
        "def safe_ask(model, prompt):\n"
        "    try:\n"
        "        return client.models.generate_content(model=model, contents=prompt).text\n"
        "    except errors.APIError as e:\n"
        "        print(e.code)\n",
        ["returned None: did you forget `return` in the except block?"],
    ),
    (
        q3,
        "def safe_ask(model, prompt):\n    return 'error 404'\n",
        ["safe_ask(MODEL, 'Name three primary colours.') never called the model"],
    ),
    (
        q3,
        "from google.genai import errors\n\n"
        "def safe_ask(model, prompt):\n"
        "    try:\n"
        "        return client.models.generate_content(model=model, contents=prompt)\n"
        "    except errors.APIError as e:\n"
        "        return f'error {e.code}'\n",
        ["safe_ask(MODEL, 'Name three primary colours.') returned a GenerateContentResponse"],
    ),
    (
        q3,
        "from google.genai import errors\n\n"
        "def safe_ask(model, prompt):\n"
        "    try:\n"
        "        return client.models.generate_content(model=model, contents=prompt).text\n"
        "    except errors.APIError as e:\n"
        "        return f'Error: {e.code}'\n",
        ["returned 'Error: 404'; for a model that does not exist the exercise wants 'error' and the HTTP status"],
    ),
    (
        q4,
        "config = {'seed': 7}\n",
        ["config is a dict", "types.GenerateContentConfig"],
    ),
    (q4, "config = 'seed=7'\n", ["config is 'seed=7'; build it with types.GenerateContentConfig"]),
    (
        q4,
        "config = types.GenerateContentConfig(temperature=0, seed=7, max_output_tokens=50, " + LOW + ",\n"
        "                                     system_instruction='Answer in one sentence.')\n",
        ["config sets temperature, top_p or top_k", "deprecated them for Gemini 3.6 and later"],
    ),
    (q4, "config = types.GenerateContentConfig(top_k=1, seed=7)\n", ["config sets temperature, top_p or top_k"]),
    (q4, "config = types.GenerateContentConfig(seed=7)\n", ["config has no thinking level"]),
    (
        q4,
        "config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_level='HIGH'))\n",
        ["the thinking level is HIGH; the exercise asks for LOW"],
    ),
    (
        q4,
        "config = types.GenerateContentConfig(\n"
        "    thinking_config=types.ThinkingConfig(thinking_level='LOW', thinking_budget=128))\n",
        ["sets a thinking_budget as well as a level"],
    ),
    (
        q4,
        "config = types.GenerateContentConfig(" + LOW + ")\n",
        ["config has no seed"],
    ),
    (
        q4,
        "config = types.GenerateContentConfig(" + LOW + ", seed=42)\n",
        ["config.seed is 42"],
    ),
    (
        q4,
        "config = types.GenerateContentConfig(" + LOW + ", seed=7)\n",
        ["config has no max_output_tokens"],
    ),
    (
        q4,
        "config = types.GenerateContentConfig(" + LOW + ", seed=7, max_output_tokens=500)\n",
        ["config.max_output_tokens is 500; the exercise asks for 1 to 100"],
    ),
    (
        q4,
        "config = types.GenerateContentConfig(" + LOW + ", seed=7, max_output_tokens=50)\n",
        ["config has no system_instruction"],
    ),
    (
        q4,
        "config = types.GenerateContentConfig(" + LOW + ", seed=7, max_output_tokens=50,\n"
        "                                     system_instruction='Be brief.')\n",
        ["config.system_instruction is 'Be brief.', which does not ask for one-sentence answers"],
    ),
]


@pytest.mark.parametrize(
    ("problem", "code", "expected"), WRONG, ids=[f"{p.name}-{i}" for i, (p, _, _) in enumerate(WRONG)]
)
def test_typical_wrong_answers_fail_with_their_message(problem, code, expected):
    outcome = assert_check_failed(problem, code, *expected)
    assert not re.search(r"0x[0-9a-f]{6,}|\d+\.\d+ s", str(outcome)), "messages must be deterministic"


@pytest.mark.parametrize(
    "code",
    [
        "config = types.GenerateContentConfig(thinking_config={'thinking_level': 'low'}, seed=7, max_output_tokens=1,\n"
        "    system_instruction=types.Content(parts=[types.Part(text='Answer in one sentence.')]))\n",
        "config = types.GenerateContentConfig(" + LOW + ", seed=7,\n"
        "    max_output_tokens=100,"
        "    system_instruction=[types.Part(text='Answer in one sentence.')])\n",
    ],
)
def test_other_correct_forms_of_the_config_pass(code):
    assert_check_passed(q4, code)


def test_check_reads_the_calling_cells_namespace_and_prints_one_line(capsys):
    imports = "from helpers.exercises.ex01_sync import ____, q1\n"
    q1.namespace(imports + q1.solution_code + "\nq1.check()\n")  # as a notebook cell runs it, in the kernel's globals
    assert capsys.readouterr().out == f"Correct: {q1.correct_message}\n"
    q1.namespace(imports + q1.starter + "\nq1.check()\n")
    assert capsys.readouterr().out.startswith("Not attempted yet: replace the ____ in `ask`")


def test_a_missing_setup_name_or_a_half_defined_answer_is_explained():
    outcome = q1.evaluate({"ask": lambda prompt: prompt})
    assert str(outcome) == "Incorrect: this check uses `client`, `MODEL` from the setup cells: run those first."

    class Pair(Problem):
        variables = ("a", "b")

    assert Pair("q9", dict).evaluate({"a": 1}).message == "`b` is not defined yet; run the cell that defines it."


def test_hints_solution_and_repr_print_plain_text(capsys):
    q1.hint()
    q1.hint(2)
    q1.hint(3)
    q1.solution()
    out = capsys.readouterr().out
    assert out == (
        f"Hint 1 of 2: {q1.hints[0]}\n(For another, run q1.hint(2).)\n"
        f"Hint 2 of 2: {q1.hints[1]}\n"
        "q1 has 2 hints: try q1.hint(1).\n"
        f"Solution:\n\n{q1.solution_code.strip()}\n"
    )
    assert repr(q3) == "q3: Catch the right error · q3.check() · q3.hint() · q3.solution()"

    class OneHint(Problem):
        hints = ("Look closer.",)

    OneHint("q9", dict).hint()
    assert capsys.readouterr().out == "Hint: Look closer.\n"


def test_outcomes_print_their_status():
    assert str(Outcome("correct", "")) == "Correct."
    assert str(Outcome("incorrect", "x is 1.")) == "Incorrect: x is 1."


def test_a_failing_reference_solution_is_an_assertion_error():
    class Broken(Problem):
        variables = ("answer",)
        solution_code = "answer = 41\n"

        def verify(self, ns):
            if ns["answer"] != 42:
                raise Incorrect("answer is not 42.")

    with pytest.raises(AssertionError, match="q9's reference solution fails its own check: Incorrect: answer is not"):
        Broken("q9", dict).check_reference()
    with pytest.raises(AssertionError, match="expected q9 to pass"):
        assert_check_passed(Broken("q9", dict), "answer = 41")
    with pytest.raises(AssertionError, match="to fail"):
        assert_check_failed(Broken("q9", dict), "answer = 42")
    with pytest.raises(AssertionError, match="lacks"):
        assert_check_failed(Broken("q9", dict), "answer = 1", "not 43")
    with pytest.raises(AssertionError, match="unattempted"):
        assert_check_unattempted(Broken("q9", dict), "answer = 1")


class Doubler(Problem):
    """A later lesson's kind of check: the learner's function may be async."""

    variables = ("double",)

    def verify(self, ns):
        if self.call("double", ns["double"], 21) != 42:
            raise Incorrect("double(21) is not 42.")


def test_async_answers_are_awaited_without_and_within_a_running_loop():
    ns = {"double": lambda x: asyncio.sleep(0, result=2 * x)}
    assert Doubler("q9", dict).evaluate(ns).status == "correct"

    async def in_a_notebook_cell() -> Outcome:
        return Doubler("q9", dict).evaluate(ns)

    assert asyncio.run(in_a_notebook_cell()).status == "correct"


def test_a_learners_exception_names_the_call_and_arguments():
    async def double(x):
        raise ValueError(f"cannot double {x}")

    outcome = Doubler("q9", dict).evaluate({"double": double})
    assert str(outcome) == "Incorrect: double(21) raised ValueError: cannot double 21."


def test_watching_records_calls_and_restores_the_method():
    class Models:
        def generate(self, x):
            return x + 1

    models = Models()
    with watching(models, "generate") as seen:
        assert models.generate(1) == 2
    assert [(w.args, w.result) for w in seen] == [((1,), 2)]
    assert "generate" not in vars(models) and models.generate(2) == 3
    models.generate = lambda x: 0  # an instance attribute is put back as it was
    with watching(models, "generate"), pytest.raises(RuntimeError):
        raise RuntimeError
    assert models.generate(5) == 0


def test_watching_then_can_stop_a_loop_that_never_ends():
    class Jobs:
        def get(self):
            return "done"

    def stop_after_three(seen):
        if len(seen) > 3:
            raise TimeoutError("still polling")

    jobs = Jobs()
    with watching(jobs, "get", then=stop_after_three) as seen, pytest.raises(TimeoutError):
        while jobs.get() != "DONE":  # a loop waiting for a state that never comes
            pass
    assert len(seen) == 4 and "get" not in vars(jobs)


NEVER_RETURNS = {
    "busy": "def double(x):\n    while True:\n        pass\n",
    "sleepy": "def double(x):\n    while x:\n        time.sleep(0.05)\n",
    "catches everything": "def double(x):\n    while True:\n        try:\n            time.sleep(0.05)\n"
    "        except Exception:\n            pass\n",
    "awaits forever": "async def double(x):\n    await asyncio.Event().wait()\n",
    "blocks its loop": "async def double(x):\n    while True:\n        time.sleep(0.05)\n",
}


class QuickDoubler(Doubler):
    time_limit_s = 1.0

    def explain_timeout(self, fn):
        return "Does your loop ever end?"


@pytest.mark.parametrize("kind", NEVER_RETURNS)
def test_a_learners_function_that_never_returns_is_stopped_at_the_limit_and_the_next_check_runs(kind):
    problem = QuickDoubler("q9", lambda: {"time": time, "asyncio": asyncio})
    before = {t.ident for t in threading.enumerate()}
    started = time.monotonic()
    outcome = problem.evaluate(problem.namespace(NEVER_RETURNS[kind]))
    waited = time.monotonic() - started
    assert outcome.status == "incorrect" and waited >= 1.0
    # One message: the call, the stated limit, where the learner's code was (its line, quoted), the likely mistake.
    assert outcome.message.startswith("double(21) had not returned after 1 s, so the check stopped it. It was at line ")
    assert " of double(): " in outcome.message and outcome.message.endswith("Does your loop ever end?")
    line = int(outcome.message.split("It was at line ")[1].split()[0])
    assert f"`{NEVER_RETURNS[kind].splitlines()[line - 1].strip()}`." in outcome.message
    # The learner's code is stopped (not left running behind the kernel's back), and the next check works.
    for _ in range(100):
        if {t.ident for t in threading.enumerate()} <= before:
            break
        time.sleep(0.05)
    assert {t.ident for t in threading.enumerate()} <= before, "the stopped function's thread is still running"
    assert problem.evaluate(problem.namespace("def double(x):\n    return 2 * x\n")).status == "correct"


def test_run_bounded_returns_raises_and_nudges_as_the_function_does():
    assert run_bounded(lambda x: 2 * x, 21, limit_s=5) == 42
    with pytest.raises(ZeroDivisionError):
        run_bounded(lambda: 1 / 0, limit_s=5)
    nudged = threading.Event()
    # The function waits for the nudge, which comes after 0.2 s (it would wait in vain without it).
    assert run_bounded(lambda: nudged.wait(10), limit_s=10, nudge=(0.2, nudged.set)) is True
    with pytest.raises(TimeLimitExceeded, match=r"did not return within 0\.2 s") as caught:
        run_bounded(lambda: threading.Event().wait(0.6), limit_s=0.2)
    assert caught.value.where.endswith("of <lambda>(): `run_bounded(lambda: threading.Event().wait(0.6), limit_s=0.2)`")
    with pytest.raises(TimeLimitExceeded) as caught:
        run_bounded(threading.Event().wait, 0.6, limit_s=0.2)
    assert caught.value.where == ""  # only library code was running: no learner's line to show


def test_counting_calls_counts_async_calls_in_progress_at_once():
    class Models:
        async def generate(self, x):
            await asyncio.sleep(0)
            return x

    models = Models()

    async def two_at_once():
        return await asyncio.gather(models.generate(1), models.generate(2))

    with counting_calls(models, "generate") as counted:
        assert asyncio.run(two_at_once()) == [1, 2]
        assert asyncio.run(models.generate(3)) == 3
    assert (counted.calls, counted.peak, counted.now) == (3, 2, 0) and "generate" not in vars(models)


def test_watching_sleep_records_what_was_asked_for_also_through_an_alias():
    ns = {"time": time}
    exec("from time import sleep as nap\ndef naps():\n    nap(0.01)\n    time.sleep(0.02)\n    return 3\n", ns)
    with watching_sleep(ns["naps"]) as slept:
        assert run_bounded(ns["naps"], limit_s=5) == 3
        time.sleep(0)  # this thread's own sleeps are not the learner's
        kernel = threading.Thread(target=time.sleep, args=(0.03,))  # nor another thread's (a kernel's, the SDK's)
        kernel.start()
        kernel.join()
    assert [s.seconds for s in slept] == [0.01, 0.02]
    assert ns["nap"] is time.sleep and time.sleep.__module__ == "time", "both names are restored"


def test_placeholders_and_messages_helpers():
    assert uses_placeholder(____) and repr(____) == "____"

    def blank():
        return [____ for _ in range(2)]

    assert uses_placeholder(blank) and not uses_placeholder(lambda: 1) and not uses_placeholder(3)
    assert show("x" * 100).endswith("...'") and len(show("x" * 100)) == 60
    assert show(object()) == "a object" and show(None) == "None"
    assert describe_error(ValueError("a\n  b.")) == "ValueError: a b"
    assert show("it's " * 20).endswith('..."'), "a cut string closes with the quote it opened"
    bound = RuntimeError("<asyncio.locks.Semaphore object at 0x7f3a2c1d9e50 [unlocked]> is bound to a different loop")
    assert (
        describe_error(bound)
        == "RuntimeError: <asyncio.locks.Semaphore object [unlocked]> is bound to a different loop"
    )
    cell: dict = {"asyncio": asyncio}
    exec("semaphore = asyncio.Semaphore(2)\n\ndef f():\n    return [semaphore for _ in range(2)], len\n", cell)
    assert list(checks.global_values(cell["f"])) == ["semaphore"]  # globals of the cell, nested code included
    assert len(describe_error(ValueError("x" * 500))) == 200
    refused = ConnectionError("Cannot connect to host 127.0.0.1:41567 ssl:default [Connect call failed]")
    assert (
        describe_error(refused)
        == "ConnectionError: Cannot connect to host 127.0.0.1:PORT ssl:default [Connect call failed]"
    )
    assert show("http://localhost:8123/stream") == "'http://localhost:PORT/stream'", "a random port never shows"


def test_checks_need_the_setup_cell(monkeypatch):
    monkeypatch.setattr(helpers.workbook, "_current", None)
    with pytest.raises(helpers.WorkbookError, match="setup"):
        ex01_sync.context()


def test_the_lessons_script_answers_every_prompt_the_checks_send():
    script = Script.load(NOTEBOOKS_DIR / "scripts" / "01_sync.json")
    for prompt in (ex01_sync.COLOURS_PROMPT, ex01_sync.FRENCH_PROMPT):
        assert script.find(FLASH, prompt) is not None, f"notebooks/scripts/01_sync.json has no answer to {prompt!r}"


def test_the_notebook_import_line_works():
    namespace: dict = {}
    exec("from helpers.exercises.ex01_sync import ____, q1, q2, q3, q4", namespace)
    assert namespace["____"] is checks.____ and namespace["q4"] is q4
    assert "helpers.checks" in sys.modules
