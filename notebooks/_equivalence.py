"""When two definitions are the same workflow: what a notebook round trip keeps.

Kept: nodes (id, type, label, description, config, ports and any other data or node
keys), edges (source, handle, target, target handle, label, data and other keys) and
settings. Not kept: node positions (a notebook lays the graph out again, also inside
loop bodies), edge ids, the order of nodes and edges, and ``null`` handles written
instead of ``out``/``in`` (which mean the same).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from engine.definition import WorkflowDefinition, load_definition

__all__ = ["equivalent", "normalize"]


def normalize(definition: WorkflowDefinition | dict[str, Any]) -> dict[str, Any]:
    """A comparable form of a definition (see the module docstring)."""
    model = (
        definition if isinstance(definition, WorkflowDefinition) else load_definition(definition)
    )
    nodes = {}
    for node in model.nodes:
        dumped = node.model_dump(by_alias=True, exclude_unset=True, mode="json")
        dumped.pop("position", None)
        data = dumped.setdefault("data", {})
        data.setdefault("label", "")
        config = data.setdefault("config", {})
        if node.type == "loop" and isinstance(config.get("body"), dict):
            # An invalid body is compared as it is.
            with contextlib.suppress(Exception):
                config["body"] = normalize(config["body"])
        nodes[node.id] = dumped
    edges = []
    for edge in model.edges:
        dumped = edge.model_dump(by_alias=True, exclude_unset=True, mode="json")
        dumped.pop("id", None)
        dumped["sourceHandle"] = edge.source_port
        dumped["targetHandle"] = edge.target_port
        edges.append(dumped)
    edges.sort(key=lambda item: json.dumps(item, sort_keys=True))
    return {
        "version": model.version,
        "nodes": nodes,
        "edges": edges,
        "settings": model.settings.model_dump(by_alias=True, mode="json"),
    }


def equivalent(
    left: WorkflowDefinition | dict[str, Any], right: WorkflowDefinition | dict[str, Any]
) -> bool:
    return normalize(left) == normalize(right)
