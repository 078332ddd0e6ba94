"""Reading a learner's code without running it: the names a function refers to, the blank, the globals it uses."""

from __future__ import annotations

import inspect
from typing import Any

from .outcomes import PLACEHOLDER_NAME, ____


def code_names(code: Any) -> set[str]:
    """Every global or attribute name a code object (and the functions and comprehensions inside it) refers to."""
    names = set(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            names |= code_names(const)
    return names


def uses_placeholder(value: Any) -> bool:
    """True when ``value`` is :data:`____`, or a function whose code still refers to ``____``."""
    code = getattr(value, "__code__", None)
    return value is ____ or (code is not None and PLACEHOLDER_NAME in code_names(code))


def global_values(fn: Any) -> dict[str, Any]:
    """The module globals that ``fn``'s code (and the functions and comprehensions inside it) refers to, by name:
    e.g. a ``semaphore`` made outside the function, or the helper function it calls. Empty for a non-function."""
    code, namespace = getattr(fn, "__code__", None), getattr(fn, "__globals__", {})
    if code is None:
        return {}
    return {name: namespace[name] for name in code_names(code) if name in namespace}
