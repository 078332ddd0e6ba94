"""Whether a learner's ``async def`` code lets its event loop run while it waits: a blocking call inside it (a sync
``httpx.Client``, ``requests``, ``time.sleep``) stalls every other task on the loop, and may still give the right
answer, so a check has to look for it. Judged by causality, never by a clock. Introduced in ``07_web``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

from .. import control
from .record import MODEL_CALL, StreamHold, holding_stream

POLL_S = 0.02
"""How often the probe asks the server whether it holds the learner's stream, seconds (a control call each time)."""
BLOCKING_LOOP = (
    "{name} blocked its event loop while it waited for the answer: a sync call inside `async def` (httpx.Client, "
    "requests, time.sleep) stops every other task on the loop until it returns. Use the async client (`async with "
    "httpx.AsyncClient()`, `httpx_sse.aconnect_sse`) and `await` what you wait for."
)
"""What a check says when :attr:`LoopProbe.turned` is false, ``{name}`` filled in."""


def _holds_a_model_call() -> bool:
    """Whether the server has a model call of the cassette in flight (so the held stream has reached it)."""
    return any(MODEL_CALL.search(r.path) and r.end_s is None for r in control.stats().requests)


@dataclass
class LoopProbe:
    """The probe of :func:`probing_the_loop`.

    Attributes:
        hold: the hold of the learner's stream (active in replay only: record mode relays streams unheld; live has no
            server).
        turned: whether the learner's event loop ran the probe while the learner's code waited for the held stream.
    """

    hold: StreamHold
    turned: bool = False

    @property
    def active(self) -> bool:
        """Whether the stream is held, so the probe can see anything."""
        return self.hold.active

    @property
    def nudge(self) -> tuple[float, Callable[[], None]] | None:
        """For :func:`~helpers.checks.run_bounded`: let the stream go on from the check's own thread after
        :data:`~helpers.checks.HOLD_S`, when the learner's loop never ran the probe that would have."""
        return self.hold.nudge

    def wrap(self, fn: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Coroutine[Any, Any, Any]]:
        """``fn``, an ``async def`` function, run beside the probe task on the same event loop."""

        async def probed(*args: Any) -> Any:
            task = asyncio.ensure_future(self._release_when_held()) if self.active else None
            try:
                return await fn(*args)
            finally:
                if task is not None:
                    task.cancel()

        return probed

    async def _release_when_held(self) -> None:
        while not await asyncio.to_thread(_holds_a_model_call):
            await asyncio.sleep(POLL_S)
        self.turned = not self.hold.released  # not after the check's nudge: the loop ran only once it was let go
        await asyncio.to_thread(self.hold.release)


@contextlib.contextmanager
def probing_the_loop() -> Iterator[LoopProbe]:
    """Hold the cassette's next replayed stream back before its first text for the block
    (:func:`~helpers.checks.holding_stream`); the learner's coroutine, wrapped by :meth:`LoopProbe.wrap`, runs beside
    a probe task that lets the stream go on once the server has it.

    Code that waits with ``await`` lets the probe run, so its stream goes on at once and :attr:`LoopProbe.turned` is
    true. Code that blocks the loop while it waits keeps the probe from running: nothing lets its stream go on until
    :attr:`LoopProbe.nudge` does, from the check's thread, and ``turned`` stays false. Causality, not a clock: no
    machine is so busy that a blocked loop runs a task.

    Yields:
        The :class:`LoopProbe`.
    """
    with holding_stream(after_text_chunks=0) as hold:
        yield LoopProbe(hold)
