"""``subworkflow``: run another stored workflow as one node.

The workflows come from the run's ``services.workflows`` (the store, when the run is
recorded). Nesting is bounded so that a workflow calling itself fails clearly.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from pydantic import Field

from engine.errors import AgentFlowError, NodeError
from engine.nodes.base import BaseNodeConfig, NodeContext, NodeResult, NodeType

MAX_DEPTH = 8
_depth: ContextVar[int] = ContextVar("agentflow_subworkflow_depth", default=0)


class SubworkflowConfig(BaseNodeConfig):
    workflow_id: str = Field(min_length=1, description="Id of a stored workflow.")
    version: int | None = Field(default=None, ge=1, description="A saved version; default latest.")
    inputs: dict[str, Any] = Field(default_factory=dict, description="The sub-run's inputs.")


class SubworkflowNode(NodeType[SubworkflowConfig]):
    type = "subworkflow"
    description = "Run a stored workflow with the given inputs; its outputs are this node's."
    Config = SubworkflowConfig
    outputs = {"<output name>": "each output of the stored workflow's end node(s)"}

    async def run(self, ctx: NodeContext, config: SubworkflowConfig) -> NodeResult:
        from engine.executor import Executor

        source = ctx.services.workflows if ctx.services else None
        if source is None:
            raise NodeError(
                "no workflow store is attached to this run (run it with the store enabled)",
                node_id=ctx.node_id,
                field="workflowId",
            )
        depth = _depth.get()
        if depth >= MAX_DEPTH:
            raise NodeError(
                f"subworkflows nested deeper than {MAX_DEPTH} (does a workflow call itself?)",
                node_id=ctx.node_id,
                field="workflowId",
            )
        try:
            definition = source.load_workflow(config.workflow_id, config.version)
        except KeyError:
            version = f" version {config.version}" if config.version else ""
            raise NodeError(
                f"no stored workflow '{config.workflow_id}'{version}",
                node_id=ctx.node_id,
                field="workflowId",
            ) from None
        token = _depth.set(depth + 1)
        try:
            result = await Executor(ctx.registry, ctx.services).run(
                definition, config.inputs, workflow_id=config.workflow_id
            )
        except AgentFlowError as exc:  # invalid stored definition or inputs
            raise NodeError(
                f"subworkflow '{config.workflow_id}': {exc}", node_id=ctx.node_id, field="inputs"
            ) from None
        finally:
            _depth.reset(token)
        if result.status != "succeeded":
            message = (result.error or {}).get("message", result.status)
            raise NodeError(
                f"subworkflow '{config.workflow_id}' {result.status}: {message}",
                node_id=ctx.node_id,
            )
        return NodeResult(
            dict(result.outputs),
            {
                "executionId": result.execution_id,
                "promptTokens": result.token_usage.get("prompt", 0),
                "completionTokens": result.token_usage.get("completion", 0),
            },
            tokens=result.token_usage.get("total", 0),
        )
