"""The canonical workflow definition as panel-reactflow nodes and edges, and back.

The canvas draws exactly the canonical document: each React Flow element carries its
canonical node or edge untouched under ``data["af"]``, and :func:`from_flow` rebuilds the
document from those copies plus what the browser may change (positions, new edges).
So ``from_flow(*to_flow(doc))`` gives ``doc`` back, key for key.

Handles are the engine's: a node's output handles are its type's ``output_handles``
(condition cases and ``else``; ``out`` elsewhere) plus ``error`` on every node; inputs
are ``in`` plus declared input ports (none on ``start``). Handles that an edge of the
document uses are always drawn, even invalid ones, so no edge silently disappears; the
validator flags them instead.

Pure functions on plain dicts: no Panel import here.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.nodes.registry import NodeRegistry

__all__ = [
    "ERROR_HANDLE",
    "FLOW_KEY",
    "FlowGraph",
    "auto_layout",
    "edge_endpoints",
    "edge_look",
    "flow_edge",
    "flow_node",
    "from_flow",
    "node_classes",
    "node_handles",
    "node_type_spec",
    "to_flow",
]

FLOW_KEY = "af"
ERROR_HANDLE = "error"
LAYER_GAP = 280.0
ROW_GAP = 110.0

_HANDLE_LABELS = {"out": "output", "in": "input", ERROR_HANDLE: "on error", "else": "else"}


@dataclass(slots=True)
class FlowGraph:
    """What a ``ReactFlow`` component needs: node dicts, edge dicts, node type specs."""

    nodes: list[dict[str, Any]] = field(default_factory=list)
    edges: list[dict[str, Any]] = field(default_factory=list)
    node_types: dict[str, dict[str, Any]] = field(default_factory=dict)


# -- handles ------------------------------------------------------------------------------
def node_handles(
    node: Mapping[str, Any],
    edges: Iterable[Mapping[str, Any]] = (),
    registry: NodeRegistry | None = None,
) -> tuple[list[str], list[str]]:
    """(input handle ids, output handle ids) to draw for a canonical node dict."""
    node_id, node_type = node.get("id"), str(node.get("type", ""))
    data = node.get("data") if isinstance(node.get("data"), Mapping) else {}
    assert isinstance(data, Mapping)
    config = data.get("config") if isinstance(data.get("config"), Mapping) else {}
    assert isinstance(config, Mapping)

    declared_out = _port_ids(data.get("outputs"))
    engine_out = _engine_output_handles(node, registry)
    if engine_out is None:  # unknown type or unreadable node: the default handle
        engine_out = {"out", *declared_out}
    if node_type == "end":
        engine_out.discard("out")  # allowed by the engine, meaningless on an exit node
    cases = config.get("cases")
    case_ids = [
        c["id"]
        for c in (cases if isinstance(cases, list) else [])
        if isinstance(c, Mapping) and isinstance(c.get("id"), str) and c["id"]
    ]
    used_out = [str(e.get("sourceHandle") or "out") for e in edges if e.get("source") == node_id]
    used_in = [str(e.get("targetHandle") or "in") for e in edges if e.get("target") == node_id]

    outputs = _ordered(
        engine_out | set(used_out) | {ERROR_HANDLE},
        ["out", *declared_out, *case_ids],
        tail=["else", ERROR_HANDLE],
    )
    inputs_set = set(used_in) | set(_port_ids(data.get("inputs")))
    if node_type != "start":
        inputs_set.add("in")
    inputs = _ordered(inputs_set, ["in", *_port_ids(data.get("inputs"))], tail=[])
    return inputs, outputs


def _engine_output_handles(
    node: Mapping[str, Any], registry: NodeRegistry | None
) -> set[str] | None:
    from pydantic import ValidationError

    from engine.definition import Node
    from engine.errors import AgentFlowError
    from engine.nodes.registry import default_registry

    try:
        node_type = (registry or default_registry()).get(str(node.get("type", "")))
        return set(node_type.output_handles(Node.model_validate(dict(node))))
    except (AgentFlowError, ValidationError, TypeError, ValueError):
        return None


def _port_ids(ports: Any) -> list[str]:
    if not isinstance(ports, list):
        return []
    return [
        p["id"]
        for p in ports
        if isinstance(p, Mapping) and isinstance(p.get("id"), str) and p["id"]
    ]


def _ordered(items: set[str], first: list[str], tail: list[str]) -> list[str]:
    """``first`` (those present, in order), the rest sorted, then ``tail`` (present)."""
    out: list[str] = []
    for name in first:
        if name in items and name not in out and name not in tail:
            out.append(name)
    out += sorted(name for name in items if name not in out and name not in tail)
    out += [name for name in tail if name in items]
    return out


def node_type_spec(
    canonical_type: str, inputs: list[str], outputs: list[str]
) -> tuple[str, dict[str, Any]]:
    """The React Flow type key and spec for a node type with these handles.

    A type whose handles vary per node (condition cases, declared ports) gets one key
    per distinct handle set, because panel-reactflow declares handles per type.
    """
    plain_in = [] if canonical_type == "start" else ["in"]
    plain_out = {
        "end": [ERROR_HANDLE],
        "condition": ["else", ERROR_HANDLE],
    }.get(canonical_type, ["out", ERROR_HANDLE])
    key = canonical_type or "unknown"
    if (inputs, outputs) != (plain_in, plain_out):
        digest = hashlib.blake2s(json.dumps([inputs, outputs]).encode(), digest_size=5).hexdigest()
        key = f"{key}~{digest}"
    spec = {
        "type": key,
        "label": canonical_type,
        "schema": None,
        "inputs": [_handle(h) for h in inputs],
        "outputs": [_handle(h) for h in outputs],
        "inputConnectable": True,
        "inputConnectableStart": False,
        "inputConnectableEnd": True,
        "outputConnectable": True,
        "outputConnectableStart": True,
        "outputConnectableEnd": False,
        "pane_policy": "single",
    }
    return key, spec


def _handle(handle_id: str) -> dict[str, str]:
    return {"id": handle_id, "label": _HANDLE_LABELS.get(handle_id, handle_id)}


# -- canonical -> flow --------------------------------------------------------------------
def node_classes(node_type: str, *extra: str) -> str:
    """The CSS classes of a drawn node: its type, then state (``af-invalid``, ``af-run-…``)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in node_type)
    return " ".join(["af-node", f"af-t-{safe}", *(e for e in extra if e)])


