"""``end``: maps values (usually references) to the run's outputs."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from engine.nodes.base import BaseNodeConfig, NodeContext, NodeType


class EndConfig(BaseNodeConfig):
    outputs: dict[str, Any] = Field(default_factory=dict)


class EndNode(NodeType[EndConfig]):
    type = "end"
    description = "Exit point: its 'outputs' mapping (values or references) is the run's output."
    Config = EndConfig
    outputs = {"<output name>": "each configured output, references resolved"}

    async def run(self, ctx: NodeContext, config: EndConfig) -> dict[str, Any]:
        return dict(config.outputs)
