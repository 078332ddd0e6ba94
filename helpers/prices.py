"""What calls cost: the workbook's one price table (USD per 1M tokens: standard, Batch and Flex) and a cost function.

Introduced in ``05_batch``. Prices are Google's paid-tier list prices for the Gemini API
(https://ai.google.dev/gemini-api/docs/pricing), per 1 million tokens, in US dollars, in force on :data:`CHECKED`:

=============================  =================  =================  =============  ==============
model                          input (standard)   output (standard)  input (batch)  output (batch)
=============================  =================  =================  =============  ==============
``gemini-3.8-flash``           $0.75              $3.75              $0.375         $1.875
``gemini-3.5-flash-lite``      $0.30              $2.50              $0.15          $1.25
=============================  =================  =================  =============  ==============

Input is text, image, video and audio (3.5 Flash-Lite prices audio as text; no separate audio price was found for
3.8 Flash, so :func:`cost_usd` refuses audio rather than guess). Output includes thinking tokens, which Gemini 3
models bill as output ("Output price (including thinking tokens)"). The Batch API and Flex inference each cost 50% of
the standard price (ai.google.dev/gemini-api/docs/optimization: "Pricing | Full Price | 50% discount | 75% to 100%
more than standard | 50% discount", the Standard, Flex, Priority and Batch columns).

**3.8 Flash's price doubles on 2027-01-01**: $0.75 / $3.75 is an introductory price "through December 31, 2026", then
$1.50 / $7.50. The table holds each model's prices with the days they are in force, so :func:`price_on` answers for
any day and the next price takes over on its first day by itself. A lesson prices at a day it names (``05_batch``:
``PRICED_ON``), so its outputs stay the same whenever it runs. A test fails once a model's last known price has ended
with no successor in the table (:func:`stale`), so the table cannot go stale silently.

Where the figures come from, honestly: read on 2026-12-01 through stored copies, because Google's English pricing
page itself could not be reached from where this was written. 3.5 Flash-Lite's $0.30 / $2.50 is on Google's own
what's-new page (ai.google.dev/gemini-api/docs/generate-content/whats-new-gemini-3.6: "gemini-3.5-flash-lite minimal
$0.30/1M input tokens and $2.50/1M output tokens"). 3.8 Flash's prices, its introductory end date and 3.5
Flash-Lite's audio price come from a transcription of the pricing page that says every price was found verbatim in
the page (github.com/api-evangelist/deepmind, ``plans/deepmind-plans-pricing.yml``, read by its author 2026-10-07:
"$0.75 through December 31, 2026", "overage: $1.50 starting January 1, 2027"; output "$3.75 ... (including thinking
tokens)", "$7.50 starting January 1, 2027"). One third party (a LiteLLM discussion) writes "through December 31, 2027"
for 3.7 Flash's launch price; the pricing-page captures say 2026, which this follows. Prices change: read the page
before you budget with them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.genai import types

from .models import FLASH, FLASH_LITE

SOURCE = "https://ai.google.dev/gemini-api/docs/pricing"
"""Google's price list for the Gemini API, where :data:`PRICES` come from."""

CHECKED = "2026-12-01"
"""When :data:`PRICES` were last checked (see the module docstring for how): the prices known on that day, the
later ones announced then included."""

TOKENS_PER_PRICE_UNIT = 1_000_000
"""Prices are quoted per this many tokens."""

DISCOUNT = 0.5
"""What the Batch API and Flex inference charge, as a fraction of the standard price (the optimization page)."""


@dataclass(frozen=True)
class Price:
    """One model's prices over a span of days, USD per 1M tokens (paid tier).

    Attributes:
        input_per_m: prompt tokens (text, image, video), standard API.
        output_per_m: output tokens, thinking tokens included, standard API.
        since: the first day this price is in force, or ``None`` for a price in force when the table was read.
        until: the last day this price is in force, or ``None`` when the page gives no end date.
        audio_as_text: audio input costs the same as text (``False``: the table has no audio price for the model).
    """

    input_per_m: float
    output_per_m: float
    since: dt.date | None = None
    until: dt.date | None = None
    audio_as_text: bool = False

    @property
    def batch_input_per_m(self) -> float:
        """Prompt tokens through the Batch API (or Flex inference): half the standard price."""
        return self.input_per_m * DISCOUNT

    @property
    def batch_output_per_m(self) -> float:
        """Output tokens through the Batch API (or Flex inference): half the standard price."""
        return self.output_per_m * DISCOUNT

    def in_force(self, day: dt.date) -> bool:
        """Whether this price applies on ``day`` (from ``since`` through ``until``, both included)."""
        return (self.since is None or self.since <= day) and (self.until is None or day <= self.until)


