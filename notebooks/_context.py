"""Where helper calls go: a builder per workflow being declared, and the caller's name.

Helpers add nodes to the innermost active :class:`Builder` of the current thread: a
compile run (``agentflow compile``), a loop body being traced, or else the thread's
live notebook session (which also runs each node). marimo runs every cell of a session
on that session's thread, so a thread is a session.

A node's id is the variable its call is assigned to. The helper finds it in the
caller's bytecode: the instruction after the call is the store into that name
(``STORE_NAME`` in a cell, ``STORE_FAST`` in a loop body function).
"""

from __future__ import annotations

import dis
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import CodeType, FrameType
from typing import Any

from notebooks._handles import AuthoringError, NodeHandle, NodeSpec

__all__ = ["Builder", "Caller", "building", "caller", "current"]

_STORES = frozenset({"STORE_NAME", "STORE_FAST", "STORE_GLOBAL", "STORE_DEREF"})


class Builder:
    """Collects the nodes and settings of one workflow."""

    kind = "workflow"

    def __init__(self) -> None:
        self.nodes: dict[str, NodeHandle] = {}
        self.settings: dict[str, Any] | None = None
        self.version: str | None = None
        #: (where, message) of problems found while collecting (duplicate ids...).
        self.issues: list[tuple[tuple[str, int] | None, str]] = []

    def describe(self) -> str:
        return "this workflow"

    def add(self, spec: NodeSpec) -> NodeHandle:
        handle = NodeHandle(spec, self)
        previous = self.nodes.get(spec.id)
        if previous is not None:
            first = previous._spec.where
            where = f" (first at line {first[1]})" if first else ""
            self.issues.append((spec.where, f"node id '{spec.id}' is defined twice{where}"))
            del self.nodes[spec.id]
        self.nodes[spec.id] = handle
        return handle

    def set_settings(self, settings: dict[str, Any], version: str | None) -> None:
        self.settings = settings
        if version is not None:
            self.version = version

    def specs(self) -> list[NodeSpec]:
        return [handle._spec for handle in self.nodes.values()]


class _Local(threading.local):
    def __init__(self) -> None:
        self.stack: list[Builder] = []
        self.session: Builder | None = None


_local = _Local()


def current() -> Builder:
    """The builder helper calls go to on this thread."""
    if _local.stack:
        return _local.stack[-1]
    if _local.session is None:
        from notebooks._live import LiveSession

        _local.session = LiveSession()
    return _local.session


def reset_session() -> None:
    """Forget this thread's live session (its nodes, settings and caches)."""
    _local.session = None


@contextmanager
def building(builder: Builder) -> Iterator[Builder]:
    _local.stack.append(builder)
    try:
        yield builder
    finally:
        _local.stack.pop()


class Caller:
    """The user's frame that called a helper: its line, file and assigned name."""

    __slots__ = ("file", "line", "name", "notebook_file")

    def __init__(self, frame: FrameType | None) -> None:
        self.file = frame.f_code.co_filename if frame else "<unknown>"
        self.line = frame.f_lineno if frame and frame.f_lineno else 0
        self.name = _assigned_name(frame.f_code, frame.f_lasti) if frame else None
        notebook_file = frame.f_globals.get("__file__") if frame else None
        self.notebook_file = notebook_file if isinstance(notebook_file, str) else None

    @property
    def where(self) -> tuple[str, int]:
        return (self.file, self.line)


def caller() -> Caller:
    """The first frame outside this package's private modules."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and _is_ours(frame):
        frame = frame.f_back
    return Caller(frame)


def _is_ours(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__")
    return isinstance(name, str) and (name == "notebooks" or name.startswith("notebooks._"))


def _assigned_name(code: CodeType, lasti: int) -> str | None:
    """The name the value of the call at ``lasti`` is stored into, if it is stored at once."""
    # The running CALL (or, on 3.11, its last inline cache) sits at lasti; the store is the
    # first real instruction after it.
    for instruction in dis.get_instructions(code):
        if instruction.offset > lasti:
            if instruction.opname in _STORES and isinstance(instruction.argval, str):
                return instruction.argval
            return None
    return None


def require_id(explicit: Any, found: Caller, helper: str) -> str:
    if explicit is not None:
        if not isinstance(explicit, str) or not explicit:
            raise AuthoringError(f"af.{helper}(id=...): the id must be a non-empty string")
        return explicit
    if found.name is None:
        raise AuthoringError(
            f"af.{helper}(...) must be assigned to a variable (name = af.{helper}(...)): the "
            "variable names the node; nodes made in loops or stored in containers are not "
            "supported (use af.loop, or one variable per node)"
        )
    return found.name
