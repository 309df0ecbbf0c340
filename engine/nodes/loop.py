"""``loop``: runs a nested workflow (the ``body``) once per item of a list.

The body is a complete definition with its own ``start`` (it receives the inputs
``item``, ``index`` and the entries of ``context``) and ``end`` (its outputs are the
iteration's result). Its ``{{...}}`` references belong to the body, so ``body`` is a raw
field: the outer workflow never resolves it. Iterations run through the real engine,
at most ``concurrency`` at a time, in a TaskGroup so that cancelling the outer run (or
one iteration failing) cancels the iterations still running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from pydantic import Field

from engine.definition import Node
from engine.errors import (
    AgentFlowError,
    DefinitionError,
    NodeError,
    ValidationIssue,
    WorkflowValidationError,
)
from engine.nodes.base import BaseNodeConfig, NodeContext, NodeResult, NodeType

if TYPE_CHECKING:
    from engine.events import Event
    from engine.executor import Executor
    from engine.graph import CompiledWorkflow
    from engine.nodes.registry import NodeRegistry
    from engine.results import RunResult

#: Inputs every iteration's start node receives besides the ``context`` entries.
ITERATION_INPUTS = ("item", "index")


class LoopConfig(BaseNodeConfig):
    items: Any = Field(description="The list to iterate, usually a reference ('{{fetch.body}}').")
    body: dict[str, Any] = Field(
        description="A workflow definition run per item; its start receives 'item' and 'index'."
    )
    context: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra inputs for every iteration (references resolve in the outer workflow).",
    )
    max_iterations: int = Field(default=1000, ge=1, le=1_000_000)
    concurrency: int = Field(default=1, ge=1, le=10_000)


class _IterationFailed(Exception):
    """Raised by a worker to stop the TaskGroup; the error itself is kept aside."""


class LoopNode(NodeType[LoopConfig]):
    type = "loop"
    description = "Run a nested workflow once per item of a list (bounded, optionally concurrent)."
    Config = LoopConfig
    outputs = {"results": "each iteration's end outputs, in item order"}
    raw_fields = frozenset({"body"})

    def check(
        self, node: Node, config: BaseNodeConfig | None, registry: NodeRegistry
    ) -> Iterable[ValidationIssue]:
        raw = node.data.config
        body = raw.get("body")
        if isinstance(body, dict):
            yield from _body_issues(node.id, body, raw.get("context"), registry)
        if isinstance(config, LoopConfig):
            if not isinstance(config.items, list):
                yield ValidationIssue(
                    "config",
                    f"items must be a list, got {_json_type(config.items)}",
                    node_id=node.id,
                    field="items",
                )
            elif len(config.items) > config.max_iterations:
                yield ValidationIssue(
                    "config",
                    _too_many(len(config.items), config.max_iterations),
                    node_id=node.id,
                    field="items",
                )

    async def run(self, ctx: NodeContext, config: LoopConfig) -> NodeResult:
        from engine.executor import Executor

        items = config.items
        if not isinstance(items, list):
            raise NodeError(
                f"items must be a list, got {_json_type(items)}", node_id=ctx.node_id, field="items"
            )
        if len(items) > config.max_iterations:
            raise NodeError(
                _too_many(len(items), config.max_iterations), node_id=ctx.node_id, field="items"
            )
        registry = ctx.registry
        body = _compile_body(ctx, config.body, registry)
        executor = Executor(registry)
        results: list[Any] = [None] * len(items)
        failures: list[tuple[int, NodeError]] = []
        usage = {"prompt": 0, "completion": 0, "total": 0}
        pending: Iterator[tuple[int, Any]] = iter(enumerate(items))

        async def worker() -> None:
            for index, item in pending:
                try:
                    result = await _iterate(ctx, executor, body, index, item, config.context)
                except NodeError as exc:
                    failures.append((index, exc))
                    raise _IterationFailed from None
                results[index] = result.outputs
                for key in usage:
                    usage[key] += int(result.token_usage.get(key) or 0)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(config.concurrency, len(items))):
                    group.create_task(worker())
        except* _IterationFailed:
            pass
        if failures:
            raise min(failures, key=lambda failure: failure[0])[1]
        return NodeResult(
            {"results": results},
            metadata={
                "iterations": len(items),
                "promptTokens": usage["prompt"],
                "completionTokens": usage["completion"],
            },
            tokens=usage["total"],
        )


def _compile_body(
    ctx: NodeContext, body: dict[str, Any], registry: NodeRegistry | None
) -> CompiledWorkflow:
    from engine.definition import load_definition
    from engine.graph import compile_workflow

    try:
        definition = load_definition(body)
        # A body may not open what the outer workflow keeps closed.
        definition.settings.allow_private_network = (
            definition.settings.allow_private_network and ctx.settings.allow_private_network
        )
        return compile_workflow(definition, registry)
    except AgentFlowError as exc:
        raise NodeError(f"invalid body: {exc}", node_id=ctx.node_id, field="body") from None


async def _iterate(
    ctx: NodeContext,
    executor: Executor,
    body: CompiledWorkflow,
    index: int,
    item: Any,
    context: dict[str, Any],
) -> RunResult:
    from engine.events import LogEvent

    def forward(event: Event) -> None:
        if isinstance(event, LogEvent):
            where = f" {event.node_id}" if event.node_id else ""
            ctx.log(f"[iteration {index}{where}] {event.message}", event.level)

    try:
        run = executor.start(
            body,
            {**context, "item": item, "index": index},
            execution_id=f"{ctx.execution_id}/{ctx.node_id}/{index}",
            listeners=[forward],
        )
    except AgentFlowError as exc:  # the inputs do not fit the body's start node
        raise NodeError(f"iteration {index} failed: {exc}", node_id=ctx.node_id) from None
    result = await run.wait()  # cancelling us cancels the iteration's run, then re-raises
    if result.status == "succeeded":
        return result
    raise NodeError(f"iteration {index} failed: {_failure(result)}", node_id=ctx.node_id)


def _failure(result: RunResult) -> str:
    for state in result.nodes.values():
        if state.status == "failed" and state.error and not state.error.get("handled"):
            field = state.error.get("field")
            where = f"body node '{state.node_id}'" + (f" (field '{field}')" if field else "")
            return f"{where}: {state.error.get('message')}"
    message = (result.error or {}).get("message") or f"the body run ended {result.status}"
    return str(message)


def _body_issues(
    node_id: str, body: dict[str, Any], context: Any, registry: NodeRegistry | None
) -> Iterator[ValidationIssue]:
    from engine.definition import load_definition
    from engine.graph import compile_workflow

    def issue(kind: str, message: str) -> ValidationIssue:
        return ValidationIssue(kind, f"body: {message}", node_id=node_id, field="body")

    try:
        compiled = compile_workflow(load_definition(body), registry)
    except DefinitionError as exc:
        yield issue("body", exc.message)
        return
    except WorkflowValidationError as exc:
        for inner in exc.issues:
            yield issue(inner.kind, _located(inner))
        return
    if not compiled.end_ids:
        yield issue("body", "the body has no 'end' node (its outputs are each iteration's result)")
    context_names = set(context) if isinstance(context, dict) else set()
    given = set(ITERATION_INPUTS) | context_names
    for name in sorted(context_names & set(ITERATION_INPUTS)):
        yield ValidationIssue(
            "config",
            f"context entry '{name}' is reserved for the iteration",
            node_id=node_id,
            field=f"context.{name}",
        )
    start = compiled.nodes[compiled.start_id]
    for spec in getattr(start.static_config, "inputs", None) or ():
        if spec.required and spec.default is None and spec.name not in given:
            yield issue(
                "body",
                f"node '{start.id}' requires input '{spec.name}', which an iteration does not "
                f"give (it gets: {', '.join(sorted(given))})",
            )


def _located(issue: ValidationIssue) -> str:
    where = []
    if issue.node_id is not None:
        where.append(f"node '{issue.node_id}'")
    if issue.edge_id is not None:
        where.append(f"edge '{issue.edge_id}'")
    if issue.field:
        where.append(f"field '{issue.field}'")
    return f"{', '.join(where)}: {issue.message}" if where else issue.message


def _too_many(count: int, limit: int) -> str:
    return f"items has {count} entries, more than maxIterations ({limit})"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    names = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }
    return names.get(type(value), type(value).__name__)
