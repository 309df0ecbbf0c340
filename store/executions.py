"""Executions (seed §6.1) and their node runs: queries, deletion, crash recovery."""

from __future__ import annotations

import builtins
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from store.db import Database
from store.errors import ConflictError, NotFoundError

__all__ = ["ExecutionRecord", "ExecutionRepository", "NodeRunRecord"]

LIVE_STATUSES = ("pending", "running")
RESUMABLE_STATUSES = ("interrupted", "failed", "cancelled")


@dataclass(slots=True)
class NodeRunRecord:
    node_id: str
    node_type: str
    status: str
    attempt: int
    started_at: datetime | None
    ended_at: datetime | None
    duration_ms: float | None
    inputs: Any
    outputs: Any
    error: Any
    tokens: int
    cost: float
    metadata: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodeId": self.node_id,
            "nodeType": self.node_type,
            "status": self.status,
            "attempt": self.attempt,
            "startedAt": _iso(self.started_at),
            "endedAt": _iso(self.ended_at),
            "durationMs": self.duration_ms,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "error": self.error,
            "tokens": self.tokens,
            "cost": self.cost,
        }


@dataclass(slots=True)
class ExecutionRecord:
    id: str
    workflow_id: str
    workflow_name: str | None
    workflow_version: int | None
    status: str
    trigger_type: str
    inputs: Any
    outputs: Any
    node_states: Any
    error_message: str | None
    error_node_id: str | None
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    token_usage: Any
    cost_usd: float
    created_at: datetime
    node_runs: list[NodeRunRecord] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workflowId": self.workflow_id,
            "workflowName": self.workflow_name,
            "workflowVersion": self.workflow_version,
            "status": self.status,
            "triggerType": self.trigger_type,
            "errorMessage": self.error_message,
            "errorNodeId": self.error_node_id,
            "startedAt": _iso(self.started_at),
            "completedAt": _iso(self.completed_at),
            "durationMs": self.duration_ms,
            "tokenUsage": self.token_usage,
            "costUsd": self.cost_usd,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "inputs": self.inputs,
            "outputs": self.outputs,
            "nodeStates": self.node_states,
            "nodeRuns": [run.to_dict() for run in self.node_runs],
        }


_EXECUTION_COLUMNS = (
    "e.id, e.workflow_id, w.name AS workflow_name, e.workflow_version, e.status,"
    " e.trigger_type, e.inputs, e.outputs, e.node_states, e.error_message, e.error_node_id,"
    " e.started_at, e.completed_at, e.duration_ms, e.token_usage, e.cost_usd, e.created_at"
)


class ExecutionRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, execution_id: str, *, with_node_runs: bool = True) -> ExecutionRecord:
        rows = self._db.query(
            f"SELECT {_EXECUTION_COLUMNS} FROM executions e"
            " LEFT JOIN workflows w ON w.id = e.workflow_id WHERE e.id = ?",
            [execution_id],
        )
        if not rows:
            raise NotFoundError("execution", execution_id)
        record = _execution(rows[0])
        if with_node_runs:
            record.node_runs = self.node_runs(execution_id)
        return record

    def list(
        self,
        *,
        workflow_id: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[ExecutionRecord]:
        where, params = _filters(workflow_id, status, since)
        rows = self._db.query(
            f"SELECT {_EXECUTION_COLUMNS} FROM executions e"
            f" LEFT JOIN workflows w ON w.id = e.workflow_id WHERE {where}"
            " ORDER BY e.created_at DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [_execution(row) for row in rows]

    def count(
        self,
        *,
        workflow_id: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
    ) -> int:
        where, params = _filters(workflow_id, status, since)
        row = self._db.execute(f"SELECT count(*) FROM executions e WHERE {where}", params)
        return int(row[0][0])

    def node_runs(self, execution_id: str) -> builtins.list[NodeRunRecord]:
        rows = self._db.query(
            "SELECT node_id, node_type, status, attempt, started_at, ended_at, duration_ms,"
            " inputs, outputs, error, tokens, cost, metadata FROM node_runs"
            " WHERE execution_id = ? ORDER BY started_at NULLS LAST, node_id, attempt",
            [execution_id],
        )
        return [
            NodeRunRecord(
                node_id=row["node_id"],
                node_type=row["node_type"],
                status=row["status"],
                attempt=int(row["attempt"]),
                started_at=row["started_at"],
                ended_at=row["ended_at"],
                duration_ms=row["duration_ms"],
                inputs=_json(row["inputs"]),
                outputs=_json(row["outputs"]),
                error=_json(row["error"]),
                tokens=int(row["tokens"] or 0),
                cost=float(row["cost"] or 0.0),
                metadata=_json(row["metadata"]),
            )
            for row in rows
        ]

    def delete(self, execution_id: str) -> None:
        record = self.get(execution_id, with_node_runs=False)
        if record.status in LIVE_STATUSES:
            raise ConflictError(f"execution '{execution_id}' is {record.status}; cancel it first")
        with self._db.transaction() as connection:
            connection.execute("DELETE FROM node_runs WHERE execution_id = ?", [execution_id])
            connection.execute("DELETE FROM executions WHERE id = ?", [execution_id])

    def mark_interrupted(self) -> builtins.list[str]:
        """Runs left ``running`` by a process that no longer holds the database.

        DuckDB gives the file to one process at a time, so once this process has it,
        a live-looking run of another process is one whose process died.
        """
        me = os.getpid()
        rows = self._db.execute(
            "SELECT id, owner_pid FROM executions WHERE status IN ('pending', 'running')"
            " AND (owner_pid IS NULL OR owner_pid <> ?)",
            [me],
        )
        ids = [row[0] for row in rows]
        if ids:
            self._db.execute(
                "UPDATE executions SET status = 'interrupted', completed_at = now(),"
                " error_message = 'the process running it (pid ' || coalesce(owner_pid, 0)::VARCHAR"
                " || ') stopped before it finished; resume with: agentflow runs resume ' || id"
                " WHERE id IN (SELECT unnest(?))",
                [ids],
            )
        return ids

    def completed_outputs(self, execution_id: str) -> dict[str, Any]:
        """Outputs of nodes that succeeded in this execution (latest attempt each)."""
        rows = self._db.execute(
            "SELECT node_id, outputs FROM node_runs WHERE execution_id = ?"
            " AND status IN ('succeeded', 'cached') QUALIFY row_number() OVER"
            " (PARTITION BY node_id ORDER BY ended_at DESC NULLS LAST, attempt DESC) = 1",
            [execution_id],
        )
        return {row[0]: _json(row[1]) for row in rows}


def _filters(
    workflow_id: str | None, status: str | None, since: datetime | None
) -> tuple[str, list[Any]]:
    """A WHERE clause over ``executions e`` (constant text) and its bound values."""
    where, params = ["1 = 1"], []
    for clause, value in (
        ("e.workflow_id = ?", workflow_id),
        ("e.status = ?", status),
        ("e.created_at >= ?", since),
    ):
        if value:
            where.append(clause)
            params.append(value)
    return " AND ".join(where), params


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _execution(row: dict[str, Any]) -> ExecutionRecord:
    return ExecutionRecord(
        id=row["id"],
        workflow_id=row["workflow_id"],
        workflow_name=row["workflow_name"],
        workflow_version=row["workflow_version"],
        status=row["status"],
        trigger_type=row["trigger_type"],
        inputs=_json(row["inputs"]),
        outputs=_json(row["outputs"]),
        node_states=_json(row["node_states"]),
        error_message=row["error_message"],
        error_node_id=row["error_node_id"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        duration_ms=row["duration_ms"],
        token_usage=_json(row["token_usage"]),
        cost_usd=float(row["cost_usd"] or 0.0),
        created_at=row["created_at"],
    )
