"""The ``loop`` node: a nested workflow per item, run through the real engine."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any, ClassVar

from pydantic import Field

from engine import (
    BaseNodeConfig,
    Executor,
    LogEvent,
    NodeContext,
    NodeError,
    NodeRegistry,
    NodeType,
    load_definition,
    validate_definition,
)

SETTINGS = {
    "timeout": 30,
    "retryPolicy": {"maxRetries": 0, "backoffMs": 10},
    "errorHandling": "stop",
}


def _node(node_id: str, node_type: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": node_type,
        "position": {"x": 0, "y": 0},
        "data": {"label": node_id, "config": config or {}},
    }


def _chain(*ids: str) -> list[dict[str, Any]]:
    return [
        {"id": f"{a}->{b}", "source": a, "sourceHandle": "out", "target": b, "targetHandle": "in"}
        for a, b in itertools.pairwise(ids)
    ]


def _doc(nodes: list[dict[str, Any]], **settings: Any) -> dict[str, Any]:
    ids = [node["id"] for node in nodes]
    return {
        "version": "1.0.0",
        "nodes": nodes,
        "edges": _chain(*ids),
        "settings": {**SETTINGS, **settings},
    }


class Probe:
    """Shared counters the test node types write to."""

    running = 0
    peak = 0
    started: ClassVar[list[Any]] = []
    cancelled: ClassVar[list[Any]] = []

    @classmethod
    def reset(cls) -> None:
        cls.running = cls.peak = 0
        cls.started = []
        cls.cancelled = []


class SleepConfig(BaseNodeConfig):
    seconds: float = 0.0
    value: Any = None
    fail_on: Any = Field(default=None, alias="failOn")


class SleepNode(NodeType[SleepConfig]):
    """Sleeps, logs, and fails when ``value == failOn``: a code-free slow node."""

    type = "sleep"
    Config = SleepConfig

    async def run(self, ctx: NodeContext, config: SleepConfig) -> dict[str, Any]:
        Probe.started.append(config.value)
        Probe.running += 1
        Probe.peak = max(Probe.peak, Probe.running)
        try:
            ctx.log(f"sleeping {config.seconds}")
            await asyncio.sleep(config.seconds)
        except asyncio.CancelledError:
            Probe.cancelled.append(config.value)
            raise
        finally:
            Probe.running -= 1
        if config.fail_on is not None and config.value == config.fail_on:
            raise NodeError(f"refusing value {config.value!r}", field="value")
        return {"value": config.value}


def _registry() -> NodeRegistry:
    registry = NodeRegistry(plugins=False)
    registry.register(SleepNode)
    return registry


def _body(seconds: Any = 0.0, fail_on: Any = None, **start: Any) -> dict[str, Any]:
    """start -> work (sleep) -> end {value, index}."""
    return _doc(
        [
            _node("start", "start", start or None),
            _node(
                "work", "sleep", {"seconds": seconds, "value": "{{start.item}}", "failOn": fail_on}
            ),
            _node(
                "end", "end", {"outputs": {"value": "{{work.value}}", "index": "{{start.index}}"}}
            ),
        ]
    )


def _outer(loop_config: dict[str, Any], **settings: Any) -> dict[str, Any]:
    """start (input 'items') -> loop -> end {results}."""
    return _doc(
        [
            _node("start", "start", {"inputs": [{"name": "items", "type": "any"}]}),
            _node("loop", "loop", {"items": "{{start.items}}", **loop_config}),
            _node("end", "end", {"outputs": {"results": "{{loop.results}}"}}),
        ],
        **settings,
    )


async def _run(loop_config: dict[str, Any], items: Any, **options: Any) -> Any:
    Probe.reset()
    registry = _registry()
    definition = load_definition(_outer(loop_config))
    return await Executor(registry).run(definition, {"items": items}, **options)


async def test_results_come_back_in_item_order() -> None:
    # Later items finish first; results still follow the items.
    items = [0.15, 0.0, 0.1, 0.05]
    result = await _run({"body": _body(seconds="{{start.item}}"), "concurrency": 4}, items)
    assert result.status == "succeeded", result.error
    assert result.outputs["results"] == [
        {"value": item, "index": index} for index, item in enumerate(items)
    ]
    assert result.nodes["loop"].metadata["iterations"] == 4


async def test_builtin_body_with_context_and_declared_inputs() -> None:
    body = _doc(
        [
            _node(
                "start",
                "start",
                {
                    "inputs": [
                        {"name": "item", "type": "object", "required": True},
                        {"name": "index", "type": "integer", "required": True},
                        {"name": "greeting", "type": "string", "required": True},
                    ]
                },
            ),
            _node("say", "template", {"template": "{{ inputs.greeting }} {{ start.item.name }}"}),
            _node("end", "end", {"outputs": {"text": "{{say.text}}", "n": "{{inputs.index}}"}}),
        ]
    )
    result = await Executor().run(
        load_definition(_outer({"body": body, "context": {"greeting": "{{start.hello}}"}})),
        {"items": [{"name": "Ada"}, {"name": "Bob"}], "hello": "Hi"},
    )
    assert result.status == "succeeded", result.error
    assert result.outputs["results"] == [{"text": "Hi Ada", "n": 0}, {"text": "Hi Bob", "n": 1}]


async def test_concurrency_overlaps_iterations() -> None:
    items = [1, 2, 3, 4]
    started = time.perf_counter()
    result = await _run({"body": _body(seconds=0.2), "concurrency": 4}, items)
    parallel = time.perf_counter() - started
    assert result.status == "succeeded", result.error
    assert parallel < 0.6
    assert Probe.peak == 4

    started = time.perf_counter()
    result = await _run({"body": _body(seconds=0.2)}, items)
    serial = time.perf_counter() - started
    assert result.status == "succeeded", result.error
    assert serial >= 0.8
    assert Probe.peak == 1


async def test_concurrency_is_a_bound() -> None:
    result = await _run({"body": _body(seconds=0.03), "concurrency": 2}, list(range(7)))
    assert result.status == "succeeded", result.error
    assert Probe.peak == 2
    assert sorted(Probe.started) == list(range(7))


async def test_more_items_than_max_iterations_fails_before_running() -> None:
    result = await _run({"body": _body(), "maxIterations": 3}, [1, 2, 3, 4])
    assert result.status == "failed"
    error = result.nodes["loop"].error
    assert error is not None
    assert error["field"] == "items"
    assert "4 entries" in error["message"]
    assert "maxIterations (3)" in error["message"]
    assert Probe.started == []


async def test_items_that_are_not_a_list() -> None:
    result = await _run({"body": _body()}, {"a": 1})
    error = result.nodes["loop"].error
    assert result.status == "failed"
    assert error is not None
    assert error["field"] == "items"
    assert "must be a list, got an object" in error["message"]
    assert Probe.started == []


async def test_empty_items_give_empty_results() -> None:
    result = await _run({"body": _body()}, [])
    assert result.status == "succeeded", result.error
    assert result.outputs["results"] == []


async def test_failed_iteration_fails_the_loop_with_index_and_body_error() -> None:
    result = await _run({"body": _body(fail_on=2)}, [0, 1, 2, 3])
    assert result.status == "failed"
    error = result.nodes["loop"].error
    assert error is not None
    assert error["nodeId"] == "loop"
    assert "iteration 2" in error["message"]
    assert "body node 'work'" in error["message"]
    assert "refusing value 2" in error["message"]
    assert Probe.started == [0, 1, 2]  # serial: nothing after the failure ran


async def test_failed_iteration_cancels_concurrent_ones() -> None:
    body = _body(seconds="{{start.item.s}}", fail_on={"s": 0.01})
    started = time.perf_counter()
    result = await _run({"body": body, "concurrency": 3}, [{"s": 5}, {"s": 0.01}, {"s": 5}])
    assert time.perf_counter() - started < 2
    assert result.status == "failed"
    assert "iteration 1" in result.nodes["loop"].error["message"]
    assert Probe.cancelled == [{"s": 5}, {"s": 5}]
    assert Probe.running == 0


async def test_wrong_item_type_for_the_body_start() -> None:
    body = _body(inputs=[{"name": "item", "type": "string", "required": True}])
    result = await _run({"body": body}, ["ok", 7])
    error = result.nodes["loop"].error
    assert result.status == "failed"
    assert error is not None
    assert "iteration 1" in error["message"]
    assert "must be a string" in error["message"]


async def test_cancelling_the_run_cancels_iterations() -> None:
    Probe.reset()
    registry = _registry()
    definition = load_definition(_outer({"body": _body(seconds=5), "concurrency": 2}))
    run = Executor(registry).start(definition, {"items": ["a", "b", "c"]})
    for _ in range(100):
        if len(Probe.started) == 2:
            break
        await asyncio.sleep(0.01)
    assert Probe.started == ["a", "b"]
    started = time.perf_counter()
    run.cancel()
    result = await run.wait()
    assert time.perf_counter() - started < 1
    assert result.status == "cancelled"
    assert result.nodes["loop"].status == "cancelled"
    assert sorted(Probe.cancelled) == ["a", "b"]
    assert Probe.running == 0


async def test_loop_timeout_cancels_iterations() -> None:
    loop_config = {"body": _body(seconds=5), "timeoutMs": 200}
    started = time.perf_counter()
    result = await _run(loop_config, ["a"])
    assert time.perf_counter() - started < 2
    assert result.status == "failed"
    assert result.nodes["loop"].error["type"] == "NodeTimeoutError"
    assert Probe.cancelled == ["a"]


async def test_body_logs_are_forwarded_with_the_iteration() -> None:
    logs: list[LogEvent] = []
    result = await _run(
        {"body": _body(seconds=0.0)},
        ["x", "y"],
        listeners=[lambda event: logs.append(event) if isinstance(event, LogEvent) else None],
    )
    assert result.status == "succeeded", result.error
    assert [(log.node_id, log.message) for log in logs] == [
        ("loop", "[iteration 0 work] sleeping 0.0"),
        ("loop", "[iteration 1 work] sleeping 0.0"),
    ]


def _issues(loop_config: dict[str, Any]) -> list[Any]:
    return validate_definition(load_definition(_outer(loop_config)), _registry())


def test_valid_body_validates() -> None:
    assert _issues({"body": _body()}) == []


def test_body_errors_are_reported_on_the_loop_node() -> None:
    body = _doc(
        [
            _node("start", "start"),
            _node("mystery", "no_such_type"),
            _node("end", "end", {"outputs": {"v": "{{ghost.value}}"}}),
        ]
    )
    issues = _issues({"body": body})
    assert {(issue.node_id, issue.field) for issue in issues} == {("loop", "body")}
    messages = " | ".join(issue.message for issue in issues)
    assert "node 'mystery'" in messages
    assert "no_such_type" in messages
    assert "node 'end'" in messages
    assert "ghost" in messages


def test_body_without_end_or_with_unmet_inputs() -> None:
    no_end = _doc([_node("start", "start"), _node("work", "sleep")])
    issues = _issues({"body": no_end})
    assert [(i.node_id, i.field) for i in issues] == [("loop", "body")]
    assert "no 'end' node" in issues[0].message

    needs = _body(inputs=[{"name": "token", "type": "string", "required": True}])
    issues = _issues({"body": needs})
    assert len(issues) == 1
    assert "requires input 'token'" in issues[0].message
    assert _issues({"body": needs, "context": {"token": "t"}}) == []


def test_body_that_is_not_a_workflow() -> None:
    issues = _issues({"body": {"nodes": "nope"}})
    assert issues
    assert all((i.node_id, i.field) == ("loop", "body") for i in issues)


def test_reserved_context_names_and_static_items() -> None:
    issues = _issues({"body": _body(), "context": {"item": 1}})
    assert [(i.node_id, i.field) for i in issues] == [("loop", "context.item")]

    doc = _outer({"body": _body(), "maxIterations": 2})
    doc["nodes"][1]["data"]["config"]["items"] = [1, 2, 3]
    issues = validate_definition(load_definition(doc), _registry())
    assert [(i.node_id, i.field) for i in issues] == [("loop", "items")]
    assert "maxIterations (2)" in issues[0].message


def test_body_references_are_not_resolved_by_the_outer_workflow() -> None:
    # 'work' and 'item' exist only in the body; the outer workflow must not see them.
    assert _issues({"body": _body()}) == []
    outer = _outer({"body": _body()})
    assert "{{start.item}}" in str(outer["nodes"][1]["data"]["config"]["body"])


async def test_body_cannot_open_the_private_network() -> None:
    seen: list[bool] = []

    class SettingsNode(NodeType[BaseNodeConfig]):
        type = "peek"

        async def run(self, ctx: NodeContext, config: BaseNodeConfig) -> dict[str, Any]:
            seen.append(ctx.settings.allow_private_network)
            return {}

    registry = _registry()
    registry.register(SettingsNode)
    body = _doc([_node("start", "start"), _node("peek", "peek"), _node("end", "end")])
    body["settings"]["allowPrivateNetwork"] = True
    for outer_allows in (False, True):
        doc = _outer({"body": body}, allowPrivateNetwork=outer_allows)
        result = await Executor(registry).run(load_definition(doc), {"items": [1]})
        assert result.status == "succeeded", result.error
    assert seen == [False, True]
