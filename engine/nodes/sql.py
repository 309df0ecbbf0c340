"""``sql``: DuckDB SQL over upstream rows (registered as tables) or local files.

Every run gets a fresh in-memory database. Each ``tables`` entry is written as NDJSON to
a private temporary directory and read with ``read_json``, so DuckDB infers column
types (numbers, booleans, dates, timestamps, UUIDs, structs, lists) without pandas or
pyarrow. Then the connection is locked down before the query runs:

- statements that install or load extensions, attach databases or write files
  (``INSTALL``, ``LOAD``, ``ATTACH``, ``COPY``, ``EXPORT``, ``PRAGMA``...) are refused
  before anything executes, because DuckDB downloads ``INSTALL``-ed extensions even when
  external access is disabled;
- extension autoinstall/autoload are off, remote URLs are refused, any HTTP DuckDB would
  still make goes to a closed loopback proxy, and the configuration is locked, so the
  query cannot change a setting;
- reading local files (``read_csv('data.csv')``) stays allowed: it is the node's job.

Result values are JSON-friendly: DATE/TIME/TIMESTAMP as ISO 8601 strings, DECIMAL as
float, UUID as string, BLOB as base64 (standard alphabet), INTERVAL as seconds (float),
NaN and infinities as null, JSON columns parsed back into values.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import math
import os
import re
import tempfile
import threading
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from engine._private.references import iter_references
from engine.definition import Node
from engine.errors import NodeError, ValidationIssue
from engine.nodes.base import BaseNodeConfig, NodeContext, NodeType

if TYPE_CHECKING:
    from engine.nodes.registry import NodeRegistry

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Statement kinds a query may contain; the rest reach outside the in-memory database.
_ALLOWED_STATEMENTS = frozenset(
    {
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "MERGE_INTO",
        "CREATE",
        "CREATE_FUNC",
        "DROP",
        "ALTER",
        "EXPLAIN",
        "SET",
        "VARIABLE_SET",
        "PREPARE",
        "EXECUTE",
        "TRANSACTION",
        "ANALYZE",
        "VACUUM",
        "CALL",
    }
)

#: Any HTTP request DuckDB still attempts goes here: loopback, and nothing listens.
_DEAD_PROXY = "127.0.0.1:9"
_MIN_OBJECT_SIZE = 16 * 1024 * 1024


class SqlConfig(BaseNodeConfig):
    query: str = Field(
        min_length=1, description="DuckDB SQL; the last statement's rows are output."
    )
    tables: dict[str, Any] = Field(
        default_factory=dict,
        description="Table name -> rows (a list of objects), e.g. '{{fetch.body.items}}'.",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Values for $name placeholders, bound rather than pasted into the SQL.",
    )
    max_rows: int = Field(default=10_000, ge=1, le=10_000_000, description="Rows returned at most.")

    @field_validator("tables", "params")
    @classmethod
    def _identifier_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        seen: dict[str, str] = {}
        for name in value:
            if not _IDENTIFIER.match(name):
                raise ValueError(
                    f"'{name}' is not an identifier (letters, digits and '_', "
                    "not starting with a digit)"
                )
            # DuckDB names are case-insensitive: 'Items' and 'items' would collide.
            if name.lower() in seen:
                raise ValueError(f"'{name}' and '{seen[name.lower()]}' name the same table")
            seen[name.lower()] = name
        return value


class SqlNode(NodeType[SqlConfig]):
    type = "sql"
    description = "Run DuckDB SQL over upstream rows (as tables) or local files."
    Config = SqlConfig
    raw_fields = frozenset({"query"})
    outputs = {
        "rows": "the result rows, as objects (JSON-friendly values)",
        "columns": "the result column names, in order",
        "truncated": "true when the result had more than maxRows rows",
    }

    def check(
        self, node: Node, config: BaseNodeConfig | None, registry: NodeRegistry
    ) -> Iterable[ValidationIssue]:
        query = node.data.config.get("query")
        if isinstance(query, str) and any(True for _ in iter_references(query)):
            # Pasting values into SQL text is an injection hole; bind them instead.
            yield ValidationIssue(
                "config",
                "references are not allowed in SQL text; bind values with "
                'params: {"name": "{{node.field}}"} and write $name in the query',
                node_id=node.id,
                field="query",
            )
        tables = node.data.config.get("tables")
        if not isinstance(tables, dict):
            return
        for name, rows in tables.items():
            if any(True for _ in iter_references(rows)):
                continue  # only known at run time
            problem = _rows_problem(rows)
            if problem is not None:
                yield ValidationIssue("config", problem, node_id=node.id, field=f"tables.{name}")

    async def run(self, ctx: NodeContext, config: SqlConfig) -> dict[str, Any]:
        for name, rows in config.tables.items():
            problem = _rows_problem(rows)
            if problem is not None:
                raise NodeError(problem, node_id=ctx.node_id, field=f"tables.{name}")
        job = _Job(ctx.node_id, config)
        try:
            outputs = await asyncio.to_thread(job.run)
        except asyncio.CancelledError:
            # The thread cannot be cancelled; stop DuckDB so it ends soon.
            job.interrupt()
            raise
        if outputs["truncated"]:
            ctx.log(f"result truncated to maxRows={config.max_rows} rows", "warning")
        return outputs


def _rows_problem(rows: Any) -> str | None:
    if not isinstance(rows, list):
        return f"a table must be a list of objects (rows), got {_json_type(rows)}"
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            return f"row {index} is {_json_type(row)}, not an object"
        if any(not isinstance(key, str) or not key for key in row):
            return f"row {index} has an empty or non-string key"
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    names = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }
    return names.get(type(value), type(value).__name__)


class _Job:
    """One query on its own connection, run in a worker thread; interruptible."""

    def __init__(self, node_id: str, config: SqlConfig) -> None:
        self.node_id = node_id
        self.config = config
        self._lock = threading.Lock()
        self._connection: Any = None
        self._interrupted = False

    def interrupt(self) -> None:
        with self._lock:
            self._interrupted = True
            if self._connection is not None:
                self._connection.interrupt()

    def run(self) -> dict[str, Any]:
        import duckdb

        with tempfile.TemporaryDirectory(prefix="agentflow-sql-") as workdir:
            connection = duckdb.connect(
                ":memory:",
                config={
                    "autoinstall_known_extensions": False,
                    "autoload_known_extensions": False,
                    "allow_community_extensions": False,
                    "allow_unsigned_extensions": False,
                    "temp_directory": os.path.join(workdir, "spill"),
                },
            )
            with self._lock:
                self._connection = connection
            try:
                if self._interrupted:
                    raise NodeError("cancelled", node_id=self.node_id)
                for name, rows in self.config.tables.items():
                    self._load_table(duckdb, connection, workdir, name, rows)
                _lock_down(connection)
                return self._query(duckdb, connection)
            finally:
                with self._lock:
                    self._connection = None
                connection.close()

    def _load_table(
        self, duckdb: Any, connection: Any, workdir: str, name: str, rows: list[Any]
    ) -> None:
        field = f"tables.{name}"
        path = os.path.join(workdir, f"{name}.ndjson")
        longest, has_columns = 0, False
        try:
            with open(path, "w", encoding="utf-8") as handle:
                for row in rows:
                    line = json.dumps(row, ensure_ascii=False, default=str)
                    longest = max(longest, len(line.encode("utf-8")))
                    has_columns = has_columns or bool(row)
                    handle.write(line + "\n")
        except (TypeError, ValueError) as exc:
            raise NodeError(
                f"rows cannot be written as JSON: {exc}", node_id=self.node_id, field=field
            ) from None
        quoted = f'"{name}"'
        try:
            if not has_columns:
                # DuckDB has no zero-column tables; keep the row count queryable.
                connection.execute(
                    f"CREATE TABLE {quoted} AS SELECT NULL::BOOLEAN AS _empty FROM range(?)",  # noqa: S608 - name is an identifier
                    [len(rows)],
                )
                return
            # records/map_inference/sample_size: every key is a column, typed from all rows.
            connection.execute(
                f"CREATE TABLE {quoted} AS SELECT * FROM read_json(?, "  # noqa: S608 - identifier
                "format = 'newline_delimited', records = true, sample_size = -1, "
                "map_inference_threshold = -1, maximum_object_size = ?)",
                [path, max(_MIN_OBJECT_SIZE, longest + 1)],
            )
        except duckdb.Error as exc:
            raise NodeError(
                f"cannot load the rows: {exc}", node_id=self.node_id, field=field
            ) from None

    def _query(self, duckdb: Any, connection: Any) -> dict[str, Any]:
        config = self.config
        try:
            statements = connection.extract_statements(config.query)
        except duckdb.Error as exc:
            raise NodeError(str(exc), node_id=self.node_id, field="query") from None
        except ValueError:
            # The Python client does not know the statement kind: refuse what we cannot name.
            raise NodeError(
                "the query holds a statement kind this node does not allow",
                node_id=self.node_id,
                field="query",
            ) from None
        if not statements:
            raise NodeError("the query holds no statement", node_id=self.node_id, field="query")
        for statement in statements:
            kind = statement.type.name
            if kind not in _ALLOWED_STATEMENTS:
                raise NodeError(
                    f"{kind} statements are not allowed here (no extensions, attached "
                    "databases or file writes): " + statement.query.strip()[:80],
                    node_id=self.node_id,
                    field="query",
                )
        try:
            result = None
            for statement in statements:
                bound = {
                    key: config.params[key]
                    for key in statement.named_parameters
                    if key in config.params
                }
                result = (
                    connection.execute(statement, bound) if bound else connection.execute(statement)
                )
            assert result is not None
            description = result.description
            fetched = result.fetchmany(config.max_rows + 1) if description else []
        except duckdb.Error as exc:
            raise NodeError(str(exc), node_id=self.node_id, field="query") from None
        columns = _unique_names([column[0] for column in description or ()])
        parsers = [str(column[1]) == "JSON" for column in description or ()]
        truncated = len(fetched) > config.max_rows
        rows = [
            {
                name: _parse_json(value) if parse else _plain(value)
                for name, parse, value in zip(columns, parsers, row, strict=True)
            }
            for row in fetched[: config.max_rows]
        ]
        return {"rows": rows, "columns": columns, "truncated": truncated}


def _lock_down(connection: Any) -> None:
    import duckdb

    def optional(statement: str) -> bool:
        # Older DuckDB releases lack some settings; the statement guard still holds there.
        try:
            connection.execute(statement)
        except duckdb.Error:
            return False
        return True

    optional(f"SET http_proxy = '{_DEAD_PROXY}'")
    optional("SET python_enable_replacements = false")
    optional("SET allow_persistent_secrets = false")
    # Local files stay readable (any path under '/'); remote URLs and extension files do not.
    if optional("SET allowed_directories = ['/']"):
        connection.execute("SET enable_external_access = false")
    optional("SET allow_extension_repositories = 'forbidden'")
    connection.execute("SET lock_configuration = true")


def _unique_names(names: list[str]) -> list[str]:
    seen: set[str] = set()
    unique = []
    for name in names:
        candidate, suffix = name, 0
        while candidate in seen:
            suffix += 1
            candidate = f"{name}_{suffix}"
        seen.add(candidate)
        unique.append(candidate)
    return unique


def _parse_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return _plain(value)


def _plain(value: Any) -> Any:
    """A DuckDB result value as JSON data (see the module docstring for the mapping)."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float | Decimal):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {
            key if isinstance(key, str) else str(_plain(key)): _plain(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return str(value)
