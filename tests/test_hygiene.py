"""What every committed file and notebook promises: no secrets, clean executed outputs, the lesson shape."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import nbformat
import pytest

from helpers import models

ROOT = Path(__file__).resolve().parent.parent
KEY_SHAPE = re.compile(r"AIza[0-9A-Za-z_\-]{35}")
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
RAISES_TAG = "raises-exception"
"""The cell tag for a cell that raises on purpose: JupyterLab's Run All, nbclient and nbval all run past it."""
MODEL_ID = re.compile(r"""["'](gemini-[\w.\-]+)["']""")


def repo_files() -> list[Path]:
    """Tracked files plus untracked ones git does not ignore: everything a commit could carry."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [ROOT / line for line in out.splitlines() if (ROOT / line).is_file()]


def test_no_key_shaped_string_in_any_file() -> None:
    files = repo_files()
    assert any(p.suffix == ".json" and "cassettes" in p.parts for p in files), "the scan must cover the cassettes"
    leaks = [str(p.relative_to(ROOT)) for p in files if KEY_SHAPE.search(p.read_text(errors="replace"))]
    assert leaks == []


def test_the_key_pattern_catches_a_key() -> None:
    assert KEY_SHAPE.search("x-goog-api-key: AIza" + "A" * 35)
    assert not KEY_SHAPE.search("AIza-too-short")


def code_cells(path: Path) -> list[nbformat.NotebookNode]:
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_there_are_notebooks() -> None:
    assert [p.stem for p in NOTEBOOKS][:2] == ["00_setup", "01_sync"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_executed_top_to_bottom_with_outputs_kept(path: Path) -> None:
    counts = [c.execution_count for c in code_cells(path) if c.source.strip()]
    assert counts == list(range(1, len(counts) + 1)), "re-run the notebook top to bottom in a fresh kernel"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_errors_only_where_marked_and_no_local_paths(path: Path) -> None:
    for cell in code_cells(path):
        for output in cell.outputs:
            if output.output_type == "error":
                assert RAISES_TAG in cell.metadata.get("tags", []), f"error in an untagged cell:\n{cell.source}"
            if output.output_type == "stream" and output.name == "stderr":
                raise AssertionError(f"stderr output (fix the warning, don't hide it) in:\n{cell.source}")
            text = nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=[output])]))
            for local in ("/root", "/home/", "/tmp/", "/work/", "C:\\\\Users"):
                assert local not in text, f"local path {local!r} in an output of:\n{cell.source}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_cells_that_raise_on_purpose_are_tagged_not_commented(path: Path) -> None:
    for cell in code_cells(path):
        assert "NBVAL_RAISES_EXCEPTION" not in cell.source, "use the raises-exception tag, which Run All honours"
        if RAISES_TAG in cell.metadata.get("tags", []):
            assert any(o.output_type == "error" for o in cell.outputs), f"tagged but does not raise:\n{cell.source}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_lesson_shape(path: Path) -> None:
    cells = nbformat.read(path, as_version=4).cells
    first = cells[0].source
    assert first.startswith(f"# {path.stem[:2]} · ") and "**What you'll learn**" in first
    assert re.search(r"\*\*Time:\*\* ~\d+ min", first) and "**Runs offline:**" in first
    setup = code_cells(path)[0].source
    assert f'helpers.setup("{path.stem}"' in setup, "the first code cell is the setup cell"
    headings = [c.source.splitlines()[0] for c in cells if c.cell_type == "markdown"]
    for heading in ("## Summary", "## Exercises", "## Next"):
        assert heading in headings, f"missing {heading}"
    assert path.stem in (ROOT / "README.md").read_text(), "list the notebook in the README"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_model_ids_come_from_helpers_models(path: Path) -> None:
    for cell in code_cells(path):
        assert not MODEL_ID.findall(cell.source), f"use helpers.models, not a literal model id, in:\n{cell.source}"


def test_models_module_lists_every_model() -> None:
    assert models.FLASH in models.MODELS and models.FLASH_LITE in models.MODELS
    assert set(models.PROFILES) == set(models.MODELS)


RETIRED_ID = re.compile(r"gemini-[0-2]\.\d[\w.\-]*")
"""A Gemini 2.x (or older) model id: every one is shut down (helpers.models.RETIRED)."""


def test_no_code_script_or_cassette_calls_a_retired_model() -> None:
    assert RETIRED_ID.fullmatch("gemini-2.5-flash") and not RETIRED_ID.search("gemini-3.8-flash")
    assert all(RETIRED_ID.fullmatch(model) for model in models.RETIRED)
    places = [
        *(f"{p.stem} code cell:\n{c.source}" for p in NOTEBOOKS for c in code_cells(p)),
        *(
            f"{p.name}:\n{p.read_text()}"
            for p in repo_files()
            if p.suffix in (".json", ".py") and "notebooks" in p.parts
        ),
    ]
    assert len(places) > 100, "the scan must cover code cells, scripts and cassettes"
    ids = [(place.split("\n")[0], set(RETIRED_ID.findall(place)) - {models.MISSING_MODEL}) for place in places]
    found = [f"{where} {', '.join(sorted(hits))}" for where, hits in ids if hits]
    assert not found, "retired model ids (prose may name them, code may not):\n" + "\n".join(found)


LESSON_LINK = re.compile(r"\[(\d\d · [^\]]+)\]\((\d\d_\w+)\.ipynb\)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_links_to_lessons_use_their_titles(path: Path) -> None:
    titles = {
        p.stem: nbformat.read(p, as_version=4).cells[0].source.splitlines()[0].removeprefix("# ") for p in NOTEBOOKS
    }
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "markdown":
            for text, target in LESSON_LINK.findall(cell.source):
                assert target in titles, f"link to a missing lesson {target}"
                assert text == titles[target], f"link text {text!r}: the lesson is titled {titles[target]!r}"
