"""The Workflows page, the editor and its Run tab, headless: real store, real runs.

Browser messages are simulated with ``flow._handle_msg`` (what panel-reactflow's
frontend sends); widgets are driven by setting their values, as a browser would.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import load_definition
from store import Store
from studio.app import StudioApp
from studio.convert import to_flow
from studio.pages._palette import DRAG_TYPE
from studio.pages._run_panel import parse_inputs
from studio.pages.editor import EditorPage
from studio.pages.workflows import WorkflowsPage, new_workflow_document
from studio.runner import RunManager
from studio.server import EXAMPLES_DIR
from tests.fake_provider import FakeProvider, loopback_only

EXAMPLE_NAMES = sorted(path.stem for path in EXAMPLES_DIR.glob("*.json"))


@pytest.fixture
def app(tmp_path: Path) -> Iterator[StudioApp]:
    store = Store(tmp_path / "studio.duckdb")
    for path in sorted(EXAMPLES_DIR.glob("*.json")):  # named by file, whatever their metadata
        store.workflows.import_json(path.read_text(encoding="utf-8"), name=path.stem)
    yield StudioApp(store, RunManager(store))
    store.close()


def _workflows(app: StudioApp) -> WorkflowsPage:
    page = app.pages["workflows"]
    assert isinstance(page, WorkflowsPage)
    return page


def _editor(app: StudioApp) -> EditorPage:
    page = app.pages["editor"]
    assert isinstance(page, EditorPage)
    return page


def _id(app: StudioApp, name: str) -> str:
    return next(w.id for w in app.store.workflows.list() if w.name == name)


def _open(app: StudioApp, name: str) -> EditorPage:
    app.open_editor(_id(app, name))
    return _editor(app)


def _rf(editor: EditorPage, node_id: str) -> dict[str, Any]:
    node = editor._rf_node(node_id)
    assert node is not None, node_id
    return node


def _classes(editor: EditorPage, node_id: str) -> set[str]:
    return set(str(_rf(editor, node_id).get("className", "")).split())


def _select(editor: EditorPage, *node_ids: str) -> None:
    editor.flow._handle_msg({"type": "selection_changed", "nodes": list(node_ids), "edges": []})


def _field(editor: EditorPage, key: str) -> Any:
    return editor.config.fields[key].widget


# -- the Workflows page -------------------------------------------------------------------
def test_list_search_and_row_actions(app: StudioApp) -> None:
    page = _workflows(app)
    page.refresh()
    frame = page.table.value
    assert list(frame.columns) == [
        "id",
        "Name",
        "Description",
        "Version",
        "Nodes",
        "Last run",
        "Runs",
        "Updated",
    ]
    assert sorted(frame["Name"]) == EXAMPLE_NAMES
    assert all("never run" in cell for cell in frame["Last run"])
    nodes = dict(zip(frame["Name"], frame["Nodes"], strict=True))
    assert (nodes["triage"], nodes["word_stats"]) == (6, 5)
    page.search.value_input = "TRIAG"
    assert list(page.table.value["Name"]) == ["triage"]
    page.search.value_input = "no such thing"
    assert page.table.value.empty
    page.search.value_input = ""
    assert page.open_button.disabled and page.export_button.disabled  # nothing selected

    page.select(_id(app, "triage"))
    assert page.selected() is not None and page.export_button.filename == "triage.json"
    page.duplicate_selected()
    assert sorted(page.table.value["Name"]) == sorted([*EXAMPLE_NAMES, "triage (copy)"])
    assert page.selected() is not None and page.selected().name == "triage (copy)"  # type: ignore[union-attr]

    page.delete_or_restore_selected()
    assert "triage (copy)" not in list(page.table.value["Name"])
    assert "triage (copy)" not in [w.name for w in app.store.workflows.list()]
    page.show_deleted.value = True
    row = list(page.table.value["Name"]).index(
        "<s>triage (copy)</s> <i style='color:#b91c1c'>deleted</i>"
    )
    page.table.selection = [row]
    assert page.delete_button.name == "Restore" and page.open_button.disabled
    page.delete_or_restore_selected()
    assert "triage (copy)" in [w.name for w in app.store.workflows.list()]

    # the Open button column opens the editor
    page._on_cell_click(type("Click", (), {"column": "open", "row": 0})())
    assert app.current == "editor" and _editor(app).workflow_id == page.records[0].id


def test_create_opens_a_runnable_start_to_end_workflow(app: StudioApp) -> None:
    page = _workflows(app)
    page.new_name.value = "  My flow "
    workflow_id = page.create()
    record = app.store.workflows.get(workflow_id)
    assert record.name == "My flow" and record.version == 1
    editor = _editor(app)
    assert app.current == "editor" and editor.workflow_id == workflow_id
    assert editor.issues == [] and [n["id"] for n in editor.document()["nodes"]] == ["start", "end"]
    assert load_definition(new_workflow_document()).to_dict() == new_workflow_document()
    assert page.new_name.value == ""


def test_import_pasted_text_and_a_file(app: StudioApp) -> None:
    page = _workflows(app)
    page.refresh()
    page.import_text.value = json.dumps(new_workflow_document())
    page.import_name.value = "Pasted"
    pasted = page.import_document()
    assert pasted is not None and app.store.workflows.get(pasted).name == "Pasted"
    assert page.import_text.value == "" and "Imported" in page.import_message.object

    page.import_file.value = json.dumps(
        {"metadata": {"name": "From file"}, "definition": new_workflow_document()}
    ).encode()
    page.import_file.filename = "flow.json"
    from_file = page.import_document()
    assert from_file is not None and app.store.workflows.get(from_file).name == "From file"
    assert page.selected() is not None and page.selected().id == from_file  # type: ignore[union-attr]


def test_bad_imports_show_why_and_store_nothing(app: StudioApp) -> None:
    page = _workflows(app)
    before = len(app.store.workflows.list(include_deleted=True))
    for text, expected in (
        ('{"nodes": [', "invalid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"nodes": 5}', "not a workflow definition"),
        ('{"nodes": [{"id": "", "type": "start"}]}', "not a workflow definition"),
        ("   ", "paste a workflow"),
    ):
        page.import_text.value = text
        assert page.import_document() is None
        assert expected in page.import_message.object, text
        assert "Not imported" in page.import_message.object
        assert page.import_text.value == text  # kept, to be fixed
        assert len(app.store.workflows.list(include_deleted=True)) == before
    page.import_text.value = ""
    page.import_file.value = b"\xff\xfe\x00binary"
    assert page.import_document() is None
    assert "not UTF-8" in page.import_message.object


def test_open_save_export_reimport_gives_the_identical_graph(app: StudioApp) -> None:
    for name in ("triage", "word_stats"):
        original = app.store.workflows.get(_id(app, name)).definition.to_dict()
        editor = _open(app, name)
        assert editor.document() == original  # what is drawn is exactly the definition
        assert not editor.dirty
        editor.save()
        assert app.store.workflows.get(editor.workflow_id or "").version == 2
        page = _workflows(app)
        page.refresh()
        page.select(editor.workflow_id or "")
        exported = page._export_file().getvalue()
        assert exported == app.store.workflows.export_json(editor.workflow_id or "")
        page.import_text.value = exported
        again = page.import_document()
        assert again is not None
        reimported = app.store.workflows.get(again).definition.to_dict()
        assert reimported == original
        first, second = to_flow(original), to_flow(reimported)
        assert (first.nodes, first.edges, first.node_types) == (
            second.nodes,
            second.edges,
            second.node_types,
        )
        app.open_editor(again)
        assert _editor(app).document() == original


# -- the canvas -----------------------------------------------------------------------------
def test_browser_edits_are_committed_validated_and_undoable(app: StudioApp) -> None:
    editor = _open(app, "triage")
    flow = editor.flow
    flow._handle_msg(
        {
            "type": "drop",
            "drop_type": DRAG_TYPE,
            "data": {"type": "template"},
            "position": {"x": 600, "y": 400},
            "target": None,
        }
    )
    doc = editor.document()
    added = doc["nodes"][-1]
    assert added["id"] == "template" and added["position"] == {"x": 516.0, "y": 376.0}
    assert added["data"] == {"label": "Template", "config": {"template": ""}}
    assert editor.config.node is not None and editor.config.node["id"] == "template"
    assert "af-editing" in _classes(editor, "template")
    assert editor.dirty and editor.history.can_undo

    flow._handle_msg(
        {
            "type": "edge_added",
            "edge": {
                "source": "reply",
                "sourceHandle": "out",
                "target": "template",
                "targetHandle": "in",
                "id": "reply->template",
                "data": {},
            },
        }
    )
    assert editor.document()["edges"][-1] == {
        "id": "reply->template",
        "source": "reply",
        "sourceHandle": "out",
        "target": "template",
        "targetHandle": "in",
    }
    flow._handle_msg(
        {
            "type": "edge_added",
            "edge": {
                "source": "urgent",
                "sourceHandle": "error",
                "target": "template",
                "targetHandle": "in",
                "id": "urgent->template",
                "data": {},
            },
        }
    )
    assert flow.edges[-1]["className"] == "af-edge-error"  # drawn as an error path
    flow._handle_msg({"type": "edge_deleted", "edge_id": "urgent->template"})
    assert [e["id"] for e in editor.document()["edges"]][-1] == "reply->template"

    flow._handle_msg({"type": "node_moved", "node_id": "end", "position": {"x": 1200, "y": 50}})
    flow._handle_msg({"type": "node_moved", "node_id": "reply", "position": {"x": 800, "y": 50}})
    moved = {n["id"]: n["position"] for n in editor.document()["nodes"]}
    assert moved["end"] == {"x": 1200.0, "y": 50.0} and moved["reply"] == {"x": 800.0, "y": 50.0}
    editor.undo()  # the two moves of one drag are one step
    restored = {n["id"]: n["position"] for n in editor.document()["nodes"]}
    assert restored["end"] == {"x": 1040.0, "y": 120.0}
    assert restored["reply"] == {"x": 780.0, "y": 120.0}
    editor.redo()
    assert {n["id"]: n["position"] for n in editor.document()["nodes"]}["end"]["x"] == 1200.0

    flow._handle_msg({"type": "node_deleted", "node_id": "urgent", "node_ids": ["urgent"]})
    doc = editor.document()
    assert "urgent" not in [n["id"] for n in doc["nodes"]]
    assert all("urgent" not in (e["source"], e["target"]) for e in doc["edges"])
    # reply still reads {{urgent.text}}: the validator says so, and marks the node
    assert any(i.node_id == "reply" and i.kind == "reference" for i in editor.issues)
    assert "af-invalid" in _classes(editor, "reply")
    assert "problem" in editor.problems.object
    editor.undo()
    assert "urgent" in [n["id"] for n in editor.document()["nodes"]]
    assert "af-invalid" not in _classes(editor, "reply") and editor.issues == []


def test_config_fields_edit_validate_and_keep_bad_text(app: StudioApp) -> None:
    editor = _open(app, "triage")
    _select(editor, "urgent")
    assert editor.config.node is not None and editor.config.node["id"] == "urgent"
    before = editor.document()
    _field(editor, "template").value = "Hi {{ start.customer }}!"
    assert editor.document()["nodes"][2]["data"]["config"]["template"] == "Hi {{ start.customer }}!"
    editor.config.label.value = "Fast reply"
    assert _rf(editor, "urgent")["label"] == "Fast reply"
    assert editor.document()["nodes"][2]["data"]["label"] == "Fast reply"

    # unparsable JSON is not applied; the text stays with a message
    _field(editor, "fallback").value = "{not json"
    message = editor.config.fields["fallback"].message
    assert message.visible and "invalid JSON" in message.object and "not applied" in message.object
    assert "fallback" not in editor.document()["nodes"][2]["data"]["config"]
    assert _field(editor, "fallback").value == "{not json"
    _field(editor, "fallback").value = '{"text": "sorry"}'
    assert not message.visible
    assert editor.document()["nodes"][2]["data"]["config"]["fallback"] == {"text": "sorry"}

    # a value the schema refuses is kept, marked on its field and on the node
    _field(editor, "timeoutMs").value = "-5"
    assert editor.document()["nodes"][2]["data"]["config"]["timeoutMs"] == -5
    timeout_message = editor.config.fields["timeoutMs"].message
    assert timeout_message.visible and "greater than 0" in timeout_message.object
    assert "af-invalid" in _classes(editor, "urgent")
    _field(editor, "timeoutMs").value = "{{start.ticket}}"  # a reference is taken as text
    assert editor.document()["nodes"][2]["data"]["config"]["timeoutMs"] == "{{start.ticket}}"
    _field(editor, "timeoutMs").value = ""  # cleared: the key goes
    assert "timeoutMs" not in editor.document()["nodes"][2]["data"]["config"]
    assert "af-invalid" not in _classes(editor, "urgent") and not timeout_message.visible
    _field(editor, "errorHandling").value = "continue"
    assert editor.document()["nodes"][2]["data"]["config"]["errorHandling"] == "continue"

    # the whole-config JSON box: refused when bad, applied when good
    editor.config.json_box.value = "[1]"
    editor.config.json_apply.clicks += 1
    assert "must be a JSON object" in editor.config.json_message.object
    editor.config.json_box.value = '{"template": "plain"}'
    editor.config.json_apply.clicks += 1
    assert editor.document()["nodes"][2]["data"]["config"] == {"template": "plain"}

    for _ in range(12):
        editor.undo()
    assert editor.document() == before
    assert (
        editor.config.node is not None
        and editor.config.fields["template"].widget.value
        == (before["nodes"][2]["data"]["config"]["template"])
    )


def test_editing_condition_cases_redraws_its_handles(app: StudioApp) -> None:
    editor = _open(app, "triage")
    _select(editor, "route")
    spec = editor.flow.node_types[_rf(editor, "route")["type"]]
    assert [h["id"] for h in spec["outputs"]] == ["payment", "else", "error"]
    cases = json.loads(_field(editor, "cases").value)
    cases.append(
        {
            "id": "vip",
            "conditions": [{"left": "{{start.customer}}", "operator": "==", "right": "vip"}],
        }
    )
    _field(editor, "cases").value = json.dumps(cases)
    spec = editor.flow.node_types[_rf(editor, "route")["type"]]
    assert [h["id"] for h in spec["outputs"]] == ["payment", "vip", "else", "error"]
    assert editor.issues == []
    _field(editor, "cases").value = "[]"
    assert {i.kind for i in editor.issues} == {"config", "bad_handle"}  # e2 left 'payment'
    assert "at least 1 item" in editor.config.fields["cases"].message.object
    spec = editor.flow.node_types[_rf(editor, "route")["type"]]
    assert [h["id"] for h in spec["outputs"]] == ["payment", "else", "error"]  # still drawn


def test_copy_paste_delete_layout_and_shortcuts(app: StudioApp) -> None:
    editor = _open(app, "triage")
    editor.paste()  # nothing copied yet: nothing happens
    assert len(editor.document()["nodes"]) == 6
    _select(editor, "urgent", "reply")
    assert editor.config.node is None  # several selected: no single config
    editor.palette._handle_msg({"action": "copy"})
    editor.palette._handle_msg({"action": "paste"})
    doc = editor.document()
    assert [n["id"] for n in doc["nodes"]][-2:] == ["urgent_2", "reply_2"]
    reply2 = doc["nodes"][-1]
    assert reply2["data"]["config"]["values"] == ["{{urgent_2.text}}", "{{normal.text}}"]
    assert doc["edges"][-1]["source"] == "urgent_2" and doc["edges"][-1]["target"] == "reply_2"
    editor.palette._handle_msg({"action": "undo"})
    assert len(editor.document()["nodes"]) == 6
    editor.palette._handle_msg({"action": "redo"})
    assert len(editor.document()["nodes"]) == 8

    _select(editor, "urgent_2", "reply_2")
    editor.delete_selected()
    assert len(editor.document()["nodes"]) == 6 and len(editor.document()["edges"]) == 6

    editor.layout_graph()
    x = {n["id"]: n["position"]["x"] for n in editor.document()["nodes"]}
    assert x["start"] < x["route"] < x["urgent"] == x["normal"] < x["reply"] < x["end"]
    editor.palette._handle_msg({"action": "save"})
    assert app.store.workflows.get(editor.workflow_id or "").version == 2
    editor.palette._handle_msg({"action": "add", "node_type": "llm"})
    assert editor.document()["nodes"][-1]["type"] == "llm"
    assert "af-invalid" in _classes(editor, "llm")  # no prompt yet, shown at once


def test_save_versions_diff_load_version_and_settings(app: StudioApp) -> None:
    editor = _open(app, "triage")
    workflow_id = editor.workflow_id or ""
    _select(editor, "normal")
    _field(editor, "template").value = "Thanks!"
    editor.name_input.value = "Triage v2"
    editor.save_message.value = "shorter reply"
    editor.save()
    record = app.store.workflows.get(workflow_id)
    assert (record.version, record.name) == (2, "Triage v2")
    assert app.store.workflows.versions(workflow_id)[-1].message == "shorter reply"
    assert "v2" in editor.version_list.object and "shorter reply" in editor.version_list.object
    assert not editor.dirty and "saved" in editor.badge.object

    editor.version_a.value, editor.version_b.value = 1, 2
    lines = editor.show_diff()
    assert any(line.startswith("+") and "Thanks!" in line for line in lines)
    assert "class='add'" in editor.diff_view.object
    editor.version_b.value = 1
    editor.load_version()
    assert editor.document() == app.store.workflows.get_version(workflow_id, 1).definition.to_dict()
    assert editor.dirty and "unsaved" in editor.badge.object

    editor.settings_input.value = '{"timeout": -1}'
    assert editor.apply_settings() is False
    assert "greater than 0" in editor.settings_message.object
    assert editor.document()["settings"]["timeout"] == 60  # unchanged
    editor.settings_input.value = '{"timeout": 5, "errorHandling": "continue"}'
    assert editor.apply_settings() is True
    assert editor.document()["settings"] == {"timeout": 5, "errorHandling": "continue"}
    editor.undo()
    assert editor.document()["settings"]["timeout"] == 60


# -- the Run tab ------------------------------------------------------------------------------
def test_parse_inputs() -> None:
    declared = [
        {"name": "text", "type": "string", "required": True},
        {"name": "n", "type": "integer"},
        {"name": "x", "type": "number"},
        {"name": "flag", "type": "boolean"},
        {"name": "obj", "type": "object"},
        {"name": "free", "type": "any"},
        {"name": "opt", "type": "string", "default": "d"},
    ]
    ok = {"text": "hi", "n": "3", "x": "2.5", "flag": True, "obj": '{"a": 1}', "free": "plain"}
    assert parse_inputs(declared, ok) == (
        {"text": "hi", "n": 3, "x": 2.5, "flag": True, "obj": {"a": 1}, "free": "plain"},
        {},
    )
    inputs, errors = parse_inputs(declared, {"n": "3.5", "x": "abc", "obj": "{", "flag": False})
    assert errors == {
        "text": "required",
        "n": "not an integer: '3.5'",
        "x": "not a number: 'abc'",
        "obj": "invalid JSON: Expecting property name enclosed in double quotes",
    }
    assert inputs == {"flag": False}


async def _run(editor: EditorPage) -> Any:
    execution_id = editor.run_panel.start()
    assert execution_id is not None, editor.run_panel.status.object
    run = editor.app.runner.active[execution_id]
    result = await run.wait()
    await asyncio.sleep(0.1)  # the page's flushes run on the loop after the events
    return result


async def test_a_run_draws_statuses_logs_and_outputs(app: StudioApp) -> None:
    editor = _open(app, "triage")
    panel = editor.run_panel
    assert list(panel.widgets) == ["ticket", "customer"]
    assert panel.widgets["customer"].value == "anonymous"  # the declared default
    panel.widgets["ticket"].value = "refund please"
    result = await _run(editor)
    assert result.status == "succeeded"
    for node_id in ("start", "route", "urgent", "reply", "end"):
        assert "af-run-succeeded" in _classes(editor, node_id), node_id
    assert "af-run-skipped" in _classes(editor, "normal")
    assert "Succeeded" in panel.status.object
    assert "payment" in panel.outputs.object and panel.outputs.visible
    assert "urgent: succeeded" in panel.logs.object and "normal: skipped" in panel.logs.object
    assert not panel.run_button.disabled and panel.cancel_button.disabled

    app.store.recorder.flush()
    record = app.store.executions.get(panel.execution_id or "")
    assert (record.status, record.workflow_version) == ("succeeded", 1)
    panel.history_button.clicks += 1
    assert app.current == "runs"
    page = _workflows(app)
    page.refresh()
    row = list(page.table.value["Name"]).index("triage")
    assert "succeeded" in page.table.value["Last run"][row] and page.table.value["Runs"][row] == 1

    # an edited canvas runs as is, tied to no stored version
    app.open_editor(_id(app, "triage"))
    _select(editor, "normal")
    _field(editor, "template").value = "changed"
    panel.widgets["ticket"].value = "hello"
    assert (await _run(editor)).outputs["reply"] == "changed"
    app.store.recorder.flush()
    assert app.store.executions.get(panel.execution_id or "").workflow_version is None
    editor.clear_run_statuses()
    assert not any(c.startswith("af-run-") for c in _classes(editor, "end"))


async def test_bad_inputs_and_invalid_graphs_do_not_start(app: StudioApp) -> None:
    editor = _open(app, "triage")
    panel = editor.run_panel
    panel.widgets["ticket"].value = ""
    assert panel.start() is None
    assert "ticket: required" in panel.form_errors.object and not app.runner.active
    panel.widgets["ticket"].value = "x"
    _select(editor, "route")
    _field(editor, "cases").value = "[]"
    assert panel.start() is None
    assert "problem" in panel.status.object and not app.runner.active


def _code_workflow(code: str) -> dict[str, Any]:
    doc = new_workflow_document()
    doc["nodes"].insert(
        1,
        {
            "id": "work",
            "type": "code",
            "position": {"x": 160, "y": 100},
            "data": {"label": "Work", "config": {"code": code}},
        },
    )
    doc["edges"] = [
        {
            "id": "e1",
            "source": "start",
            "sourceHandle": "out",
            "target": "work",
            "targetHandle": "in",
        },
        {
            "id": "e2",
            "source": "work",
            "sourceHandle": "out",
            "target": "end",
            "targetHandle": "in",
        },
    ]
    return doc


async def test_failed_and_cancelled_runs_are_drawn(app: StudioApp) -> None:
    failing = app.store.workflows.create(
        load_definition(_code_workflow("def main():\n    raise ValueError('boom')\n")), name="f"
    )
    app.open_editor(failing.id)
    editor = _editor(app)
    editor.run_panel.widgets["text"].value = "x"
    result = await _run(editor)
    assert result.status == "failed"
    assert "af-run-failed" in _classes(editor, "work") and "af-run-pending" not in _classes(
        editor, "end"
    )
    assert "boom" in editor.run_panel.logs.object and "Failed" in editor.run_panel.status.object

    slow = app.store.workflows.create(
        load_definition(_code_workflow("import time\n\ndef main():\n    time.sleep(30)\n")),
        name="slow",
    )
    app.open_editor(slow.id)
    editor.run_panel.widgets["text"].value = "x"
    execution_id = editor.run_panel.start()
    assert execution_id is not None
    run = app.runner.active[execution_id]
    for _ in range(200):
        await asyncio.sleep(0.02)
        if editor.run_status.get("work") == "running":
            break
    assert "af-run-running" in _classes(editor, "work")
    editor.run_panel.cancel_button.clicks += 1
    result = await asyncio.wait_for(run.wait(), 10)
    await asyncio.sleep(0.1)
    assert result.status == "cancelled"
    assert "af-run-cancelled" in _classes(editor, "work")
    assert "Cancelled" in editor.run_panel.status.object
    assert not editor.run_panel.run_button.disabled


async def test_llm_tokens_stream_into_the_run_tab(
    app: StudioApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    with loopback_only() as refused, FakeProvider() as fake:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed = sock.getsockname()[1]
        monkeypatch.setenv("OPENAI_API_KEY", "sk-fake")
        monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{closed}/v1")
        doc = new_workflow_document()
        doc["nodes"].insert(
            1,
            {
                "id": "ask",
                "type": "llm",
                "position": {"x": 160, "y": 100},
                "data": {
                    "label": "Ask",
                    "config": {
                        "model": "openai/fake",
                        "userPrompt": "{{start.text}}",
                        "baseUrl": fake.openai_base,
                    },
                },
            },
        )
        doc["nodes"][-1]["data"]["config"]["outputs"] = {"answer": "{{ask.text}}"}
        doc["edges"] = [
            {"id": "e1", "source": "start", "target": "ask"},
            {"id": "e2", "source": "ask", "target": "end"},
        ]
        record = app.store.workflows.create(load_definition(doc), name="ask")
        app.open_editor(record.id)
        editor = _editor(app)
        editor.run_panel.widgets["text"].value = "tidal pools and crabs"
        result = await _run(editor)
        assert result.status == "succeeded", result.error
        assert "[ask] echo: tidal pools and crabs" in editor.run_panel.stream.object
        assert "af-run-succeeded" in _classes(editor, "ask")
        assert "echo: tidal pools and crabs" in editor.run_panel.outputs.object
    assert refused == []


def test_the_listener_never_raises_into_the_run(app: StudioApp) -> None:
    editor = _open(app, "triage")
    from engine import NodeStarted

    event = NodeStarted(execution_id="x", node_id="start", node_type="start", attempt=1)
    editor.run_panel.listener(event)  # no running loop here: swallowed, logged
    editor.run_panel.flush()  # events of another run are ignored
    assert editor.run_status == {}


def test_reopening_keeps_unsaved_work_and_new_llm_nodes_use_the_default_model(
    app: StudioApp,
) -> None:
    from studio.preferences import ModelPreferences, save_preferences

    editor = _open(app, "triage")
    editor.add_node("llm")
    assert editor.document()["nodes"][-1]["data"]["config"]["model"] == "gpt-4o-mini"
    app.open_editor(_id(app, "triage"))  # the same workflow: the canvas is kept
    assert editor.dirty and editor.document()["nodes"][-1]["id"] == "llm"
    app.open_editor(_id(app, "word_stats"))  # another one: the change is dropped
    app.open_editor(_id(app, "triage"))
    assert not editor.dirty and "llm" not in [n["id"] for n in editor.document()["nodes"]]

    save_preferences(app.store, ModelPreferences(default_model="ollama/llama3.2", routing="local"))
    editor.add_node("llm")
    assert editor.document()["nodes"][-1]["data"]["config"]["model"] == "ollama/llama3.2"


async def test_switching_workflows_detaches_the_run_view(app: StudioApp) -> None:
    slow = app.store.workflows.create(
        load_definition(_code_workflow("import time\n\ndef main():\n    time.sleep(30)\n")),
        name="slow",
    )
    app.open_editor(slow.id)
    editor = _editor(app)
    editor.run_panel.widgets["text"].value = "x"
    execution_id = editor.run_panel.start()
    assert execution_id is not None
    run = app.runner.active[execution_id]
    await asyncio.sleep(0.2)
    assert editor.run_status  # drawn on the slow workflow
    app.open_editor(_id(app, "triage"))  # its "start" and "end" share ids with the slow one
    assert editor.run_panel.execution_id is None and editor.run_status == {}
    assert app.runner.cancel(execution_id)
    assert (await asyncio.wait_for(run.wait(), 10)).status == "cancelled"
    await asyncio.sleep(0.1)
    assert editor.run_status == {}
    for node_id in ("start", "end"):
        assert not any(c.startswith("af-run-") for c in _classes(editor, node_id))
    assert "Not run yet" in editor.run_panel.status.object
