"""The price table and cost_usd: units, thinking billed as output, batch at half price, refusals, prices that follow
their own dates (3.8 Flash's next price takes over on 2027-01-01 by itself), and a tripwire for a model whose last
known price has ended."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

import pytest
from google.genai import types

from helpers import models
from helpers.prices import CHECKED, PRICES, SOURCE, cost_usd, price_on, stale


def usage(**counts: object) -> types.GenerateContentResponseUsageMetadata:
    return types.GenerateContentResponseUsageMetadata(**counts)


INTRODUCTORY = dt.date(2026, 12, 1)
"""A day of 3.8 Flash's introductory price (the day the table was read)."""


def test_every_model_has_a_price_and_batch_is_half_of_standard() -> None:
    assert set(PRICES) == set(models.MODELS)
    for price in (price for known in PRICES.values() for price in known):
        assert price.batch_input_per_m == pytest.approx(price.input_per_m / 2)
        assert price.batch_output_per_m == pytest.approx(price.output_per_m / 2)
    assert SOURCE.startswith("https://ai.google.dev/") and CHECKED.count("-") == 2


def test_each_models_prices_follow_one_another_day_after_day() -> None:
    for model, known in PRICES.items():
        assert known[0].since is None, f"{model}: the first price is the one in force when the table was read"
        for before, after in itertools.pairwise(known):
            assert before.until is not None and after.since == before.until + dt.timedelta(days=1), model


def test_the_next_price_takes_over_on_its_first_day() -> None:
    assert price_on(models.FLASH, dt.date(2026, 12, 31)).input_per_m == 0.75
    assert (
        price_on(models.FLASH, dt.date(2027, 1, 1)).input_per_m,
        price_on(models.FLASH, dt.date(2027, 1, 1)).output_per_m,
    ) == (1.50, 7.50)
    assert price_on(f"models/{models.FLASH_LITE}", dt.date(2030, 1, 1)).input_per_m == 0.30
    assert price_on(models.FLASH) == price_on(models.FLASH, dt.date.today())
    usage_1m = usage(prompt_token_count=1_000_000, candidates_token_count=1_000_000)
    assert cost_usd(usage_1m, models.FLASH, on=dt.date(2027, 1, 1)) == pytest.approx(1.50 + 7.50)
    assert cost_usd(usage_1m, models.FLASH, batch=True, on=dt.date(2027, 1, 2)) == pytest.approx(0.75 + 3.75)


def test_cost_is_tokens_times_price_per_million() -> None:
    one_million_each = usage(prompt_token_count=1_000_000, candidates_token_count=1_000_000)
    assert cost_usd(one_million_each, models.FLASH, on=INTRODUCTORY) == pytest.approx(0.75 + 3.75)
    assert cost_usd(one_million_each, models.FLASH, batch=True, on=INTRODUCTORY) == pytest.approx(0.375 + 1.875)
    assert cost_usd(usage(prompt_token_count=20, candidates_token_count=40), models.FLASH_LITE) == pytest.approx(
        (20 * 0.30 + 40 * 2.50) / 1e6
    )


def test_thinking_tokens_are_billed_as_output() -> None:
    thinking = usage(prompt_token_count=10, candidates_token_count=5, thoughts_token_count=100)
    assert cost_usd(thinking, models.FLASH, on=INTRODUCTORY) == pytest.approx((10 * 0.75 + 105 * 3.75) / 1e6)


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


def test_every_model_taught_has_a_price_today() -> None:
    ended = stale(dt.date.today())
    assert not ended, "\n".join(ended)


@pytest.mark.parametrize("day", [dt.date(2026, 12, 31), dt.date(2027, 1, 1), dt.date(2027, 1, 2)], ids=str)
def test_the_tripwires_stay_quiet_across_a_known_price_change(day: dt.date) -> None:
    """The suite with the clock at 2027-01-02 (3.8 Flash's next price's second day) passes: no stale price, no
    retired model, and every model priced."""
    assert stale(day) == [] and models.retired(day) == []
    assert all(price_on(model, day) for model in models.MODELS)


def test_the_price_tripwire_fires_the_day_after_a_last_known_price_ends(monkeypatch) -> None:
    ends = dt.date(2027, 6, 30)
    last = dataclasses.replace(PRICES[models.FLASH][-1], until=ends)
    monkeypatch.setitem(PRICES, models.FLASH, (*PRICES[models.FLASH][:-1], last))
    assert stale(ends) == [] and price_on(models.FLASH, ends) == last
    (message,) = stale(ends + dt.timedelta(days=1))
    assert models.FLASH in message and ends.isoformat() in message and "helpers/prices.py" in message
    with pytest.raises(LookupError, match=f"no price of {models.FLASH} on 2027-07-01"):
        cost_usd(usage(prompt_token_count=1), models.FLASH, on=ends + dt.timedelta(days=1))


def test_the_ci_price_tripwire_fails_once_a_last_price_has_ended(monkeypatch) -> None:
    ended = dataclasses.replace(PRICES[models.FLASH_LITE][-1], until=dt.date.today() - dt.timedelta(days=1))
    monkeypatch.setitem(PRICES, models.FLASH_LITE, (ended,))
    with pytest.raises(AssertionError, match=f"{models.FLASH_LITE}'s last known price"):
        test_every_model_taught_has_a_price_today()
