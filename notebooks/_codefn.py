"""A plain Python function as a code node's source, and back.

``af.code(clean, rows=data.rows)`` ships ``clean``'s source to the code node's separate
process with a ``main`` that calls it; a result that is not a dict is returned as
``{"result": value}``. The function must stand alone there: it may not use names of
the notebook (imports go inside it; values come in as arguments).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

from notebooks._handles import AuthoringError

__all__ = ["function_form", "source_of"]

_WRAPPER = (
    "\n\ndef main(**inputs):\n"
    "    result = {name}(**inputs)\n"
    '    return result if isinstance(result, dict) else {{"result": result}}\n'
)


def source_of(fn: Callable[..., Any]) -> str:
    """The code node source for a function (its own text, plus the ``main`` wrapper)."""
    if not inspect.isfunction(fn):
        raise AuthoringError(
            f"af.code() takes a function (def ...) or its source text, not {type(fn).__name__}"
        )
    name = fn.__name__
    if name == "<lambda>":
        raise AuthoringError("af.code() needs a def function: a lambda has no source of its own")
    try:
        text = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as exc:
        raise AuthoringError(f"the source of '{name}' cannot be read: {exc}") from None
    if not text.endswith("\n"):
        text += "\n"
    tree = ast.parse(text)
    definition = tree.body[0] if tree.body else None
    if not isinstance(definition, ast.FunctionDef):
        raise AuthoringError(f"'{name}' must be a plain def function (not async)")
    if definition.decorator_list:
        raise AuthoringError(f"'{name}': a code node function cannot have decorators")
    outside = _outside_names(fn)
    if outside:
        raise AuthoringError(
            f"'{name}' uses {', '.join(repr(n) for n in outside)} from the notebook; a code "
            "node runs in its own process: import modules inside the function and pass "
            "values as inputs (af.code(fn, x=...))"
        )
    return text if name == "main" else text + _WRAPPER.format(name=name)


def _outside_names(fn: Callable[..., Any]) -> list[str]:
    try:
        found = inspect.getclosurevars(fn)
    except (TypeError, ValueError):
        return []
    return sorted({*found.nonlocals, *found.globals})


def function_form(code: str) -> tuple[str, str] | None:
    """(function name, function text) when ``code`` is what :func:`source_of` makes."""
    if not code.endswith("\n"):
        return None
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    body = tree.body
    if len(body) == 1 and isinstance(body[0], ast.FunctionDef) and body[0].name == "main":
        return ("main", code) if _only_the_function(code, body[0]) else None
    if len(body) == 2 and all(isinstance(item, ast.FunctionDef) for item in body):
        first = body[0]
        assert isinstance(first, ast.FunctionDef)
        name = first.name
        wrapper = _WRAPPER.format(name=name)
        if name != "main" and code.endswith(wrapper):
            text = code[: -len(wrapper)]
            if _only_the_function(text, first):
                return name, text
    return None


def _only_the_function(text: str, definition: ast.FunctionDef) -> bool:
    # inspect.getsource gives the lines from 'def' to the last statement: anything
    # around them (comments, blank lines, decorators) would not come back.
    lines = text.splitlines()
    return (
        not definition.decorator_list
        and definition.lineno == 1
        and definition.end_lineno == len(lines)
        and not lines[-1].lstrip().startswith("#")
    )
