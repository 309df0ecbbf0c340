"""What a run leaves behind: per-node states and the run's result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["NodeState", "NodeStatus", "RunResult", "RunStatus"]

NodeStatus = Literal[
    "pending", "running", "succeeded", "failed", "skipped", "cancelled", "interrupted"
]
RunStatus = Literal["pending", "running", "succeeded", "failed", "cancelled", "interrupted"]


@dataclass(slots=True)
class NodeState:
    """One node's fate in a run."""

    node_id: str
    node_type: str
    status: str = "pending"
    attempts: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    duration_ms: float | None = None
    inputs: Any = None
    outputs: Any = None
    error: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    tokens: int = 0
    used_fallback: bool = False
    skip_reason: str | None = None
    reused: bool = False
    cached: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "attempts": self.attempts,
            "durationMs": None if self.duration_ms is None else round(self.duration_ms, 3),
            "error": self.error,
        }


@dataclass(slots=True)
class RunResult:
    execution_id: str
    workflow_id: str | None
    status: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    error: dict[str, Any] | None
    nodes: dict[str, NodeState]
    token_usage: dict[str, int]
    started_at: float
    ended_at: float
    duration_ms: float

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    def to_dict(self) -> dict[str, Any]:
        """The ``agentflow run --json`` document."""
        return {
            "executionId": self.execution_id,
            "status": self.status,
            "outputs": self.outputs,
            "error": self.error,
            "nodes": {node_id: state.summary() for node_id, state in self.nodes.items()},
        }
