"""The canvas conversion, layout, undo/redo and clipboard: pure functions, no Panel."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from engine import load_definition, validate_definition
from studio.convert import (
    FLOW_KEY,
    auto_layout,
    edge_endpoints,
    from_flow,
    node_handles,
    node_type_spec,
    to_flow,
)
from studio.history import Clipboard, History, copy_nodes, diff_documents, paste, unique_id

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.json"))


def _node(node_id: str, node_type: str, config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": node_type,
        "position": {"x": 0.0, "y": 0.0},
        "data": {"label": node_id, "config": config},
        **extra,
    }


def _edge(edge_id: str, source: str, target: str, handle: str | None = "out") -> dict[str, Any]:
    edge: dict[str, Any] = {"id": edge_id, "source": source, "target": target}
    if handle is not None:
        edge["sourceHandle"] = handle
        edge["targetHandle"] = "in"
    return edge


def _branchy() -> dict[str, Any]:
    """A document with everything the canvas must not lose or invent."""
    return {
        "version": "1.0.0",
        "nodes": [
            _node("start", "start", {"inputs": [{"name": "n", "type": "number"}]}),
            {
                "id": "check",
                "type": "condition",
                "position": {"x": 250, "y": 10, "zIndex": 3},
                "data": {
                    "label": "Big?",
                    "description": "kept",
                    "config": {
                        "cases": [
                            {
                                "id": "big",
                                "conditions": [
                                    {"left": "{{start.n}}", "operator": ">", "right": 9}
                                ],
                            },
                            {
                                "id": "mid",
                                "conditions": [
                                    {"left": "{{start.n}}", "operator": ">", "right": 3}
                                ],
                            },
                        ]
                    },
                    "customUi": {"colour": "teal"},
                },
                "width": 180,
                "selected": True,
            },
            {"id": "bare", "type": "template", "data": {"config": {"template": "x"}}},
            _node("say", "template", {"template": "big {{ start.n }}"}),
            _node(
                "ported",
                "template",
                {"template": "p"},
            ),
            _node("end", "end", {"outputs": {"r": "{{say.text}}"}}),
        ],
        "edges": [
            _edge("e1", "start", "check"),
            _edge("e2", "check", "say", "big"),
            {"id": "e3", "source": "check", "sourceHandle": "else", "target": "bare", "note": 1},
            _edge("e4", "say", "end"),
            {"id": "e5", "source": "start", "target": "ported"},  # null handles: out -> in
            _edge("e6", "say", "end", "error"),
        ],
        "settings": {"timeout": 9, "retryPolicy": {"maxRetries": 1}, "custom": [1, 2]},
        "meta": {"author": "someone"},
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_round_trip_through_the_canvas(path: Path) -> None:
    doc = load_definition(path).to_dict()
    graph = to_flow(doc)
    assert from_flow(graph.nodes, graph.edges, doc) == doc
    assert [n["id"] for n in graph.nodes] == [n["id"] for n in doc["nodes"]]


def test_everything_round_trips_and_the_canvas_draws_exactly_the_document() -> None:
    doc = _branchy()
    original = copy.deepcopy(doc)
    graph = to_flow(doc)
    assert doc == original  # drawing does not touch the document
    back = from_flow(graph.nodes, graph.edges, doc)
    assert back == doc
    assert load_definition(back).to_dict() == load_definition(doc).to_dict()

    # every drawn edge ends on handles its nodes draw, with the engine's defaults for null
    specs = {n["id"]: graph.node_types[n["type"]] for n in graph.nodes}
    for rf_edge, edge in zip(graph.edges, doc["edges"], strict=True):
        source, source_handle, target, target_handle = edge_endpoints(edge)
        assert (rf_edge["source"], rf_edge["target"]) == (source, target)
        outputs = [h["id"] for h in specs[source]["outputs"]]
        inputs = [h["id"] for h in specs[target]["inputs"]]
        assert rf_edge.get("sourceHandle", outputs[0]) == source_handle
        assert rf_edge.get("targetHandle", inputs[0]) == target_handle
    # a canonical node's own 'selected'/'width' stay in the document, not on the canvas
    check = next(n for n in graph.nodes if n["id"] == "check")
    assert "width" not in check and check["data"][FLOW_KEY]["selected"] is True
    assert check["label"] == "Big?" and check["className"] == "af-node af-t-condition"
    bare = next(n for n in graph.nodes if n["id"] == "bare")
    assert bare["position"] == {"x": 0.0, "y": 0.0} and bare["label"] == "bare"
    assert [e.get("className") for e in graph.edges].count("af-edge-error") == 1


def test_moves_and_browser_edges_come_back_canonical() -> None:
    doc = _branchy()
    graph = to_flow(doc)
    for rf_node in graph.nodes:
        if rf_node["id"] == "check":
            rf_node["position"] = {"x": 300.5, "y": -20}
        if rf_node["id"] == "bare":
            rf_node["position"] = {"x": 0, "y": 0}  # unmoved: stays without a position
    graph.edges.append(  # what React Flow sends for a new connection
        {
            "source": "bare",
            "sourceHandle": "out",
            "target": "end",
            "targetHandle": "in",
            "id": "bare->end",
            "data": {},
        }
    )
    graph.edges.append({"source": "say", "target": "ported", "id": "say->ported"})
    back = from_flow(graph.nodes, graph.edges, doc)
    check = next(n for n in back["nodes"] if n["id"] == "check")
    assert check["position"] == {"x": 300.5, "y": -20.0, "zIndex": 3}  # extras kept
    assert "position" not in next(n for n in back["nodes"] if n["id"] == "bare")
    assert back["edges"][-2] == {
        "id": "bare->end",
        "source": "bare",
        "sourceHandle": "out",
        "target": "end",
        "targetHandle": "in",
    }
    assert back["edges"][-1]["sourceHandle"] == "out" and back["edges"][-1]["targetHandle"] == "in"
    assert validate_definition(load_definition(back)) == []


def test_handles_follow_the_engine() -> None:
    doc = _branchy()
    nodes = {n["id"]: n for n in doc["nodes"]}
    assert node_handles(nodes["start"], doc["edges"]) == ([], ["out", "error"])
    assert node_handles(nodes["check"], doc["edges"]) == (["in"], ["big", "mid", "else", "error"])
    assert node_handles(nodes["end"], doc["edges"]) == (["in"], ["error"])
    assert node_handles(nodes["say"], doc["edges"]) == (["in"], ["out", "error"])
    ported = {
        **nodes["ported"],
        "data": {
            **nodes["ported"]["data"],
            "inputs": [{"id": "left"}],
            "outputs": [{"id": "extra"}],
        },
    }
    assert node_handles(ported, []) == (["in", "left"], ["out", "extra", "error"])
    # an edge from a handle the node does not have is still drawn (the validator flags it)
    stray = [_edge("x", "end", "say", "out"), _edge("y", "check", "start", "gone")]
    assert node_handles(nodes["end"], stray)[1] == ["out", "error"]
    assert node_handles(nodes["start"], stray)[0] == ["in"]
    assert node_handles(nodes["check"], stray)[1] == ["big", "mid", "gone", "else", "error"]
    # unknown types get the default handles
    assert node_handles(_node("p", "no-such-type", {}), []) == (["in"], ["out", "error"])


def test_type_keys_share_plain_handles_and_split_on_custom_ones() -> None:
    assert node_type_spec("template", ["in"], ["out", "error"])[0] == "template"
    assert node_type_spec("start", [], ["out", "error"])[0] == "start"
    assert node_type_spec("end", ["in"], ["error"])[0] == "end"
    a, spec_a = node_type_spec("condition", ["in"], ["big", "else", "error"])
    b, _ = node_type_spec("condition", ["in"], ["big", "else", "error"])
    c, _ = node_type_spec("condition", ["in"], ["small", "else", "error"])
    assert a == b != c and a.startswith("condition~")
    assert [h["id"] for h in spec_a["outputs"]] == ["big", "else", "error"]
    assert spec_a["outputs"][-1]["label"] == "on error"
    assert spec_a["inputConnectableStart"] is False and spec_a["outputConnectableEnd"] is False
    json.dumps(spec_a)  # must be sendable to the browser


def test_auto_layout_puts_each_node_right_of_its_furthest_predecessor() -> None:
    doc = _branchy()
    laid = auto_layout(doc)
    assert doc == _branchy()  # the input is not touched
    x = {n["id"]: n["position"]["x"] for n in laid["nodes"]}
    assert x["start"] == 0 and x["check"] == x["ported"] == 280
    assert x["say"] == x["bare"] == 560 and x["end"] == 840
    y = {n["id"]: n["position"]["y"] for n in laid["nodes"]}
    assert y["check"] == -y["ported"] != 0  # centred column of two
    check = next(n for n in laid["nodes"] if n["id"] == "check")
    assert check["position"]["zIndex"] == 3  # other position keys survive
    assert from_flow(to_flow(laid).nodes, to_flow(laid).edges, laid) == laid


def test_auto_layout_survives_cycles_and_self_loops() -> None:
    doc = {
        "nodes": [
            _node("a", "template", {}),
            _node("b", "template", {}),
            _node("c", "template", {}),
        ],
        "edges": [
            _edge("1", "a", "b"),
            _edge("2", "b", "a"),
            _edge("3", "b", "c"),
            _edge("4", "c", "c"),
        ],
    }
    laid = auto_layout(doc)
    x = {n["id"]: n["position"]["x"] for n in laid["nodes"]}
    assert x == {"a": 0, "b": 280, "c": 560}


def test_history_undo_redo_merge_and_limit() -> None:
    history = History(limit=3)
    assert history.undo() is None and history.redo() is None
    history.reset({"v": 0})
    assert history.record({"v": 0}) is False  # no change, no step
    for v in (1, 2):
        assert history.record({"v": v})
    assert history.undo() == {"v": 1}
    assert history.can_redo
    assert history.redo() == {"v": 2} and history.redo() is None
    history.record({"v": 3}, group="drag")
    history.record({"v": 4}, group="drag")  # one drag, one step
    assert history.undo() == {"v": 2}
    history.record({"v": 5})  # a new edit drops the redo branch
    assert not history.can_redo
    for v in range(6, 12):
        history.record({"v": v})
    undone = []
    while (doc := history.undo()) is not None:
        undone.append(doc["v"])
    assert undone == [10, 9, 8]  # only `limit` steps are kept
    snapshot = history.present
    assert snapshot is not None
    snapshot["v"] = "mutated"
    assert history.present == {"v": 8}  # callers get copies


def test_copy_paste_renames_nodes_and_references_among_them() -> None:
    doc = {
        "nodes": [
            _node("start", "start", {}),
            _node("ask", "template", {"template": "{{ start.n }}"}),
            _node(
                "say",
                "template",
                {
                    "template": "{{ ask.text }} / {{ask.text}} {% for x in ask.items %}"
                    "{{x}}{% endfor %} ask.text task.text {{ start.n }}"
                },
            ),
        ],
        "edges": [_edge("e1", "start", "ask"), _edge("e2", "ask", "say")],
    }
    clip = copy_nodes(doc, ["ask", "say", "missing"])
    assert [n["id"] for n in clip.nodes] == ["ask", "say"]
    assert [e["id"] for e in clip.edges] == ["e2"]  # e1 has one end outside
    pasted, new_ids = paste(doc, clip, offset=(40, 40))
    assert new_ids == ["ask_2", "say_2"]
    assert len(pasted["nodes"]) == 5 and len(doc["nodes"]) == 3
    say2 = pasted["nodes"][-1]
    assert say2["data"]["config"]["template"] == (
        "{{ ask_2.text }} / {{ask_2.text}} {% for x in ask_2.items %}{{x}}{% endfor %}"
        " ask.text task.text {{ start.n }}"
    )
    assert pasted["nodes"][-2]["data"]["config"]["template"] == "{{ start.n }}"
    assert say2["position"] == {"x": 40.0, "y": 40.0}
    assert pasted["edges"][-1] == {**_edge("e2_copy", "ask_2", "say_2")}
    again, more = paste(pasted, clip)
    assert more == ["ask_3", "say_3"]
    assert len({e["id"] for e in again["edges"]}) == len(again["edges"])
    assert not Clipboard() and paste(doc, Clipboard()) == (doc, [])


def test_unique_ids_are_valid_reference_roots() -> None:
    assert unique_id("llm", []) == "llm"
    assert unique_id("llm", ["llm"]) == "llm_2"
    assert unique_id("llm_2", ["llm", "llm_2"]) == "llm_3"
    assert unique_id("my node!", []) == "my_node_"
    assert unique_id("9lives", []) == "n_9lives"


def test_diff_of_two_documents() -> None:
    old = _branchy()
    new = copy.deepcopy(old)
    new["nodes"][3]["data"]["config"]["template"] = "changed"
    lines = diff_documents(old, new, old_name="v1", new_name="v2")
    assert lines[:2] == ["--- v1", "+++ v2"]
    assert any(line.startswith("-") and "big {{ start.n }}" in line for line in lines)
    assert any(line.startswith("+") and '"changed"' in line for line in lines)
    assert diff_documents(old, copy.deepcopy(old)) == []
