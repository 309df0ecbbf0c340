"""The executor: scheduling, branches, retries, error policies, timeouts, cancellation, events."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from engine import (
    BaseNodeConfig,
    Executor,
    InputValidationError,
    NodeContext,
    NodeResult,
    NodeType,
    load_definition,
)
from tests.helpers import FlakyNode, SleepNode, chain, edge, make_registry, node, workflow

START = node("start", "start", {"inputs": [{"name": "x", "type": "number", "default": 1}]})


async def run(doc: dict, inputs: dict | None = None, **options):
    executor = Executor(make_registry_for(doc))
    events: list = []
    result = await executor.run(
        load_definition(doc), inputs or {}, listeners=[events.append], **options
    )
    return result, events


_REGISTRY = None


def make_registry_for(doc):
    global _REGISTRY
    _REGISTRY = make_registry()
    return _REGISTRY


# -- scheduling ------------------------------------------------------------------
async def test_independent_nodes_run_concurrently():
    doc = workflow(
        [
            START,
            *[node(f"s{i}", "sleep", {"seconds": 0.3}) for i in range(3)],
            node("end", "end", {"outputs": {}}),
        ],
        [edge("start", f"s{i}") for i in range(3)] + [edge(f"s{i}", "end") for i in range(3)],
    )
    t0 = time.perf_counter()
    result, _ = await run(doc)
    elapsed = time.perf_counter() - t0
    assert result.status == "succeeded"
    assert elapsed < 0.6, elapsed
    spans = SleepNode.spans
    assert max(s for s, _ in spans.values()) < min(e for _, e in spans.values())


async def test_max_concurrency_bounds_parallelism():
    doc = workflow(
        [START, *[node(f"s{i}", "sleep", {"seconds": 0.1}) for i in range(4)]],
        [edge("start", f"s{i}") for i in range(4)],
        maxConcurrency=1,
    )
    t0 = time.perf_counter()
    result, _ = await run(doc)
    assert result.status == "succeeded"
    assert time.perf_counter() - t0 >= 0.4
    ordered = sorted(SleepNode.spans.values())
    assert all(a[1] <= b[0] + 1e-3 for a, b in itertools.pairwise(ordered))


async def test_ten_thousand_node_chain_runs_without_recursion_limit():
    ids = ["start"] + [f"n{i}" for i in range(10_000)]
    nodes = [START] + [node(i, "sleep", {"value": 1}) for i in ids[1:]]
    result, events = await run(workflow(nodes, chain(*ids)))
    assert result.status == "succeeded"
    assert sum(e.type == "node_succeeded" for e in events) == 10_001


# -- branches --------------------------------------------------------------------
def branching(x_case: str = "{{start.x}}") -> dict:
    cond = node(
        "c",
        "condition",
        {
            "cases": [
                {"id": "big", "conditions": [{"left": x_case, "operator": ">", "right": 10}]},
                {
                    "id": "mid",
                    "logic": "or",
                    "conditions": [
                        {"left": x_case, "operator": "==", "right": 5},
                        {"left": x_case, "operator": "==", "right": 6},
                    ],
                },
            ]
        },
    )
    return workflow(
        [
            START,
            cond,
            node("big", "sleep", {"value": "BIG"}),
            node("big2", "sleep", {"value": "BIG2"}),
            node("mid", "sleep", {"value": "MID"}),
            node("small", "sleep", {"value": "SMALL"}),
            node(
                "join",
                "aggregate",
                {"values": ["{{big2.value}}", "{{mid.value}}", "{{small.value}}"]},
            ),
            node("end", "end", {"outputs": {"answer": "{{join.value}}", "branch": "{{c.branch}}"}}),
        ],
        [
            edge("start", "c"),
            edge("c", "big", "big"),
            edge("big", "big2"),
            edge("c", "mid", "mid"),
            edge("c", "small", "else"),
            edge("big2", "join"),
            edge("mid", "join"),
            edge("small", "join"),
            edge("join", "end"),
        ],
    )


@pytest.mark.parametrize(
    ("x", "answer", "skipped"),
    [
        (50, "BIG2", {"mid", "small"}),
        (5, "MID", {"big", "big2", "small"}),
        (1, "SMALL", {"big", "big2", "mid"}),
    ],
)
async def test_untaken_branches_are_skipped_and_join_takes_the_live_one(x, answer, skipped):
    result, events = await run(branching(), {"x": x})
    assert result.status == "succeeded"
    assert result.outputs["answer"] == answer
    assert {n for n, s in result.nodes.items() if s.status == "skipped"} == skipped
    assert {e.node_id for e in events if e.type == "node_skipped"} == skipped


# -- retries ---------------------------------------------------------------------
async def test_retryable_failure_is_retried_with_growing_backoff():
    doc = workflow(
        [START, node("f", "flaky", {"failures": 2})],
        [edge("start", "f")],
        retryPolicy={"maxRetries": 2, "backoffMs": 40},
    )
    result, events = await run(doc)
    assert result.status == "succeeded"
    assert result.nodes["f"].attempts == 3
    assert FlakyNode.calls["f"] == 3
    delays = [e.delay_ms for e in events if e.type == "node_retrying"]
    assert len(delays) == 2
    assert 20 <= delays[0] <= 40 and 40 <= delays[1] <= 80


async def test_retries_run_out_then_the_node_fails():
    doc = workflow(
        [START, node("f", "flaky", {"failures": 5})],
        [edge("start", "f")],
        retryPolicy={"maxRetries": 1, "backoffMs": 1},
    )
    result, _ = await run(doc)
    assert result.status == "failed"
    assert FlakyNode.calls["f"] == 2
    assert result.error["nodeId"] == "f"
    assert result.nodes["f"].error["message"] == "planned failure 2"


async def test_non_retryable_failure_is_not_retried_and_node_override_wins():
    doc = workflow(
        [
            START,
            node("f", "flaky", {"failures": 1, "retryable": False}),
            node("g", "flaky", {"failures": 1, "maxRetries": 0}),
        ],
        [edge("start", "f"), edge("start", "g")],
        retryPolicy={"maxRetries": 3, "backoffMs": 1},
        errorHandling="continue",
    )
    result, _ = await run(doc)
    assert FlakyNode.calls == {"f": 1, "g": 1}
    assert result.nodes["f"].status == "failed" and result.nodes["g"].status == "failed"


# -- error handling --------------------------------------------------------------
async def test_stop_cancels_running_nodes_and_fails_the_run():
    doc = workflow(
        [
            START,
            node("f", "flaky", {"failures": 1, "retryable": False}),
            node("slow", "sleep", {"seconds": 5}),
            node("after", "sleep", {}),
        ],
        [edge("start", "f"), edge("start", "slow"), edge("f", "after")],
    )
    t0 = time.perf_counter()
    result, events = await run(doc)
    assert time.perf_counter() - t0 < 2
    assert result.status == "failed"
    assert result.error["nodeId"] == "f"
    assert result.nodes["slow"].status == "cancelled"
    assert result.nodes["after"].status == "cancelled"
    assert any(e.type == "node_failed" and e.status == "cancelled" for e in events)


async def test_continue_skips_dependants_and_finishes_other_branches():
    doc = workflow(
        [
            START,
            node("f", "flaky", {"failures": 1, "retryable": False}),
            node("dep", "sleep", {}),
            node("dep2", "sleep", {}),
            node("other", "sleep", {"value": 7}),
            node("end", "end", {"outputs": {"v": "{{other.value}}"}}),
        ],
        [
            edge("start", "f"),
            edge("f", "dep"),
            edge("dep", "dep2"),
            edge("start", "other"),
            edge("other", "end"),
        ],
        errorHandling="continue",
    )
    result, _ = await run(doc)
    assert result.nodes["f"].status == "failed"
    assert result.nodes["dep"].status == "skipped" and result.nodes["dep2"].status == "skipped"
    assert result.nodes["dep"].skip_reason == "an upstream node failed"
    assert result.status == "succeeded" and result.outputs == {"v": 7}


async def test_continue_without_a_reached_end_fails_the_run():
    doc = workflow(
        [
            START,
            node("f", "flaky", {"failures": 1, "retryable": False}),
            node("end", "end", {"outputs": {"v": "{{f.calls}}"}}),
        ],
        [edge("start", "f"), edge("f", "end")],
        errorHandling="continue",
    )
    result, _ = await run(doc)
    assert result.status == "failed"
    assert result.nodes["end"].status == "skipped"
    assert result.error["nodeId"] == "f"


async def test_fallback_takes_the_error_branch():
    doc = workflow(
        [
            START,
            node("f", "flaky", {"failures": 1, "retryable": False}),
            node("ok", "sleep", {"value": "normal"}),
            node("handler", "sleep", {"value": "handled: {{f.error.message}}"}),
            node("join", "aggregate", {"values": ["{{ok.value}}", "{{handler.value}}"]}),
            node("end", "end", {"outputs": {"v": "{{join.value}}"}}),
        ],
        [
            edge("start", "f"),
            edge("f", "ok"),
            edge("f", "handler", "error"),
            edge("ok", "join"),
            edge("handler", "join"),
            edge("join", "end"),
        ],
        errorHandling="fallback",
    )
    result, _ = await run(doc)
    assert result.status == "succeeded"
    assert result.outputs == {"v": "handled: planned failure 1"}
    assert result.nodes["ok"].status == "skipped"
    assert result.nodes["f"].status == "failed" and result.nodes["f"].error["handled"] is True


async def test_fallback_output_from_config_feeds_downstream():
    doc = workflow(
        [
            START,
            node(
                "f",
                "flaky",
                {
                    "failures": 1,
                    "retryable": False,
                    "errorHandling": "fallback",
                    "fallback": {"calls": -1},
                },
            ),
            node("end", "end", {"outputs": {"v": "{{f.calls}}"}}),
        ],
        [edge("start", "f"), edge("f", "end")],
    )
    result, _ = await run(doc)
    assert result.status == "succeeded"
    assert result.outputs == {"v": -1}
    assert result.nodes["f"].used_fallback


async def test_fallback_with_nothing_to_fall_back_on_stops():
    doc = workflow(
        [START, node("f", "flaky", {"failures": 1, "retryable": False})],
        [edge("start", "f")],
        errorHandling="fallback",
    )
    result, _ = await run(doc)
    assert result.status == "failed"


# -- timeouts and cancellation -----------------------------------------------------
async def test_node_timeout_is_a_retryable_failure():
    doc = workflow(
        [START, node("s", "sleep", {"seconds": 2, "timeoutMs": 50, "maxRetries": 1})],
        [edge("start", "s")],
        retryPolicy={"maxRetries": 0, "backoffMs": 1},
    )
    t0 = time.perf_counter()
    result, events = await run(doc)
    assert time.perf_counter() - t0 < 1
    assert result.status == "failed"
    assert result.nodes["s"].attempts == 2
    assert result.nodes["s"].error["type"] == "NodeTimeoutError"
    assert "0.05 s" in result.nodes["s"].error["message"]
    assert [e.type for e in events].count("node_retrying") == 1


async def test_run_timeout_fails_the_run_and_cancels_nodes():
    doc = workflow([START, node("s", "sleep", {"seconds": 5})], [edge("start", "s")], timeout=0.2)
    t0 = time.perf_counter()
    result, _ = await run(doc)
    assert time.perf_counter() - t0 < 1.5
    assert result.status == "failed"
    assert result.error["type"] == "RunTimeoutError"
    assert result.nodes["s"].status == "cancelled"


async def test_cancel_stops_a_run_and_reports_cancelled():
    doc = workflow(
        [START, node("s", "sleep", {"seconds": 5}), node("t", "sleep", {})],
        chain("start", "s", "t"),
    )
    executor = Executor(make_registry())
    run_handle = executor.start(load_definition(doc), {})
    seen = []
    async for event in run_handle.events():
        seen.append(event.type)
        if event.type == "node_started" and event.node_id == "s":
            run_handle.cancel()
    result = await run_handle.wait()
    assert result.status == "cancelled"
    assert result.nodes["s"].status == "cancelled" and result.nodes["t"].status == "cancelled"
    assert seen[-1] == "run_finished"


async def test_cancelling_the_awaiting_task_cancels_the_run():
    doc = workflow([START, node("s", "sleep", {"seconds": 5})], [edge("start", "s")])
    executor = Executor(make_registry())
    waiter = asyncio.ensure_future(executor.run(load_definition(doc), {}))
    await asyncio.sleep(0.05)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert SleepNode.spans == {}


# -- events ------------------------------------------------------------------------
async def test_event_stream_order_and_json_shape():
    doc = workflow(
        [
            START,
            node("a", "sleep", {"value": 1}),
            node("end", "end", {"outputs": {"a": "{{a.value}}"}}),
        ],
        chain("start", "a", "end"),
    )
    result, events = await run(doc)
    types = [e.type for e in events]
    assert types == ["run_started"] + ["node_started", "node_succeeded"] * 3 + ["run_finished"]
    assert len({e.execution_id for e in events}) == 1 == len({result.execution_id})
    finished = events[-1].to_dict()
    assert finished["type"] == "run_finished" and finished["outputs"] == {"a": 1}
    assert set(finished) >= {"executionId", "durationMs", "tokenUsage", "status"}


class TokensNode(NodeType[BaseNodeConfig]):
    type = "tokens"

    async def run(self, ctx: NodeContext, config: BaseNodeConfig) -> NodeResult:
        ctx.emit_delta("he")
        ctx.emit_delta("llo")
        ctx.log("counted")
        return NodeResult({"text": "hello"}, {"promptTokens": 3, "completionTokens": 2}, tokens=5)


async def test_tokens_are_summed_and_deltas_streamed():
    registry = make_registry()
    registry.register(TokensNode)
    doc = workflow(
        [START, node("a", "tokens"), node("b", "tokens")], [edge("start", "a"), edge("start", "b")]
    )
    events = []
    result = await Executor(registry).run(load_definition(doc), {}, listeners=[events.append])
    assert result.token_usage == {"prompt": 6, "completion": 4, "total": 10}
    assert (
        "".join(e.delta for e in events if e.type == "node_delta" and e.node_id == "a") == "hello"
    )
    assert any(e.type == "log" and e.message == "counted" for e in events)


# -- inputs and references -----------------------------------------------------------
TYPED_START = node(
    "start",
    "start",
    {
        "inputs": [
            {"name": "topic", "type": "string", "required": True},
            {"name": "n", "type": "integer", "default": 3},
            {"name": "tags", "type": "array"},
        ]
    },
)


@pytest.mark.parametrize(
    ("inputs", "field", "needle"),
    [
        ({}, "topic", "missing required input 'topic'"),
        ({"topic": 5}, "topic", "must be a string"),
        ({"topic": "t", "n": "3"}, "n", "must be an integer"),
        ({"topic": "t", "n": True}, "n", "must be an integer"),
        ({"topic": "t", "tags": {"a": 1}}, "tags", "must be an array"),
    ],
)
async def test_bad_inputs_are_refused_before_running(inputs, field, needle):
    with pytest.raises(InputValidationError) as info:
        Executor().start(load_definition(workflow([TYPED_START], [])), inputs)
    assert info.value.field == field and needle in str(info.value)
    assert info.value.node_id == "start"


async def test_references_keep_types_and_insert_text_as_json():
    doc = workflow(
        [
            TYPED_START,
            node(
                "end",
                "end",
                {
                    "outputs": {
                        "n": "{{start.n}}",
                        "tags": "{{start.output.tags}}",
                        "first": "{{inputs.tags.0}}",
                        "text": "n={{start.n}} tags={{start.tags}} v={{region}}",
                        "nested": {"l": ["{{start.n}}"]},
                    }
                },
            ),
        ],
        [edge("start", "end")],
        variables={"region": "eu"},
    )
    result, _ = await run(doc, {"topic": "t", "tags": ["a", "b"]})
    assert result.outputs == {
        "n": 3,
        "tags": ["a", "b"],
        "first": "a",
        "text": 'n=3 tags=["a", "b"] v=eu',
        "nested": {"l": [3]},
    }


async def test_missing_reference_path_names_node_and_path():
    doc = workflow(
        [TYPED_START, node("end", "end", {"outputs": {"v": "{{start.tags.5}}"}})],
        [edge("start", "end")],
    )
    result, _ = await run(doc, {"topic": "t", "tags": ["a"]})
    assert result.status == "failed"
    error = result.nodes["end"].error
    assert error["type"] == "ReferenceResolutionError"
    assert error["nodeId"] == "end" and error["field"] == "outputs.v"
    assert "start.tags.5" in error["message"]


async def test_inserted_values_are_never_evaluated_again():
    payload = "{{ ''.__class__ }} {{start.secret}} {% raw %}"
    doc = workflow(
        [
            node(
                "start",
                "start",
                {"inputs": [{"name": "q", "type": "string"}, {"name": "secret", "type": "string"}]},
            ),
            node("t", "template", {"template": "You said: {{ start.q }}"}),
            node("end", "end", {"outputs": {"rendered": "{{t.text}}", "echo": "say {{start.q}}"}}),
        ],
        chain("start", "t", "end"),
    )
    result, _ = await run(doc, {"q": payload, "secret": "s3cr3t"})
    assert result.status == "succeeded"
    assert result.outputs["rendered"] == "You said: " + payload
    assert result.outputs["echo"] == "say " + payload
    assert "s3cr3t" not in str(result.outputs)


async def test_template_sandbox_refuses_attribute_tricks():
    doc = workflow(
        [
            START,
            node("t", "template", {"template": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}),
        ],
        [edge("start", "t")],
    )
    result, _ = await run(doc)
    assert result.status == "failed"
    assert result.nodes["t"].error["field"] == "template"
    assert (
        "unsafe" in result.nodes["t"].error["message"]
        or "access" in result.nodes["t"].error["message"]
    )


async def test_reused_outputs_are_not_executed_again():
    doc = workflow(
        [
            START,
            node("f", "flaky", {"failures": 0}),
            node("g", "flaky", {"failures": 0}),
            node("end", "end", {"outputs": {"f": "{{f.calls}}", "g": "{{g.calls}}"}}),
        ],
        chain("start", "f", "g", "end"),
    )
    registry = make_registry()
    result = await Executor(registry).run(
        load_definition(doc), {}, reuse_outputs={"f": {"calls": 41}}, execution_id="fixed-id"
    )
    assert result.execution_id == "fixed-id"
    assert result.outputs == {"f": 41, "g": 1}
    assert FlakyNode.calls == {"g": 1}
    assert result.nodes["f"].reused