def flow_node(
    node: Mapping[str, Any],
    edges: Iterable[Mapping[str, Any]] = (),
    registry: NodeRegistry | None = None,
) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """A canonical node as a React Flow node dict, with its type key and spec."""
    inputs, outputs = node_handles(node, edges, registry)
    canonical_type = str(node.get("type", ""))
    key, spec = node_type_spec(canonical_type, inputs, outputs)
    position = node.get("position") if isinstance(node.get("position"), Mapping) else {}
    assert isinstance(position, Mapping)
    data = node.get("data") if isinstance(node.get("data"), Mapping) else {}
    assert isinstance(data, Mapping)
    label = data.get("label") or node.get("id") or canonical_type
    rf_node = {
        "id": str(node.get("id")),
        "type": key,
        "position": {"x": _number(position.get("x")), "y": _number(position.get("y"))},
        "label": str(label),
        "data": {FLOW_KEY: copy.deepcopy(dict(node))},
        "className": node_classes(canonical_type),
    }
    return rf_node, key, spec


def flow_edge(edge: Mapping[str, Any]) -> dict[str, Any]:
    """A canonical edge as a React Flow edge dict (``null`` handles stay unset)."""
    rf_edge: dict[str, Any] = {
        "id": str(edge.get("id")),
        "source": str(edge.get("source")),
        "target": str(edge.get("target")),
        "data": {FLOW_KEY: copy.deepcopy(dict(edge))},
    }
    for name in ("sourceHandle", "targetHandle"):
        if edge.get(name) is not None:
            rf_edge[name] = str(edge[name])
    if edge.get("label") is not None:
        rf_edge["label"] = str(edge["label"])
    return edge_look(rf_edge)


def edge_look(rf_edge: dict[str, Any]) -> dict[str, Any]:
    """Error edges (from a node's ``error`` handle) are drawn red and dashed."""
    if rf_edge.get("sourceHandle") == ERROR_HANDLE:
        rf_edge["className"] = "af-edge-error"
        rf_edge["style"] = {"stroke": "#dc2626", "strokeDasharray": "6 4"}
    return rf_edge


def to_flow(doc: Mapping[str, Any], registry: NodeRegistry | None = None) -> FlowGraph:
    """Draw a canonical document (``WorkflowDefinition.to_dict()``)."""
    graph = FlowGraph()
    edges = [e for e in doc.get("edges", []) if isinstance(e, Mapping)]
    for node in doc.get("nodes", []):
        if not isinstance(node, Mapping):
            continue
        rf_node, key, spec = flow_node(node, edges, registry)
        graph.nodes.append(rf_node)
        graph.node_types[key] = spec
    graph.edges = [flow_edge(edge) for edge in edges]
    return graph


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)


# -- flow -> canonical --------------------------------------------------------------------
def from_flow(
    nodes: Iterable[Mapping[str, Any]],
    edges: Iterable[Mapping[str, Any]],
    base: Mapping[str, Any],
) -> dict[str, Any]:
    """The canonical document of what the canvas holds.

    ``base`` supplies everything but nodes and edges (version, settings, unknown keys).
    """
    doc = {
        key: copy.deepcopy(value) for key, value in base.items() if key not in ("nodes", "edges")
    }
    doc["nodes"] = [_canonical_node(node) for node in nodes]
    doc["edges"] = [_canonical_edge(edge) for edge in edges]
    return doc


