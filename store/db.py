"""The DuckDB file: where it lives, opening it with clear errors, and migrations.

DuckDB lets one process write a database file at a time. Within this process one
connection is shared behind a lock; another process that tries to open the file gets
:class:`~store.errors.StoreLockedError` naming the file and the holder's PID.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store.errors import NotADatabaseError, SchemaVersionError, StoreError, StoreLockedError

if TYPE_CHECKING:
    import duckdb

__all__ = ["Database", "default_db_path", "migrations"]

_MIGRATION_NAME = re.compile(r"^(\d{4})_[\w\-]+\.sql$")
_LOCK_PID = re.compile(r"PID (\d+)")
_HARDENING = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


def default_db_path() -> Path:
    """``$AGENTFLOW_HOME/agentflow.duckdb``, by default ``~/.agentflow/agentflow.duckdb``."""
    home = os.environ.get("AGENTFLOW_HOME")
    return (Path(home) if home else Path.home() / ".agentflow") / "agentflow.duckdb"


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, SQL) of every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("store").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [version for version, _, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise StoreError(f"migrations are not numbered 1..n without gaps: {versions}")
    return found


class Database:
    """One DuckDB connection for this process, migrated to the current schema."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path).expanduser()
        self.read_only = read_only
        self._lock = threading.RLock()
        self._connection = self._connect()
        try:
            if read_only:
                self._check_version()
            else:
                self.migrate()
        except BaseException:
            self._connection.close()
            raise

    # -- opening ------------------------------------------------------------------
    def _connect(self) -> duckdb.DuckDBPyConnection:
        import duckdb

        where = str(self.path)
        if not self.read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            raise StoreError(f"{where}: no such database", path=where)
        if self.path.is_dir():
            raise NotADatabaseError(f"{where} is a directory, not a database file", path=where)
        try:
            return duckdb.connect(where, read_only=self.read_only, config=dict(_HARDENING))
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" in text.lower():
                match = _LOCK_PID.search(text)
                pid = int(match.group(1)) if match else None
                holder = f"process {pid}" if pid else "another process"
                raise StoreLockedError(
                    f"{where} is in use by {holder} (DuckDB allows one writing process); "
                    "stop it, or use another --db",
                    path=where,
                    pid=pid,
                ) from None
            raise NotADatabaseError(
                f"{where} is not a DuckDB database ({text})", path=where
            ) from None
        except duckdb.Error as exc:
            raise NotADatabaseError(f"{where} cannot be opened: {exc}", path=where) from None

    def _check_version(self) -> int:
        latest = len(migrations())
        exists = self._connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
        ).fetchone()
        if not exists or not exists[0]:
            return 0
        row = self._connection.execute("SELECT max(version) FROM schema_migrations").fetchone()
        current = int(row[0]) if row and row[0] is not None else 0
        if current > latest:
            raise SchemaVersionError(
                f"{self.path} has schema version {current}, newer than this AgentFlow "
                f"understands ({latest}); upgrade AgentFlow to open it",
                path=str(self.path),
                found=current,
                supported=latest,
            )
        return current

    def migrate(self) -> list[int]:
        """Apply the migrations this file lacks, each in its own transaction."""
        with self._lock:
            self._connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
                " applied_at TIMESTAMPTZ DEFAULT NOW())"
            )
            current = self._check_version()
            applied = []
            for version, name, sql in migrations():
                if version <= current:
                    continue
                with self.transaction() as connection:
                    connection.execute(sql)
                    connection.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                        [version, name],
                    )
                applied.append(version)
            return applied

    # -- use ----------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement and fetch all its rows."""
        with self._lock:
            return self._connection.execute(sql, params or []).fetchall()

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name."""
        with self._lock:
            cursor = self._connection.execute(sql, params or [])
            names = [column[0] for column in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """BEGIN ... COMMIT, or ROLLBACK when the block raises; nothing half-written."""
        with self._lock:
            connection = self._connection
            connection.execute("BEGIN TRANSACTION")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        with self._lock:
            return self._check_version()

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
