"""helpers.models: one entry per model the workbook teaches, sourced and dated, and the tripwire that fails CI on or
after a taught model's announced shutdown date."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from helpers import models


def test_every_model_taught_is_in_the_catalog_with_its_sources() -> None:
    assert set(models.CATALOG) == set(models.MODELS) == set(models.PROFILES)
    for model in models.CATALOG.values():
        assert model.released <= models.READ and "2026-12-01" in model.source and "2026-12-01" in model.profile.source
        assert model.default_thinking in model.thinking_levels
        assert set(model.thinking_levels) <= set(models.THINKING_LEVELS)
    assert not set(models.MODELS) & set(models.RETIRED), "a retired id is still taught"


def test_no_model_taught_has_reached_its_shutdown_date() -> None:
    due = models.retired(dt.date.today())
    assert not due, "\n".join(due)


def test_the_tripwire_fires_on_the_shutdown_day_and_not_before(monkeypatch) -> None:
    day = dt.date(2027, 3, 1)
    flash = dataclasses.replace(models.CATALOG[models.FLASH], shutdown=day)
    monkeypatch.setitem(models.CATALOG, models.FLASH, flash)
    assert models.retired(day - dt.timedelta(days=1)) == []
    (message,) = models.retired(day)
    assert message.startswith(f"{models.FLASH} shuts down on 2027-03-01") and "helpers/models.py" in message
    assert models.retired(day + dt.timedelta(days=400)) == [message]


def test_a_model_with_no_announced_date_never_trips(monkeypatch) -> None:
    lite = dataclasses.replace(models.CATALOG[models.FLASH_LITE], shutdown=None)
    monkeypatch.setitem(models.CATALOG, models.FLASH_LITE, lite)
    assert not any(message.startswith(models.FLASH_LITE) for message in models.retired(dt.date(2100, 1, 1)))


def test_the_ci_tripwire_fails_once_a_shutdown_date_is_moved_to_the_past(monkeypatch) -> None:
    past = dataclasses.replace(models.CATALOG[models.FLASH], shutdown=dt.date.today() - dt.timedelta(days=1))
    monkeypatch.setitem(models.CATALOG, models.FLASH, past)
    with pytest.raises(AssertionError, match=f"{models.FLASH} shuts down on"):
        test_no_model_taught_has_reached_its_shutdown_date()
