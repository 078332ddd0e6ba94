"""Reading a learner's code without running it: the names a function refers to, the blank, the globals it uses.

A learner's answer may be a plain function, a ``functools.partial`` of one, a bound method, a decorated function or
an object with ``__call__``: :func:`function_of` finds the function behind each, so no check reads ``fn.__code__``
blindly (an honest ``functools.partial`` must not crash a check).
"""

from __future__ import annotations

import dis
import functools
import inspect
import types
from typing import Any

from .outcomes import PLACEHOLDER_NAME, ____


def code_names(code: Any) -> set[str]:
    """Every global or attribute name a code object (and the functions and comprehensions inside it) refers to."""
    names = set(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            names |= code_names(const)
    return names


def function_of(fn: Any) -> types.FunctionType | None:
    """The Python function behind ``fn``: itself, or what a ``functools.partial``, a bound method, a decorator's
    ``__wrapped__`` or a callable object's ``__call__`` runs; ``None`` when there is none (a builtin, a lambda-less
    C callable, a value)."""
    for _ in range(10):  # wrappers of wrappers, never a cycle
        if isinstance(fn, types.FunctionType):
            return fn
        if isinstance(fn, functools.partial):
            fn = fn.func
        elif isinstance(fn, types.MethodType):
            fn = fn.__func__
        elif hasattr(fn, "__wrapped__"):
            fn = fn.__wrapped__
        elif not isinstance(fn, type) and isinstance(call := vars(type(fn)).get("__call__"), types.FunctionType):
            fn = call
        else:
            return None
    return None


def function_names(fn: Any) -> set[str]:
    """Every global or attribute name the function behind ``fn`` (:func:`function_of`) refers to; empty for none."""
    function = function_of(fn)
    return set() if function is None else code_names(function.__code__)


def uses_placeholder(value: Any) -> bool:
    """True when ``value`` is :data:`____`, or a function whose code still refers to ``____``."""
    return value is ____ or PLACEHOLDER_NAME in function_names(value)


def global_values(fn: Any) -> dict[str, Any]:
    """The module globals that ``fn``'s code (and the functions and comprehensions inside it) refers to, by name:
    e.g. a ``semaphore`` made outside the function, or the helper function it calls. Empty for a non-function."""
    function = function_of(fn)
    if function is None:
        return {}
    namespace = function.__globals__
    return {name: namespace[name] for name in code_names(function.__code__) if name in namespace}


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

    function = function_of(fn)
    if function is not None:
        collect(function.__code__)
    for value in global_values(fn).values():
        if isinstance(value, (str, tuple, frozenset, set, list)):
            for item in [value] if isinstance(value, str) else value:
                collect(item)
        elif isinstance(value, dict):
            for key in value:
                collect(key)
    return strings


_LOCAL_LOADS = ("LOAD_FAST", "LOAD_DEREF", "LOAD_CLOSURE")
"""The opcodes (and their variants, e.g. ``LOAD_FAST_CHECK``) that read a local or a closure's variable."""


def reads_argument(fn: Any, name: str) -> bool:
    """Whether the function behind ``fn`` (:func:`function_of`), or a function or comprehension inside it, ever reads
    its argument ``name``: a check calls the learner's function with arguments of its own choosing, and an argument
    never read (``asyncio.Semaphore(2)`` in place of ``limit``) is ignored, whatever else the code does. ``True``
    when there is no Python function to read (nothing to accuse)."""
    function = function_of(fn)
    if function is None:
        return True

    def reads(code: Any) -> bool:
        for instruction in dis.get_instructions(code):
            value = instruction.argval
            if instruction.opname.startswith(_LOCAL_LOADS) and (
                value == name or (isinstance(value, tuple) and name in value)
            ):
                return True
        return any(reads(const) for const in code.co_consts if inspect.iscode(const))

    return reads(function.__code__)
