"""The workbook resolved against Google Colab's published runtime (``tests/data/colab/``), with uv.

How a Colab install works (``docs/colab.md``): the runtime has the packages of ``pip-freeze.txt``, and the learner
runs ``pip install --no-deps -r requirements-colab.txt``, which installs exactly the pins listed and changes nothing
else. So afterwards the runtime holds Colab's packages with the listed pins added or replacing them, and that set must
be one consistent resolution for Colab's Python (3.13, Linux x86_64, wheels only) in which Colab's kernel packages,
``numpy``, ``matplotlib`` and ``pillow`` are exactly as Colab has them. :func:`problems` checks that (what
``tests/test_colab_install.py`` asserts); :func:`environment` gives the complete pin set of such a runtime plus the
test tools (what ``.ci/colab`` installs to run lessons 00-05 under nbval).

Command line, from the repository's root::

    python -m tests.colab_env check                 # the problems of requirements-colab.txt, one per line
    python -m tests.colab_env requirements          # rewrite its second part from the first (after a pin change)
    python -m tests.colab_env environment FILE      # write the Colab-shaped environment's pins to FILE
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from uv import find_uv_bin

ROOT = Path(__file__).resolve().parent.parent
FREEZE = ROOT / "tests" / "data" / "colab" / "pip-freeze.txt"
REQUIREMENTS = ROOT / "requirements-colab.txt"
WORKBOOK_REQUIREMENTS = ROOT / "requirements.txt"

KERNEL = (
    "ipykernel",
    "ipython",
    "jupyter-client",
    "jupyter-core",
    "jupyter-server",
    "notebook",
    "pyzmq",
    "tornado",
    "traitlets",
)
"""The packages Colab's own kernel and its page depend on, as Colab has them (``google-colab`` pins several)."""
KEPT = (*KERNEL, "numpy", "matplotlib", "pillow")
"""Never listed in ``requirements-colab.txt``: the lessons run on Colab's own (``numba`` there needs numpy<2.3)."""
FROM_COLAB = ("aiohttp", "filelock", "nbclient", "nbformat", "packaging", "platformdirs", "psutil", "tqdm", "uvloop")
"""What the lessons and ``helpers`` import that Colab already has at versions they can use: kept as Colab has them,
unless ``requirements-colab.txt`` lists one (and a problem if Colab lacks one it does not list)."""
TEST_TOOLS = ("nbval", "pytest", "pytest-asyncio", "pytest-timeout", "pytest-xdist")
"""What the Colab-shaped environment adds to run the lessons under nbval, at the workbook's pins."""
COLAB_TOOLS = ("pip",)
"""Colab's own, at its versions, which the environment needs too: ``pip`` for docs/colab.md's ``%pip`` cell."""
TARGET = ("--python-platform", "x86_64-manylinux_2_28", "--python-version", "3.13", "--only-binary", ":all:")
"""Colab's interpreter and machine (``os-info.txt``), wheels only: nothing is compiled in a learner's runtime."""
GENERATED = "# What those need that Colab lacks or has at a version they cannot use (tests/colab_env.py writes"
"""The comment that opens the second part of ``requirements-colab.txt``, which ``requirements`` rewrites."""


class ResolutionError(Exception):
    """uv found no resolution; the message is uv's, saying which requirements conflict."""


def normalize(name: str) -> str:
    """A distribution name in its canonical form (PEP 503): ``Jupyter_Client`` -> ``jupyter-client``."""
    return re.sub(r"[-_.]+", "-", name).lower()


PIN = re.compile(r"^(([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;#]+))", re.MULTILINE)
"""A ``name[extras]==version`` line; environment markers and comments after it are ignored."""


def pins_in(text: str) -> dict[str, str]:
    """The pinned versions of a requirements file's text, by canonical name (``-e .``, ``name @ URL`` and comment
    lines have none)."""
    return {normalize(m.group(2)): m.group(4) for m in PIN.finditer(text)}


def listed_pins(path: Path = REQUIREMENTS) -> tuple[dict[str, str], dict[str, str]]:
    """``requirements-colab.txt``'s two parts: what the lessons import, and (after :data:`GENERATED`) what those need
    that Colab lacks or has too old; each ``{name: version}``."""
    head, _, tail = path.read_text(encoding="utf-8").partition(GENERATED)
    return pins_in(head), pins_in(tail)


def listed_requirements(listed: Mapping[str, str]) -> list[str]:
    """``listed`` as requirement strings, with the extras ``requirements-colab.txt`` names (``litellm[proxy]``)."""
    extras = {normalize(m.group(2)): m.group(3) or "" for m in PIN.finditer(REQUIREMENTS.read_text(encoding="utf-8"))}
    return [f"{name}{extras.get(name, '')}=={version}" for name, version in listed.items()]


