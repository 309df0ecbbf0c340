"""Run history out of the database: executions and their node runs, as Parquet or JSON.

DuckDB writes both formats itself (``COPY ... TO``), so a large history never passes
through Python objects. Files are written beside the target under a temporary name and
renamed into place only when every part is complete: a failed export leaves nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

from store.db import Database
from store.errors import ConflictError, StoreError

if TYPE_CHECKING:
    import duckdb

    from store.store import Store

__all__ = ["ExportFormat", "export_executions", "node_runs_path"]

ExportFormat = Literal["parquet", "json"]
_SNAKE = re.compile(r"_([a-z0-9])")


def node_runs_path(out: Path) -> Path:
    """Where the Parquet export puts node runs: ``<stem>.node_runs.parquet`` beside ``out``."""
    return out.with_name(f"{out.stem}.node_runs.parquet")


def export_executions(
    store_or_db: Store | Database,
    *,
    fmt: ExportFormat,
    out: Path,
    workflow_id: str | None = None,
    overwrite: bool = False,
) -> int:
    """Write executions (all, or one workflow's) and their node runs; returns how many runs.

    ``parquet``: ``out`` holds the executions, :func:`node_runs_path` the node runs.
    ``json``: one document ``{"executions": [...], "nodeRuns": [...]}`` with camelCase keys.
    """
    db = store_or_db if isinstance(store_or_db, Database) else store_or_db.db
    out = Path(out).expanduser()
    if fmt == "parquet":
        targets = [out, node_runs_path(out)]
    elif fmt == "json":
        targets = [out]
    else:
        raise StoreError(f"unknown export format {fmt!r}: use 'parquet' or 'json'")
    if not overwrite:
        for target in targets:
            if target.exists():
                raise ConflictError(f"{target} exists; replace it with --overwrite")
    if not out.parent.is_dir():
        raise StoreError(f"{out.parent}: no such directory")

    import duckdb

    try:
        with _scratch(out.parent) as scratch:
            count = _write(db, scratch, fmt, workflow_id, targets)
    except OSError as exc:
        raise StoreError(f"cannot write {out}: {exc.strerror or exc}") from None
    except duckdb.Error as exc:
        raise StoreError(f"export to {out} failed: {str(exc).splitlines()[0]}") from None
    return count


def _write(
    db: Database, scratch: Path, fmt: ExportFormat, workflow_id: str | None, targets: list[Path]
) -> int:
    params = [workflow_id] if workflow_id else []
    # One transaction: both files describe the same moment of the history.
    with db.transaction() as connection:
        count_row = connection.execute(
            _select("executions", "count(*)", filtered=bool(workflow_id), ordered=False), params
        ).fetchone()
        parts = []
        for table in ("executions", "node_runs"):
            columns = _columns(connection, table, camel=fmt == "json")
            query = _select(table, columns, filtered=bool(workflow_id))
            part = scratch / f"{table}.{fmt}"
            options = "FORMAT PARQUET" if fmt == "parquet" else "FORMAT JSON, ARRAY true"
            connection.execute(f"COPY ({query}) TO '{_quote(part)}' ({options})", params)
            parts.append(part)
    if fmt == "json":
        document = scratch / "document.json"
        with document.open("wb") as sink:
            sink.write(b'{"executions": ')
            _append(sink, parts[0])
            sink.write(b', "nodeRuns": ')
            _append(sink, parts[1])
            sink.write(b"}\n")
        parts = [document]
    for part, target in zip(parts, targets, strict=True):
        os.replace(part, target)
    return int(count_row[0]) if count_row else 0


_FILTERS = {
    "executions": "WHERE workflow_id = ?",
    "node_runs": "WHERE execution_id IN (SELECT id FROM executions WHERE workflow_id = ?)",
}
_ORDER = {
    "executions": "ORDER BY created_at, id",
    "node_runs": "ORDER BY execution_id, started_at, node_id, attempt",
}


def _select(table: str, columns: str, *, filtered: bool, ordered: bool = True) -> str:
    # Only fixed fragments and quoted identifiers: values always travel as parameters.
    parts = [f"SELECT {columns} FROM {table}"]
    if filtered:
        parts.append(_FILTERS[table])
    if ordered:
        parts.append(_ORDER[table])
    return " ".join(parts)


def _columns(connection: duckdb.DuckDBPyConnection, table: str, *, camel: bool) -> str:
    """Every column of ``table`` (later migrations included), camelCased for JSON."""
    names = [
        str(row[0])
        for row in connection.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_catalog = current_database() AND table_schema = 'main'"
            " AND table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
    ]
    if not camel:
        return ", ".join(_ident(name) for name in names)
    return ", ".join(f"{_ident(name)} AS {_ident(_camel(name))}" for name in names)


def _camel(name: str) -> str:
    return _SNAKE.sub(lambda match: match.group(1).upper(), name)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


def _append(sink: BinaryIO, part: Path) -> None:
    with part.open("rb") as source:
        shutil.copyfileobj(source, sink)


@contextlib.contextmanager
def _scratch(parent: Path) -> Iterator[Path]:
    # Beside the target, so the final rename stays on one file system.
    directory = Path(tempfile.mkdtemp(prefix=".agentflow-export-", dir=parent))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)
