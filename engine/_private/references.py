"""``{{node.field.sub.0}}`` references: parsing once at compile time, resolving per run.

A config value is compiled into a small tree of resolvers so that the hot path only
looks values up. Substitution is one pass over the *configured* text: a value that is
inserted is never scanned again, so user data such as ``{{ ''.__class__ }}`` stays text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import ReferenceResolutionError

REFERENCE_PATTERN = re.compile(r"\{\{\s*([A-Za-z_][\w\-]*(?:\.[\w\-]+)*)\s*\}\}")
_EXACT_PATTERN = re.compile(r"^\{\{\s*([A-Za-z_][\w\-]*(?:\.[\w\-]+)*)\s*\}\}$")

INPUTS_ROOT = "inputs"


class Missing:
    """Marker for "this node produced no output" (skipped or failed) in lenient lookups."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING = Missing()


@dataclass(frozen=True, slots=True)
class Reference:
    """One parsed reference. ``root`` is a node id, ``inputs`` or a variable name."""

    text: str
    root: str
    path: tuple[str, ...]
    field: str

    @property
    def expression(self) -> str:
        return ".".join((self.root, *self.path))


class Scope:
    """What references can see during a run: node outputs, run inputs, variables."""

    __slots__ = ("inputs", "node_ids", "outputs", "variables")

    def __init__(
        self,
        *,
        node_ids: frozenset[str] | set[str],
        inputs: dict[str, Any],
        variables: Mapping[str, Any],
    ) -> None:
        self.node_ids = node_ids
        self.outputs: dict[str, Any] = {}
        self.inputs = inputs
        self.variables = variables


def parse_reference(expression: str, *, field: str) -> Reference:
    root, *path = expression.split(".")
    return Reference(text="{{" + expression + "}}", root=root, path=tuple(path), field=field)


def iter_references(value: Any, field: str = "") -> Iterator[Reference]:
    """Every reference inside a config value, with the dotted field it sits in."""
    if isinstance(value, str):
        if "{{" in value:
            for match in REFERENCE_PATTERN.finditer(value):
                yield parse_reference(match.group(1), field=field)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from iter_references(item, f"{field}.{key}" if field else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from iter_references(item, f"{field}.{index}" if field else str(index))


def reference_locations(value: Any, loc: tuple[str | int, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The locations (pydantic ``loc`` tuples) of every value that holds a reference."""
    if isinstance(value, str):
        if REFERENCE_PATTERN.search(value):
            yield loc
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from reference_locations(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from reference_locations(item, (*loc, index))


def lookup(ref: Reference, scope: Scope, *, node_id: str, lenient: bool = False) -> Any:
    """The value a reference points at, or a :class:`ReferenceResolutionError`."""
    if ref.root in scope.node_ids:
        if ref.root not in scope.outputs:
            if lenient:
                return MISSING
            raise ReferenceResolutionError(
                f"'{ref.text}' refers to node '{ref.root}', which produced no output "
                "(it was skipped or failed)",
                node_id=node_id,
                field=ref.field,
                path=ref.expression,
            )
        value = scope.outputs[ref.root]
        path = ref.path
        # The seed writes {{node.output.field}}; "output" is a namespace, not a key.
        if path and path[0] == "output" and not (isinstance(value, dict) and "output" in value):
            path = path[1:]
    elif ref.root == INPUTS_ROOT:
        value, path = scope.inputs, ref.path
    elif ref.root in scope.variables:
        value, path = scope.variables[ref.root], ref.path
    else:
        raise ReferenceResolutionError(
            f"'{ref.text}' names no node, input or variable",
            node_id=node_id,
            field=ref.field,
            path=ref.expression,
        )
    walked = [ref.root]
    for part in path:
        value = _step(value, part)
        walked.append(part)
        if value is MISSING:
            if lenient:
                return MISSING
            raise ReferenceResolutionError(
                f"'{ref.text}': no value at '{'.'.join(walked)}'",
                node_id=node_id,
                field=ref.field,
                path=ref.expression,
            )
    return value


def _step(value: Any, part: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(part, MISSING)
    if isinstance(value, list | tuple):
        try:
            return value[int(part)]
        except (ValueError, IndexError):
            return MISSING
    return MISSING


def as_text(value: Any) -> str:
    """How a value reads when inserted into text: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


Resolver = Callable[[Scope, str, bool], Any]


def compile_value(value: Any, field: str = "") -> tuple[Resolver | None, list[Reference]]:
    """Compile a config value into a resolver; ``None`` when it holds no reference."""
    if isinstance(value, str):
        if "{{" not in value:
            return None, []
        exact = _EXACT_PATTERN.match(value)
        if exact:
            ref = parse_reference(exact.group(1), field=field)

            def resolve_exact(scope: Scope, node_id: str, lenient: bool) -> Any:
                return lookup(ref, scope, node_id=node_id, lenient=lenient)

            return resolve_exact, [ref]
        refs = list(iter_references(value, field))
        if not refs:
            return None, []
        pieces: list[str | Reference] = []
        cursor = 0
        for match in REFERENCE_PATTERN.finditer(value):
            pieces.append(value[cursor : match.start()])
            pieces.append(parse_reference(match.group(1), field=field))
            cursor = match.end()
        pieces.append(value[cursor:])

        def resolve_text(scope: Scope, node_id: str, lenient: bool) -> Any:
            out = []
            for piece in pieces:
                if isinstance(piece, str):
                    out.append(piece)
                else:
                    found = lookup(piece, scope, node_id=node_id, lenient=lenient)
                    out.append("" if found is MISSING else as_text(found))
            return "".join(out)

        return resolve_text, refs
    if isinstance(value, dict):
        parts = {}
        refs_all: list[Reference] = []
        for key, item in value.items():
            resolver, refs = compile_value(item, f"{field}.{key}" if field else str(key))
            if resolver is not None:
                parts[key] = resolver
                refs_all.extend(refs)
        if not parts:
            return None, []

        def resolve_dict(scope: Scope, node_id: str, lenient: bool) -> Any:
            resolved = dict(value)
            for key, resolver in parts.items():
                resolved[key] = resolver(scope, node_id, lenient)
            return resolved

        return resolve_dict, refs_all
    if isinstance(value, list):
        item_parts: dict[int, Resolver] = {}
        refs_all = []
        for index, item in enumerate(value):
            resolver, refs = compile_value(item, f"{field}.{index}" if field else str(index))
            if resolver is not None:
                item_parts[index] = resolver
                refs_all.extend(refs)
        if not item_parts:
            return None, []

        def resolve_list(scope: Scope, node_id: str, lenient: bool) -> Any:
            resolved = list(value)
            for index, resolver in item_parts.items():
                resolved[index] = resolver(scope, node_id, lenient)
            return resolved

        return resolve_list, refs_all
    return None, []
