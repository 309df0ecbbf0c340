"""The :class:`Store`: one database file and the repositories over it."""

from __future__ import annotations

import time
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store.db import Database, default_db_path

if TYPE_CHECKING:
    from store.agents import AgentRepository
    from store.cache import NodeCacheRepository
    from store.executions import ExecutionRepository
    from store.recorder import Recorder
    from store.secrets import SecretStore
    from store.workflows import WorkflowRepository

__all__ = ["Store", "open_store"]


class Store:
    """Workflows, executions, agents, the node cache and secrets in one DuckDB file.

    Opening a store for writing marks runs left ``running`` by a dead process as
    ``interrupted`` (see :meth:`ExecutionRepository.mark_interrupted`).
    """

    def __init__(self, path: str | Path | None = None, *, read_only: bool = False) -> None:
        self.path = Path(path).expanduser() if path is not None else default_db_path()
        self.db = Database(self.path, read_only=read_only)
        self.interrupted: list[str] = []
        self._secret_cache: list[str] = []
        self._secrets_read_at = -1e9
        if not read_only:
            self.interrupted = self.executions.mark_interrupted()

    @cached_property
    def workflows(self) -> WorkflowRepository:
        from store.workflows import WorkflowRepository

        return WorkflowRepository(self.db)

    @cached_property
    def executions(self) -> ExecutionRepository:
        from store.executions import ExecutionRepository

        return ExecutionRepository(self.db)

    @cached_property
    def agents(self) -> AgentRepository:
        from store.agents import AgentRepository

        return AgentRepository(self.db)

    @cached_property
    def cache(self) -> NodeCacheRepository:
        from store.cache import NodeCacheRepository

        return NodeCacheRepository(self.db)

    @cached_property
    def secrets(self) -> SecretStore:
        from store.secrets import SecretStore

        return SecretStore(self.db, key_dir=self.path.parent)

    @cached_property
    def recorder(self) -> Recorder:
        from store.recorder import Recorder

        return Recorder(self.db, redact=self._secret_values)

    @property
    def secret_source(self) -> Any:
        """Secrets for the engine (``engine.SecretSource``), when the secrets module is here."""
        try:
            return self.secrets
        except ImportError:
            return None

    def _secret_values(self) -> list[str]:
        # Re-read at most once a second: a key set while the studio runs is redacted
        # within a second, and batches do not each pay for decrypting every secret.
        now = time.monotonic()
        if now - self._secrets_read_at > 1.0:
            try:
                self._secret_cache = list(self.secrets.values())
            except Exception:  # no key yet, or a wrong master key: nothing to redact with
                self._secret_cache = []
            self._secrets_read_at = now
        return self._secret_cache

    def close(self) -> None:
        if "recorder" in self.__dict__:
            self.recorder.close()
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(path: str | Path | None = None, *, read_only: bool = False) -> Store:
    return Store(path, read_only=read_only)
