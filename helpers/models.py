"""The models the workbook teaches, with their dates, thinking levels and latency profiles: the one place that names a
model.

Every notebook takes its model id from here (``MODEL = helpers.FLASH``), so a model retirement is a change to this
file plus a re-record. Introduced in ``00_setup``; :func:`retired` is the tripwire a test runs in CI.

How these were read (2026-12-01): Google's pages through stored copies (no live web where this was written), each
figure with its page below. Where page versions or third parties disagree, the newest official page wins, and the
disagreement is said where the figure is:

- **Why 3.8 Flash and not Gemini 4 Hydrogen.** Google's models and what's-new pages (September-October 2026 versions)
  call ``gemini-3.8-flash`` the newest Flash. Google Cloud's Gemini 4 Hydrogen guide (read 2026-12-01) presents
  ``gemini-4-hydrogen`` (released 2026-11-12) as the migration target from 3.8 Flash, but as a "short-term GA" release
  with as little as 45 days' deprecation notice, no explicit context caching, and twice 3.8 Flash's introductory
  price. A workbook wants the stable id with no shutdown announced: 3.8 Flash.
- **gemini-2.5-flash** (every lesson's model until this round): the deprecations page's versions say "Earliest June
  2026", then "June 17, 2026"; third parties quote a November 2026 version with December 1, 2026 and automatic routing
  to ``gemini-3.5-flash-lite`` (dev.to/aideprecations, read 2026-11-10); proxies report 503s since November. Retired
  either way (:data:`RETIRED`).
- **Latency**: no published TTFT or tokens/s measurement exists yet for 3.8 Flash or 3.5 Flash-Lite (no Artificial
  Analysis page was found). The profiles below are modelled on their predecessors' published figures and say so.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

READ = dt.date(2026, 12, 1)
"""When every figure in this module was read."""

MODELS_PAGE = "https://ai.google.dev/gemini-api/docs/models"
DEPRECATIONS_PAGE = "https://ai.google.dev/gemini-api/docs/deprecations"

FLASH = "gemini-3.8-flash"
"""The workbook's default model: Gemini 3.8 Flash, stable (GA), the newest Flash on the models page."""

FLASH_LITE = "gemini-3.5-flash-lite"
"""The cheapest, fastest current model: Gemini 3.5 Flash-Lite, stable (GA)."""

MODELS = (FLASH, FLASH_LITE)
"""Every model id the workbook uses, in the order lessons introduce them."""

MISSING_MODEL = "gemini-0.0-nonexistent"
"""A model id that does not exist, for lessons and checks that show the API's 404 ``NOT_FOUND``."""

THINKING_LEVELS = ("MINIMAL", "LOW", "MEDIUM", "HIGH")
"""The ``thinking_level`` values these models can take, least thinking first (``types.ThinkingLevel`` in
google-genai 3.6.1 also has ``XHIGH``, which only Gemini 4 models take)."""


@dataclass(frozen=True)
class LatencyProfile:
    """How a synthetic recording spaces its chunks in time, and how much a model thinks first.

    Attributes:
        ttft_s: median time to the first token with the least thinking the model allows, seconds. Each synthetic
            exchange draws it from a log-normal distribution with this median, then adds the thinking time.
        ttft_sigma: the log-normal's shape parameter (0.25 gives p90 about 1.4x the median).
        tokens_per_s: median output speed, output tokens per second; thinking tokens are generated at this speed
            too, before the first visible token.
        thoughts_tokens: median thinking tokens per answer at each ``thinking_level`` the model accepts. An
            assumption: Google publishes no such figure.
        source: where the figures come from, with the date they were read.
    """

    ttft_s: float
    ttft_sigma: float
    tokens_per_s: float
    thoughts_tokens: dict[str, int]
    source: str


@dataclass(frozen=True)
class Model:
    """One model the workbook teaches.

    Attributes:
        id: the model id the API takes, e.g. ``"gemini-3.8-flash"``.
        released: its release date (the deprecations page's "Release date" column).
        shutdown: the announced shutdown date, or ``None`` when the deprecations page says "No shutdown date
            announced". Google calls listed dates "the earliest possible dates on which a model might be retired".
        default_thinking: the ``thinking_level`` the model uses when a request sets none.
        refuses_penalties_and_prefill: the model answers 400 to ``presence_penalty`` / ``frequency_penalty`` and to
            a request whose last turn is the model's (a prefilled answer).
        profile: the latency profile synthetic recordings follow.
        source: the pages these facts come from, with the date read.
    """

    id: str
    released: dt.date
    shutdown: dt.date | None
    default_thinking: str
    profile: LatencyProfile
    source: str
    refuses_penalties_and_prefill: bool = False

    @property
    def thinking_levels(self) -> tuple[str, ...]:
        """The ``thinking_level`` values the model accepts; any other is a 400 ``INVALID_ARGUMENT``."""
        return tuple(level for level in THINKING_LEVELS if level in self.profile.thoughts_tokens)


