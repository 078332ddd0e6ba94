"""What calls cost: the workbook's one price table (USD per 1M tokens, standard and Batch API) and a cost function.

Introduced in ``05_batch``. Prices are Google's paid-tier list prices for the Gemini API
(https://ai.google.dev/gemini-api/docs/pricing), per 1 million tokens, in US dollars:

============================  =================  =====================  =============  ==============
model                         input (standard)   output (standard)      input (batch)  output (batch)
============================  =================  =====================  =============  ==============
``gemini-2.5-flash``          $0.30              $2.50                  $0.15          $1.25
``gemini-2.5-flash-lite``     $0.10              $0.40                  $0.05          $0.20
============================  =================  =====================  =============  ==============

Input is text, image and video (2.5 Flash's audio input costs more: $1.00); output includes thinking tokens, which
thinking models such as 2.5 Flash bill as output. The Batch API costs 50% of the standard price (the pricing page's
Batch column; ai.google.dev/gemini-api/docs/optimization: "Batch ... 50% discount ... Up to 24 hours").

Where the figures come from, honestly: checked on 2026-11-22 by searching public copies, because Google's pricing page
itself could not be fetched from where this was written. They agree with a verbatim transcription of that page read
2026-10-07 (github.com/api-evangelist/deepmind, ``plans/deepmind-plans-pricing.yml``: 2.5 Flash input "$0.30 (text /
image / video)", "$1.00 (audio)"; 2.5 Flash-Lite output "$0.40"), with third-party guides of 2026 (2.5 Flash
$0.30 / $2.50, 2.5 Flash-Lite $0.10 / $0.40) and with Google's 50% batch discount (developers.googleblog.com, "Batch
Mode in the Gemini API", 2025-07-07). Prices change: read the page before you budget with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.genai import types

from .models import FLASH, FLASH_LITE

SOURCE = "https://ai.google.dev/gemini-api/docs/pricing"
"""Google's price list for the Gemini API, where :data:`PRICES` come from."""

CHECKED = "2026-11-22"
"""When :data:`PRICES` were last checked (see the module docstring for how)."""

TOKENS_PER_PRICE_UNIT = 1_000_000
"""Prices are quoted per this many tokens."""


@dataclass(frozen=True)
class Price:
    """One model's prices, USD per 1M tokens (paid tier).

    Attributes:
        input_per_m: prompt tokens (text, image, video), standard API.
        output_per_m: output tokens, thinking tokens included, standard API.
        batch_input_per_m: prompt tokens through the Batch API.
        batch_output_per_m: output tokens through the Batch API.
    """

    input_per_m: float
    output_per_m: float
    batch_input_per_m: float
    batch_output_per_m: float


PRICES: dict[str, Price] = {
    FLASH: Price(input_per_m=0.30, output_per_m=2.50, batch_input_per_m=0.15, batch_output_per_m=1.25),
    FLASH_LITE: Price(input_per_m=0.10, output_per_m=0.40, batch_input_per_m=0.05, batch_output_per_m=0.20),
}
"""Prices per model id (:mod:`helpers.models`); source :data:`SOURCE`, checked :data:`CHECKED`."""


def cost_usd(
    usage: types.GenerateContentResponseUsageMetadata | Mapping[str, Any], model: str, *, batch: bool = False
) -> float:
    """What one call cost, in US dollars, from its ``usage_metadata``.

    ``prompt_token_count`` is billed at the input price; ``candidates_token_count`` plus ``thoughts_token_count``
    (thinking is billed as output) at the output price; ``batch=True`` uses the Batch API's prices. Introduced in
    ``05_batch``::

        cost_usd(response.usage_metadata, MODEL)              # 0.000113
        cost_usd(response.usage_metadata, MODEL, batch=True)  # half of that

    Args:
        usage: a response's ``usage_metadata``, or the same as a dict (``usageMetadata`` from a batch results file,
            camelCase or snake_case).
        model: a model id from :mod:`helpers.models`, with or without ``models/``.
        batch: price the call as part of a batch job.

    Returns:
        The cost in USD (a float; not rounded).

    Raises:
        KeyError: the table has no price for ``model``.
        ValueError: the usage has tokens this table does not price: cached tokens (the context-caching rate),
            audio input (a higher rate) or tool-use prompt tokens.
    """
    if isinstance(usage, Mapping):
        usage = types.GenerateContentResponseUsageMetadata.model_validate(usage)
    model = model.removeprefix("models/")
    if model not in PRICES:
        raise KeyError(f"no price for {model!r} in helpers.prices.PRICES; known: {', '.join(PRICES)}")
    unpriced = [
        name
        for name, count in (
            ("cached_content_token_count", usage.cached_content_token_count),
            ("tool_use_prompt_token_count", usage.tool_use_prompt_token_count),
            ("audio prompt tokens", _audio_tokens(usage)),
        )
        if count
    ]
    if unpriced:
        raise ValueError(f"this usage has {', '.join(unpriced)}, which helpers.prices does not price; see {SOURCE}")
    price = PRICES[model]
    input_per_m = price.batch_input_per_m if batch else price.input_per_m
    output_per_m = price.batch_output_per_m if batch else price.output_per_m
    output = (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)
    return ((usage.prompt_token_count or 0) * input_per_m + output * output_per_m) / TOKENS_PER_PRICE_UNIT


def _audio_tokens(usage: types.GenerateContentResponseUsageMetadata) -> int:
    """Prompt tokens the usage reports for the audio modality (0 when it gives no breakdown)."""
    details = usage.prompt_tokens_details or []
    return sum(d.token_count or 0 for d in details if d.modality == types.MediaModality.AUDIO)
