"""The agent store (seed §3 "Agent 商店"): workflows published under a unique slug.

An agent points at a live workflow, so it runs whatever that workflow's latest version
is. Unpublishing keeps the row (and its use count): the slug stays with its workflow,
which can publish it again; another workflow cannot take it.
"""

from __future__ import annotations

import builtins
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from store.db import Database
from store.errors import ConflictError, NotFoundError, StoreError

__all__ = ["SLUG_PATTERN", "AgentRecord", "AgentRepository"]

SLUG_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{1,98}")
LOCAL_USER = "local"
PUBLISHED, UNPUBLISHED = "published", "unpublished"
_MAX_NAME, _MAX_CATEGORY, _MAX_ICON = 200, 50, 500


@dataclass(slots=True)
class AgentRecord:
    id: str
    workflow_id: str
    workflow_name: str
    name: str
    slug: str
    description: str | None
    icon: str | None
    category: str | None
    status: str
    use_count: int
    star_count: int
    avg_rating: float
    version: str
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    tags: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "slug": self.slug,
            "name": self.name,
            "description": self.description,
            "icon": self.icon,
            "category": self.category,
            "tags": list(self.tags),
            "status": self.status,
            "workflowId": self.workflow_id,
            "workflowName": self.workflow_name,
            "useCount": self.use_count,
            "starCount": self.star_count,
            "avgRating": self.avg_rating,
            "version": self.version,
            "createdAt": self.created_at.isoformat(),
            "updatedAt": self.updated_at.isoformat(),
            "publishedAt": self.published_at.isoformat() if self.published_at else None,
        }


_COLUMNS = (
    "a.id, a.workflow_id, w.name AS workflow_name, a.name, a.slug, a.description, a.icon,"
    " a.category, a.tags, a.status, a.use_count, a.star_count, a.avg_rating, a.version,"
    " a.created_at, a.updated_at, a.published_at"
)
_FROM = "FROM agents a JOIN workflows w ON w.id = a.workflow_id"


class AgentRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- writes -----------------------------------------------------------------------
    def publish(
        self,
        workflow_id: str,
        *,
        name: str,
        slug: str,
        description: str | None = None,
        category: str | None = None,
        tags: Iterable[str] = (),
        icon: str | None = None,
    ) -> AgentRecord:
        """Publish a workflow as an agent; its own unpublished slug is published again."""
        slug = _check_slug(slug)
        name = _check_text("name", name, _MAX_NAME, required=True) or ""
        category = _check_text("category", category, _MAX_CATEGORY)
        icon = _check_text("icon", icon, _MAX_ICON)
        tag_list = _check_tags(tags)
        import duckdb

        try:
            with self._db.transaction() as connection:
                if not connection.execute(
                    "SELECT 1 FROM workflows WHERE id = ? AND deleted_at IS NULL", [workflow_id]
                ).fetchone():
                    raise NotFoundError("workflow", workflow_id)
                held = connection.execute(
                    "SELECT workflow_id, status FROM agents WHERE slug = ?", [slug]
                ).fetchone()
                if held is not None and (held[0] != workflow_id or held[1] == PUBLISHED):
                    raise ConflictError(f"agent slug '{slug}' is taken")
                values = [name, description, icon, category, json.dumps(tag_list)]
                if held is None:
                    connection.execute(
                        "INSERT INTO agents (id, user_id, workflow_id, name, description, icon,"
                        " category, tags, slug, status, published_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
                        [str(uuid.uuid4()), LOCAL_USER, workflow_id, *values, slug, PUBLISHED],
                    )
                else:
                    connection.execute(
                        "UPDATE agents SET name = ?, description = ?, icon = ?, category = ?,"
                        " tags = ?, status = ?, published_at = now(), updated_at = now()"
                        " WHERE slug = ?",
                        [*values, PUBLISHED, slug],
                    )
        except duckdb.ConstraintException:
            # Only reachable if another connection took the slug between check and insert.
            raise ConflictError(f"agent slug '{slug}' is taken") from None
        return self.get_by_slug(slug)

    def update(
        self,
        slug: str,
        *,
        name: str | None = None,
        description: str | None = None,
        category: str | None = None,
        tags: Iterable[str] | None = None,
        icon: str | None = None,
    ) -> AgentRecord:
        """Change the listing; ``None`` leaves a field as it is, ``tags=()`` clears tags."""
        self.get_by_slug(slug)
        name = _check_text("name", name, _MAX_NAME, required=name is not None)
        category = _check_text("category", category, _MAX_CATEGORY)
        icon = _check_text("icon", icon, _MAX_ICON)
        tag_json = json.dumps(_check_tags(tags)) if tags is not None else None
        self._db.execute(
            "UPDATE agents SET name = coalesce(?, name), description = coalesce(?, description),"
            " category = coalesce(?, category), tags = coalesce(?, tags), icon = coalesce(?, icon),"
            " updated_at = now() WHERE slug = ?",
            [name, description, category, tag_json, icon, slug],
        )
        return self.get_by_slug(slug)

    def unpublish(self, slug: str) -> AgentRecord:
        self.get_by_slug(slug)
        self._db.execute(
            "UPDATE agents SET status = ?, updated_at = now() WHERE slug = ?", [UNPUBLISHED, slug]
        )
        return self.get_by_slug(slug)

    def record_use(self, slug: str) -> int:
        """Count one use of a published agent; returns the new count."""
        agent = self.get_by_slug(slug)
        if agent.status != PUBLISHED:
            raise ConflictError(f"agent '{slug}' is not published")
        rows = self._db.execute(
            "UPDATE agents SET use_count = coalesce(use_count, 0) + 1 WHERE slug = ?"
            " RETURNING use_count",
            [slug],
        )
        return int(rows[0][0])

    # -- reads ------------------------------------------------------------------------
    def get_by_slug(self, slug: str) -> AgentRecord:
        rows = self._db.query(f"SELECT {_COLUMNS} {_FROM} WHERE a.slug = ?", [slug])
        if not rows:
            raise NotFoundError("agent", slug)
        return _record(rows[0])

    def list(
        self,
        category: str | None = None,
        search: str | None = None,
        *,
        include_unpublished: bool = False,
        limit: int = 1000,
    ) -> builtins.list[AgentRecord]:
        """Listed agents, most used first; agents of deleted workflows are not listed."""
        where = ["w.deleted_at IS NULL"]
        params: builtins.list[Any] = []
        if not include_unpublished:
            where.append("a.status = ?")
            params.append(PUBLISHED)
        if category is not None:
            where.append("a.category = ?")
            params.append(category)
        if search:
            pattern = f"%{_escape_like(search)}%"
            where.append(
                "(a.name ILIKE ? ESCAPE '\\' OR a.slug ILIKE ? ESCAPE '\\'"
                " OR coalesce(a.description, '') ILIKE ? ESCAPE '\\'"
                " OR CAST(a.tags AS VARCHAR) ILIKE ? ESCAPE '\\')"
            )
            params += [pattern] * 4
        rows = self._db.query(
            f"SELECT {_COLUMNS} {_FROM} WHERE {' AND '.join(where)}"
            " ORDER BY a.use_count DESC, a.published_at DESC, a.slug LIMIT ?",
            [*params, limit],
        )
        return [_record(row) for row in rows]

    def categories(self) -> builtins.list[tuple[str, int]]:
        """(category, number of listed agents), largest first."""
        rows = self._db.execute(
            f"SELECT a.category, count(*) AS n {_FROM}"
            " WHERE w.deleted_at IS NULL AND a.status = ? AND a.category IS NOT NULL"
            " GROUP BY a.category ORDER BY n DESC, a.category",
            [PUBLISHED],
        )
        return [(str(category), int(count)) for category, count in rows]


def _check_slug(slug: str) -> str:
    if not isinstance(slug, str) or not SLUG_PATTERN.fullmatch(slug):
        raise StoreError(
            f"invalid agent slug {slug!r}: use 2-99 characters a-z, 0-9 and '-',"
            " starting with a letter or digit"
        )
    return slug


def _check_text(what: str, value: str | None, limit: int, *, required: bool = False) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise StoreError(f"agent {what} must be text")
    value = value.strip()
    if required and not value:
        raise StoreError(f"agent {what} must not be empty")
    if len(value) > limit:
        raise StoreError(f"agent {what} is longer than {limit} characters")
    return value or None


def _check_tags(tags: Iterable[str]) -> builtins.list[str]:
    if isinstance(tags, str):
        # A lone string would otherwise become one tag per character.
        raise StoreError("agent tags must be a list of strings, not one string")
    seen: dict[str, None] = {}
    for tag in tags:
        if not isinstance(tag, str):
            raise StoreError(f"agent tag {tag!r} is not text")
        cleaned = tag.strip()
        if cleaned:
            seen.setdefault(cleaned, None)
    return builtins.list(seen)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _record(row: dict[str, Any]) -> AgentRecord:
    raw_tags = json.loads(row["tags"]) if row["tags"] else []
    return AgentRecord(
        id=row["id"],
        workflow_id=row["workflow_id"],
        workflow_name=row["workflow_name"],
        name=row["name"],
        slug=row["slug"],
        description=row["description"],
        icon=row["icon"],
        category=row["category"],
        tags=[str(tag) for tag in raw_tags] if isinstance(raw_tags, builtins.list) else [],
        status=row["status"],
        use_count=int(row["use_count"] or 0),
        star_count=int(row["star_count"] or 0),
        avg_rating=float(row["avg_rating"] or 0),
        version=str(row["version"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        published_at=row["published_at"],
    )
