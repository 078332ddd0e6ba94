"""Two consecutive runs of a notebook give the same sanitized outputs.

nbval (``pytest notebooks``, part of every ``pytest`` run) executes each notebook and compares every cell's outputs
with the committed ones, after ``tests/nbval_sanitize.cfg``'s substitutions. This test executes each notebook once
more, in a fresh kernel, and makes the same comparison the same way (nbval's own sanitize-file parser and stream
merging; the output fields nbval leaves out). Both runs equal the committed outputs, so they equal each other: the
cheapest honest proof of run-to-run determinism, at the cost of one more run of each notebook (about as long as
nbval's run of it). The run is also Run All's: nbclient without ``allow_errors`` stops at any error in a cell not
tagged ``raises-exception``, so every notebook provably runs to its last cell.
"""

from __future__ import annotations

import copy
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import nbclient
import nbformat
import pytest
from nbval.plugin import (
    coalesce_streams,
    find_comment_markers,
    find_metadata_tags,
    get_sanitize_patterns,
    transform_streams_for_comparison,
)

from helpers import needs

from .test_hygiene import NOTEBOOKS, ROOT

PATTERNS = get_sanitize_patterns((ROOT / "tests" / "nbval_sanitize.cfg").read_text())
NOT_COMPARED = {
    "metadata",
    "traceback",
    "prompt_number",
    "output_type",
    "name",
    "execution_count",
    "application/vnd.jupyter.widget-view+json",
    "image/png",
    "image/jpeg",
}
"""The output fields and MIME types nbval does not compare (``IPyNbFile.skip_compare`` in nbval 0.11, without
``--nbdime``): tracebacks, metadata, counts, widget ids and images."""
CLEAN_ENVIRONMENT = (
    "WORKBOOK_MODE",
    "WORKBOOK_UPSTREAM",
    "WORKBOOK_CASSETTES",
    "WORKBOOK_ROOM",
    "WORKBOOK_SEAT",
    "GOOGLE_GEMINI_BASE_URL",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
)
"""Variables that would change what a notebook does; CI runs without them, and so does this test."""


def options(cell: nbformat.NotebookNode) -> dict[str, Any]:
    """nbval's options for a cell, from its metadata tags and its ``# NBVAL_...`` comments (comments win), and
    ``skip`` where a ``needs-MODULE`` tag names a module this install lacks (as ``notebooks/conftest.py`` makes nbval
    skip it)."""
    found = dict(find_metadata_tags(cell.metadata))
    found.update(find_comment_markers(cell.source))
    if needs.missing(cell.metadata.get("tags", [])):
        found["skip"] = True
    return found


def sanitize(value: Any) -> Any:
    """A string with the sanitize file's substitutions applied in order, as nbval applies them; anything else as is."""
    if not isinstance(value, str):
        return value
    for regex, replace in PATTERNS:
        value = re.sub(regex, replace, value)
    return value


def compared(outputs: list[nbformat.NotebookNode]) -> dict[str, list[Any]]:
    """A cell's outputs as nbval compares them: streams merged, then each field (each MIME type of ``data``)
    sanitized, in order, keyed by field; fields nbval skips are left out."""
    fields: dict[str, list[Any]] = defaultdict(list)
    for output in transform_streams_for_comparison(coalesce_streams(copy.deepcopy(outputs))):
        for key, value in output.items():
            if key in NOT_COMPARED:
                continue
            for field, item in value.items() if key == "data" else [(key, value)]:
                if field not in NOT_COMPARED:
                    fields[field].append(sanitize(item))
    return dict(fields)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_second_run_gives_the_committed_outputs(path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in CLEAN_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORKBOOK_DATA_DIR", str(tmp_path))  # progress as a fresh learner's: "0 of N done"
    committed = nbformat.read(path, as_version=4)
    run = copy.deepcopy(committed)
    for cell in run.cells:
        if cell.cell_type == "code" and options(cell).get("skip"):
            cell.source = ""  # nbval does not run these
    # No allow_errors: as with JupyterLab's Run All, only a cell tagged raises-exception may raise; any other error
    # stops the run here, with the cell and its traceback in the message.
    nbclient.NotebookClient(
        run, kernel_name="python3", allow_errors=False, timeout=600, resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    differences = []
    for number, (before, after) in enumerate(zip(committed.cells, run.cells, strict=True)):
        opts = options(before)
        if before.cell_type != "code" or before.execution_count is None or opts.get("skip"):
            continue
        if not opts.get("check", True):
            continue  # NBVAL_IGNORE_OUTPUT
        if compared(before.outputs) != compared(after.outputs):
            differences.append(
                f"cell {number}:\n{before.source}\n--- committed:\n{compared(before.outputs)}\n"
                f"--- this run:\n{compared(after.outputs)}"
            )
    assert not differences, "\n\n".join(differences)


def test_the_comparison_masks_what_nbval_masks_and_nothing_else() -> None:
    new = nbformat.v4.new_output

    def outputs(text: str, png: str, evalue: str, traceback: str) -> list[nbformat.NotebookNode]:
        return [
            *(new("stream", name="stdout", text=line) for line in text.splitlines(keepends=True)),
            new("display_data", data={"image/png": png, "text/plain": "<Figure>"}),
            new("error", ename="ClientError", evalue=evalue, traceback=[traceback]),
        ]

    run = compared(outputs("elapsed 0.41 s\ndone at 127.0.0.1:4100\n", "AAAA", "429 RESOURCE_EXHAUSTED", "one"))
    other = compared(outputs("elapsed 0.52 s\ndone at 127.0.0.1:4200\n", "BBBB", "429 RESOURCE_EXHAUSTED", "two"))
    assert run == other  # timings, ports, images and tracebacks vary; streams split differently are the same text
    assert run != compared(outputs("elapsed 0.41 s\nDone at 127.0.0.1:4100\n", "AAAA", "429 RESOURCE_EXHAUSTED", "one"))
    assert run != compared(outputs("elapsed 0.41 s\ndone at 127.0.0.1:4100\n", "AAAA", "503 UNAVAILABLE", "one"))
