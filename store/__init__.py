"""AgentFlow store: workflows, executions, agents, the node cache and secrets in DuckDB.

Public API::

    from store import Store

    with Store() as store:                      # ~/.agentflow/agentflow.duckdb by default
        workflow = store.workflows.create(definition, name="triage")
        for run in store.executions.list(workflow_id=workflow.id):
            print(run.status)

The store depends on ``engine.definition`` only; runs are recorded from the engine's
event stream by :class:`Recorder`.
"""

from store.db import Database, default_db_path
from store.errors import (
    ConflictError,
    ImportDocumentError,
    NotADatabaseError,
    NotFoundError,
    SchemaVersionError,
    SecretError,
    StoreError,
    StoreLockedError,
)
from store.store import Store, open_store

__all__ = [
    "ConflictError",
    "Database",
    "ImportDocumentError",
    "NotADatabaseError",
    "NotFoundError",
    "SchemaVersionError",
    "SecretError",
    "Store",
    "StoreError",
    "StoreLockedError",
    "default_db_path",
    "open_store",
]
