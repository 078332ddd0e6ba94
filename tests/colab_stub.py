"""A stand-in for Google Colab's ``google.colab`` package, for tests that run a lesson's cells as Colab would.

:func:`write_stub` writes it into a folder to put on ``PYTHONPATH``: ``google/colab/userdata.py`` answers ``get``
as Colab's does (the secret's value, or ``SecretNotFoundError`` / ``NotebookAccessError``), from a ``secrets.json``
beside it. Colab's kernel imports ``google.colab`` before any cell runs; a test does that first, which is what
``helpers.setup`` recognises Colab by.
"""

from __future__ import annotations

import json
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


def files_holding(root: Path, text: str, *, outside: Path) -> list[Path]:
    """Every file under ``root``, except those under ``outside`` (the stand-in's own folder), containing ``text``."""
    return [
        path
        for path in root.rglob("*")
        if path.is_file() and outside not in path.parents and text.encode() in path.read_bytes()
    ]
