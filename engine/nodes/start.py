"""``start``: declares the run's typed inputs and outputs them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from engine.definition import Node, PortType
from engine.errors import ValidationIssue
from engine.nodes.base import BaseNodeConfig, NodeContext, NodeType

if TYPE_CHECKING:
    from engine.nodes.registry import NodeRegistry


class InputDeclaration(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z_][\w\-]*$")
    type: PortType = "any"
    required: bool = False
    default: Any = None
    description: str | None = None


class StartConfig(BaseNodeConfig):
    inputs: list[InputDeclaration] = Field(default_factory=list)


class StartNode(NodeType[StartConfig]):
    type = "start"
    description = "Entry point: declares the run's inputs (name, type, required, default)."
    Config = StartConfig
    cacheable = False  # its outputs are the run's inputs
    outputs = {"<input name>": "each declared input, after defaults and type checks"}

    def check(
        self, node: Node, config: BaseNodeConfig | None, registry: NodeRegistry
    ) -> Iterable[ValidationIssue]:
        if isinstance(config, StartConfig):
            seen: set[str] = set()
            for index, item in enumerate(config.inputs):
                if item.name in seen:
                    yield ValidationIssue(
                        "config",
                        f"input '{item.name}' declared twice",
                        node_id=node.id,
                        field=f"inputs.{index}.name",
                    )
                seen.add(item.name)

    async def run(self, ctx: NodeContext, config: StartConfig) -> dict[str, Any]:
        return dict(ctx.run_inputs)
