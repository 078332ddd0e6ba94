"""The package's shape: ``import helpers`` stays light, and ``helpers.replay`` imports only downwards, with no cycle.

:data:`LAYERS` is the layer list of ``docs/server.md`` (how to add an endpoint), lowest first. Imports are read from
the source (every ``import`` statement, local ones inside functions too), so a cycle hidden by a local import counts.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "helpers"

LAYERS: list[tuple[str, set[str]]] = [
    ("wire", {"helpers.replay.defaults", "helpers.replay.wire", "helpers.replay.keys"}),
    ("cassette", {"helpers.cassette", "helpers.replay.store", "helpers.replay.match"}),
    (
        "pipeline",
        {
            "helpers.replay.pipeline",
            "helpers.replay.limits",
            "helpers.replay.control",
            "helpers.replay.runner",
            "helpers.replay.errors",
            "helpers.replay.tokens",
            "helpers.replay.guard",
        },
    ),
    ("backends", {"helpers.replay.playback", "helpers.replay.recorder"}),
    (
        "services",
        {
            "helpers.replay.generate",
            "helpers.replay.files",
            "helpers.replay.batches",
            "helpers.replay.openai_compat",
            "helpers.replay.interactions",
        },
    ),
    (
        "app",
        {
            "helpers.replay.server",
            "helpers.replay.__main__",
            "helpers.replay.author",
            "helpers.replay.synth",
            "helpers.replay.synth_openai",
            "helpers.replay.synth_interactions",
        },
    ),
]
"""Each layer's modules; a module may import its own layer's (without a cycle) and lower ones'."""

LIGHT = {"helpers.replay", "helpers.replay.defaults", "helpers.replay.wire"}
"""The only parts of the server a notebook's first cell may load: constants and framing, no server, no authoring."""


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
    return next((i for i, (_, members) in enumerate(LAYERS) if module in members), None)


def test_every_server_module_has_a_layer() -> None:
    unplaced = [m for m in MODULES if m.startswith("helpers.replay.") and rank(m) is None]
    assert not unplaced, f"add {unplaced} to a layer in LAYERS and docs/server.md"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if rank(m) is not None))
def test_imports_point_down(module: str) -> None:
    own = rank(module)
    assert own is not None
    upward = [f"{m} ({LAYERS[r][0]})" for m in GRAPH[module] if (r := rank(m)) is not None and r > own]
    assert not upward, f"{module} ({LAYERS[own][0]}) imports upwards: {', '.join(upward)}"


def test_no_import_cycle() -> None:
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            pytest.fail(f"import cycle: {' -> '.join(cycle)}")
        if module in done:
            return
        for target in sorted(GRAPH[module]):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(GRAPH):
        visit(module, [])


def test_the_walk_sees_imports() -> None:
    # A walk that found nothing would pass everything: check it against imports known to exist.
    assert {"helpers.replay.pipeline", "helpers.replay.store"} <= GRAPH["helpers.replay.server"]
    assert "helpers.replay.wire" in GRAPH["helpers.cassette"]


def test_import_helpers_loads_neither_the_server_nor_the_authoring_tools() -> None:
    code = "import sys, helpers; print(sorted(m for m in sys.modules if m.startswith('helpers.replay')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(ast.literal_eval(out))
    assert loaded <= LIGHT, f"import helpers loaded {sorted(loaded - LIGHT)}"
    assert "helpers.replay.wire" in loaded, "the check must see the modules it does load"
