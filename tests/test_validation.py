"""Validation reports every problem of a document at once, each naming node/edge and field."""

from __future__ import annotations

import pytest

from engine import WorkflowValidationError, compile_workflow, load_definition, validate_definition
from tests.helpers import chain, edge, node, workflow

START = node("start", "start", {"inputs": [{"name": "text", "type": "string"}]})
END = node("end", "end", {"outputs": {"x": "{{t.text}}"}})


def issues_of(doc: dict) -> list:
    return validate_definition(load_definition(doc))


def kinds(doc: dict) -> set[tuple]:
    return {(i.kind, i.node_id, i.edge_id, i.field) for i in issues_of(doc)}


def test_valid_workflow_has_no_issues():
    doc = workflow(
        [START, node("t", "template", {"template": "hi"}), END], chain("start", "t", "end")
    )
    assert issues_of(doc) == []


def test_cycle_names_every_node_in_it():
    doc = workflow(
        [START, node("a", "template", {"template": "a"}), node("b", "template", {"template": "b"})],
        [edge("start", "a"), edge("a", "b"), edge("b", "a", edge_id="back")],
    )
    found = [i for i in issues_of(doc) if i.kind == "cycle"]
    assert {i.node_id for i in found} == {"a", "b"}
    assert "a -> b -> a" in found[0].message or "b -> a -> b" in found[0].message


def test_self_loop_is_a_cycle():
    doc = workflow(
        [START, node("a", "template", {"template": "a"})], [edge("start", "a"), edge("a", "a")]
    )
    assert ("cycle", "a", None, None) in kinds(doc)


def test_duplicate_ids_dangling_edges_and_unknown_types():
    doc = workflow(
        [
            START,
            node("a", "template", {"template": "x"}),
            node("a", "template", {"template": "y"}),
            node("z", "teleport"),
        ],
        [
            edge("start", "a", edge_id="e1"),
            edge("a", "ghost", edge_id="e1"),
            edge("nowhere", "a", edge_id="e3"),
        ],
    )
    found = kinds(doc)
    assert ("duplicate_id", "a", None, None) in found
    assert ("duplicate_id", None, "e1", None) in found
    assert ("dangling_edge", None, "e1", "target") in found
    assert ("dangling_edge", None, "e3", "source") in found
    assert ("unknown_type", "z", None, "type") in found


def test_missing_and_duplicate_start():
    assert ("missing_start", None, None, None) in kinds(workflow([END], []))
    doc = workflow([START, node("start2", "start")], [])
    assert ("duplicate_start", "start2", None, None) in kinds(doc)


def test_bad_handles_name_edge_node_and_field():
    cond = node(
        "c",
        "condition",
        {
            "cases": [
                {"id": "yes", "conditions": [{"left": "{{start.text}}", "operator": "is_empty"}]}
            ]
        },
    )
    doc = workflow(
        [START, cond, node("a", "template", {"template": "a"})],
        [
            edge("start", "c"),
            edge("c", "a", handle="maybe", edge_id="e-bad"),
            {
                "id": "e-in",
                "source": "start",
                "sourceHandle": "out",
                "target": "a",
                "targetHandle": "side",
            },
        ],
    )
    found = kinds(doc)
    assert ("bad_handle", "c", "e-bad", "sourceHandle") in found
    assert ("bad_handle", "a", "e-in", "targetHandle") in found


def test_declared_ports_and_error_handle_are_valid_handles():
    doc = workflow(
        [
            START,
            node("a", "template", {"template": "a"}, outputs=[{"id": "text"}]),
            node("b", "template", {"template": "b"}, inputs=[{"id": "left"}]),
            node("h", "template", {"template": "handler"}),
        ],
        [
            edge("start", "a"),
            {
                "id": "p",
                "source": "a",
                "sourceHandle": "text",
                "target": "b",
                "targetHandle": "left",
            },
            edge("a", "h", handle="error"),
        ],
    )
    assert issues_of(doc) == []


def test_reference_to_node_not_upstream():
    doc = workflow(
        [
            START,
            node("a", "template", {"template": "a"}),
            node("b", "end", {"outputs": {"v": "{{a.text}}", "w": "{{b.text}}"}}),
        ],
        [edge("start", "a"), edge("start", "b")],
    )
    found = {(i.node_id, i.field): i.message for i in issues_of(doc)}
    assert "not upstream" in found[("b", "outputs.v")]
    assert "itself" in found[("b", "outputs.w")]


