"""Run inputs checked against the ``start`` node's declared inputs."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from engine.errors import InputValidationError


class InputSpec(Protocol):
    name: str
    type: str
    required: bool
    default: Any


_CHECKS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "string": (str, "a string"),
    "number": ((int, float), "a number"),
    "integer": (int, "an integer"),
    "boolean": (bool, "true or false"),
    "object": (dict, "an object"),
    "array": (list, "an array"),
}


def check_value(spec: InputSpec, value: Any, *, node_id: str | None) -> Any:
    if spec.type == "any" or value is None:
        return value
    expected, wording = _CHECKS[spec.type]
    is_bool = isinstance(value, bool)
    if not isinstance(value, expected) or (is_bool and spec.type in ("number", "integer")):
        raise InputValidationError(
            f"input '{spec.name}' must be {wording}, got {type(value).__name__} {value!r:.60}",
            node_id=node_id,
            field=spec.name,
        )
    return value


def prepare_inputs(
    specs: Sequence[InputSpec] | None, given: Mapping[str, Any], *, node_id: str | None
) -> dict[str, Any]:
    """Defaults filled in, required ones present, types checked; undeclared ones kept."""
    prepared = dict(given)
    for spec in specs or ():
        if spec.name not in prepared or prepared[spec.name] is None:
            if spec.default is not None:
                prepared[spec.name] = copy.deepcopy(spec.default)
            elif spec.required:
                raise InputValidationError(
                    f"missing required input '{spec.name}' ({spec.type})",
                    node_id=node_id,
                    field=spec.name,
                )
            else:
                prepared[spec.name] = None
                continue
        prepared[spec.name] = check_value(spec, prepared[spec.name], node_id=node_id)
    return prepared


def coerce_text(spec_type: str | None, text: str) -> Any:
    """A command-line ``k=v`` value: kept as text for strings, else read as JSON."""
    if spec_type == "string":
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        if spec_type in (None, "any"):
            return text
        raise InputValidationError(
            f"value {text!r} is not valid for type {spec_type}", field=None
        ) from None
