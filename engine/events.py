"""The typed execution events: one stream per run, consumed by the CLI, store and studio.

Events are slotted dataclasses (cheap on the hot path); :meth:`Event.to_dict` gives the
camelCase JSON form with a ``type`` field.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

__all__ = [
    "Event",
    "LogEvent",
    "NodeDelta",
    "NodeFailed",
    "NodeRetrying",
    "NodeSkipped",
    "NodeStarted",
    "NodeSucceeded",
    "RunFinished",
    "RunStarted",
]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@dataclass(slots=True, kw_only=True)
class Event:
    type: ClassVar[str] = "event"
    execution_id: str
    ts: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for item in fields(self):
            out[_camel(item.name)] = getattr(self, item.name)
        return out


@dataclass(slots=True, kw_only=True)
class RunStarted(Event):
    type: ClassVar[str] = "run_started"
    workflow_id: str | None
    inputs: dict[str, Any]
    node_ids: list[str]
    node_types: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class NodeStarted(Event):
    type: ClassVar[str] = "node_started"
    node_id: str
    node_type: str
    attempt: int
    inputs: dict[str, Any] | None = None


@dataclass(slots=True, kw_only=True)
class NodeDelta(Event):
    type: ClassVar[str] = "node_delta"
    node_id: str
    delta: str


@dataclass(slots=True, kw_only=True)
class NodeRetrying(Event):
    type: ClassVar[str] = "node_retrying"
    node_id: str
    attempt: int
    delay_ms: float
    error: dict[str, Any]
    inputs: Any = None


@dataclass(slots=True, kw_only=True)
class NodeSucceeded(Event):
    type: ClassVar[str] = "node_succeeded"
    node_id: str
    outputs: Any
    attempts: int
    duration_ms: float
    metadata: dict[str, Any] = field(default_factory=dict)
    used_fallback: bool = False
    cached: bool = False
    reused: bool = False
    inputs: Any = None


@dataclass(slots=True, kw_only=True)
class NodeFailed(Event):
    type: ClassVar[str] = "node_failed"
    node_id: str
    error: dict[str, Any]
    attempts: int
    duration_ms: float
    status: str = "failed"
    handled: bool = False
    inputs: Any = None


@dataclass(slots=True, kw_only=True)
class NodeSkipped(Event):
    type: ClassVar[str] = "node_skipped"
    node_id: str
    reason: str


@dataclass(slots=True, kw_only=True)
class LogEvent(Event):
    type: ClassVar[str] = "log"
    level: str
    message: str
    node_id: str | None = None


@dataclass(slots=True, kw_only=True)
class RunFinished(Event):
    type: ClassVar[str] = "run_finished"
    status: str
    outputs: dict[str, Any]
    error: dict[str, Any] | None
    duration_ms: float
    token_usage: dict[str, int]
