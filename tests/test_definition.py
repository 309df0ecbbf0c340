"""The canonical definition: seed-shaped documents load and dump back unchanged."""

from __future__ import annotations

import json

import pytest

from engine import DefinitionError, WorkflowDefinition, WorkflowValidationError, load_definition

SEED_DOCUMENT = {
    "version": "1.0.0",
    "nodes": [
        {
            "id": "start",
            "type": "start",
            "position": {"x": 100, "y": 200},
            "data": {"label": "Start", "config": {}},
        },
        {
            "id": "llm_1",
            "type": "llm",
            "position": {"x": 300.5, "y": 200},
            "data": {
                "label": "Summarise",
                "description": "Summarise the input",
                "config": {
                    "model": "gpt-4",
                    "systemPrompt": "You are terse.",
                    "userPrompt": "{{start.output.text}}",
                    "temperature": 0.7,
                    "maxTokens": 2048,
                    "vendorSpecific": {"keep": ["me", 1, None]},
                },
                "inputs": [{"id": "in", "name": "Input", "type": "string", "required": True}],
                "outputs": [{"id": "text", "type": "string"}],
            },
            "width": 180,
            "selected": False,
        },
        {
            "id": "end",
            "type": "end",
            "position": {"x": 500, "y": 200},
            "data": {"label": "End", "config": {"outputs": {"summary": "{{llm_1.output.text}}"}}},
        },
    ],
    "edges": [
        {
            "id": "e1",
            "source": "start",
            "sourceHandle": "out",
            "target": "llm_1",
            "targetHandle": "in",
            "label": "go",
            "data": {"animated": True},
        },
        {
            "id": "e2",
            "source": "llm_1",
            "sourceHandle": "text",
            "target": "end",
            "targetHandle": "in",
        },
    ],
    "settings": {
        "timeout": 300,
        "retryPolicy": {"maxRetries": 3, "backoffMs": 1000},
        "errorHandling": "stop",
    },
}


def test_seed_document_round_trips_to_equal_json():
    definition = load_definition(json.dumps(SEED_DOCUMENT))
    assert definition.to_dict() == SEED_DOCUMENT
    assert json.loads(definition.to_json()) == SEED_DOCUMENT


def test_extra_config_fields_are_kept_and_attributes_are_snake_case():
    definition = load_definition(SEED_DOCUMENT)
    llm = definition.node("llm_1")
    assert llm.data.config["vendorSpecific"] == {"keep": ["me", 1, None]}
    assert definition.settings.retry_policy.max_retries == 3
    assert definition.edges[0].source_port == "out"


def test_defaults_fill_in_but_are_not_written_back():
    definition = load_definition({"nodes": [{"id": "s", "type": "start"}]})
    assert definition.version == "1.0.0"
    assert definition.settings.max_concurrency == 32
    assert definition.settings.error_handling == "stop"
    assert definition.to_dict() == {"nodes": [{"id": "s", "type": "start"}]}


def test_null_handles_mean_default_ports():
    definition = load_definition(
        {"nodes": [], "edges": [{"id": "e", "source": "a", "sourceHandle": None, "target": "b"}]}
    )
    assert definition.edges[0].source_port == "out"
    assert definition.edges[0].target_port == "in"


def test_python_construction_dumps_camel_case():
    definition = WorkflowDefinition.model_validate(
        {"nodes": [{"id": "s", "type": "start"}], "settings": {"errorHandling": "continue"}}
    )
    assert definition.to_dict()["settings"] == {"errorHandling": "continue"}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"nodes": [1,', "invalid JSON"),
        ("[]", "must be a JSON object, got array"),
        ('"hello"', "got string"),
        ("", "invalid JSON"),
    ],
)
def test_malformed_documents_get_one_clear_error(text, needle):
    with pytest.raises(DefinitionError) as info:
        load_definition(text)
    assert needle in str(info.value)


def test_malformed_json_error_has_position():
    with pytest.raises(DefinitionError) as info:
        load_definition('{\n  "nodes": [\n    {"id": "a",,}\n  ]\n}')
    assert (info.value.line, info.value.column) == (3, 16)


def test_shape_errors_name_the_node_and_field_all_at_once():
    with pytest.raises(WorkflowValidationError) as info:
        load_definition(
            {
                "nodes": [
                    {"id": "a", "type": "start", "position": {"x": "left"}},
                    {"id": "b"},
                ],
                "edges": [{"id": "e1", "source": "a"}],
                "settings": {"errorHandling": "panic"},
            }
        )
    issues = {(i.node_id, i.edge_id, i.field) for i in info.value.issues}
    assert ("a", None, "position.x") in issues
    assert ("b", None, "type") in issues
    assert (None, "e1", "target") in issues
    assert (None, None, "settings.errorHandling") in issues
