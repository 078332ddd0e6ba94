"""Lesson cells that need a module the install leaves out on some platform: the ``needs-MODULE`` cell tag.

The install leaves LiteLLM out on Intel Macs: its proxy needs ``cryptography`` 49 or newer, which publishes no wheel
for them (48.0.1 was the last; see the README). Lesson ``08_protocols`` tags its gateway cells ``needs-litellm``, and
the tests skip a tagged cell, saying why, where its module is missing: ``notebooks/conftest.py`` for nbval,
``tests/test_determinism.py`` for the second run. In JupyterLab such a cell fails with one clear error instead
(:class:`helpers.web.AppServer` checks its module first).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

TAG_PREFIX = "needs-"
"""A cell tag ``needs-MODULE`` says the cell imports or runs the top-level module ``MODULE``."""


def installed(module: str) -> bool:
    """Whether the top-level module ``module`` can be imported here, found without importing it (LiteLLM takes
    seconds to import). A module that an import hook refuses counts as missing."""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def missing(tags: Iterable[str]) -> list[str]:
    """The modules that ``needs-MODULE`` tags among a cell's ``tags`` name and this environment lacks, in order."""
    needed = [tag.removeprefix(TAG_PREFIX) for tag in tags if tag.startswith(TAG_PREFIX)]
    return [module for module in needed if not installed(module)]