def overrides() -> list[str]:
    """The workbook's ``[tool.uv] override-dependencies`` (what a dependency declares but no lesson needs), which the
    Colab install honours too: ``pip install --no-deps`` installs only what is listed."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return list(project.get("tool", {}).get("uv", {}).get("override-dependencies", []))


@dataclass(frozen=True)
class Resolution:
    """A resolved set: ``pins`` by canonical name, and ``via``, what required each (canonical names; empty for a
    package asked for directly)."""

    pins: dict[str, str]
    via: dict[str, set[str]]


def compile_with_uv(
    requirements: Iterable[str], constraints: Iterable[str] = (), preferences: Iterable[str] = ()
) -> Resolution:
    """``uv pip compile`` of ``requirements`` for Colab's :data:`TARGET`, under ``constraints`` and the workbook's
    :func:`overrides`, preferring the versions in ``preferences`` where they fit (uv prefers what its output file
    already pins). Reads package indexes over the network unless uv's cache answers.

    Raises:
        ResolutionError: no resolution exists; uv's explanation is the message.
    """
    with tempfile.TemporaryDirectory() as folder:
        files = {name: Path(folder) / f"{name}.txt" for name in ("in", "constraints", "overrides", "out")}
        files["in"].write_text("\n".join(requirements) + "\n", encoding="utf-8")
        files["constraints"].write_text("\n".join(constraints) + "\n", encoding="utf-8")
        files["overrides"].write_text("\n".join(overrides()) + "\n", encoding="utf-8")
        files["out"].write_text("\n".join(preferences) + "\n", encoding="utf-8")
        command = [
            find_uv_bin(),
            "pip",
            "compile",
            "--quiet",
            "--no-config",
            "--no-python-downloads",
            "--no-header",
            *TARGET,
            str(files["in"]),
            "--constraints",
            str(files["constraints"]),
            "--overrides",
            str(files["overrides"]),
            "--output-file",
            str(files["out"]),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            raise ResolutionError(done.stderr.strip())
        return parse_compiled(files["out"].read_text(encoding="utf-8"))


def parse_compiled(text: str) -> Resolution:
    """Read ``uv pip compile``'s output: ``name==version`` lines, each followed by its ``# via`` annotation."""
    pins: dict[str, str] = {}
    via: dict[str, set[str]] = {}
    current = ""
    for line in text.splitlines():
        pin = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(\S+)", line)
        if pin:
            current = normalize(pin.group(1))
            pins[current], via[current] = pin.group(3), set()
            continue
        parent = re.match(r"^\s+#\s+(?:via\s+)?([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*$", line)
        if parent and current and parent.group(1) != "via":
            via[current].add(normalize(parent.group(1)))
    return Resolution(pins, via)


def colab_pins() -> dict[str, str]:
    """Colab's preinstalled packages, ``{name: version}`` (those installed from a URL or a file have no version and
    are left out)."""
    return pins_in(FREEZE.read_text(encoding="utf-8"))


def imported_modules() -> set[str]:
    """The top-level modules ``helpers``, the lessons' code cells and their apps (``notebooks/web``) import, less the
    standard library's and the workbook's own (``helpers``, ``web``)."""
    sources = [path.read_text(encoding="utf-8") for path in (ROOT / "helpers").rglob("*.py")]
    sources += [path.read_text(encoding="utf-8") for path in (ROOT / "notebooks" / "web").glob("*.py")]
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "code":  # IPython's % and ! lines are not Python
                lines = "".join(cell["source"]).splitlines()
                sources.append("\n".join(line for line in lines if not line.lstrip().startswith(("%", "!"))))
    found: set[str] = set()
    for source in sources:
        tree = compile(source, "<source>", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"helpers", "web", "__future__"}


def workbook_pins() -> dict[str, str]:
    """The workbook's own pins (``requirements.txt``), ``{name: version}``."""
    return pins_in(WORKBOOK_REQUIREMENTS.read_text(encoding="utf-8"))


def kernel_only(resolution: Resolution, colab: Mapping[str, str]) -> set[str]:
    """The resolved packages Colab's list lacks that only its kernel packages need (IPython 7.34 declares ``jedi``,
    which Colab leaves out and IPython imports only if present): Colab's business, not ``requirements-colab.txt``'s."""
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, parents in resolution.via.items():
            if name not in colab and name not in found and parents and parents <= set(KERNEL) | found:
                found.add(name)
                changed = True
    return found


def resolve_listed(listed: Mapping[str, str], extra: Iterable[str] = ()) -> Resolution:
    """Resolve a Colab runtime after ``pip install --no-deps`` of ``listed``: the listed pins and the :data:`KEPT`
    packages are required (plus ``extra`` requirement strings), and every package Colab has is held at Colab's version
    unless listed.

    Raises:
        ResolutionError: no such runtime exists (uv's message says why).
    """
    held = [f"{name}=={version}" for name, version in colab_pins().items() if name not in listed]
    return compile_with_uv([*listed_requirements(listed), *KEPT, *FROM_COLAB, *extra], held)


