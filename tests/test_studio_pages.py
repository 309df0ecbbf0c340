"""Run history, agents and settings pages headless: callbacks and state on a real Store.

Runs go through the studio's real RunManager (engine + recorder) in the test's event
loop; HTTP nodes talk to a LocalServer on 127.0.0.1. Widgets are driven as the browser
would drive them (``clicks += 1``, ``value = ...``), table clicks through Tabulator's
own event entry point.
"""

from __future__ import annotations

import json
import socket
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import panel as pn
import pytest
from panel.models.tabulator import CellClickEvent

from engine import load_definition
from store import Store
from studio.pages.agents import AgentsPage, slugify
from studio.pages.runs import RunsPage
from studio.pages.settings import SettingsPage
from studio.preferences import (
    ModelPreferences,
    PreferenceError,
    load_preferences,
    save_preferences,
    workflow_settings,
)
from studio.runner import RunManager
from studio.server import load_examples
from tests.fake_provider import FakeProvider, loopback_only
from tests.helpers import chain, node, workflow
from tests.servers import LocalServer, local_server_fixture

server = local_server_fixture()


class Shell:
    """The part of StudioApp these pages use: navigation, runner, toasts (recorded)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.runner = RunManager(store)
        self.notes: list[tuple[str, str]] = []
        self.opened_editor: str | None = None
        self.current: str | None = None
        self.pages: dict[str, Any] = {
            "runs": RunsPage(self),
            "agents": AgentsPage(self),
            "settings": SettingsPage(self),
        }

    def show(self, name: str) -> None:
        self.current = name
        self.pages[name].refresh()

    def open_run(self, execution_id: str) -> None:
        self.pages["runs"].open(execution_id)
        self.show("runs")

    def open_editor(self, workflow_id: str) -> None:
        self.opened_editor = workflow_id

    def notify(self, message: str, level: str = "info") -> None:
        self.notes.append((level, message))


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("AGENTFLOW_SECRET_KEY", raising=False)
    with Store(tmp_path / "studio.duckdb") as opened:
        yield opened


@pytest.fixture
def shell(store: Store) -> Shell:
    return Shell(store)


async def finish(shell: Shell, execution_id: str) -> None:
    """Wait for a run the studio started, and for its records."""
    run = shell.runner.active.get(execution_id)
    if run is not None:
        await run.wait()
    shell.store.recorder.flush()


async def run_workflow(shell: Shell, workflow_id: str, inputs: dict[str, Any]) -> str:
    run = shell.runner.start(workflow_id, inputs)
    await run.wait()
    shell.store.recorder.flush()
    return str(run.execution_id)


def http_workflow(srv: LocalServer, *paths: str, retries: int = 0) -> dict:
    ids = [f"h{i}" for i in range(len(paths))]
    nodes = [node("start", "start", {"inputs": [{"name": "tag", "type": "string"}]})]
    nodes += [node(i, "http", {"url": srv.url(p)}) for i, p in zip(ids, paths, strict=True)]
    nodes.append(node("end", "end", {"outputs": {"status": f"{{{{{ids[-1]}.status}}}}"}}))
    return workflow(
        nodes,
        chain("start", *ids, "end"),
        allowPrivateNetwork=True,
        retryPolicy={"maxRetries": retries, "backoffMs": 1},
    )


def create(store: Store, doc: dict, name: str) -> str:
    return str(store.workflows.create(load_definition(doc), name=name).id)


def click(button: pn.widgets.Button) -> None:
    button.clicks += 1


def text_of(viewable: Any) -> str:
    """Every pane's content and every widget's value/name under a layout, as one string."""
    parts = []
    for item in viewable.select(lambda obj: True):
        for attr in ("object", "value", "value_input", "name", "options"):
            value = getattr(item, attr, None)
            if isinstance(value, str | int | float | list | dict):
                parts.append(str(value))
    return "\n".join(parts)


# -- run history: the list ------------------------------------------------------------------
def insert_runs(store: Store, workflow_ids: list[str], count: int, base: datetime) -> None:
    """``count`` executions, one an hour back from ``base``; every 10th failed."""
    store.db.execute(
        "INSERT INTO executions (id, workflow_id, user_id, status, inputs, started_at,"
        " created_at, duration_ms, cost_usd)"
        " SELECT 'run-' || lpad(i::VARCHAR, 7, '0'), list_extract(?, (i % ?)::INT + 1), 'local',"
        " CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'succeeded' END, '{}',"
        " ?::TIMESTAMPTZ - to_hours(i), ?::TIMESTAMPTZ - to_hours(i), i, 0"
        " FROM range(?) t(i)",
        [workflow_ids, len(workflow_ids), base, base, count],
    )


def test_history_pages_and_filters_query_only_the_visible_page(shell: Shell, store: Store):
    doc = workflow([node("start", "start"), node("end", "end")], chain("start", "end"))
    first, second = create(store, doc, "alpha"), create(store, doc, "beta")
    base = datetime.now().astimezone().replace(microsecond=0)
    insert_runs(store, [first, second], 130, base)
    page: RunsPage = shell.pages["runs"]
    shell.show("runs")
    assert page.mode == "list" and page.total == 130
    assert len(page.table.value) == 25 and len(page.records) == 25
    assert page.records[0].id == "run-0000000"  # newest first
    assert "Runs 1\u201325 of 130 · page 1 of 6" in page.page_label.object
    assert page.prev_button.disabled and not page.next_button.disabled

    click(page.next_button)
    assert page.records[0].id == "run-0000025" and "page 2 of 6" in page.page_label.object
    click(page.last_button)
    assert len(page.records) == 5 and page.next_button.disabled
    assert page.records[-1].id == "run-0000129"
    click(page.next_button)  # already on the last page: stays
    assert page.page == 5
    page.page_size.value = 100
    assert page.page == 0 and len(page.records) == 100 and page.page_count() == 2

    page.status.value = "failed"
    assert page.total == 13 and all(r.status == "failed" for r in page.records)
    assert "failed" in page.table.value["Status"].iloc[0]
    page.workflow.value = first  # the failed ones are the even hours: all of them "alpha"
    assert page.total == 13 and {r.workflow_id for r in page.records} == {first}
    page.workflow.value = second
    assert page.total == 0
    page.status.value = ""
    assert page.total == 65 and {r.workflow_id for r in page.records} == {second}

    page.workflow.value = ""
    page.period.value = "Last 24 hours"
    assert page.total == 24  # i = 0..23 hours back; hour 24 is older than "now - 24 h"
    since = (base - timedelta(days=3)).date()
    page.since_date.value = since
    assert page.period.value == "Any time"  # a date replaces the preset
    midnight = datetime.combine(since, datetime.min.time()).astimezone()
    expected = sum(1 for i in range(130) if base - timedelta(hours=i) >= midnight)
    assert page.total == expected and 0 < expected < 130

    page.since_date.value = None
    page.status.value = "cancelled"
    assert page.total == 0 and page.empty.visible and not page.table.visible
    assert "Runs 0\u20130 of 0" in page.page_label.object


def test_history_stays_fast_with_100k_runs(shell: Shell, store: Store):
    doc = workflow([node("start", "start"), node("end", "end")], chain("start", "end"))
    wf = create(store, doc, "bulk")
    insert_runs(store, [wf], 100_000, datetime.now().astimezone())
    page: RunsPage = shell.pages["runs"]
    started = time.perf_counter()
    shell.show("runs")
    first_page = time.perf_counter() - started
    started = time.perf_counter()
    click(page.last_button)
    last_page = time.perf_counter() - started
    assert page.total == 100_000 and len(page.table.value) == 25
    assert "of 100,000 · page 4,000 of 4,000" in page.page_label.object
    assert page.records[-1].id == "run-0099999"
    # Loading 100k records would take seconds; one page is milliseconds (bound is generous).
    assert first_page < 1.5 and last_page < 1.5, (first_page, last_page)


# -- run history: detail, re-run, resume, compare ------------------------------------------
async def test_run_detail_shows_each_attempt_timing_and_errors(shell: Shell, store: Store, server):
    wf = create(store, http_workflow(server, "/json", "/flaky/a?fail=1", retries=1), "retry")
    execution_id = await run_workflow(shell, wf, {"tag": "x"})
    shell.open_run(execution_id)
    page: RunsPage = shell.pages["runs"]
    detail = page.detail
    assert shell.current == "runs" and page.mode == "detail"
    assert page.body.objects == [detail.view()]
    record = detail.record
    assert record is not None and record.status == "succeeded"
    assert execution_id[:8] in detail.title.object and "retry v1" in detail.title.object
    flaky = [(r.attempt, r.status) for r in record.node_runs if r.node_id == "h1"]
    assert sorted(flaky) == [(1, "failed"), (2, "succeeded")]
    assert len(detail.nodes.value) == len(record.node_runs) == 5
    figure = detail.gantt.object
    assert detail.gantt.visible and figure is not None
    bars = figure.renderers[0].data_source.data
    assert sorted(zip(bars["node"], bars["attempt"], strict=True)) == [
        ("end", 1),
        ("h0", 1),
        ("h1", 1),
        ("h1", 2),
        ("start", 1),
    ]
    assert all(r >= left for left, r in zip(bars["left"], bars["right"], strict=True))
    assert "duration" in detail.summary.object and not detail.error.visible
    assert not detail.resume_button.visible  # a succeeded run has nothing to resume

    chosen = detail.select("h1", attempt=1)
    assert chosen is not None and chosen.status == "failed"
    assert [tab.name for tab in detail.attempt_tabs.objects][:3] == ["Inputs", "Outputs", "Error"]
    assert detail.attempt_tabs.active == 2 and "500" in text_of(detail.attempt_tabs)
    # A click on a row of the node table shows that attempt.
    row = next(i for i, r in enumerate(record.node_runs) if r.node_id == "end")
    detail.nodes._process_event(CellClickEvent(model=None, column="Node", row=row))
    assert detail.selected is not None and detail.selected.node_id == "end"
    assert detail.attempt_tabs.active == 1 and "200" in text_of(detail.attempt_tabs)

    click(detail.open_button)
    assert shell.opened_editor == wf
    click(detail.back_button)
    assert page.mode == "list" and page.total == 1


async def test_row_click_opens_a_run_but_the_tick_box_does_not(shell: Shell, store: Store, server):
    wf = create(store, http_workflow(server, "/json"), "one")
    execution_id = await run_workflow(shell, wf, {})
    page: RunsPage = shell.pages["runs"]
    shell.show("runs")
    page.table._process_event(CellClickEvent(model=None, column="_selection", row=0))
    assert page.mode == "list"
    page.table._process_event(CellClickEvent(model=None, column="Workflow", row=0))
    assert page.mode == "detail" and page.detail.execution_id == execution_id
    shell.show("runs")  # the navigation shows the list again
    assert page.mode == "list"


async def test_failed_run_shows_its_error_and_rerun_uses_the_same_inputs(
    shell: Shell, store: Store, server
):
    wf = create(store, http_workflow(server, "/status/500"), "broken")
    failed = await run_workflow(shell, wf, {"tag": "same"})
    shell.open_run(failed)
    detail = shell.pages["runs"].detail
    assert detail.record.status == "failed"
    assert detail.error.visible and "h0" in detail.error.object and "500" in detail.error.object
    assert detail.selected is not None and detail.selected.node_id == "h0"
    assert detail.resume_button.visible and not detail.resume_button.disabled

    click(detail.rerun_button)
    new_id = detail.execution_id
    assert new_id is not None and new_id != failed
    assert detail.rerun_button.disabled  # until the new run is shown
    await finish(shell, new_id)
    await detail.settled()
    assert detail.record is not None and detail.record.id == new_id
    assert detail.record.inputs == {"tag": "same"} and detail.record.status == "failed"
    assert store.executions.count(workflow_id=wf) == 2
    assert server.count("/status/500") == 2


async def test_rerun_of_a_deleted_workflow_shows_a_message(shell: Shell, store: Store, server):
    wf = create(store, http_workflow(server, "/json"), "gone")
    execution_id = await run_workflow(shell, wf, {})
    shell.open_run(execution_id)
    store.workflows.delete(wf)
    detail = shell.pages["runs"].detail
    click(detail.rerun_button)
    assert detail.execution_id == execution_id  # still showing the old run
    assert shell.notes[-1] == ("error", f"cannot re-run: no workflow '{wf}'")
    assert not detail.rerun_button.disabled and store.executions.count() == 1


async def test_resume_continues_a_failed_run_without_rerunning_done_nodes(
    shell: Shell, store: Store, server
):
    wf = create(store, http_workflow(server, "/json", "/flaky/r?fail=1"), "resumable")
    failed = await run_workflow(shell, wf, {})
    shell.open_run(failed)
    detail = shell.pages["runs"].detail
    assert detail.record.status == "failed"
    click(detail.resume_button)
    assert detail.execution_id == failed and detail.resume_button.disabled
    await finish(shell, failed)
    await detail.settled()
    assert detail.record.id == failed and detail.record.status == "succeeded"
    assert not detail.resume_button.visible
    assert (server.count("/json"), server.count("/flaky/r")) == (1, 2)
    assert detail.resume() is None  # a succeeded run cannot be resumed again
    assert store.executions.count() == 1


async def test_interrupted_run_found_on_reopen_can_be_resumed(tmp_path: Path, server):
    db = tmp_path / "crash.duckdb"
    with Store(db) as first:
        wf = create(first, http_workflow(server, "/json", "/text?text=done"), "crashy")
        # What a process that died mid-run leaves behind: a 'running' row owned by it.
        first.db.execute(
            "INSERT INTO executions (id, workflow_id, user_id, status, inputs, started_at,"
            " owner_pid, workflow_version) VALUES ('crashed-run', ?, 'local', 'running', '{}',"
            " now(), 999999999, 1)",
            [wf],
        )
    with Store(db) as reopened:
        assert reopened.interrupted == ["crashed-run"]
        shell = Shell(reopened)
        shell.open_run("crashed-run")
        detail = shell.pages["runs"].detail
        assert detail.record.status == "interrupted" and detail.resume_button.visible
        assert "resume" in detail.error.object
        click(detail.resume_button)
        await finish(shell, "crashed-run")
        await detail.settled()
        assert detail.record.status == "succeeded"
        assert detail.record.outputs == {"status": 200}


async def test_compare_two_runs_marks_what_differs(shell: Shell, store: Store):
    triage = dict((name, wid) for wid, name in load_examples_ids(store))["triage"]
    pay = await run_workflow(shell, triage, {"ticket": "my card payment failed"})
    hello = await run_workflow(shell, triage, {"ticket": "hello"})
    again = await run_workflow(shell, triage, {"ticket": "hello"})
    page: RunsPage = shell.pages["runs"]
    shell.show("runs")
    assert page.compare_button.disabled
    page.table.selection = [0]
    assert page.picked == [again] and page.compare_button.label == "Compare (1/2)"
    click(page.compare_button)  # disabled in the browser; refused here too
    assert page.mode == "list"
    page.pick(pay, hello)
    assert page.table.selection == [1, 2] and not page.compare_button.disabled
    click(page.compare_button)
    assert page.mode == "compare" and page.compared == (pay, hello)
    html = page.compare_body.object
    assert html.count('class="af-diff"') >= 4
    queue_row = html[html.index("output · queue") - 40 : html.index("output · queue")]
    assert "af-diff" in queue_row
    assert "payment" in html and "else" in html
    assert "Per-node status and timings" in html and "urgent" in html

    page.compare(again, hello)  # same inputs, same outputs: nothing differs there
    outputs = page.compare_body.object.split("<h3>Outputs")[1]
    assert "(0 of" in outputs and 'class="af-diff"' not in outputs
    click(page.compare_open_b)
    assert page.mode == "detail" and page.detail.execution_id == again
    page.compare("nope", hello)
    assert shell.notes[-1] == ("error", "no execution 'nope'")


_EXAMPLE_KEYS = {"Ticket triage": "triage", "Word statistics": "word_stats"}


def load_examples_ids(store: Store) -> list[tuple[str, str]]:
    """(id, short key) of the example workflows, keyed as their files are named."""
    load_examples(store)
    return [(w.id, _EXAMPLE_KEYS.get(w.name, w.name)) for w in store.workflows.list()]


def test_opening_a_missing_run_says_so(shell: Shell):
    shell.open_run("missing")
    assert shell.pages["runs"].mode == "list"
    assert ("error", "no run 'missing'") in shell.notes


# -- agents ---------------------------------------------------------------------------------
def fill_publish(page: AgentsPage, workflow_id: str, **fields: str) -> None:
    page.pub_workflow.value = workflow_id
    for name, value in fields.items():
        getattr(page, f"pub_{name}").value = value


async def test_publish_browse_and_run_an_agent(shell: Shell, store: Store):
    examples = dict((name, wid) for wid, name in load_examples_ids(store))
    page: AgentsPage = shell.pages["agents"]
    shell.show("agents")
    assert page.gallery.objects == [] and "No agents yet" in page.gallery_note.object
    assert set(page.pub_workflow.options.values()) == set(examples.values())

    page.pub_name.value_input = "Ticket Triage!"  # typing the name suggests a slug
    assert page.pub_slug.value == "ticket-triage"
    fill_publish(
        page,
        examples["triage"],
        name="Ticket triage",
        slug="triage",
        description="Routes support tickets",
        category="support",
        tags="email, triage, ",
        icon="⚡",
    )
    agent = page.publish()
    assert agent is not None and agent.tags == ["email", "triage"] and agent.icon == "⚡"
    assert page.pub_message.alert_type == "success" and page.pub_name.value == ""
    fill_publish(
        page, examples["word_stats"], name="Word stats", slug="words", category="text", tags=""
    )
    assert page.publish() is not None
    assert len(page.gallery.objects) == 2
    assert set(page.category.options.values()) == {"All", "support", "text"}
    assert "support (1)" in page.category.options

    page.category.value = "text"
    assert [a.slug for a in page.agents()] == ["words"] and len(page.gallery.objects) == 1
    page.category.value = "All"
    page.search.value_input = "ROUTES"
    assert [a.slug for a in page.agents()] == ["triage"]
    page.search.value_input = "zzz"
    assert page.gallery.objects == [] and "No agent matches" in page.gallery_note.object
    page.search.value_input = ""

    page.open("triage")
    assert page.body.objects == [page.agent_view]
    assert list(page.form.widgets) == ["ticket", "customer"]
    assert page.form.widgets["customer"].value == "anonymous"
    assert page.run_agent() is None  # ticket is required: nothing runs, nothing counted
    assert (
        page.form.messages["ticket"].visible and "required" in page.form.messages["ticket"].object
    )
    assert store.executions.count() == 0 and store.agents.get_by_slug("triage").use_count == 0

    page.form.widgets["ticket"].value = "refund for my card please"
    execution_id = page.run_agent()
    assert execution_id is not None and not page.form.messages["ticket"].visible
    assert page.run_button.disabled
    await finish(shell, execution_id)
    assert "succeeded" in page.result_status.object and page.open_run_button.visible
    assert "payments engineer" in text_of(page.result)
    assert store.agents.get_by_slug("triage").use_count == 1
    assert "<span class='af-use-count'>1</span>" in page.agent_header.object
    assert store.executions.get(execution_id).inputs["ticket"] == "refund for my card please"
    click(page.open_run_button)
    assert shell.current == "runs" and shell.pages["runs"].detail.execution_id == execution_id

    page.open("triage")
    click(page.unpublish_button)
    assert page.agent is None and [a.slug for a in page.agents()] == ["words"]


def test_refused_publish_shows_the_message_and_keeps_the_form(shell: Shell, store: Store):
    examples = dict((name, wid) for wid, name in load_examples_ids(store))
    page: AgentsPage = shell.pages["agents"]
    shell.show("agents")
    fill_publish(page, examples["triage"], name="Triage", slug="helper")
    assert page.publish() is not None
    typed = {
        "name": "Other helper",
        "slug": "helper",
        "description": "keeps me",
        "category": "misc",
        "tags": "a, b",
        "icon": "★",
    }
    fill_publish(page, examples["word_stats"], **typed)
    click(page.pub_button)
    assert page.pub_message.visible and page.pub_message.alert_type == "danger"
    assert "slug 'helper' is taken" in page.pub_message.object
    assert {name: getattr(page, f"pub_{name}").value for name in typed} == typed
    assert page.pub_workflow.value == examples["word_stats"]
    assert [a.name for a in store.agents.list()] == ["Triage"]
    assert shell.notes[-1][0] == "error"

    page.pub_slug.value = "Not A Slug"
    assert page.publish() is None and "is not valid" in page.pub_message.object
    page.pub_slug.value, page.pub_name.value = "fine-slug", "   "
    assert page.publish() is None and "name is required" in page.pub_message.object
    page.pub_name.value, page.pub_icon.value = "Ok", "x" * 600
    assert page.publish() is None and "icon is longer" in page.pub_message.object
    assert page.pub_name.value == "Ok" and len(store.agents.list()) == 1


def test_slugify_suggestions():
    assert slugify("Ticket Triage!") == "ticket-triage"
    assert slugify("  --Ünïcode & Co--  ") == "n-code-co"
    assert slugify("x" * 150) == "x" * 99


# -- settings -------------------------------------------------------------------------------
CANARY = "sk-canary-settings-0123456789abcdefLEAK"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_keys_are_write_only_and_shown_masked(shell: Shell, store: Store, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{closed_port()}")
    page: SettingsPage = shell.pages["settings"]
    shell.show("settings")
    assert "No keys stored" in text_of(page.keys_table)
    page.key_name.value = "OPENAI_API_KEY"
    page.key_value.value_input = CANARY
    click(page.save_key_button)
    assert store.secrets.get("OPENAI_API_KEY") == CANARY
    assert page.key_value.value == "" and page.key_value.value_input == ""
    shown = text_of(page.view())
    assert CANARY not in shown and "sk-…LEAK" in shown and "OPENAI_API_KEY" in shown
    assert page.key_message.alert_type == "success"

    page.key_name.value = "__custom__"
    assert page.custom_name.visible
    page.custom_name.value = "not a name"
    page.key_value.value = "secret-value-1234"
    assert page.save_key() is False
    assert "invalid secret name" in page.key_message.object and page.key_value.value == ""
    assert [info.name for info in store.secrets.list()] == ["OPENAI_API_KEY"]
    page.custom_name.value = "MY_SERVICE_KEY"
    assert page.save_key() is False and "Type or paste the key first" in page.key_message.object

    delete = page.keys_table.objects[0].objects[1]
    click(delete)
    assert store.secrets.list() == [] and "No keys stored" in text_of(page.keys_table)
    assert page.delete_key("OPENAI_API_KEY") is False  # already gone: a message, no crash
    assert "no secret" in page.key_message.object


def test_ollama_status_and_local_models(shell: Shell, monkeypatch):
    page: SettingsPage = shell.pages["settings"]
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{closed_port()}")
    with loopback_only() as refused:
        page.refresh_models()
        assert "Ollama is not running" in page.ollama_status.object
        assert "No local models" in page.models_table.object
        with FakeProvider() as fake:
            monkeypatch.setenv("OLLAMA_HOST", fake.url)
            page.refresh_models()
    assert refused == []
    assert "Ollama is running" in page.ollama_status.object
    assert "ollama/fake" in page.models_table.object
    assert "ollama/fake:latest" in page.pick_local.options
    page.pick_local.value = "ollama/fake:latest"  # picking a local model fills the field
    assert page.default_model.value == "ollama/fake:latest"
    assert "openai" in page.providers_table.object

    import engine.llm

    monkeypatch.delattr(engine.llm, "discover")
    page.refresh_models()
    assert "model discovery is not available" in page.ollama_status.object


async def test_model_discovery_runs_off_the_event_loop(shell: Shell, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{closed_port()}")
    page: SettingsPage = shell.pages["settings"]
    page.refresh_models(background=True)
    assert "Checking Ollama" in page.ollama_status.object
    await page.models_checked()
    assert "Ollama is not running" in page.ollama_status.object


def test_model_defaults_are_validated_and_saved(shell: Shell, store: Store):
    store.db.execute("UPDATE users SET settings = ? WHERE id = 'local'", [json.dumps({"x": 1})])
    page: SettingsPage = shell.pages["settings"]
    page.load_defaults()
    assert page.routing.value == "cloud" and page.default_model.value == ""

    page.routing.value = "local"
    page.default_model.value = "gpt-4o-mini"
    assert page.save_defaults() is False
    assert page.field_messages["default_model"].visible
    assert "local model" in page.field_messages["default_model"].object
    assert load_preferences(store) == ModelPreferences()  # nothing saved

    page.routing.value = "hybrid"
    page.default_model.value = "ollama/llama3.2"
    page.fallback_model.value = "ollama/qwen"
    assert page.save_defaults() is False and page.field_messages["fallback_model"].visible
    page.fallback_model.value = " gpt-4o-mini "
    assert page.save_defaults() is True
    assert not any(pane.visible for pane in page.field_messages.values())
    saved = load_preferences(store)
    assert saved == ModelPreferences("ollama/llama3.2", "hybrid", "gpt-4o-mini")
    raw = json.loads(store.db.execute("SELECT settings FROM users WHERE id = 'local'")[0][0])
    assert raw["x"] == 1 and raw["llm"]["routing"] == "hybrid"  # other settings kept

    other = SettingsPage(shell)
    other.load_defaults()
    assert (other.default_model.value, other.routing.value, other.fallback_model.value) == (
        "ollama/llama3.2",
        "hybrid",
        "gpt-4o-mini",
    )


def test_preferences_api(store: Store):
    assert load_preferences(store) == ModelPreferences(None, "cloud", None)
    with pytest.raises(PreferenceError) as caught:
        save_preferences(store, ModelPreferences("gpt 4o", "cloud"))
    assert "no spaces" in caught.value.problems["default_model"]
    with pytest.raises(PreferenceError) as caught:
        save_preferences(store, ModelPreferences(None, "everywhere"))
    assert "routing" in caught.value.problems
    saved = save_preferences(store, ModelPreferences("  ", "local", None))
    assert saved == ModelPreferences(None, "local", None) == load_preferences(store)
    hybrid = ModelPreferences("ollama/llama3.2", "hybrid", "gpt-4o-mini")
    assert workflow_settings(hybrid) == {
        "routing": "hybrid",
        "localModel": "ollama/llama3.2",
        "fallbackModel": "gpt-4o-mini",
    }
    assert workflow_settings(ModelPreferences("gpt-4o", "cloud")) == {"routing": "cloud"}
    # A hand-edited row of the wrong shape reads as defaults and is replaced on save.
    store.db.execute("UPDATE users SET settings = '[1, 2]' WHERE id = 'local'")
    assert load_preferences(store) == ModelPreferences()
    save_preferences(store, hybrid)
    assert load_preferences(store) == hybrid


# -- the real shell ---------------------------------------------------------------------------
async def test_studio_app_opens_a_run_in_history(store: Store, server):
    from studio.app import StudioApp

    wf = create(store, http_workflow(server, "/json"), "shell")
    app = StudioApp(store, RunManager(store))
    run = app.runner.start(wf, {})
    await run.wait()
    store.recorder.flush()
    app.open_run(run.execution_id)
    runs = app.pages["runs"]
    assert app.current == "runs" and runs.mode == "detail"
    assert app.main.objects == [runs.view()]
    app.show("agents")
    app.show("runs")
    assert runs.mode == "list" and runs.total == 1


def test_gantt_spans_and_row_cap():
    from store.executions import NodeRunRecord
    from studio.pages._gantt import MAX_ROWS, gantt_figure, spans

    t0 = datetime(2026, 1, 1, 12, 0, 0).astimezone()

    def attempt(node_id: str, start_ms: float, end_ms: float | None, status="succeeded"):
        return NodeRunRecord(
            node_id,
            "http",
            status,
            1,
            t0 + timedelta(milliseconds=start_ms),
            None if end_ms is None else t0 + timedelta(milliseconds=end_ms),
            None,
            None,
            None,
            None,
            0,
            0.0,
            None,
        )

    never = NodeRunRecord("x", "end", "skipped", 0, None, None, None, None, None, None, 0, 0, None)
    bars = spans(
        [attempt("a", 0, 10), attempt("b", 5, None, "running"), never],
        now=t0 + timedelta(milliseconds=25),
    )
    assert [(b.node_id, b.start_ms, b.end_ms) for b in bars] == [("a", 0, 10), ("b", 5, 25)]
    assert spans([never]) == []
    many = spans([attempt(f"n{i:03}", i, i + 1) for i in range(MAX_ROWS + 40)])
    figure = gantt_figure(many)
    assert len(figure.y_range.factors) == MAX_ROWS and "n000" in figure.y_range.factors
    assert "n099" not in figure.y_range.factors
    assert figure.title.text == f"first {MAX_ROWS} of {MAX_ROWS + 40} nodes to start"


async def test_run_detail_shows_tokens_of_an_llm_node(shell: Shell, store: Store):
    with loopback_only() as refused, FakeProvider() as fake:
        doc = workflow(
            [
                node("start", "start", {"inputs": [{"name": "q", "type": "string"}]}),
                node(
                    "ask",
                    "llm",
                    {"model": "ollama/fake", "baseUrl": fake.url, "userPrompt": "{{start.q}}"},
                ),
                node("end", "end", {"outputs": {"answer": "{{ask.text}}"}}),
            ],
            chain("start", "ask", "end"),
        )
        execution_id = await run_workflow(
            shell, create(store, doc, "llm"), {"q": "three little words"}
        )
    assert refused == []
    shell.open_run(execution_id)
    detail = shell.pages["runs"].detail
    record = detail.record
    assert record.status == "succeeded" and record.outputs == {"answer": "echo: three little words"}
    total = record.token_usage["total"]
    assert total == 3 + 4  # prompt words + streamed words (the fake provider's counting)
    assert f"<b>{total}</b>" in detail.summary.object and "3 in / 4 out" in detail.summary.object
    row = detail.nodes.value.set_index("Node").loc["ask"]
    assert row["Tokens"] == total and row["Cost"] == "$0"
    assert detail.select("ask") is not None and "tokens" in detail.attempt_title.object
