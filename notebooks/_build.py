"""From declared nodes to the canonical definition: edges, order and a readable layout.

Edges come from two places. ``after=`` gives them explicitly (with a handle: a condition's
branch, ``error``...). References give the rest: a node that reads another node gets an
edge from it, unless that node is upstream already. Candidates are taken nearest first,
so reading ``reply`` and ``route`` (upstream of ``reply``) gives one edge, from
``reply``; this is what keeps a node on a branch from also running off another edge.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
from collections.abc import Iterable, Iterator
from typing import Any

from engine import iter_references
from notebooks._handles import NodeSpec

__all__ = ["COLUMN", "ROW", "build_definition", "dependencies", "layout", "references_in"]

COLUMN = 280
ROW = 160

Issue = tuple[str | None, str]


def references_in(value: Any) -> Iterator[str]:
    """The root (node id, ``inputs`` or variable) of every ``{{...}}`` in a value."""
    return (reference.root for reference in iter_references(value))


def _node_type(name: str) -> Any:
    from engine.errors import UnknownNodeTypeError
    from engine.nodes.registry import default_registry

    try:
        return default_registry().get(name)
    except UnknownNodeTypeError:
        return None


def read_roots(spec: NodeSpec) -> list[str]:
    """Names a node reads, as the engine sees them (raw fields excluded, extra included)."""
    node_type = _node_type(spec.type)
    raw = node_type.raw_fields if node_type is not None else frozenset()
    roots: list[str] = []
    for key, value in spec.config.items():
        if key not in raw:
            roots.extend(references_in(value))
    if node_type is not None:
        from engine.definition import Node, NodeData

        node = Node(id=spec.id, type=spec.type, data=NodeData(config=spec.config))
        # A broken config is reported by validation, with its field.
        with contextlib.suppress(Exception):
            roots.extend(root for root, _ in node_type.extra_references(node))
    return list(dict.fromkeys(roots))


def dependencies(spec: NodeSpec, known: Iterable[str]) -> list[str]:
    """Known node ids this node needs upstream: ``after`` sources, then what it reads."""
    ids = set(known)
    found = [edge.source._spec.id for edge in spec.after]
    found += [root for root in read_roots(spec) if root in ids and root != spec.id]
    return list(dict.fromkeys(found))


def build_definition(
    specs: list[NodeSpec],
    *,
    settings: dict[str, Any] | None = None,
    version: str | None = None,
) -> tuple[dict[str, Any], list[Issue]]:
    """The definition document and the problems found (node id or None, message)."""
    issues: list[Issue] = []
    by_id = {spec.id: spec for spec in specs}
    index = {spec.id: position for position, spec in enumerate(specs)}
    reads = {
        spec.id: [r for r in read_roots(spec) if r in by_id and r != spec.id] for spec in specs
    }
    needs: dict[str, list[str]] = {}
    for spec in specs:
        explicit = []
        for edge in spec.after:
            source = edge.source._spec.id
            if source not in by_id:
                issues.append((spec.id, f"after=: node '{source}' is not part of this workflow"))
                continue
            explicit.append(source)
        needs[spec.id] = list(dict.fromkeys(explicit + reads[spec.id]))
    order = _stable_order(specs, needs, index)
    if len(order) < len(specs):
        issues.extend(_cycle_issues(specs, needs, set(order)))
        return {}, issues

    position = {node_id: rank for rank, node_id in enumerate(order)}
    ancestors: dict[str, set[str]] = {}
    edges: list[dict[str, Any]] = []
    incoming: dict[str, list[str]] = {}
    for node_id in order:
        spec = by_id[node_id]
        above: set[str] = set()
        sources: list[str] = []

        def link(source: str, above: set[str] = above, sources: list[str] = sources) -> None:
            above.update(ancestors[source])
            above.add(source)
            sources.append(source)

        for edge in spec.after:
            source = edge.source._spec.id
            if source not in by_id:
                continue
            handle = _handle(edge.handle, by_id[source])
            edges.append(
                _edge(
                    source, handle, node_id, edge.target_handle, edge.label, edge.data, edge.extra
                )
            )
            link(source)
        for source in sorted(reads[node_id], key=position.__getitem__, reverse=True):
            if source in above:
                continue
            if by_id[source].type == "condition":
                issues.append(
                    (
                        node_id,
                        f"reads condition '{source}' but is on none of its branches: add "
                        f"after={source}.<case> (or a list of branches, e.g. "
                        f"after=[{source}.<case>, {source}.otherwise])",
                    )
                )
                continue
            edges.append(_edge(source, "out", node_id, None, None, None, {}))
            link(source)
        ancestors[node_id] = above
        incoming[node_id] = sources

    _unique_edge_ids(edges)
    positions = layout(order, incoming)
    nodes = [
        _node(by_id[node_id], positions[node_id])
        for node_id in sorted(order, key=index.__getitem__)
    ]
    document: dict[str, Any] = {"version": version or "1.0.0", "nodes": nodes, "edges": edges}
    if settings is not None:
        document["settings"] = settings
    return document, issues


def _handle(handle: str, source: NodeSpec) -> str:
    # ``route.otherwise`` names a condition's else branch (``else`` is a Python keyword).
    if handle == "otherwise" and source.type == "condition":
        cases = source.config.get("cases")
        ids = (
            {c.get("id") for c in cases if isinstance(c, dict)}
            if isinstance(cases, list)
            else set()
        )
        if "otherwise" not in ids:
            return "else"
    return handle


def _edge(
    source: str,
    handle: str,
    target: str,
    target_handle: str | None,
    label: str | None,
    data: dict[str, Any] | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    edge: dict[str, Any] = {
        "id": "",
        "source": source,
        "sourceHandle": handle,
        "target": target,
        "targetHandle": target_handle or "in",
    }
    if label is not None:
        edge["label"] = label
    if data is not None:
        edge["data"] = data
    edge.update(extra)
    return edge


def _unique_edge_ids(edges: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for edge in edges:
        base = f"{edge['source']}-{edge['sourceHandle']}-{edge['target']}"
        if edge["targetHandle"] != "in":
            base += f"-{edge['targetHandle']}"
        candidate, suffix = base, 1
        while candidate in seen:
            suffix += 1
            candidate = f"{base}-{suffix}"
        seen.add(candidate)
        edge["id"] = candidate


def _node(spec: NodeSpec, position: tuple[float, float]) -> dict[str, Any]:
    data: dict[str, Any] = {"label": spec.id if spec.label is None else spec.label}
    if spec.description is not None:
        data["description"] = spec.description
    data["config"] = spec.config
    data.update(spec.data)
    node: dict[str, Any] = {
        "id": spec.id,
        "type": spec.type,
        "position": {"x": position[0], "y": position[1]},
        "data": data,
    }
    node.update(spec.extra)
    return node


def _stable_order(
    specs: list[NodeSpec], needs: dict[str, list[str]], index: dict[str, int]
) -> list[str]:
    """Topological order that keeps declaration order wherever dependencies allow."""
    waiting = {spec.id: len(set(needs[spec.id])) for spec in specs}
    users: dict[str, list[str]] = {spec.id: [] for spec in specs}
    for node_id, sources in needs.items():
        for source in set(sources):
            users[source].append(node_id)
    ready = [(index[node_id], node_id) for node_id, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, node_id = heapq.heappop(ready)
        order.append(node_id)
        for user in users[node_id]:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, (index[user], user))
    return order


def _cycle_issues(
    specs: list[NodeSpec], needs: dict[str, list[str]], done: set[str]
) -> list[Issue]:
    issues: list[Issue] = []
    reported: set[str] = set()
    for spec in specs:
        if spec.id in done or spec.id in reported:
            continue
        path = [spec.id]
        seen = {spec.id: 0}
        current = spec.id
        while True:
            current = next(s for s in needs[current] if s not in done)
            if current in seen:
                cycle = [*path[seen[current] :], current]
                break
            seen[current] = len(path)
            path.append(current)
        reported.update(cycle)
        steps = ", ".join(f"'{a}' reads '{b}'" for a, b in itertools.pairwise(cycle))
        issues.append((cycle[0], f"reference cycle: {steps}"))
    return issues


def layout(order: list[str], incoming: dict[str, list[str]]) -> dict[str, tuple[float, float]]:
    """Left-to-right layers by longest path; each layer spread and centred vertically."""
    layer: dict[str, int] = {}
    for node_id in order:
        layer[node_id] = 1 + max((layer[s] for s in incoming.get(node_id, ())), default=-1)
    columns: dict[int, list[str]] = {}
    for node_id in order:
        columns.setdefault(layer[node_id], []).append(node_id)
    tallest = max((len(ids) for ids in columns.values()), default=0)
    positions: dict[str, tuple[float, float]] = {}
    for column in sorted(columns):
        ids = columns[column]
        if column > 0:
            # Sit each node near its parents (mean of their rows) to cut crossings.
            def mean_row(node_id: str) -> float:
                rows = [positions[s][1] for s in incoming.get(node_id, ()) if s in positions]
                return sum(rows) / len(rows) if rows else 0.0

            ids = sorted(ids, key=mean_row)
        offset = (tallest - len(ids)) * ROW / 2
        for row, node_id in enumerate(ids):
            positions[node_id] = (float(column * COLUMN), offset + row * ROW)
    return positions
