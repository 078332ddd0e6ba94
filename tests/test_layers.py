"""The package's shape: ``import helpers`` stays light, and ``helpers.replay`` imports only downwards, with no cycle.

The layers are the subpackages of ``helpers/replay/``, in the order :data:`helpers.replay.LAYERS` gives (lowest
first; ``docs/server.md`` shows the tree): a module may import its own folder's modules (without a cycle) and lower
folders' ones, never a higher folder's. ``helpers/replay/__main__.py``, the command line, stands above every folder.
Imports are read from the source (every ``import`` statement, local ones inside functions too), so a cycle hidden by a
local import counts.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from helpers.replay import LAYERS

ROOT = Path(__file__).resolve().parent.parent / "helpers"
SERVER = "helpers.replay"
COMMAND_LINE = f"{SERVER}.__main__"

LIGHT = {
    "helpers.replay",
    "helpers.replay.wire",
    "helpers.replay.wire.defaults",
    "helpers.replay.wire.framing",
    "helpers.replay.cassettes",
    "helpers.replay.cassettes.cassette",
}
"""The only parts of the server a notebook's first cell may load: constants, framing and the cassette format; no
server, no authoring."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """The ``helpers`` modules ``path`` imports (``from . import x`` names module ``x`` when it is one)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("helpers"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if not target.startswith("helpers"):
                continue
            submodules = {f"{target}.{alias.name}" for alias in node.names} & MODULES.keys()
            # ``from . import models`` imports the submodule; the package itself is already being imported.
            found.update(submodules if len(submodules) == len(node.names) else {target, *submodules})
    return {m for m in found if m in MODULES and m != name}


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}
GRAPH = {name: imports(path) for name, path in MODULES.items()}


def rank(module: str) -> int | None:
    """The layer of a server module (its folder's index in ``LAYERS``; the command line is above them all), ``None``
    for a module outside the server or in no layer's folder."""
    if module == COMMAND_LINE:
        return len(LAYERS)
    parts = module.split(".")
    if parts[:2] != SERVER.split(".") or len(parts) < 3 or parts[2] not in LAYERS:
        return None
    return LAYERS.index(parts[2])


def layer_name(r: int) -> str:
    return LAYERS[r] if r < len(LAYERS) else "command line"


def upward_imports(module: str, graph: Mapping[str, set[str]]) -> list[str]:
    """The imports of ``module`` that run up a layer, each as ``"name (layer)"``."""
    own = rank(module)
    assert own is not None
    return [f"{m} ({layer_name(r)})" for m in sorted(graph[module]) if (r := rank(m)) is not None and r > own]


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (its modules in order, the first repeated at the end), or ``None``."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        for target in sorted(graph[module]):
            if cycle := visit(target, [*path, module]):
                return cycle
        done.add(module)
        return None

    return next((cycle for module in sorted(graph) if (cycle := visit(module, []))), None)


def test_every_server_module_is_in_a_layer_folder() -> None:
    server = [m for m in MODULES if m.startswith(f"{SERVER}.")]
    unplaced = [m for m in server if rank(m) is None]
    assert not unplaced, f"move {unplaced} into a layer's folder, or add its folder to helpers.replay.LAYERS"
    folders = {p.name for p in (ROOT / "replay").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(LAYERS), f"LAYERS names {sorted(set(LAYERS) - folders)}, folders {sorted(folders)}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if rank(m) is not None))
def test_imports_point_down(module: str) -> None:
    upward = upward_imports(module, GRAPH)
    own = rank(module)
    assert own is not None
    assert not upward, f"{module} ({layer_name(own)}) imports upwards: {', '.join(upward)}"


def test_no_import_cycle() -> None:
    cycle = find_cycle(GRAPH)
    assert cycle is None, f"import cycle: {' -> '.join(cycle or [])}"


def test_the_checks_catch_an_upward_import_and_a_cycle() -> None:
    # Checks that never fail would pass any tree: feed them a graph with an upward import and a cycle.
    low, high = "helpers.replay.wire.framing", "helpers.replay.app.replay_server"
    upward = {**GRAPH, low: GRAPH[low] | {high}}
    assert upward_imports(low, upward) == [f"{high} (app)"]
    assert upward_imports("helpers.replay.app.authoring", {**GRAPH, "helpers.replay.app.authoring": {COMMAND_LINE}})
    assert upward_imports(high, GRAPH) == []
    assert find_cycle(upward) is not None, "the replay server imports the wire format: low -> high -> ... -> low"
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_walk_sees_imports() -> None:
    # A walk that found nothing would pass everything: check it against imports known to exist.
    assert {"helpers.replay.pipeline.api_request", "helpers.replay.cassettes.store"} <= GRAPH[
        "helpers.replay.app.replay_server"
    ]
    assert "helpers.replay.wire.framing" in GRAPH["helpers.replay.cassettes.cassette"]
    assert "helpers.replay.pipeline.error_middleware" in GRAPH["helpers.replay.app.replay_server"]  # from .. import x


def test_import_helpers_loads_neither_the_server_nor_the_authoring_tools() -> None:
    code = "import sys, helpers; print(sorted(m for m in sys.modules if m.startswith('helpers.replay')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(ast.literal_eval(out))
    assert loaded <= LIGHT, f"import helpers loaded {sorted(loaded - LIGHT)}"
    assert "helpers.replay.wire.framing" in loaded, "the check must see the modules it does load"