CATALOG: dict[str, Model] = {
    FLASH: Model(
        id=FLASH,
        released=dt.date(2026, 9, 2),
        shutdown=None,
        default_thinking="MEDIUM",
        profile=LatencyProfile(
            ttft_s=0.35,
            ttft_sigma=0.25,
            tokens_per_s=289.0,
            thoughts_tokens={"LOW": 60, "MEDIUM": 180, "HIGH": 480},
            source=(
                "no published measurement of 3.8 Flash yet; output speed modelled on its predecessor line, Artificial "
                "Analysis' ~289 tokens/s for Gemini 3.5 Flash (as quoted by mr.technology, May 2026; lavx.hu quotes an "
                "AA chart at 206 tokens/s), read 2026-12-01; TTFT before thinking (0.35 s) and thinking tokens per "
                "level are assumptions, not published figures"
            ),
        ),
        source=(
            f"{DEPRECATIONS_PAGE} ('gemini-3.8-flash September 2, 2026 No shutdown date announced'); Google Cloud's "
            "Gemini 3.8 Flash page (GA; 1,048,576 input and 65,536 output tokens; thinking levels 'LOW, MEDIUM "
            "(default), and HIGH'; 'thinking_level=\"MINIMAL\" ... will return an API validation error'); "
            "read 2026-12-01"
        ),
    ),
    FLASH_LITE: Model(
        id=FLASH_LITE,
        released=dt.date(2026, 7, 21),
        shutdown=None,
        default_thinking="MINIMAL",
        profile=LatencyProfile(
            ttft_s=0.25,
            ttft_sigma=0.25,
            tokens_per_s=370.0,
            thoughts_tokens={"MINIMAL": 8, "LOW": 40, "MEDIUM": 120, "HIGH": 320},
            source=(
                "no published measurement of 3.5 Flash-Lite yet; output speed modelled on its predecessor, Artificial "
                "Analysis' ~370 tokens/s for Gemini 3.1 Flash-Lite (as quoted by hej.chat, March 2026), read "
                "2026-12-01; TTFT before thinking (0.25 s) and thinking tokens per level are assumptions (MINIMAL is "
                "not 'off': Google says minimal thinking may still think)"
            ),
        ),
        source=(
            f"{DEPRECATIONS_PAGE} ('gemini-3.5-flash-lite July 21, 2026 No shutdown date announced'); {MODELS_PAGE}"
            "/gemini-3.5-flash-lite (stable; 1,048,576 input and 65,536 output tokens); Google Cloud's thinking page "
            "('Gemini 3.5 Flash-Lite MINIMAL, LOW, MEDIUM, HIGH', default MINIMAL); its Google Cloud page (custom "
            "temperature, top-k and top-p 'will be ignored'; penalties and a last turn with the model role are "
            "errors); read 2026-12-01"
        ),
        refuses_penalties_and_prefill=True,
    ),
}
"""Every model in :data:`MODELS`, by id."""

PROFILES: dict[str, LatencyProfile] = {model.id: model.profile for model in CATALOG.values()}
"""Latency profile per model id, for synthetic recordings only (live and recorded runs measure the real thing)."""

RETIRED: dict[str, dt.date] = {
    "gemini-2.0-flash": dt.date(2026, 6, 1),
    "gemini-2.5-flash": dt.date(2026, 6, 17),
    "gemini-2.5-flash-lite": dt.date(2026, 7, 22),
}
"""Ids the workbook's sources still use, with the shutdown date Google's pages gave, read 2026-12-01: 2.0 Flash from
the changelog (February 18, 2026 entry: shut down June 1, 2026); 2.5 Flash and 2.5 Flash-Lite from the deprecations
page's mid-2026 version (third parties quote a November version with December 1, 2026 for 2.5 Flash, and say 2.5
Flash-Lite "remains available ... until further notice"). Lessons name them only in prose, to correct a source."""


def retired(today: dt.date) -> list[str]:
    """The models in :data:`CATALOG` whose announced shutdown date is ``today`` or earlier, as messages.

    Each message names the model, its shutdown date and what to do. A model with no announced date never appears.
    The tripwire test in ``tests/test_models.py`` fails when this is not empty, so CI cannot pass while the
    workbook teaches a retired model.
    """
    return [
        f"{model.id} shuts down on {model.shutdown.isoformat()} ({DEPRECATIONS_PAGE}): pick its successor in "
        "helpers/models.py (FLASH / FLASH_LITE, CATALOG and their sources), then re-author every cassette with "
        "`python -m helpers.replay author-notebook notebooks/NN_name.ipynb`"
        for model in CATALOG.values()
        if model.shutdown is not None and model.shutdown <= today
    ]
