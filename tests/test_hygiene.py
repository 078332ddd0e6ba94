"""What every committed file and notebook promises: no secrets, clean executed outputs, the lesson shape."""

from __future__ import annotations

import ast
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


SIMULATION = ROOT / "tests" / "nonposix" / "sitecustomize.py"
POSIX_ONLY_OS = {"getuid", "geteuid", "getgid", "getegid", "fchmod", "fchown", "killpg", "getpgid", "setsid", "kill"}
"""``os`` functions Windows lacks, or (``kill``) that mean something else there: any signal but Ctrl+C and Ctrl+Break
ends the process, and signal 0 is Ctrl+C."""
PLATFORM = re.compile(r"\b(Windows|win32|POSIX|Linux|macOS)\b", re.IGNORECASE)


def posix_only_modules() -> set[str]:
    """The modules the simulated non-POSIX interpreter takes away (its ``POSIX_ONLY``): one list for both checks."""
    for node in ast.parse(SIMULATION.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "POSIX_ONLY" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError(f"{SIMULATION} defines no POSIX_ONLY")


class _PortabilityScan(ast.NodeVisitor):
    """Finds POSIX-only imports and calls in one module's source (see :func:`portability_problems`)."""

    def __init__(self, modules: set[str], test: bool) -> None:
        self.modules, self.test = modules, test
        self.caught: list[set[str]] = []  # the exceptions each enclosing ``try`` body's handlers catch
        self.problems: list[str] = []

    def guarded(self, *errors: str) -> bool:
        return any(set(errors) & caught for caught in self.caught)

    def visit_Try(self, node: ast.Try) -> None:
        types = [h.type for h in node.handlers if h.type is not None]
        names = {n.id for t in types for n in ast.walk(t) if isinstance(n, ast.Name)}
        self.caught.append(names)
        for stmt in node.body:
            self.visit(stmt)
        self.caught.pop()
        for stmt in [*node.handlers, *node.orelse, *node.finalbody]:
            self.visit(stmt)

    def imported(self, name: str, line: int) -> None:
        if name.partition(".")[0] not in self.modules:
            return
        if self.test:
            self.problems.append(f"line {line}: `import {name}`: use pytest.importorskip with a reason naming the OS")
        elif not self.guarded("ImportError", "ModuleNotFoundError"):
            self.problems.append(f"line {line}: `import {name}` without a fallback (try/except ImportError)")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.imported(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module:
            self.imported(node.module, node.lineno)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name) and node.value.id == "os" and node.attr in POSIX_ONLY_OS:
            self.problems.append(f"line {node.lineno}: os.{node.attr} (POSIX-only)")
        if node.attr == "add_signal_handler" and not self.guarded("NotImplementedError"):
            self.problems.append(f"line {node.lineno}: add_signal_handler without a fallback for NotImplementedError")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
        if getattr(node.func, "attr", None) == "importorskip" and name in self.modules:
            reason = next((k.value for k in node.keywords if k.arg == "reason"), None)
            if not (isinstance(reason, ast.Constant) and PLATFORM.search(str(reason.value))):
                self.problems.append(f"line {node.lineno}: importorskip({name!r}) without a reason naming the OS")
        self.generic_visit(node)


def portability_problems(source: str, *, test: bool) -> list[str]:
    """What in ``source`` would not run on Windows. Code (``test=False``) imports a POSIX-only module only with a
    fallback (inside ``try`` ... ``except ImportError``) and calls ``add_signal_handler`` only inside ``try`` ...
    ``except NotImplementedError``; a test imports one only through ``pytest.importorskip`` with a reason that names
    the platform. Neither calls :data:`POSIX_ONLY_OS`."""
    scan = _PortabilityScan(posix_only_modules(), test)
    scan.visit(ast.parse(source))
    return scan.problems


def test_the_portability_scan_finds_what_windows_lacks() -> None:
    bad = (
        "import fcntl\nfrom resource import getrlimit\nimport os\nos.getuid()\nos.kill(1, 0)\n"
        "loop.add_signal_handler(2, f)\npytest.importorskip('termios')\n"
    )
    assert len(portability_problems(bad, test=False)) == len(portability_problems(bad, test=True)) == 6
    good = (
        "try:\n    import resource\nexcept ImportError:\n    resource = None\n"
        "try:\n    loop.add_signal_handler(2, f)\nexcept NotImplementedError:\n    signal.signal(2, g)\n"
    )
    assert portability_problems(good, test=False) == []
    assert len(portability_problems(good, test=True)) == 1, "a test skips, naming the platform"
    skip = "uvloop = pytest.importorskip('uvloop', reason='no Windows build')\n"
    assert portability_problems(skip, test=True) == []
    assert "uvloop" in posix_only_modules() and "fcntl" in posix_only_modules()


def test_no_posix_only_module_or_call_without_a_fallback_or_a_skip() -> None:
    """helpers and bench run on Windows (a fallback for each POSIX-only module); a test needing one skips, saying
    which platform lacks it. tests/test_portability.py runs the same code under a simulated non-POSIX interpreter."""
    found = []
    for folder in ("helpers", "bench", "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == SIMULATION:
                continue
            problems = portability_problems(path.read_text(encoding="utf-8"), test=folder == "tests")
            found += [f"{path.relative_to(ROOT)} {problem}" for problem in problems]
    assert not found, "POSIX-only code (see tests/nonposix/sitecustomize.py):\n" + "\n".join(found)
