"""Where the install leaves a module out (LiteLLM on an Intel Mac), lesson 08 loses its gateway section and nothing
else: the section's cells are tagged ``needs-litellm``, the tests skip exactly those, and the gateway's start says
why in one line. The last test runs lesson 08 under nbval with LiteLLM hidden, as an Intel Mac's install has it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from helpers import needs, web
from helpers.workbook import WorkbookError

from .test_hygiene import ROOT

LESSON = ROOT / "notebooks" / "08_protocols.ipynb"
HIDE_LITELLM = textwrap.dedent(
    """\
    # Written by tests/test_needs.py: LiteLLM cannot be imported, as on an Intel Mac, where the install leaves it out.
    import sys


    class HideLiteLLM:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == "litellm":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None


    sys.meta_path.insert(0, HideLiteLLM())
    """
)


def tagged(notebook: Path, tag: str) -> list[int]:
    """The numbers (among code cells, as nbval counts them) of the cells tagged ``tag``."""
    code = [cell for cell in nbformat.read(notebook, as_version=4).cells if cell.cell_type == "code"]
    return [number for number, cell in enumerate(code) if tag in cell.metadata.get("tags", [])]


def test_a_needs_tag_names_a_module_only_when_it_is_missing() -> None:
    assert needs.missing(["needs-json", "raises-exception", "needs-no_such_module_here"]) == ["no_such_module_here"]
    assert needs.missing(["nbval-skip"]) == []
    assert needs.installed("json") and not needs.installed("no_such_module_here")


def test_the_gateway_cells_and_only_they_are_tagged() -> None:
    code = [cell for cell in nbformat.read(LESSON, as_version=4).cells if cell.cell_type == "code"]
    gateway = [n for n, cell in enumerate(code) if "gateway" in cell.source or "litellm" in cell.source.lower()]
    assert gateway and tagged(LESSON, "needs-litellm") == gateway
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        if notebook != LESSON:
            assert tagged(notebook, "needs-litellm") == [], f"{notebook.name} needs LiteLLM, which Intel Macs lack"


def test_starting_a_server_whose_module_is_missing_says_so_in_one_line() -> None:
    with pytest.raises(WorkbookError, match=r"`no_such_module_here` is not installed in this environment"):
        web.AppServer("no_such_module_here.proxy", "--config", "x.yaml")


def test_lesson_08_without_litellm_skips_the_gateway_section_and_passes_the_rest(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(HIDE_LITELLM, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    hidden = subprocess.run(
        [sys.executable, "-c", "from helpers import needs; print(needs.installed('litellm'))"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert hidden.stdout.strip() == "False", "the simulation must hide LiteLLM"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(LESSON), "-n", "0", "-q", "-rs"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    skipped = tagged(LESSON, "needs-litellm")
    total = sum(1 for cell in nbformat.read(LESSON, as_version=4).cells if cell.cell_type == "code")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert f"{total - len(skipped)} passed, {len(skipped)} skipped" in run.stdout, run.stdout[-3000:]
    assert "needs litellm, which this platform's install leaves out" in run.stdout
