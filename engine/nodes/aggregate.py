"""``aggregate``: the first non-empty value among branches (joins after a condition)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from engine._private.references import MISSING
from engine.nodes.base import BaseNodeConfig, NodeContext, NodeType


class AggregateConfig(BaseNodeConfig):
    values: list[Any] = Field(default_factory=list, description="Values or references, in order.")


def _is_empty(value: Any) -> bool:
    return value is MISSING or value is None or value == "" or value == [] or value == {}


class AggregateNode(NodeType[AggregateConfig]):
    type = "aggregate"
    description = (
        "First non-empty value of its 'values' (references to untaken branches are empty)."
    )
    Config = AggregateConfig
    outputs = {"value": "the first non-empty value, or null"}
    lenient_references = True
    runs_on_any_input = True

    async def run(self, ctx: NodeContext, config: AggregateConfig) -> dict[str, Any]:
        for value in config.values:
            if not _is_empty(value):
                return {"value": value}
        return {"value": None}
