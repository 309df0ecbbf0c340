"""Workflows and their versions: every save is a new numbered version."""

from __future__ import annotations

import builtins
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.definition import WorkflowDefinition, load_definition
from engine.errors import DefinitionError, WorkflowValidationError
from store.db import Database
from store.errors import ImportDocumentError, NotFoundError

__all__ = ["WorkflowRecord", "WorkflowRepository", "WorkflowVersion"]

LOCAL_USER = "local"
_FILE_NAMESPACE = uuid.UUID("6f1d8a52-2a55-4d0e-9a3c-5f0f7b1c2e01")


@dataclass(slots=True)
class WorkflowRecord:
    id: str
    name: str
    description: str | None
    icon: str | None
    version: int
    status: str
    run_count: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    definition: WorkflowDefinition
    last_run_status: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "version": self.version,
            "status": self.status,
            "runCount": self.run_count,
            "lastRunStatus": self.last_run_status,
            "updatedAt": self.updated_at.isoformat(),
            "deletedAt": self.deleted_at.isoformat() if self.deleted_at else None,
        }


@dataclass(slots=True)
class WorkflowVersion:
    workflow_id: str
    version: int
    message: str | None
    created_at: datetime
    definition: WorkflowDefinition


_COLUMNS = (
    "w.id, w.name, w.description, w.icon, w.version, w.status, w.run_count, w.created_at,"
    " w.updated_at, w.deleted_at, w.definition,"
    " (SELECT e.status FROM executions e WHERE e.workflow_id = w.id"
    "  ORDER BY e.created_at DESC LIMIT 1) AS last_run_status"
)


class WorkflowRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- writes -----------------------------------------------------------------------
    def create(
        self,
        definition: WorkflowDefinition,
        *,
        name: str,
        description: str | None = None,
        icon: str | None = None,
        workflow_id: str | None = None,
    ) -> WorkflowRecord:
        workflow_id = workflow_id or str(uuid.uuid4())
        document = definition.to_json(indent=None)
        variables = json.dumps(definition.settings.variables)
        with self._db.transaction() as connection:
            connection.execute(
                "INSERT INTO workflows"
                " (id, user_id, name, description, icon, definition, variables)"
                " VALUES (?, ?, ?, ?, coalesce(?, 'workflow'), ?, ?)",
                [workflow_id, LOCAL_USER, name, description, icon, document, variables],
            )
            connection.execute(
                "INSERT INTO workflow_versions (workflow_id, version, definition, message)"
                " VALUES (?, 1, ?, 'created')",
                [workflow_id, document],
            )
        return self.get(workflow_id)

    def save(
        self, workflow_id: str, definition: WorkflowDefinition, *, message: str | None = None
    ) -> WorkflowRecord:
        """Store a new version; ``workflows.version`` becomes its number."""
        document = definition.to_json(indent=None)
        with self._db.transaction() as connection:
            row = connection.execute(
                "SELECT version FROM workflows WHERE id = ? AND deleted_at IS NULL", [workflow_id]
            ).fetchone()
            if row is None:
                raise NotFoundError("workflow", workflow_id)
            version = int(row[0]) + 1
            connection.execute(
                "INSERT INTO workflow_versions (workflow_id, version, definition, message)"
                " VALUES (?, ?, ?, ?)",
                [workflow_id, version, document, message],
            )
            connection.execute(
                "UPDATE workflows SET definition = ?, variables = ?, version = ?,"
                " updated_at = now() WHERE id = ?",
                [document, json.dumps(definition.settings.variables), version, workflow_id],
            )
        return self.get(workflow_id)

    def rename(
        self, workflow_id: str, *, name: str | None = None, description: str | None = None
    ) -> WorkflowRecord:
        self.get(workflow_id)
        self._db.execute(
            "UPDATE workflows SET name = coalesce(?, name), description = coalesce(?, description),"
            " updated_at = now() WHERE id = ?",
            [name, description, workflow_id],
        )
        return self.get(workflow_id)

    def delete(self, workflow_id: str) -> None:
        """Soft delete: the row, its versions and its runs stay; lists hide it."""
        self.get(workflow_id)
        self._db.execute("UPDATE workflows SET deleted_at = now() WHERE id = ?", [workflow_id])

    def restore(self, workflow_id: str) -> WorkflowRecord:
        self.get(workflow_id, include_deleted=True)
        self._db.execute("UPDATE workflows SET deleted_at = NULL WHERE id = ?", [workflow_id])
        return self.get(workflow_id)

    def duplicate(self, workflow_id: str, *, name: str | None = None) -> WorkflowRecord:
        original = self.get(workflow_id)
        return self.create(
            original.definition,
            name=name or f"{original.name} (copy)",
            description=original.description,
            icon=original.icon,
        )

    def record_run(self, workflow_id: str) -> None:
        self._db.execute(
            "UPDATE workflows SET run_count = run_count + 1 WHERE id = ?", [workflow_id]
        )

    # -- import / export -------------------------------------------------------------
    def import_json(
        self, text: str, *, name: str | None = None, source: str | None = None
    ) -> WorkflowRecord:
        """Create a workflow from a JSON document; nothing is stored when it is invalid."""
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            where = f"{source}:" if source else ""
            raise ImportDocumentError(
                f"{where}{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"
            ) from None
        if not isinstance(document, dict):
            raise ImportDocumentError("a workflow must be a JSON object")
        # An export wrapped as {"metadata": {...}, "definition": {...}} imports too.
        meta_value, body_value = document.get("metadata"), document.get("definition")
        meta: dict[str, Any] = meta_value if isinstance(meta_value, dict) else {}
        body: dict[str, Any] = body_value if isinstance(body_value, dict) else document
        try:
            definition = load_definition(body)
        except (DefinitionError, WorkflowValidationError) as exc:
            issues = [str(issue) for issue in getattr(exc, "issues", [])] or [str(exc)]
            raise ImportDocumentError(
                f"not a workflow definition: {issues[0]}", issues=issues
            ) from None
        fallback = Path(source).stem if source else "Imported workflow"
        return self.create(
            definition,
            name=name or str(meta.get("name") or fallback),
            description=meta.get("description"),
        )

    def export_json(self, workflow_id: str, *, version: int | None = None) -> str:
        """The canonical definition as JSON (a given version, or the latest)."""
        definition = (
            self.get_version(workflow_id, version).definition
            if version is not None
            else self.get(workflow_id).definition
        )
        return definition.to_json()

    def upsert_file(self, path: Path, definition: WorkflowDefinition) -> WorkflowRecord:
        """The workflow that stands for a file run from the CLI: one per absolute path.

        A changed file is saved as a new version, so every run points at what it ran.
        """
        workflow_id = str(uuid.uuid5(_FILE_NAMESPACE, str(path.resolve())))
        try:
            existing = self.get(workflow_id, include_deleted=True)
        except NotFoundError:
            return self.create(
                definition, name=path.stem, description=f"from {path}", workflow_id=workflow_id
            )
        if existing.deleted_at is not None:
            existing = self.restore(workflow_id)
        if existing.definition.to_dict() != definition.to_dict():
            return self.save(workflow_id, definition, message=f"changed on disk: {path}")
        return existing

    # -- reads ------------------------------------------------------------------------
    def get(self, workflow_id: str, *, include_deleted: bool = False) -> WorkflowRecord:
        rows = self._db.query(f"SELECT {_COLUMNS} FROM workflows w WHERE w.id = ?", [workflow_id])
        if not rows or (rows[0]["deleted_at"] is not None and not include_deleted):
            raise NotFoundError("workflow", workflow_id)
        return _record(rows[0])

    def list(
        self, *, search: str | None = None, include_deleted: bool = False, limit: int = 1000
    ) -> builtins.list[WorkflowRecord]:
        where = ["1 = 1"]
        params: list[Any] = []
        if not include_deleted:
            where.append("w.deleted_at IS NULL")
        if search:
            where.append("(w.name ILIKE ? OR coalesce(w.description, '') ILIKE ?)")
            params += [f"%{search}%", f"%{search}%"]
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM workflows w WHERE {' AND '.join(where)}"
            " ORDER BY w.updated_at DESC LIMIT ?",
            [*params, limit],
        )
        return [_record(row) for row in rows]

    def versions(self, workflow_id: str) -> builtins.list[WorkflowVersion]:
        self.get(workflow_id, include_deleted=True)
        rows = self._db.query(
            "SELECT workflow_id, version, message, created_at, definition FROM workflow_versions"
            " WHERE workflow_id = ? ORDER BY version",
            [workflow_id],
        )
        return [_version(row) for row in rows]

    def get_version(self, workflow_id: str, version: int) -> WorkflowVersion:
        rows = self._db.query(
            "SELECT workflow_id, version, message, created_at, definition FROM workflow_versions"
            " WHERE workflow_id = ? AND version = ?",
            [workflow_id, version],
        )
        if not rows:
            raise NotFoundError("workflow version", f"{workflow_id}@{version}")
        return _version(rows[0])

    def load_workflow(self, workflow_id: str, version: int | None = None) -> WorkflowDefinition:
        """For the engine's ``subworkflow`` node (``engine.WorkflowSource``)."""
        try:
            if version is None:
                return self.get(workflow_id).definition
            return self.get_version(workflow_id, version).definition
        except NotFoundError:
            raise KeyError(workflow_id) from None


def _record(row: dict[str, Any]) -> WorkflowRecord:
    return WorkflowRecord(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        icon=row["icon"],
        version=int(row["version"]),
        status=row["status"],
        run_count=int(row["run_count"] or 0),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        deleted_at=row["deleted_at"],
        definition=load_definition(row["definition"]),
        last_run_status=row["last_run_status"],
    )


def _version(row: dict[str, Any]) -> WorkflowVersion:
    return WorkflowVersion(
        workflow_id=row["workflow_id"],
        version=int(row["version"]),
        message=row["message"],
        created_at=row["created_at"],
        definition=load_definition(row["definition"]),
    )
