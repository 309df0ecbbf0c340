"""The symbolic values of the authoring API: node handles, references, inputs, conditions.

A helper such as ``af.llm(...)`` returns a :class:`NodeHandle`. Reading an attribute of
a handle gives a :class:`Ref` (``outline.text``), which formats as ``{{outline.text}}``;
that is how an f-string prompt becomes a reference and an edge. A reference is the same
symbol in a live notebook and at compile time, so a node's config never depends on
when it was built. Every public attribute name is an output field: the objects' own
state lives in underscore names, and ``af.value(...)`` reads the live value.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, get_args

from engine.nodes.condition import Operator

if TYPE_CHECKING:
    from notebooks._context import Builder

__all__ = [
    "UNSET",
    "AuthoringError",
    "CaseGroup",
    "EdgeSpec",
    "InputSpec",
    "LiveState",
    "NodeHandle",
    "NodeSpec",
    "Ref",
    "When",
    "to_plain",
]


class _Unset:
    """An argument that was not given (``None`` is a value a config may hold)."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()


class AuthoringError(Exception):
    """A helper was used in a way that cannot become a workflow definition."""


@dataclass(slots=True)
class LiveState:
    """What running a node in a notebook session produced."""

    status: str
    outputs: Any = None
    error: dict[str, Any] | None = None
    duration_ms: float | None = None
    cached: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    tokens: int = 0
    execution_id: str | None = None
    skip_reason: str | None = None
    #: Said once per session, e.g. that the store is in use by another process.
    notice: str | None = None


@dataclass(slots=True)
class EdgeSpec:
    """An explicit incoming edge (``after=``): from ``source``'s ``handle``."""

    source: NodeHandle
    handle: str = "out"
    label: str | None = None
    data: dict[str, Any] | None = None
    target_handle: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class NodeSpec:
    """One node as the notebook declared it; config values are plain JSON already."""

    id: str
    type: str
    config: dict[str, Any]
    label: str | None = None
    description: str | None = None
    after: list[EdgeSpec] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    #: (file name, line) of the call that made the node.
    where: tuple[str, int] | None = None
    #: The notebook file, when the caller's globals say (``__file__``).
    notebook_file: str | None = None
    #: Values of a start node's inputs for notebook runs (defaults and examples).
    live_inputs: dict[str, Any] | None = None


def _computation(what: str, subject: object) -> AuthoringError:
    return AuthoringError(
        f"{what} on {subject!s} is a computation on a node output, which is only known when "
        "the workflow runs: pass the reference to a node as is (f-strings are fine), compute "
        "in a code node (af.code), or read the live value with af.value(...) in a plain cell"
    )


class Ref:
    """A reference to (a field of) a node's outputs: ``{{node.field.sub}}``."""

    __slots__ = ("_node", "_path")

    def __init__(self, node: NodeHandle, path: tuple[str, ...]) -> None:
        self._node = node
        self._path = path

    def _reference(self) -> str:
        return "{{" + ".".join((self._node._spec.id, *self._path)) + "}}"

    def __getattr__(self, name: str) -> Ref:
        if name.startswith("_"):
            raise AttributeError(name)
        return Ref(self._node, (*self._path, name))

    def __getitem__(self, key: str | int) -> Ref:
        if isinstance(key, bool) or not isinstance(key, str | int):
            raise AuthoringError(f"{self!s}[{key!r}]: index with a field name or a list position")
        return Ref(self._node, (*self._path, str(key)))

    def __str__(self) -> str:
        return self._reference()

    def __format__(self, spec: str) -> str:
        if spec:
            raise _computation(f"the format ':{spec}'", self)
        return self._reference()

    def __repr__(self) -> str:
        return f"<af.Ref {self._reference()}>"

    def __add__(self, other: object) -> str:
        if isinstance(other, str):
            return self._reference() + other
        raise _computation("'+'", self)

    def __radd__(self, other: object) -> str:
        if isinstance(other, str):
            return other + self._reference()
        raise _computation("'+'", self)

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise _computation("a call", self)

    def __bool__(self) -> bool:
        raise _computation("a truth test", self)

    def __iter__(self) -> Iterator[Any]:
        raise _computation("iteration", self)

    def __len__(self) -> int:
        raise _computation("len()", self)

    def __contains__(self, item: object) -> bool:
        raise _computation("'in'", self)

    def __lt__(self, other: object) -> bool:
        raise _computation("'<'", self)

    def __le__(self, other: object) -> bool:
        raise _computation("'<='", self)

    def __gt__(self, other: object) -> bool:
        raise _computation("'>'", self)

    def __ge__(self, other: object) -> bool:
        raise _computation("'>='", self)

    def _display_(self) -> Any:
        from notebooks._display import ref_view

        return ref_view(self)


