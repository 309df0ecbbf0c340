"""Node type registry: the built-ins, plus plugins from the ``agentflow.nodes`` entry points.

Built-in modules are imported on first use, so validating a workflow with three node
types imports three small modules, and heavy libraries stay inside ``run``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from engine.errors import AgentFlowError, UnknownNodeTypeError
from engine.nodes.base import NodeType

__all__ = ["ENTRY_POINT_GROUP", "NodeRegistry", "default_registry"]

ENTRY_POINT_GROUP = "agentflow.nodes"

_BUILTINS: dict[str, str] = {
    "start": "engine.nodes.start:StartNode",
    "end": "engine.nodes.end:EndNode",
    "template": "engine.nodes.template:TemplateNode",
    "condition": "engine.nodes.condition:ConditionNode",
    "loop": "engine.nodes.loop:LoopNode",
    "code": "engine.nodes.code:CodeNode",
    "http": "engine.nodes.http:HttpNode",
    "sql": "engine.nodes.sql:SqlNode",
    "aggregate": "engine.nodes.aggregate:AggregateNode",
    "llm": "engine.nodes.llm:LlmNode",
    "subworkflow": "engine.nodes.subworkflow:SubworkflowNode",
}


class NodeRegistry:
    """Maps a node ``type`` string to a :class:`NodeType` instance."""

    def __init__(self, *, builtins: bool = True, plugins: bool = True) -> None:
        self._lazy: dict[str, str] = dict(_BUILTINS) if builtins else {}
        self._loaded: dict[str, NodeType[Any]] = {}
        self._plugins_pending = plugins

    def register(self, node_type: type[NodeType[Any]] | NodeType[Any]) -> None:
        """Add or replace a node type (a class or an instance)."""
        instance = node_type() if isinstance(node_type, type) else node_type
        name = getattr(instance, "type", None)
        if not isinstance(name, str) or not name:
            raise AgentFlowError(f"{instance!r} has no 'type' name")
        self._loaded[name] = instance
        self._lazy.pop(name, None)

    def get(self, name: str, *, node_id: str | None = None) -> NodeType[Any]:
        found = self._loaded.get(name)
        if found is not None:
            return found
        if name in self._lazy:
            return self._import(name)
        if self._plugins_pending:
            self._load_plugins()
            return self.get(name, node_id=node_id)
        raise UnknownNodeTypeError(name, node_id=node_id)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.get(name)
        except UnknownNodeTypeError:
            return False
        return True

    def names(self) -> list[str]:
        if self._plugins_pending:
            self._load_plugins()
        return sorted({*self._lazy, *self._loaded})

    def all(self) -> list[NodeType[Any]]:
        return [self.get(name) for name in self.names()]

    def _import(self, name: str) -> NodeType[Any]:
        module_name, _, attr = self._lazy.pop(name).partition(":")
        cls = getattr(importlib.import_module(module_name), attr)
        self._loaded[name] = cls()
        return self._loaded[name]

    def _load_plugins(self) -> None:
        self._plugins_pending = False
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            try:
                loaded = entry.load()
            except Exception as exc:
                raise AgentFlowError(
                    f"node plugin '{entry.name}' ({entry.value}) failed to load: {exc}"
                ) from exc
            self.register(loaded)


_default: NodeRegistry | None = None


def default_registry() -> NodeRegistry:
    """The process-wide registry used when none is passed."""
    global _default
    if _default is None:
        _default = NodeRegistry()
    return _default
