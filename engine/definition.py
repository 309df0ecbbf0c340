"""The canonical workflow definition (seed §6.2) as pydantic models.

The JSON is camelCase exactly as the seed writes it; the Python attributes are
snake_case. Every model keeps fields it does not know (React Flow adds ``width``,
``selected``...), and dumping with :meth:`WorkflowDefinition.to_json` writes back only
what was given, so a seed-shaped document round-trips to equivalent JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from pydantic.alias_generators import to_camel

from engine.errors import DefinitionError, ValidationIssue, WorkflowValidationError

__all__ = [
    "Edge",
    "ErrorHandling",
    "Node",
    "NodeData",
    "Port",
    "PortType",
    "Position",
    "RetryPolicy",
    "WorkflowDefinition",
    "WorkflowSettings",
    "load_definition",
]

PortType = Literal["string", "number", "integer", "boolean", "object", "array", "any"]
ErrorHandling = Literal["stop", "continue", "fallback"]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
    )


class Position(_Model):
    x: float = 0.0
    y: float = 0.0


class Port(_Model):
    id: str = Field(min_length=1)
    name: str | None = None
    type: PortType = "any"
    required: bool | None = None


class NodeData(_Model):
    label: str = ""
    description: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    inputs: list[Port] | None = None
    outputs: list[Port] | None = None


class Node(_Model):
    id: str = Field(min_length=1)
    type: str = Field(min_length=1)
    position: Position = Field(default_factory=Position)
    data: NodeData = Field(default_factory=NodeData)

    @property
    def config(self) -> dict[str, Any]:
        return self.data.config


class Edge(_Model):
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    source_handle: str | None = None
    target: str = Field(min_length=1)
    target_handle: str | None = None
    label: str | None = None
    data: dict[str, Any] | None = None

    @property
    def source_port(self) -> str:
        """The output handle; React Flow writes ``null`` for a node's default handle."""
        return self.source_handle or "out"

    @property
    def target_port(self) -> str:
        return self.target_handle or "in"


class RetryPolicy(_Model):
    max_retries: int = Field(default=0, ge=0, le=100)
    backoff_ms: int = Field(default=1000, ge=0)
    max_backoff_ms: int = Field(default=30_000, ge=0)


class WorkflowSettings(_Model):
    timeout: float | None = Field(default=None, gt=0, description="Run timeout in seconds.")
    retry_policy: RetryPolicy = Field(default_factory=RetryPolicy)
    error_handling: ErrorHandling = "stop"
    max_concurrency: int = Field(default=32, ge=1, le=100_000)
    allow_private_network: bool = False
    cache: bool = Field(default=False, description="Cache every node's outputs (see node cache).")
    routing: Literal["local", "cloud", "hybrid"] | None = Field(
        default=None, description="LLM routing (seed mode C); None means cloud."
    )
    local_model: str | None = Field(
        default=None, description="hybrid: the local model to try first."
    )
    fallback_model: str | None = Field(default=None, description="hybrid: the cloud fallback.")
    fallback_base_url: str | None = None
    variables: dict[str, Any] = Field(default_factory=dict)


class WorkflowDefinition(_Model):
    version: str = "1.0.0"
    nodes: list[Node] = Field(default_factory=list)
    edges: list[Edge] = Field(default_factory=list)
    settings: WorkflowSettings = Field(default_factory=WorkflowSettings)

    def to_dict(self) -> dict[str, Any]:
        """The canonical camelCase document, holding only what was set."""
        return self.model_dump(by_alias=True, exclude_unset=True, mode="json")

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def node(self, node_id: str) -> Node:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)


def load_definition(source: str | bytes | Path | dict[str, Any]) -> WorkflowDefinition:
    """Read a workflow from a JSON string, a file path or a parsed dict.

    Raises :class:`DefinitionError` for text that is not a JSON object (with line and
    column), and :class:`WorkflowValidationError` listing every shape problem at once.
    """
    origin: str | None = None
    if isinstance(source, Path):
        origin = str(source)
        try:
            source = source.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DefinitionError("file not found", source=origin) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DefinitionError(f"cannot read file: {exc}", source=origin) from None
    if isinstance(source, str | bytes):
        try:
            document = json.loads(source)
        except json.JSONDecodeError as exc:
            raise DefinitionError(
                f"invalid JSON: {exc.msg}", line=exc.lineno, column=exc.colno, source=origin
            ) from None
    else:
        document = source
    if not isinstance(document, dict):
        raise DefinitionError(
            f"a workflow must be a JSON object, got {_json_type(document)}", source=origin
        )
    try:
        return WorkflowDefinition.model_validate(document)
    except PydanticValidationError as exc:
        raise WorkflowValidationError(_shape_issues(document, exc)) from None


def _json_type(value: object) -> str:
    names = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _shape_issues(document: dict[str, Any], exc: PydanticValidationError) -> list[ValidationIssue]:
    issues = []
    for error in exc.errors():
        loc = error["loc"]
        node_id = edge_id = None
        if len(loc) >= 2 and loc[0] in ("nodes", "edges") and isinstance(loc[1], int):
            items = document.get(str(loc[0]))
            item = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
            item_id = item.get("id") if isinstance(item, dict) else None
            label = str(item_id) if isinstance(item_id, str) and item_id else f"#{loc[1]}"
            if loc[0] == "nodes":
                node_id = label
            else:
                edge_id = label
            field = ".".join(str(part) for part in loc[2:]) or None
        else:
            field = ".".join(str(part) for part in loc) or None
        issues.append(
            ValidationIssue(
                kind="schema",
                message=error["msg"],
                node_id=node_id,
                edge_id=edge_id,
                field=field,
            )
        )
    return issues
