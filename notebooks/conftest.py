"""nbval over the lessons: a cell tagged ``needs-MODULE`` is skipped, with the reason, where ``MODULE`` is not
installed (LiteLLM's gateway cells of 08_protocols on an Intel Mac; see :mod:`helpers.needs`)."""

from __future__ import annotations

import pytest

from helpers import needs


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        cell = getattr(item, "cell", None)  # nbval's items carry their notebook cell
        if cell is not None and (lacking := needs.missing(cell.metadata.get("tags", []))):
            reason = f"needs {', '.join(lacking)}, which this platform's install leaves out (see the README)"
            item.add_marker(pytest.mark.skip(reason=reason))
