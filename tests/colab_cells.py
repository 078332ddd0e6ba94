"""docs/colab.md's cells, run as a Colab runtime runs them, in a kernel of the Colab-shaped environment.

Run by ``.ci/colab`` inside that environment (``.venv-colab``: Python 3.13, Colab's kernel packages and pip), never
by the main suite (its name is not ``test_*.py``): the install cell pip-installs into the kernel's environment and
points its editable ``helpers`` at the fresh clone. A stand-in ``google.colab`` whose Secrets hold a key
(:mod:`tests.colab_stub`) is on the kernel's path, and imported first, as Colab's kernel has it.

The cells: the install cell (``REPO_URL`` set to this repository, ``/content`` to a temporary folder), lesson 00's
first cells in replay (their outputs must be the committed ones), then the live-mode cell and lesson 00's setup cell
again, which must take the key from Secrets (the model check, which needs the real API, is skipped). The key must
then be in no output and no file under the temporary folder.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from .colab_stub import SECRET, files_holding, write_stub

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "colab.md"
LESSON = ROOT / "notebooks" / "00_setup.ipynb"
FIRST_CELLS = 4
"""Lesson 00's code cells run in replay: setup, the version check, the client, the first call."""

pytestmark = pytest.mark.skipif(
    not sys.prefix.endswith(".venv-colab"), reason="runs in .ci/colab's Colab-shaped environment only"
)


def doc_cells() -> tuple[str, str]:
    """docs/colab.md's install cell and live-mode cell, verbatim."""
    blocks = re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
    (install,) = [block for block in blocks if "git clone" in block]
    (live,) = [block for block in blocks if block.startswith("%env WORKBOOK_MODE=live")]
    return install, live


def text_of(cell: nbformat.NotebookNode) -> str:
    """What a code cell printed (its stream outputs, joined)."""
    return "".join(output["text"] for output in cell.get("outputs", []) if output["output_type"] == "stream")


def test_the_docs_cells_install_the_workbook_and_setup_reads_the_key_from_colab_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install, live = doc_cells()
    content = tmp_path / "content"  # Colab's /content
    content.mkdir()
    assert 'REPO_URL = ""' in install and "/content/" in install
    install = install.replace('REPO_URL = ""', f'REPO_URL = "{ROOT.as_uri()}"').replace("/content/", f"{content}/")
    lesson = nbformat.read(LESSON, as_version=4)
    first = [cell for cell in lesson.cells if cell.cell_type == "code"][:FIRST_CELLS]
    stub = write_stub(tmp_path / "colab-stub", {"GEMINI_API_KEY": (SECRET, True)})
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "WORKBOOK_MODE", "WORKBOOK_CASSETTES"):
        monkeypatch.delenv(name, raising=False)
    for name in ("tmp", "runtime"):
        (tmp_path / name).mkdir(mode=0o700)
    monkeypatch.setenv("PYTHONPATH", str(stub))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "runtime"))

    cells = [
        "import google.colab  # Colab's kernel has imported it before any cell runs",
        install,
        "import os\n\nprint(os.getcwd())\nprint(helpers.__file__)",
        *(cell.source for cell in first),
        live,
        "helpers.workbook.check_models = lambda base_url, token=None: ['model check skipped']  # no real API here",
        first[0].source,
        "from google.colab import userdata\n\n"
        "print(os.environ.get('GEMINI_API_KEY') == userdata.get('GEMINI_API_KEY'))",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(content)}}
    ).execute()

    where, origin = text_of(notebook.cells[2]).splitlines()
    assert Path(where) == content / "workbook" / "notebooks", "lessons run in their own folder"
    assert Path(origin) == content / "workbook" / "helpers" / "__init__.py", "helpers comes from the clone"
    ran = notebook.cells[3 : 3 + FIRST_CELLS]
    assert [text_of(cell) for cell in ran] == [text_of(cell) for cell in first], "lesson 00 replays as committed"
    assert text_of(notebook.cells[-2]).splitlines() == [
        "mode: live · calls go to the Gemini API with your key · nothing is recorded",
        "model check skipped",
    ]
    assert text_of(notebook.cells[-1]) == "True\n", "setup put the secret where the SDK reads it"
    assert SECRET not in json.dumps(notebook), "the key is in no output"
    assert files_holding(tmp_path, SECRET, outside=stub) == [], "the key is in no file"
