"""The node cache: outputs by cache key (the engine computes keys; see engine.services)."""

from __future__ import annotations

import json
from typing import Any

from store.db import Database

__all__ = ["NodeCacheRepository"]


class NodeCacheRepository:
    """DuckDB-backed ``engine.NodeCache``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, key: str) -> dict[str, Any] | None:
        rows = self._db.execute("SELECT outputs FROM node_cache WHERE cache_key = ?", [key])
        if not rows:
            return None
        self._db.execute(
            "UPDATE node_cache SET hits = hits + 1, last_used_at = now() WHERE cache_key = ?",
            [key],
        )
        value = json.loads(rows[0][0])
        return value if isinstance(value, dict) else None

    def put(self, key: str, node_type: str, outputs: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO node_cache (cache_key, node_type, outputs) VALUES (?, ?, ?)"
            " ON CONFLICT (cache_key) DO UPDATE SET outputs = excluded.outputs,"
            " last_used_at = now()",
            [key, node_type, json.dumps(outputs, ensure_ascii=False)],
        )

    def clear(self, node_type: str | None = None) -> int:
        if node_type is None:
            rows = self._db.execute("DELETE FROM node_cache RETURNING cache_key")
        else:
            rows = self._db.execute(
                "DELETE FROM node_cache WHERE node_type = ? RETURNING cache_key", [node_type]
            )
        return len(rows)

    def stats(self) -> dict[str, int]:
        row = self._db.execute("SELECT count(*), coalesce(sum(hits), 0) FROM node_cache")[0]
        return {"entries": int(row[0]), "hits": int(row[1])}
