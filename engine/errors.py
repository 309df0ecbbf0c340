"""The one error tree of the engine.

Every error raised by the engine derives from :class:`AgentFlowError` and carries
data, not only a message, so that the CLI, the store and the studio can point at
the offending place:

- :class:`AgentFlowError` — base class; ``node_id`` / ``field`` where known.
  - :class:`DefinitionError` — the document is not JSON or not shaped like a workflow.
  - :class:`WorkflowValidationError` — one or more :class:`ValidationIssue` (all at once).
  - :class:`InputValidationError` — run inputs do not match the ``start`` node.
  - :class:`NodeError` — a node failed while running (``retryable`` says if a retry may help).
    - :class:`ReferenceResolutionError` — a ``{{node.path}}`` points at nothing at run time.
    - :class:`NodeTimeoutError` — a node ran past its ``timeoutMs``.
    - :class:`NetworkPolicyError` — an HTTP target was refused by the private-network guard.
    - :class:`CodeExecutionError` — the code node's sandboxed process failed or hit a limit.
  - :class:`RunTimeoutError` — the whole run ran past ``settings.timeout``.
  - :class:`RunCancelledError` — the run was cancelled.
  - :class:`UnknownNodeTypeError` — no executor is registered for a node type.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AgentFlowError",
    "CodeExecutionError",
    "DefinitionError",
    "InputValidationError",
    "NetworkPolicyError",
    "NodeError",
    "NodeTimeoutError",
    "ReferenceResolutionError",
    "RunCancelledError",
    "RunTimeoutError",
    "UnknownNodeTypeError",
    "ValidationIssue",
    "WorkflowValidationError",
]


class AgentFlowError(Exception):
    """Base of every AgentFlow error. ``node_id`` and ``field`` say where, when known."""

    def __init__(self, message: str, *, node_id: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.node_id = node_id
        self.field = field

    def __str__(self) -> str:
        where = []
        if self.node_id is not None:
            where.append(f"node '{self.node_id}'")
        if self.field:
            where.append(f"field '{self.field}'")
        return f"{', '.join(where)}: {self.message}" if where else self.message

    def to_dict(self) -> dict[str, object]:
        return {
            "type": type(self).__name__,
            "message": self.message,
            "nodeId": self.node_id,
            "field": self.field,
        }


class DefinitionError(AgentFlowError):
    """The document could not be read as a workflow (bad JSON, not an object, wrong shape)."""

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        source: str | None = None,
    ):
        super().__init__(message)
        self.line = line
        self.column = column
        self.source = source

    def __str__(self) -> str:
        prefix = self.source or "<document>"
        if self.line is not None:
            prefix += f":{self.line}:{self.column}"
        return f"{prefix}: {self.message}"


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One problem found in a workflow definition."""

    kind: str
    message: str
    node_id: str | None = None
    edge_id: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = []
        if self.node_id is not None:
            where.append(f"node '{self.node_id}'")
        if self.edge_id is not None:
            where.append(f"edge '{self.edge_id}'")
        if self.field:
            where.append(f"field '{self.field}'")
        location = ", ".join(where) or "workflow"
        return f"[{self.kind}] {location}: {self.message}"

    def to_dict(self) -> dict[str, str | None]:
        return {
            "kind": self.kind,
            "message": self.message,
            "nodeId": self.node_id,
            "edgeId": self.edge_id,
            "field": self.field,
        }


class WorkflowValidationError(AgentFlowError):
    """A definition has one or more problems; ``issues`` holds all of them."""

    def __init__(self, issues: list[ValidationIssue]):
        self.issues = list(issues)
        first = self.issues[0] if self.issues else None
        summary = f"{len(self.issues)} validation error(s)"
        if first is not None:
            summary += f"; first: {first}"
        super().__init__(
            summary,
            node_id=first.node_id if first else None,
            field=first.field if first else None,
        )

    def __str__(self) -> str:
        return "\n".join(str(issue) for issue in self.issues)


class InputValidationError(AgentFlowError):
    """The run's inputs do not match what the ``start`` node declares."""


class NodeError(AgentFlowError):
    """A node failed while running. ``retryable`` is true for transient faults."""

    def __init__(
        self,
        message: str,
        *,
        node_id: str | None = None,
        field: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ):
        super().__init__(message, node_id=node_id, field=field)
        self.retryable = retryable
        self.retry_after = retry_after


class ReferenceResolutionError(NodeError):
    """A reference such as ``{{fetch.body.items.0}}`` points at a missing value."""

    def __init__(
        self, message: str, *, node_id: str | None = None, field: str | None = None, path: str
    ):
        super().__init__(message, node_id=node_id, field=field)
        self.path = path

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "path": self.path}


class NodeTimeoutError(NodeError):
    """A node ran past its time limit. Retryable."""

    def __init__(self, message: str, *, node_id: str | None = None, timeout_s: float):
        super().__init__(message, node_id=node_id, retryable=True)
        self.timeout_s = timeout_s


class NetworkPolicyError(NodeError):
    """An HTTP target resolves to a private, loopback, link-local or metadata address."""

    def __init__(
        self,
        message: str,
        *,
        node_id: str | None = None,
        field: str | None = "url",
        host: str,
        address: str | None = None,
    ):
        super().__init__(message, node_id=node_id, field=field)
        self.host = host
        self.address = address

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "host": self.host, "address": self.address}


class CodeExecutionError(NodeError):
    """The code node's sandboxed process raised, timed out or exceeded a limit."""

    def __init__(
        self,
        message: str,
        *,
        node_id: str | None = None,
        field: str | None = "code",
        limit: str | None = None,
        traceback: str | None = None,
    ):
        super().__init__(message, node_id=node_id, field=field)
        self.limit = limit
        self.traceback = traceback

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "limit": self.limit, "traceback": self.traceback}


class RunTimeoutError(AgentFlowError):
    """The whole run ran past ``settings.timeout`` seconds."""


class RunCancelledError(AgentFlowError):
    """The run was cancelled by its caller."""


class UnknownNodeTypeError(AgentFlowError):
    """No executor is registered for this node type (built in or via ``agentflow.nodes``)."""

    def __init__(self, node_type: str, *, node_id: str | None = None):
        super().__init__(f"unknown node type '{node_type}'", node_id=node_id, field="type")
        self.node_type = node_type