def _canonical_node(rf_node: Mapping[str, Any]) -> dict[str, Any]:
    data = rf_node.get("data") if isinstance(rf_node.get("data"), Mapping) else {}
    assert isinstance(data, Mapping)
    stored = data.get(FLOW_KEY)
    if isinstance(stored, Mapping):
        node = copy.deepcopy(dict(stored))
    else:  # drawn by someone else: take what React Flow knows
        node = {
            "id": rf_node.get("id"),
            "type": rf_node.get("type"),
            "data": {"label": rf_node.get("label") or ""},
        }
    node["id"] = str(rf_node.get("id", node.get("id")))
    drawn = rf_node.get("position")
    if isinstance(drawn, Mapping):
        old = node.get("position")
        old_xy = (
            (_number(old.get("x")), _number(old.get("y")))
            if isinstance(old, Mapping)
            else (0.0, 0.0)
        )
        new_xy = (_number(drawn.get("x")), _number(drawn.get("y")))
        if new_xy != old_xy:
            merged = dict(old) if isinstance(old, Mapping) else {}
            merged["x"], merged["y"] = new_xy
            node["position"] = merged
    return node


def _canonical_edge(rf_edge: Mapping[str, Any]) -> dict[str, Any]:
    data = rf_edge.get("data") if isinstance(rf_edge.get("data"), Mapping) else {}
    assert isinstance(data, Mapping)
    stored = data.get(FLOW_KEY)
    edge = copy.deepcopy(dict(stored)) if isinstance(stored, Mapping) else {}
    edge["id"] = str(rf_edge.get("id", edge.get("id")))
    edge["source"] = str(rf_edge.get("source", edge.get("source")))
    edge["target"] = str(rf_edge.get("target", edge.get("target")))
    for name in ("sourceHandle", "targetHandle"):
        value = rf_edge.get(name)
        if value is not None:
            edge[name] = str(value)
        elif name not in edge and not isinstance(stored, Mapping):
            edge[name] = "out" if name == "sourceHandle" else "in"
    return _edge_key_order(edge)


def _edge_key_order(edge: dict[str, Any]) -> dict[str, Any]:
    order = ("id", "source", "sourceHandle", "target", "targetHandle")
    return {**{k: edge[k] for k in order if k in edge}, **edge}


def edge_endpoints(edge: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """(source, source handle, target, target handle) with the engine's defaults."""
    return (
        str(edge.get("source")),
        str(edge.get("sourceHandle") or "out"),
        str(edge.get("target")),
        str(edge.get("targetHandle") or "in"),
    )


# -- layout -------------------------------------------------------------------------------
def auto_layout(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Left-to-right layers: each node one column right of its furthest predecessor.

    Rows inside a column follow the mean row of the predecessors (fewer crossings);
    cycles do not stop it (a back edge is ignored once its target is placed).
    """
    out = copy.deepcopy(dict(doc))
    nodes = [n for n in out.get("nodes", []) if isinstance(n, dict)]
    ids = [str(n.get("id")) for n in nodes]
    known = set(ids)
    preds: dict[str, list[str]] = {i: [] for i in ids}
    succs: dict[str, list[str]] = {i: [] for i in ids}
    for edge in out.get("edges", []):
        if not isinstance(edge, Mapping):
            continue
        source, target = str(edge.get("source")), str(edge.get("target"))
        if source in known and target in known and source != target:
            preds[target].append(source)
            succs[source].append(target)

    layer: dict[str, int] = {}
    remaining = {i: len(set(preds[i])) for i in ids}
    ready = [i for i in ids if remaining[i] == 0]
    while len(layer) < len(ids):
        if not ready:  # a cycle: break it at the first unplaced node in document order
            ready = [next(i for i in ids if i not in layer)]
        current = ready.pop(0)
        if current in layer:
            continue
        layer[current] = max((layer[p] + 1 for p in preds[current] if p in layer), default=0)
        for nxt in dict.fromkeys(succs[current]):
            remaining[nxt] -= 1
            if remaining[nxt] == 0 and nxt not in layer:
                ready.append(nxt)

    columns: dict[int, list[str]] = {}
    for node_id in ids:
        columns.setdefault(layer[node_id], []).append(node_id)
    row: dict[str, float] = {}
    for index in sorted(columns):
        members = columns[index]

        def weight(node_id: str) -> float:
            placed = [row[p] for p in preds[node_id] if p in row]
            return sum(placed) / len(placed) if placed else float(ids.index(node_id))

        members.sort(key=weight)
        offset = (len(members) - 1) / 2
        for position, node_id in enumerate(members):
            row[node_id] = position - offset
    for node in nodes:
        node_id = str(node.get("id"))
        old = node.get("position") if isinstance(node.get("position"), dict) else {}
        assert isinstance(old, dict)
        node["position"] = {
            **old,
            "x": layer[node_id] * LAYER_GAP,
            "y": row[node_id] * ROW_GAP,
        }
    return out