class NodeHandle:
    """A node defined in a notebook; ``handle.field`` references one of its outputs."""

    __slots__ = ("__weakref__", "_live", "_owner", "_spec")

    def __init__(self, spec: NodeSpec, owner: Builder) -> None:
        self._spec = spec
        self._owner = owner
        self._live: LiveState | None = None

    def __getattr__(self, name: str) -> Ref:
        if name.startswith("_"):
            raise AttributeError(name)
        return Ref(self, (name,))

    def __getitem__(self, key: str | int) -> Ref:
        return Ref(self, ()).__getitem__(key)

    def __str__(self) -> str:
        return "{{" + self._spec.id + "}}"

    def __format__(self, spec: str) -> str:
        if spec:
            raise _computation(f"the format ':{spec}'", self)
        return str(self)

    def __repr__(self) -> str:
        status = f", {self._live.status}" if self._live is not None else ""
        return f"<af node '{self._spec.id}' ({self._spec.type}{status})>"

    def __iter__(self) -> Iterator[Any]:
        raise _computation("iteration", self)

    def _display_(self) -> Any:
        from notebooks._display import node_view

        return node_view(self)


_PORT_TYPES = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    dict: "object",
    list: "array",
    object: "any",
}
PORT_TYPE_NAMES = frozenset({"string", "number", "integer", "boolean", "object", "array", "any"})


def port_type(value: Any, *, where: str) -> str:
    """``str`` -> ``"string"``...; port type names are accepted as they are."""
    if isinstance(value, str) and value in PORT_TYPE_NAMES:
        return value
    if isinstance(value, type) and value in _PORT_TYPES:
        return _PORT_TYPES[value]
    raise AuthoringError(
        f"{where}: {value!r} is not an input type; use str, int, float, bool, dict, list, "
        "object, or one of " + ", ".join(sorted(PORT_TYPE_NAMES))
    )


@dataclass(slots=True)
class InputSpec:
    """A start node input declared with ``af.input(...)``."""

    type: Any = UNSET
    default: Any = UNSET
    required: Any = UNSET
    description: Any = UNSET
    #: A value for notebook runs only; not part of the definition.
    example: Any = UNSET

    def declaration(self, name: str, owner: Builder) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name}
        if self.type is not UNSET:
            out["type"] = port_type(self.type, where=f"input '{name}'")
        if self.required is not UNSET:
            out["required"] = bool(self.required)
        if self.default is not UNSET:
            out["default"] = to_plain(self.default, owner, f"inputs.{name}.default")
        if self.description is not UNSET:
            out["description"] = self.description
        return out

    def live_value(self) -> Any:
        if self.example is not UNSET:
            return self.example
        return self.default


# The condition node's own operator list, so the two can never drift apart.
OPERATORS: tuple[str, ...] = get_args(Operator)


@dataclass(slots=True)
class When:
    """One comparison of a condition case: ``af.when(x.n, ">", 10)``."""

    left: Any
    operator: str
    right: Any = UNSET

    def comparison(self, owner: Builder, where: str) -> dict[str, Any]:
        out = {"left": to_plain(self.left, owner, f"{where}.left"), "operator": self.operator}
        if self.right is not UNSET:
            out["right"] = to_plain(self.right, owner, f"{where}.right")
        return out


@dataclass(slots=True)
class CaseGroup:
    """Comparisons joined by ``af.all_of`` (logic "and") or ``af.any_of`` (logic "or")."""

    logic: str
    conditions: tuple[When, ...]


def to_plain(value: Any, owner: Builder, where: str) -> Any:
    """A value as JSON data for a config, with handles and references as ``{{...}}`` text."""
    if isinstance(value, Ref | NodeHandle):
        node = value._node if isinstance(value, Ref) else value
        if node._owner is not owner:
            raise AuthoringError(
                f"{where}: {value!s} belongs to {node._owner.describe()}, not to "
                f"{owner.describe()}; a loop body reads outer values through context={{...}} "
                "and its parameters"
            )
        return str(value)
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AuthoringError(f"{where}: {value} cannot be written as JSON")
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise AuthoringError(f"{where}: keys must be strings, got {key!r}")
            out[key] = to_plain(item, owner, f"{where}.{key}" if where else key)
        return out
    if isinstance(value, list | tuple):
        return [to_plain(item, owner, f"{where}.{index}") for index, item in enumerate(value)]
    if isinstance(value, When | CaseGroup | InputSpec | EdgeSpec):
        helper = {
            When: "af.condition(cases=...)",
            CaseGroup: "af.condition(cases=...)",
            InputSpec: "af.start(...)",
            EdgeSpec: "after=...",
        }[type(value)]
        raise AuthoringError(f"{where}: {type(value).__name__} belongs in {helper}")
    raise AuthoringError(
        f"{where}: a {type(value).__name__} cannot go into a workflow definition; use JSON "
        "values (str, int, float, bool, None, list, dict) and node outputs"
    )
