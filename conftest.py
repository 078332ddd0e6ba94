"""The whole suite's one rule about the learner's own folders: no test, notebook run or kernel writes to them.

Every ``qN.check()`` keeps its outcome in the per-user data folder (:mod:`helpers.progress`), and each lesson's
setup cell shows how many of its exercises are done. Here ``WORKBOOK_DATA_DIR`` points at a fresh temporary folder
for each test file (each notebook, under nbval): the kernel nbval starts for a notebook inherits it, so a notebook's
setup line always reads "0 of N" as committed, and nothing is written into the real per-user folder. The folders go
when the run ends. Classroom variables are cleared too, so a developer's own room never reaches the suite.

And replay refuses a request no recording matches: ``helpers.setup`` improvises a labelled stand-in for one by
default (a learner trying their own prompt), but under test it must fail, so that no test and no notebook checked by
nbval passes on a stand-in. ``WORKBOOK_UNMATCHED=error`` holds for ``pytest tests/...`` and ``pytest notebooks/...``
alike, and the kernels nbval and nbclient start inherit it. A test that wants a stand-in asks for one
(``helpers.setup(..., unmatched="improvise")``).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from helpers.replay.wire.defaults import UNMATCHED_VARIABLE

ROOM_VARIABLES = ("WORKBOOK_ROOM", "WORKBOOK_SEAT")
DATA_DIR_VARIABLE = "WORKBOOK_DATA_DIR"

_state: dict[str, str] = {}


def _fresh_data_dir() -> None:
    os.environ[DATA_DIR_VARIABLE] = tempfile.mkdtemp(prefix="data-", dir=_state["base"])


def pytest_configure(config: pytest.Config) -> None:
    for name in ROOM_VARIABLES:
        os.environ.pop(name, None)
    os.environ[UNMATCHED_VARIABLE] = "error"
    _state["base"] = tempfile.mkdtemp(prefix="workbook-progress-")
    _fresh_data_dir()


def pytest_unconfigure(config: pytest.Config) -> None:
    if "base" in _state:
        shutil.rmtree(_state.pop("base"), ignore_errors=True)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before the first test of each file (so before nbval starts a notebook's kernel), a fresh data folder."""
    file = str(item.path)
    if _state.get("file") != file:
        _state["file"] = file
        _fresh_data_dir()