def problems(listed: Mapping[str, str], extra: Iterable[str] = ()) -> list[str]:
    """What is wrong with installing ``listed`` (``{name: version}``) with ``--no-deps`` on Colab's runtime: one
    sentence per problem, empty when there is none.

    A problem is a listed kernel package, ``numpy``, ``matplotlib`` or ``pillow``; no consistent resolution (uv's
    explanation); a kept package that does not come out at Colab's version; or a package the lessons need that
    neither Colab has nor the file lists, or that Colab has at another version without the file listing it (so
    ``--no-deps`` would leave it out or wrong).
    """
    colab = colab_pins()
    found = [
        f"requirements-colab.txt lists {name}, which Colab keeps at {colab.get(name)}: remove it (the lessons run on "
        "Colab's own)"
        for name in KEPT
        if name in listed
    ]
    try:
        resolution = resolve_listed(listed, extra)
    except ResolutionError as e:
        return [*found, f"no Colab runtime holds these pins together; uv says: {e}"]
    for name in KEPT:
        if resolution.pins.get(name) != colab.get(name):
            found.append(f"{name} resolves to {resolution.pins.get(name)}, not Colab's {colab.get(name)}")
    exempt = kernel_only(resolution, colab)
    for name, version in sorted(resolution.pins.items()):
        if name in listed or name in exempt or colab.get(name) == version:
            continue
        needs = ", ".join(sorted(resolution.via[name])) or "the requirements"
        have = f"Colab has {colab[name]}" if name in colab else "Colab does not have it"
        found.append(
            f"{name}=={version} is needed (by {needs}); {have} and requirements-colab.txt does not list it: add "
            f"{name}=={version} (python -m tests.colab_env requirements)"
        )
    return found


def generate(head: Mapping[str, str]) -> dict[str, str]:
    """The second part of ``requirements-colab.txt`` for its first part ``head``: what ``head`` needs that Colab lacks
    or has at another version, preferring Colab's versions, then the workbook's pins (``requirements.txt``).

    Raises:
        ResolutionError: ``head`` cannot be installed beside Colab's kept packages at all.
    """
    colab = colab_pins()
    preferred = {**workbook_pins(), **colab}
    kept = [f"{name}=={colab[name]}" for name in KEPT]
    preferences = [f"{name}=={version}" for name, version in preferred.items() if name not in head]
    resolution = compile_with_uv([*listed_requirements(head), *KEPT, *FROM_COLAB], kept, preferences)
    exempt = kernel_only(resolution, colab)
    return {
        name: version
        for name, version in sorted(resolution.pins.items())
        if name not in head and name not in KEPT and name not in exempt and colab.get(name) != version
    }


def rewrite_requirements(path: Path = REQUIREMENTS) -> None:
    """Rewrite the part of ``requirements-colab.txt`` after :data:`GENERATED` with :func:`generate` of the part
    before it; the comment line itself and the trailing ``-e .`` are kept."""
    text = path.read_text(encoding="utf-8")
    head_text, marker, tail = text.partition(GENERATED)
    if not marker:
        raise SystemExit(f"{path} has no line starting {GENERATED!r}: restore it, then run this again")
    comment = tail.splitlines()[0]
    head, _ = listed_pins(path)
    pins = generate(head)
    body = "".join(f"{name}=={version}\n" for name, version in pins.items())
    path.write_text(f"{head_text}{marker}{comment}\n{body}-e .\n", encoding="utf-8")


def environment() -> dict[str, str]:
    """The pins of a Colab runtime after the workbook's install, with the test tools added: Colab's versions of the
    kept packages, :data:`COLAB_TOOLS` and everything else it has, ``requirements-colab.txt``'s pins, the test tools
    at the workbook's pins (``requirements.txt``), and whatever those tools need.

    Raises:
        ResolutionError: no such environment exists.
    """
    head, tail = listed_pins()
    listed = {**head, **tail}
    workbook = workbook_pins()
    tools = [f"{name}=={workbook[name]}" for name in TEST_TOOLS]
    held = [f"{n}=={v}" for n, v in colab_pins().items() if n not in listed and n not in TEST_TOOLS]
    requirements = [*listed_requirements(listed), *KEPT, *FROM_COLAB, *COLAB_TOOLS, *tools]
    return compile_with_uv(requirements, held).pins


def main(argv: list[str]) -> int:
    """The command line of this module's docstring; returns the exit status."""
    command = argv[0] if argv else ""
    if command == "check":
        head, tail = listed_pins()
        found = problems({**head, **tail})
        print("\n".join(found) or "requirements-colab.txt installs on Colab's runtime, keeping its kernel and numpy")
        return 1 if found else 0
    if command == "requirements":
        rewrite_requirements()
        return 0
    if command == "environment" and len(argv) == 2:
        pins = environment()
        Path(argv[1]).write_text("".join(f"{n}=={v}\n" for n, v in sorted(pins.items())), encoding="utf-8")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
