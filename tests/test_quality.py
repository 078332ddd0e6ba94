"""The style guide's promises, checked by the test command itself: ruff lint, ruff format, and mypy on helpers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .test_hygiene import ROOT

CHECKS = {
    "ruff check": [sys.executable, "-m", "ruff", "check", "."],
    "ruff format": [sys.executable, "-m", "ruff", "format", "--check", "."],
    "mypy helpers": [sys.executable, "-m", "mypy", "helpers"],
}
"""Each tool as the README's contributors run it, from the repository root, with the pinned versions."""


@pytest.mark.parametrize("name", CHECKS)
def test_the_tree_is_clean(name: str) -> None:
    done = subprocess.run(CHECKS[name], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{name} failed; run it from the repository root and fix what it says:\n{done.stdout}"
