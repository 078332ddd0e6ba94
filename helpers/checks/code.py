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


def code_strings(fn: Any) -> set[str]:
    """Every string a function's code holds: its constants (inside tuples and frozensets too, as Python folds
    ``x in ('a', 'b')``), those of the functions and comprehensions inside it, and the strings of the module globals
    it refers to (a ``STATES = {...}`` made outside it), one level into a collection. Empty for a non-function."""
    strings: set[str] = set()

    def collect(value: Any) -> None:
        if isinstance(value, str):
            strings.add(value)
        elif isinstance(value, (tuple, frozenset)):
            for item in value:
                collect(item)
        elif inspect.iscode(value):
            for const in value.co_consts:
                collect(const)

    code = getattr(fn, "__code__", None)
    if code is not None:
        collect(code)
    for value in global_values(fn).values():
        if isinstance(value, (str, tuple, frozenset, set, list)):
            for item in [value] if isinstance(value, str) else value:
                collect(item)
        elif isinstance(value, dict):
            for key in value:
                collect(key)
    return strings
