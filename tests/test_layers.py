"""The package's shape: ``import helpers`` stays light, and ``helpers.replay`` imports only downwards, with no cycle.

The layers of the replay server are listed in ``docs/server.md`` (how to add an endpoint); :data:`LAYERS` is the
same list, lowest first.
"""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("aiohttp", "PIL", "google.genai", "helpers.replay.server", "helpers.replay.author", "helpers.replay.synth")
"""What a notebook's first cell must not pay for: the server, the authoring tools and their libraries."""


def test_import_helpers_loads_neither_the_server_nor_the_authoring_tools() -> None:
    code = f"import sys, helpers; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"import helpers loaded {out.strip()}"
