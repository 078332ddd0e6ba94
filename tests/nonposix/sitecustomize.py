"""A simulated non-POSIX interpreter: with this folder on ``PYTHONPATH``, Python lacks here what it lacks on Windows.

``tests/test_portability.py`` runs the replay, record, Files, Batch and ``setup()`` tests under it, so that Linux CI
catches code that would not run on Windows. Python imports this module by itself at startup (``site``), in the
test run and in every server process the tests start.

- The modules of :data:`POSIX_ONLY` cannot be imported by the workbook's own code (``helpers``, ``tests``,
  ``bench``, or a script or ``python -c`` code): :class:`ModuleNotFoundError`, as on Windows. Other libraries still
  import them: on Windows they take their own Windows code paths (chosen by ``sys.platform``, which stays
  ``linux`` here), which this interpreter cannot take.
- :data:`NOT_INSTALLED` (uvloop, which has no Windows build) cannot be imported by anyone.
- ``os.getuid`` is gone for the workbook's own code, likewise (``hasattr(os, "getuid")`` is false there).
- An event loop's ``add_signal_handler`` raises :class:`NotImplementedError`, as Windows' Proactor loop's does.
"""

from __future__ import annotations

import asyncio
import builtins
import importlib
import os
import sys
from pathlib import Path
from types import FrameType
from typing import Any

POSIX_ONLY = ("fcntl", "resource", "pwd", "grp", "termios", "uvloop")
"""Modules Windows' Python lacks (or, for uvloop, that does not install there)."""
NOT_INSTALLED = ("uvloop",)
"""Of those, the ones no library can import on Windows either."""
OURS = ("helpers", "tests", "bench")
"""The workbook's own packages."""
ROOT = Path(__file__).resolve().parents[2]
SIMULATED = "simulated non-POSIX interpreter, tests/nonposix"
"""What every refusal says, so that a failure under the simulation says where it comes from."""

_import = builtins.__import__
_import_module = importlib.import_module
_getuid = os.getuid


def _ours(importer: dict[str, Any] | None) -> bool:
    """Whether the module whose globals are ``importer`` is the workbook's own code."""
    if not importer:
        return False
    spec = importer.get("__spec__")
    name = spec.name if spec is not None else importer.get("__name__", "")
    if name.partition(".")[0] in OURS:
        return True
    if name != "__main__":
        return False
    file = importer.get("__file__")  # none for `python -c` code
    return file is None or (ROOT in Path(file).resolve().parents and "site-packages" not in Path(file).parts)


def _requester(frame: FrameType | None) -> dict[str, Any] | None:
    """The globals of the code an import made in ``frame`` is for: ``pytest.importorskip`` imports for its caller."""
    while frame is not None and frame.f_globals.get("__name__") == "_pytest.outcomes":
        frame = frame.f_back
    return None if frame is None else frame.f_globals


def _refuse(name: str, frame: FrameType | None) -> None:
    """Raise :class:`ModuleNotFoundError` if the import of ``name`` made in ``frame`` must fail here."""
    top = name.partition(".")[0]
    if top in NOT_INSTALLED or (top in POSIX_ONLY and _ours(_requester(frame))):
        raise ModuleNotFoundError(f"No module named {name!r} ({SIMULATED})", name=name)


def _simulated_import(
    name: str,
    globals: dict[str, Any] | None = None,
    locals: dict[str, Any] | None = None,
    fromlist: tuple[str, ...] = (),
    level: int = 0,
) -> Any:
    if level == 0:
        _refuse(name, sys._getframe().f_back)
    return _import(name, globals, locals, fromlist, level)


def _simulated_import_module(name: str, package: str | None = None) -> Any:
    if not name.startswith("."):
        _refuse(name, sys._getframe().f_back)
    return _import_module(name, package)


def _os_getattr(name: str) -> Any:
    """``os``'s module ``__getattr__`` (PEP 562), asked for what ``os`` lacks: the real ``getuid`` for code that is
    not the workbook's."""
    caller = sys._getframe().f_back
    if name == "getuid" and not _ours(caller.f_globals if caller is not None else None):
        return _getuid
    raise AttributeError(f"module 'os' has no attribute {name!r} ({SIMULATED})")


def _no_signal_handlers(self: asyncio.AbstractEventLoop, sig: int, *args: Any) -> None:
    raise NotImplementedError(f"no signal handlers on this event loop ({SIMULATED})")


builtins.__import__ = _simulated_import
importlib.import_module = _simulated_import_module
del os.getuid
os.__getattr__ = _os_getattr  # type: ignore[attr-defined]
asyncio.SelectorEventLoop.add_signal_handler = _no_signal_handlers  # type: ignore[method-assign]
asyncio.SelectorEventLoop.remove_signal_handler = _no_signal_handlers  # type: ignore[method-assign,assignment]