PRICES: dict[str, tuple[Price, ...]] = {
    FLASH: (
        Price(input_per_m=0.75, output_per_m=3.75, until=dt.date(2026, 12, 31)),
        Price(input_per_m=1.50, output_per_m=7.50, since=dt.date(2027, 1, 1)),
    ),
    FLASH_LITE: (Price(input_per_m=0.30, output_per_m=2.50, audio_as_text=True),),
}
"""Each model's known prices (model ids from :mod:`helpers.models`), oldest first, each next one starting the day
after the one before ends; read on :data:`CHECKED` from :data:`SOURCE`."""


def price_on(model: str, day: dt.date | None = None) -> Price:
    """The price of ``model`` in force on ``day`` (default: today). Introduced in ``05_batch``::

        price_on(FLASH, dt.date(2026, 12, 1)).input_per_m   # 0.75
        price_on(FLASH, dt.date(2027, 1, 1)).input_per_m    # 1.5: the next price, on its first day

    Args:
        model: a model id from :mod:`helpers.models`, with or without ``models/``.
        day: the day to price at.

    Raises:
        KeyError: the table has no price for ``model``.
        LookupError: no known price of ``model`` is in force on ``day`` (its last one ended before it).
    """
    model = model.removeprefix("models/")
    if model not in PRICES:
        raise KeyError(f"no price for {model!r} in helpers.prices.PRICES; known: {', '.join(PRICES)}")
    day = day or dt.date.today()
    for price in PRICES[model]:
        if price.in_force(day):
            return price
    raise LookupError(f"helpers.prices knows no price of {model} on {day.isoformat()}: {_update(model)}")


def stale(today: dt.date) -> list[str]:
    """Messages for each model whose last known price ended before ``today``; empty while every model has a price.

    A price with a known successor never appears: the successor takes over. The test ``tests/test_prices.py`` fails
    when this is not empty, with the message saying what to update.
    """
    return [
        f"{model}'s last known price, ${last.input_per_m} / ${last.output_per_m}, ended on "
        f"{last.until.isoformat()}: {_update(model)}"
        for model, prices in PRICES.items()
        if (last := prices[-1]).until is not None and last.until < today
    ]


def _update(model: str) -> str:
    """What to do when the table has no price for ``model`` on a day."""
    return (
        f"read {SOURCE}, add the price in force after that to PRICES[{model!r}] in helpers/prices.py, and update "
        "CHECKED"
    )


def cost_usd(
    usage: types.GenerateContentResponseUsageMetadata | Mapping[str, Any],
    model: str,
    *,
    batch: bool = False,
    on: dt.date | None = None,
) -> float:
    """What one call cost, in US dollars, from its ``usage_metadata``.

    ``prompt_token_count`` is billed at the input price; ``candidates_token_count`` plus ``thoughts_token_count``
    (thinking is billed as output) at the output price; ``batch=True`` uses the Batch API's prices; ``on`` is the
    day whose prices apply (:func:`price_on`). Introduced in ``05_batch``::

        cost_usd(response.usage_metadata, MODEL, on=PRICED_ON)              # 0.000713
        cost_usd(response.usage_metadata, MODEL, batch=True, on=PRICED_ON)  # half of that

    Args:
        usage: a response's ``usage_metadata``, or the same as a dict (``usageMetadata`` from a batch results file,
            camelCase or snake_case).
        model: a model id from :mod:`helpers.models`, with or without ``models/``.
        batch: price the call as part of a batch job.
        on: the day to price at (default: today).

    Returns:
        The cost in USD (a float; not rounded).

    Raises:
        KeyError: the table has no price for ``model``.
        LookupError: no known price of ``model`` is in force on ``on``.
        ValueError: the usage has tokens this table does not price: cached tokens (the context-caching rate),
            audio input on a model whose audio price the table lacks, or tool-use prompt tokens.
    """
    if isinstance(usage, Mapping):
        usage = types.GenerateContentResponseUsageMetadata.model_validate(usage)
    price = price_on(model, on)
    unpriced = [
        name
        for name, count in (
            ("cached_content_token_count", usage.cached_content_token_count),
            ("tool_use_prompt_token_count", usage.tool_use_prompt_token_count),
            ("audio prompt tokens", 0 if price.audio_as_text else _audio_tokens(usage)),
        )
        if count
    ]
    if unpriced:
        raise ValueError(f"this usage has {', '.join(unpriced)}, which helpers.prices does not price; see {SOURCE}")
    input_per_m = price.batch_input_per_m if batch else price.input_per_m
    output_per_m = price.batch_output_per_m if batch else price.output_per_m
    output = (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)
    return ((usage.prompt_token_count or 0) * input_per_m + output * output_per_m) / TOKENS_PER_PRICE_UNIT


def _audio_tokens(usage: types.GenerateContentResponseUsageMetadata) -> int:
    """Prompt tokens the usage reports for the audio modality (0 when it gives no breakdown)."""
    details = usage.prompt_tokens_details or []
    return sum(d.token_count or 0 for d in details if d.modality == types.MediaModality.AUDIO)
