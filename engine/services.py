"""What a run may borrow from its host: a node cache, stored workflows and secrets.

The engine defines these small protocols and never imports who implements them: the
store provides DuckDB-backed ones, tests and notebooks may pass their own.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from engine.definition import WorkflowDefinition

__all__ = ["NodeCache", "RunServices", "SecretSource", "WorkflowSource", "cache_key"]


class NodeCache(Protocol):
    """Outputs of earlier node runs, by cache key."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, node_type: str, outputs: dict[str, Any]) -> None: ...


class WorkflowSource(Protocol):
    """Stored workflows, for the ``subworkflow`` node."""

    def load_workflow(self, workflow_id: str, version: int | None = None) -> WorkflowDefinition:
        """The definition; raises ``KeyError`` naming the id when there is none."""
        ...


class SecretSource(Protocol):
    """Secrets such as provider API keys, by name (``OPENAI_API_KEY``)."""

    def get_secret(self, name: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class RunServices:
    cache: NodeCache | None = None
    workflows: WorkflowSource | None = None
    secrets: SecretSource | None = None


def cache_key(node_type: str, version: str, config: Any, inputs: Any) -> str:
    """A stable hash of what determines a node's outputs."""
    document = json.dumps(
        {"type": node_type, "version": version, "config": config, "inputs": inputs},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(document.encode()).hexdigest()
