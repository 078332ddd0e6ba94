"""The price table and cost_usd: units, thinking billed as output, batch at half price, refusals, and a tripwire
for a price whose last day has passed."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from google.genai import types

from helpers import models
from helpers.prices import CHECKED, NEXT_PRICES, PRICES, SOURCE, cost_usd, expired


def usage(**counts: object) -> types.GenerateContentResponseUsageMetadata:
    return types.GenerateContentResponseUsageMetadata(**counts)


def test_every_model_has_a_price_and_batch_is_half_of_standard() -> None:
    assert set(PRICES) == set(models.MODELS)
    for price in PRICES.values():
        assert price.batch_input_per_m == pytest.approx(price.input_per_m / 2)
        assert price.batch_output_per_m == pytest.approx(price.output_per_m / 2)
    assert SOURCE.startswith("https://ai.google.dev/") and CHECKED.count("-") == 2


def test_cost_is_tokens_times_price_per_million() -> None:
    one_million_each = usage(prompt_token_count=1_000_000, candidates_token_count=1_000_000)
    assert cost_usd(one_million_each, models.FLASH) == pytest.approx(0.75 + 3.75)
    assert cost_usd(one_million_each, models.FLASH, batch=True) == pytest.approx(0.375 + 1.875)
    assert cost_usd(usage(prompt_token_count=20, candidates_token_count=40), models.FLASH_LITE) == pytest.approx(
        (20 * 0.30 + 40 * 2.50) / 1e6
    )


def test_thinking_tokens_are_billed_as_output() -> None:
    thinking = usage(prompt_token_count=10, candidates_token_count=5, thoughts_token_count=100)
    assert cost_usd(thinking, models.FLASH) == pytest.approx((10 * 0.75 + 105 * 3.75) / 1e6)


def test_a_dict_from_a_results_file_and_a_models_prefix_work() -> None:
    wire = {"promptTokenCount": 8, "candidatesTokenCount": 4, "totalTokenCount": 12}
    assert cost_usd(wire, f"models/{models.FLASH}") == cost_usd(
        usage(prompt_token_count=8, candidates_token_count=4), models.FLASH
    )
    assert cost_usd(usage(), models.FLASH) == 0.0


def test_what_the_table_cannot_price_is_refused() -> None:
    with pytest.raises(KeyError, match="no price for"):
        cost_usd(usage(prompt_token_count=1), models.MISSING_MODEL)
    with pytest.raises(ValueError, match="cached_content_token_count"):
        cost_usd(usage(prompt_token_count=2000, cached_content_token_count=1500), models.FLASH)
    audio = [types.ModalityTokenCount(modality=types.MediaModality.AUDIO, token_count=32)]
    with pytest.raises(ValueError, match="audio prompt tokens"):
        cost_usd(usage(prompt_token_count=32, prompt_tokens_details=audio), models.FLASH)
    lite_audio = usage(prompt_token_count=32, prompt_tokens_details=audio)
    assert cost_usd(lite_audio, models.FLASH_LITE) == pytest.approx(32 * 0.30 / 1e6), "Flash-Lite: audio as text"
    text = [types.ModalityTokenCount(modality=types.MediaModality.TEXT, token_count=32)]
    assert cost_usd(usage(prompt_token_count=32, prompt_tokens_details=text), models.FLASH) > 0


def test_no_price_in_the_table_has_passed_its_last_day() -> None:
    stale = expired(dt.date.today())
    assert not stale, "\n".join(stale)


def test_the_price_tripwire_fires_the_day_after_a_price_ends_and_names_the_next_price() -> None:
    ends = PRICES[models.FLASH].until
    assert ends is not None and models.FLASH in NEXT_PRICES
    assert expired(ends) == []
    (message,) = expired(ends + dt.timedelta(days=1))
    assert models.FLASH in message and "NEXT_PRICES" in message and ends.isoformat() in message


def test_the_ci_price_tripwire_fails_once_a_last_day_is_moved_to_the_past(monkeypatch) -> None:
    stale = dataclasses.replace(PRICES[models.FLASH], until=dt.date.today() - dt.timedelta(days=1))
    monkeypatch.setitem(PRICES, models.FLASH, stale)
    with pytest.raises(AssertionError, match="NEXT_PRICES"):
        test_no_price_in_the_table_has_passed_its_last_day()