def test_reference_to_nothing_and_undeclared_input():
    doc = workflow(
        [
            START,
            node(
                "e",
                "end",
                {
                    "outputs": {
                        "a": "{{ghost.x}}",
                        "b": "{{inputs.nope}}",
                        "c": "{{inputs.text}}",
                        "d": "{{region}}",
                    }
                },
            ),
        ],
        [edge("start", "e")],
        variables={"region": "eu"},
    )
    found = {(i.node_id, i.field): i.message for i in issues_of(doc)}
    assert set(found) == {("e", "outputs.a"), ("e", "outputs.b")}
    assert "names no node" in found[("e", "outputs.a")]
    assert "declares no input 'nope'" in found[("e", "outputs.b")]


def test_jinja_template_names_are_checked_like_references():
    doc = workflow(
        [
            START,
            node("side", "template", {"template": "x"}),
            node(
                "t",
                "template",
                {
                    "template": "{{ start.text }} {{ side.text }}"
                    " {% for i in range(2) %}{{ i }}{% endfor %}"
                },
            ),
        ],
        [edge("start", "t"), edge("start", "side")],
    )
    found = kinds(doc)
    assert found == {("reference", "t", None, "template")}


def test_template_syntax_error_is_a_config_issue():
    doc = workflow([START, node("t", "template", {"template": "{% if %}"})], [edge("start", "t")])
    (issue,) = issues_of(doc)
    assert (issue.kind, issue.node_id, issue.field) == ("config", "t", "template")
    assert "line 1" in issue.message


def test_config_schema_errors_name_field_and_skip_reference_values():
    doc = workflow(
        [
            START,
            node(
                "c",
                "condition",
                {"cases": [{"id": "x", "conditions": [{"left": 1, "operator": "≈"}]}]},
            ),
            node("t", "template", {}),
            node("e", "end", {"outputs": "{{start.text}}", "timeoutMs": -5}),
        ],
        [edge("start", "c"), edge("start", "t"), edge("start", "e")],
    )
    found = kinds(doc)
    assert ("config", "c", None, "cases.0.conditions.0.operator") in found
    assert ("config", "t", None, "template") in found
    # 'outputs' holds a reference: its type is checked at run time, not here.
    assert not any(f == "outputs" for (_, n, _, f) in found if n == "e")
    assert any(n == "e" and f == "timeoutMs" for (_, n, _, f) in found)


def test_condition_reserved_and_duplicate_case_ids():
    cond = node(
        "c",
        "condition",
        {
            "cases": [
                {"id": "else", "conditions": [{"left": 1, "operator": "==", "right": 1}]},
                {"id": "a", "conditions": [{"left": 1, "operator": "==", "right": 1}]},
                {"id": "a", "conditions": [{"left": 1, "operator": "==", "right": 1}]},
            ]
        },
    )
    found = kinds(workflow([START, cond], [edge("start", "c")]))
    assert ("config", "c", None, "cases.0.id") in found
    assert ("config", "c", None, "cases.2.id") in found


def test_start_cannot_have_incoming_edges():
    doc = workflow(
        [START, node("t", "template", {"template": "x"})], [edge("start", "t"), edge("t", "start")]
    )
    assert any(i.node_id == "start" for i in issues_of(doc))


def test_all_errors_reported_at_once_in_one_exception():
    doc = workflow(
        [node("a", "teleport"), node("b", "template", {}), node("b", "end")],
        [edge("a", "zzz")],
    )
    with pytest.raises(WorkflowValidationError) as info:
        compile_workflow(load_definition(doc))
    assert {i.kind for i in info.value.issues} >= {
        "unknown_type",
        "config",
        "duplicate_id",
        "missing_start",
        "dangling_edge",
    }
    assert len(str(info.value).splitlines()) == len(info.value.issues)


def test_ten_thousand_node_chain_compiles_with_far_references():
    ids = ["start"] + [f"n{i}" for i in range(10_000)]
    nodes = [START] + [node(i, "template", {"template": "x"}) for i in ids[1:-1]]
    nodes.append(node(ids[-1], "end", {"outputs": {"first": "{{n0.text}}", "s": "{{start.text}}"}}))
    compiled = compile_workflow(load_definition(workflow(nodes, chain(*ids))))
    assert compiled.order[0] == "start" and compiled.order[-1] == ids[-1]
