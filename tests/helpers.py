"""Builders for workflow documents and small node types used by the engine tests."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from pydantic import Field

from engine import BaseNodeConfig, NodeContext, NodeError, NodeRegistry, NodeType


def node(node_id: str, node_type: str, config: dict[str, Any] | None = None, **data: Any) -> dict:
    return {
        "id": node_id,
        "type": node_type,
        "position": {"x": 0, "y": 0},
        "data": {"label": node_id, "config": config or {}, **data},
    }


def edge(source: str, target: str, handle: str = "out", edge_id: str | None = None) -> dict:
    return {
        "id": edge_id or f"{source}->{target}:{handle}",
        "source": source,
        "sourceHandle": handle,
        "target": target,
        "targetHandle": "in",
    }


def workflow(nodes: list[dict], edges: list[dict], **settings: Any) -> dict:
    base = {
        "timeout": 30,
        "retryPolicy": {"maxRetries": 0, "backoffMs": 10},
        "errorHandling": "stop",
    }
    base.update(settings)
    return {"version": "1.0.0", "nodes": nodes, "edges": edges, "settings": base}


def chain(*node_ids: str) -> list[dict]:
    return [edge(a, b) for a, b in itertools.pairwise(node_ids)]


class SleepConfig(BaseNodeConfig):
    seconds: float = 0.0
    value: Any = None


class SleepNode(NodeType[SleepConfig]):
    """Waits, then echoes ``value``; records start/end times on the class for overlap checks."""

    type = "sleep"
    Config = SleepConfig
    spans: dict[str, tuple[float, float]] = {}

    async def run(self, ctx: NodeContext, config: SleepConfig) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.sleep(config.seconds)
        SleepNode.spans[ctx.node_id] = (t0, loop.time())
        return {"value": config.value}


class FlakyConfig(BaseNodeConfig):
    failures: int = 1
    retryable: bool = True
    key: str = Field(default="")


class FlakyNode(NodeType[FlakyConfig]):
    """Fails ``failures`` times per key, then succeeds; counts every call."""

    type = "flaky"
    Config = FlakyConfig
    calls: dict[str, int] = {}

    async def run(self, ctx: NodeContext, config: FlakyConfig) -> dict[str, Any]:
        key = config.key or ctx.node_id
        FlakyNode.calls[key] = FlakyNode.calls.get(key, 0) + 1
        if FlakyNode.calls[key] <= config.failures:
            raise NodeError(
                f"planned failure {FlakyNode.calls[key]}",
                retryable=config.retryable,
                field="failures",
            )
        return {"calls": FlakyNode.calls[key]}


def make_registry() -> NodeRegistry:
    registry = NodeRegistry()
    registry.register(SleepNode)
    registry.register(FlakyNode)
    SleepNode.spans.clear()
    FlakyNode.calls.clear()
    return registry
