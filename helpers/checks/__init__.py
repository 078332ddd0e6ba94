"""Exercise checks in the style of Kaggle's learntools: ``q1.check()``, ``q1.hint()``, ``q1.solution()``.

A lesson's exercises live in ``helpers/exercises/exNN_name.py``, mostly as data over a kind of exercise
(:mod:`.families`: :class:`EqualityCheckProblem`, :class:`FunctionProblem`, :class:`ScriptProblem`), or as a
:class:`Problem` subclass whose :meth:`Problem.verify` raises :class:`Incorrect` with one friendly message naming what
is wrong (never the answer). The learner's starter code uses the placeholder :data:`____`; while it is there the
check says "not attempted".

Checks read the learner's names from the namespace of the cell that calls ``check()`` (in a notebook, the kernel's
user namespace), call the learner's functions against the current session's server (see :func:`helpers.setup`), and
judge what comes back against the replay server's own record of the exchange (:mod:`.record`, ``helpers.control``),
never the client's clock. Output is plain text with no addresses or timings, so nbval compares it. A learner's
function runs under a time limit (:func:`run_bounded`): one that never returns is stopped, and the check says where
it was, so a check never hangs the kernel. Introduced in ``01_sync``.

The package, by concern:

- :mod:`.outcomes`: the blank ``____``, :class:`Incorrect`, :class:`Outcome`, message formatting.
- :mod:`.code`: reading a learner's code without running it.
- :mod:`.bounded`: time limits (:func:`run_bounded`).
- :mod:`.watching`: the SDK calls, calls in progress and sleeps a learner's code makes.
- :mod:`.record`: the replay server's record of the learner's requests; holding a stream back; never judging an
  improvised stand-in (:func:`recordings_only`, :func:`improvised`).
- :mod:`.loop`: whether ``async def`` code lets its event loop run while it waits (a blocking call inside it).
- :mod:`.expect`: the checks every lesson shares ("returned None", types, ``async def``, text, TTFT).
- :mod:`.problem`: :class:`Problem`, :func:`lesson`, :func:`lesson_context`, the ``assert_check_*`` helpers.
- :mod:`.families`: the kinds of exercise.
"""

from __future__ import annotations

from .bounded import (
    LEARNER_THREAD,
    LIVE_TIME_LIMIT_S,
    STOP_GRACE_S,
    TIME_LIMIT_S,
    StoppedByCheck,
    TimeLimitExceeded,
    describe_frames,
    run_bounded,
    run_coroutine,
)
from .code import (
    code_names,
    code_strings,
    function_names,
    function_of,
    global_values,
    reads_argument,
    uses_placeholder,
)
from .expect import (
    expect_answer,
    expect_async,
    expect_returned,
    expect_seconds,
    expect_text,
    expect_text_shape,
    expect_ttft,
)
from .families import Case, EqualityCheckProblem, FunctionProblem, Mistake, ScriptProblem, ScriptRun, name_mistake
from .loop import BLOCKING_LOOP, LoopProbe, probing_the_loop
from .outcomes import (
    ADDRESS,
    LOCAL_PORT,
    PLACEHOLDER_NAME,
    Incorrect,
    Outcome,
    Placeholder,
    ____,
    describe_error,
    show,
    steady,
)
from .problem import (
    Problem,
    assert_check_failed,
    assert_check_passed,
    assert_check_unattempted,
    lesson,
    lesson_context,
)
from .record import (
    CLOSE_WAIT_S,
    HOLD_S,
    MODEL_CALL,
    Record,
    ServerView,
    StreamHold,
    call_kind,
    holding_stream,
    improvised,
    model_calls,
    recording,
    recordings_only,
    stream_ended,
    stream_seen,
)
from .watching import (
    BLOCKING_SLEEP,
    InFlight,
    Slept,
    Watched,
    counting_calls,
    forbidding_sleep,
    watching,
    watching_sleep,
)

__all__ = [
    "ADDRESS",
    "BLOCKING_LOOP",
    "BLOCKING_SLEEP",
    "CLOSE_WAIT_S",
    "HOLD_S",
    "LEARNER_THREAD",
    "LIVE_TIME_LIMIT_S",
    "LOCAL_PORT",
    "MODEL_CALL",
    "PLACEHOLDER_NAME",
    "STOP_GRACE_S",
    "TIME_LIMIT_S",
    "Case",
    "EqualityCheckProblem",
    "FunctionProblem",
    "InFlight",
    "Incorrect",
    "LoopProbe",
    "Mistake",
    "Outcome",
    "Placeholder",
    "Problem",
    "Record",
    "ScriptProblem",
    "ScriptRun",
    "ServerView",
    "Slept",
    "StoppedByCheck",
    "StreamHold",
    "TimeLimitExceeded",
    "Watched",
    "____",
    "assert_check_failed",
    "assert_check_passed",
    "assert_check_unattempted",
    "call_kind",
    "code_names",
    "code_strings",
    "counting_calls",
    "describe_error",
    "describe_frames",
    "expect_answer",
    "expect_async",
    "expect_returned",
    "expect_seconds",
    "expect_text",
    "expect_text_shape",
    "expect_ttft",
    "forbidding_sleep",
    "function_names",
    "function_of",
    "global_values",
    "holding_stream",
    "improvised",
    "lesson",
    "lesson_context",
    "model_calls",
    "name_mistake",
    "probing_the_loop",
    "reads_argument",
    "recording",
    "recordings_only",
    "run_bounded",
    "run_coroutine",
    "show",
    "steady",
    "stream_ended",
    "stream_seen",
    "uses_placeholder",
    "watching",
    "watching_sleep",
]
