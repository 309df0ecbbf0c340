"""Run services: the node cache and the subworkflow node, with small in-memory hosts."""

from __future__ import annotations

from typing import Any

from engine import Executor, WorkflowDefinition, load_definition
from engine.services import RunServices
from tests.helpers import FlakyNode, chain, edge, make_registry, node, workflow


class MemoryCache:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.puts = 0

    def get(self, key: str) -> dict[str, Any] | None:
        return self.items.get(key)

    def put(self, key: str, node_type: str, outputs: dict[str, Any]) -> None:
        self.puts += 1
        self.items[key] = outputs


class MemoryWorkflows:
    def __init__(self, **workflows: dict) -> None:
        self.workflows = workflows

    def load_workflow(self, workflow_id: str, version: int | None = None) -> WorkflowDefinition:
        return load_definition(self.workflows[workflow_id])


START = node("start", "start", {"inputs": [{"name": "word", "type": "string"}]})


def cached_doc(template: str = "<{{ start.word }}>", **settings: Any) -> dict:
    return workflow(
        [
            START,
            node("f", "flaky", {"failures": 0, "key": "{{start.word}}"}),
            node("t", "template", {"template": template}),
            node("end", "end", {"outputs": {"t": "{{t.text}}", "calls": "{{f.calls}}"}}),
        ],
        chain("start", "f", "t", "end"),
        **{"cache": True, **settings},
    )


async def test_cached_nodes_are_not_run_again_for_the_same_inputs():
    registry, cache = make_registry(), MemoryCache()
    executor = Executor(registry, RunServices(cache=cache))
    first = await executor.run(load_definition(cached_doc()), {"word": "a"})
    second = await executor.run(load_definition(cached_doc()), {"word": "a"})
    assert first.outputs == second.outputs == {"t": "<a>", "calls": 1}
    assert FlakyNode.calls == {"a": 1}
    assert {n for n, s in second.nodes.items() if s.cached} == {"f", "t", "end"}
    third = await executor.run(load_definition(cached_doc()), {"word": "b"})
    assert third.outputs == {"t": "<b>", "calls": 1}
    assert not third.nodes["f"].cached and not third.nodes["t"].cached


async def test_changing_one_config_reruns_only_that_node_and_dependants():
    registry, cache = make_registry(), MemoryCache()
    executor = Executor(registry, RunServices(cache=cache))
    await executor.run(load_definition(cached_doc()), {"word": "a"})
    edited = await executor.run(load_definition(cached_doc("[{{ start.word }}]")), {"word": "a"})
    assert edited.outputs["t"] == "[a]"
    assert edited.nodes["f"].cached and not edited.nodes["t"].cached
    assert not edited.nodes["end"].cached  # its input changed


async def test_template_cache_key_follows_upstream_values_it_reads():
    registry, cache = make_registry(), MemoryCache()
    executor = Executor(registry, RunServices(cache=cache))
    doc = workflow(
        [START, node("t", "template", {"template": "{{ nodes['start'].word }}!"})],
        [edge("start", "t")],
        cache=True,
    )
    a = await executor.run(load_definition(doc), {"word": "a"})
    b = await executor.run(load_definition(doc), {"word": "b"})
    assert (a.nodes["t"].outputs, b.nodes["t"].outputs) == ({"text": "a!"}, {"text": "b!"})


async def test_cache_is_opt_in_per_node_and_per_workflow():
    registry, cache = make_registry(), MemoryCache()
    executor = Executor(registry, RunServices(cache=cache))
    doc = cached_doc(cache=False)
    await executor.run(load_definition(doc), {"word": "a"})
    await executor.run(load_definition(doc), {"word": "a"})
    assert cache.puts == 0 and FlakyNode.calls == {"a": 2}
    doc["nodes"][1]["data"]["config"]["cache"] = True
    await executor.run(load_definition(doc), {"word": "a"})
    await executor.run(load_definition(doc), {"word": "a"})
    assert cache.puts == 1 and FlakyNode.calls == {"a": 3}


class BrokenCache(MemoryCache):
    def put(self, key: str, node_type: str, outputs: dict[str, Any]) -> None:
        raise OSError("disk full")


async def test_a_cache_that_fails_to_store_does_not_fail_the_run():
    events: list = []
    executor = Executor(make_registry(), RunServices(cache=BrokenCache()))
    result = await executor.run(
        load_definition(cached_doc()), {"word": "a"}, listeners=[events.append]
    )
    assert result.status == "succeeded"
    assert any(e.type == "log" and "disk full" in e.message for e in events)


CHILD = workflow(
    [
        node("start", "start", {"inputs": [{"name": "n", "type": "integer", "required": True}]}),
        node("end", "end", {"outputs": {"double": "{{start.n}}{{start.n}}"}}),
    ],
    [edge("start", "end")],
)


async def test_subworkflow_runs_a_stored_workflow():
    parent = workflow(
        [
            node("start", "start"),
            node("sub", "subworkflow", {"workflowId": "child", "inputs": {"n": 4}}),
            node("end", "end", {"outputs": {"v": "{{sub.double}}"}}),
        ],
        chain("start", "sub", "end"),
    )
    executor = Executor(services=RunServices(workflows=MemoryWorkflows(child=CHILD)))
    result = await executor.run(load_definition(parent), {})
    assert result.status == "succeeded" and result.outputs == {"v": "44"}


async def test_subworkflow_errors_name_the_node():
    def parent(workflow_id: str, inputs: dict) -> dict:
        return workflow(
            [
                node("start", "start"),
                node("sub", "subworkflow", {"workflowId": workflow_id, "inputs": inputs}),
            ],
            [edge("start", "sub")],
        )

    services = RunServices(workflows=MemoryWorkflows(child=CHILD, me=parent("me", {})))
    executor = Executor(services=services)
    missing = await executor.run(load_definition(parent("ghost", {})), {})
    assert missing.nodes["sub"].error["field"] == "workflowId"
    assert "no stored workflow 'ghost'" in missing.nodes["sub"].error["message"]
    bad_inputs = await executor.run(load_definition(parent("child", {})), {})
    assert "missing required input 'n'" in bad_inputs.nodes["sub"].error["message"]
    recursive = await executor.run(load_definition(parent("me", {})), {})
    assert recursive.status == "failed"
    assert "nested deeper" in str(recursive.nodes["sub"].error["message"])
    no_store = await Executor().run(load_definition(parent("child", {"n": 1})), {})
    assert "no workflow store" in no_store.nodes["sub"].error["message"]
