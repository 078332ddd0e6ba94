"""Model ids and the latency profiles that synthetic recordings follow: the one place that names a model.

Every notebook takes its model id from here (``from helpers.models import FLASH``) so a model retirement is a
one-line change plus a re-record.
"""

from __future__ import annotations

from dataclasses import dataclass

FLASH = "gemini-2.5-flash"
"""The workbook's default model: Gemini 2.5 Flash (stable id, ai.google.dev/gemini-api/docs/models, read 2026-11-21)."""

FLASH_LITE = "gemini-2.5-flash-lite"
"""The cheapest, fastest 2.5 model (same source and date as :data:`FLASH`)."""

MODELS = (FLASH, FLASH_LITE)
"""Every model id the workbook uses, in the order lessons introduce them."""

MISSING_MODEL = "gemini-0.0-nonexistent"
"""A model id that does not exist, for lessons and checks that show the API's 404 ``NOT_FOUND``."""


@dataclass(frozen=True)
class LatencyProfile:
    """How a synthetic recording spaces its chunks in time.

    Attributes:
        ttft_s: median time to first token, seconds. Each synthetic exchange draws its TTFT from a log-normal
            distribution with this median.
        ttft_sigma: the log-normal's shape parameter (0.25 gives p90 about 1.4x the median).
        tokens_per_s: median output speed after the first chunk, output tokens per second.
        source: where the two figures come from, with the date they were read.
    """

    ttft_s: float
    ttft_sigma: float
    tokens_per_s: float
    source: str


PROFILES: dict[str, LatencyProfile] = {
    FLASH: LatencyProfile(
        ttft_s=0.40,
        ttft_sigma=0.25,
        tokens_per_s=270.0,
        source=(
            "Artificial Analysis, Gemini 2.5 Flash: TTFT 0.40 s, output 270.6 tokens/s "
            "(as quoted by amallo.ai/wiki/gemini-2-5-flash, read 2026-11-21)"
        ),
    ),
    FLASH_LITE: LatencyProfile(
        ttft_s=0.30,
        ttft_sigma=0.25,
        tokens_per_s=321.0,
        source=(
            "Artificial Analysis, Gemini 2.5 Flash-Lite: output 321 tokens/s (as quoted by shadabchow.com, "
            "read 2026-11-21); TTFT 0.30 s is an assumption for thinking turned off, not a published figure"
        ),
    ),
}
"""Latency profile per model id, for synthetic recordings only (live and recorded runs measure the real thing)."""
