"""The agent store and the run-history export, over real DuckDB files in tmp_path."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import duckdb
import pytest

from engine import load_definition
from store.errors import ConflictError, NotFoundError, StoreError
from store.export import export_executions, node_runs_path
from store.store import Store
from tests.helpers import chain, node, workflow


def definition(label: str = "hi"):
    return load_definition(
        workflow(
            [
                node("start", "start"),
                node("t", "template", {"template": label}),
                node("end", "end", {"outputs": {"text": "{{t.text}}"}}),
            ],
            chain("start", "t", "end"),
        )
    )


@pytest.fixture
def st(tmp_path: Path):
    with Store(tmp_path / "agentflow.duckdb") as opened:
        yield opened


@pytest.fixture
def wf(st: Store) -> str:
    return st.workflows.create(definition(), name="Summarizer").id


# -- publish ----------------------------------------------------------------------------
def test_publish_creates_a_listed_agent(st: Store, wf: str) -> None:
    agent = st.agents.publish(
        wf,
        name="  Summary bot ",
        slug="summary-bot",
        description="Summarizes text",
        category="writing",
        tags=["text", " llm ", "text", ""],
        icon="📝",
    )
    assert agent.status == "published" and agent.published_at is not None
    assert (agent.name, agent.slug, agent.workflow_id) == ("Summary bot", "summary-bot", wf)
    assert agent.tags == ["text", "llm"]
    assert agent.use_count == 0 and agent.version == "1.0.0"
    summary = agent.summary()
    assert summary["workflowId"] == wf and summary["workflowName"] == "Summarizer"
    assert summary["useCount"] == 0 and summary["tags"] == ["text", "llm"]
    assert summary["publishedAt"] == agent.published_at.isoformat()
    assert summary["icon"] == "📝" and summary["category"] == "writing"
    assert json.loads(json.dumps(summary)) == summary
    assert st.agents.get_by_slug("summary-bot").id == agent.id
    assert [a.slug for a in st.agents.list()] == ["summary-bot"]
    row = st.db.execute("SELECT user_id, tags FROM agents WHERE slug = 'summary-bot'")
    assert row[0][0] == "local" and json.loads(row[0][1]) == ["text", "llm"]


@pytest.mark.parametrize("slug", ["ab", "a" * 99, "0-day", "my-agent-2", "a--b"])
def test_valid_slugs(st: Store, wf: str, slug: str) -> None:
    assert st.agents.publish(wf, name="A", slug=slug).slug == slug


@pytest.mark.parametrize(
    "slug", ["a", "", "-ab", "Ab", "ab_c", "a b", "a" * 100, "ab\n", "ab/c", "ünï"]
)
def test_invalid_slugs_are_refused(st: Store, wf: str, slug: str) -> None:
    with pytest.raises(StoreError, match="invalid agent slug"):
        st.agents.publish(wf, name="A", slug=slug)
    assert st.db.execute("SELECT count(*) FROM agents") == [(0,)]


def test_bad_fields_are_refused(st: Store, wf: str) -> None:
    with pytest.raises(StoreError, match="name must not be empty"):
        st.agents.publish(wf, name="   ", slug="ok-slug")
    with pytest.raises(StoreError, match="category is longer than 50"):
        st.agents.publish(wf, name="A", slug="ok-slug", category="c" * 51)
    with pytest.raises(StoreError, match="not one string"):
        st.agents.publish(wf, name="A", slug="ok-slug", tags="oops")
    with pytest.raises(StoreError, match="is not text"):
        st.agents.publish(wf, name="A", slug="ok-slug", tags=["a", 3])  # type: ignore[list-item]
    assert st.db.execute("SELECT count(*) FROM agents") == [(0,)]


def test_taken_slug_is_a_conflict_naming_it(st: Store, wf: str) -> None:
    other = st.workflows.create(definition(), name="Other").id
    st.agents.publish(wf, name="First", slug="taken")
    with pytest.raises(ConflictError, match="agent slug 'taken' is taken"):
        st.agents.publish(other, name="Second", slug="taken")
    with pytest.raises(ConflictError, match="'taken'"):
        st.agents.publish(wf, name="Again", slug="taken")
    assert st.agents.get_by_slug("taken").name == "First"
    assert st.db.execute("SELECT count(*) FROM agents") == [(1,)]


def test_unknown_or_deleted_workflow_cannot_be_published(st: Store, wf: str) -> None:
    with pytest.raises(NotFoundError, match="no workflow 'missing'"):
        st.agents.publish("missing", name="A", slug="ghost")
    st.workflows.delete(wf)
    with pytest.raises(NotFoundError, match=f"no workflow '{wf}'"):
        st.agents.publish(wf, name="A", slug="ghost")
    assert st.db.execute("SELECT count(*) FROM agents") == [(0,)]


def test_get_unknown_slug(st: Store) -> None:
    with pytest.raises(NotFoundError, match="no agent 'nobody'"):
        st.agents.get_by_slug("nobody")


# -- list / categories / use ------------------------------------------------------------
def test_list_by_category_and_search_most_used_first(st: Store, wf: str) -> None:
    st.agents.publish(wf, name="Translator", slug="translate", category="language", tags=["i18n"])
    st.agents.publish(wf, name="Poet", slug="poet", category="writing", description="Rhymes 100%")
    st.agents.publish(wf, name="Editor", slug="editor", category="writing", tags=["grammar"])
    st.agents.publish(wf, name="Loner", slug="loner")
    for _ in range(3):
        st.agents.record_use("editor")
    st.agents.record_use("poet")

    # Most used first; equal use counts: most recently published first.
    assert [a.slug for a in st.agents.list()] == ["editor", "poet", "loner", "translate"]
    assert [a.slug for a in st.agents.list(category="writing")] == ["editor", "poet"]
    assert st.agents.list(category="nothing") == []
    assert [a.slug for a in st.agents.list(search="TRANS")] == ["translate"]  # name
    assert [a.slug for a in st.agents.list(search="rhymes")] == ["poet"]  # description
    assert [a.slug for a in st.agents.list(search="grammar")] == ["editor"]  # tags
    assert [a.slug for a in st.agents.list(search="lone")] == ["loner"]  # slug
    # LIKE wildcards in the search text are literal characters.
    assert [a.slug for a in st.agents.list(search="100%")] == ["poet"]
    assert st.agents.list(search="%") == [st.agents.get_by_slug("poet")]
    assert st.agents.list(search="_") == []
    assert st.agents.categories() == [("writing", 2), ("language", 1)]


def test_record_use_counts_and_persists(tmp_path: Path) -> None:
    path = tmp_path / "uses.duckdb"
    with Store(path) as st:
        wf = st.workflows.create(definition(), name="W").id
        st.agents.publish(wf, name="A", slug="counted")
        assert [st.agents.record_use("counted") for _ in range(3)] == [1, 2, 3]
    with Store(path) as st:
        assert st.agents.get_by_slug("counted").use_count == 3
        assert st.agents.get_by_slug("counted").summary()["useCount"] == 3
        with pytest.raises(NotFoundError):
            st.agents.record_use("uncounted")


def test_unpublish_hides_keeps_slug_and_allows_republish(st: Store, wf: str) -> None:
    other = st.workflows.create(definition(), name="Other").id
    st.agents.publish(wf, name="A", slug="cycle", category="misc")
    st.agents.record_use("cycle")
    gone = st.agents.unpublish("cycle")
    assert gone.status == "unpublished"
    assert st.agents.list() == [] and st.agents.categories() == []
    assert [a.slug for a in st.agents.list(include_unpublished=True)] == ["cycle"]
    with pytest.raises(ConflictError, match="not published"):
        st.agents.record_use("cycle")
    with pytest.raises(ConflictError, match="taken"):
        st.agents.publish(other, name="Thief", slug="cycle")

    back = st.agents.publish(wf, name="A v2", slug="cycle", tags=["new"])
    assert back.status == "published" and back.name == "A v2" and back.tags == ["new"]
    assert back.use_count == 1 and back.id == gone.id
    with pytest.raises(NotFoundError):
        st.agents.unpublish("never")


def test_update_changes_only_given_fields(st: Store, wf: str) -> None:
    st.agents.publish(wf, name="A", slug="upd", description="d", category="c", tags=["x"])
    before = st.agents.get_by_slug("upd")
    after = st.agents.update("upd", name="B", tags=["y", "z"])
    assert (after.name, after.description, after.category, after.tags) == (
        "B",
        "d",
        "c",
        ["y", "z"],
    )
    assert after.updated_at >= before.updated_at
    assert st.agents.update("upd", tags=()).tags == []
    assert st.agents.update("upd", category="other").category == "other"
    with pytest.raises(StoreError, match="name must not be empty"):
        st.agents.update("upd", name="")
    with pytest.raises(NotFoundError):
        st.agents.update("nope", name="x")
    assert st.agents.get_by_slug("upd").name == "B"


def test_agents_of_deleted_workflows_are_not_listed(st: Store, wf: str) -> None:
    st.agents.publish(wf, name="A", slug="orphan", category="c")
    st.workflows.save(wf, definition("v2"))  # the referenced row can still change
    st.workflows.delete(wf)
    assert st.agents.list() == [] and st.agents.categories() == []
    assert st.agents.get_by_slug("orphan").workflow_id == wf
    st.workflows.restore(wf)
    assert [a.slug for a in st.agents.list()] == ["orphan"]


# -- export -----------------------------------------------------------------------------
def add_run(st: Store, workflow_id: str, status: str, minute: int, nodes: list[str]) -> str:
    execution_id = str(uuid.uuid4())
    st.db.execute(
        "INSERT INTO executions (id, workflow_id, user_id, status, inputs, outputs, token_usage,"
        " started_at, completed_at, duration_ms, created_at, workflow_version, cost_usd)"
        " VALUES (?, ?, 'local', ?, ?, ?, ?, TIMESTAMPTZ '2024-05-01 10:00:00+00' + to_minutes(?),"
        " TIMESTAMPTZ '2024-05-01 10:00:01+00' + to_minutes(?), 1000,"
        " TIMESTAMPTZ '2024-05-01 10:00:00+00' + to_minutes(?), 1, 0.25)",
        [
            execution_id,
            workflow_id,
            status,
            json.dumps({"topic": f"run {minute}", "nested": {"k": [1, 2]}}),
            json.dumps({"text": "ok"}),
            json.dumps({"total": 12}),
            minute,
            minute,
            minute,
        ],
    )
    for attempt, node_id in enumerate(nodes, start=1):
        st.db.execute(
            "INSERT INTO node_runs (execution_id, node_id, node_type, status, attempt, started_at,"
            " ended_at, duration_ms, inputs, outputs, error, tokens, cost, metadata)"
            " VALUES (?, ?, 'template', 'succeeded', ?, now(), now(), 1.5, ?, ?, NULL, 3, 0.01, ?)",
            [
                execution_id,
                node_id,
                attempt,
                json.dumps({"in": node_id}),
                json.dumps({"text": f"out of {node_id}"}),
                json.dumps({"model": None}),
            ],
        )
    return execution_id


@pytest.fixture
def history(st: Store) -> dict[str, list[str]]:
    first = st.workflows.create(definition(), name="First").id
    second = st.workflows.create(definition(), name="Second").id
    return {
        first: [
            add_run(st, first, "succeeded", 1, ["start", "t", "end"]),
            add_run(st, first, "failed", 2, ["start", "t"]),
        ],
        second: [add_run(st, second, "succeeded", 3, ["start"])],
    }


def read_parquet(path: Path) -> list[dict]:
    connection = duckdb.connect()
    try:
        cursor = connection.execute("SELECT * FROM read_parquet(?)", [str(path)])
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        connection.close()


def test_export_parquet_all_and_per_workflow(st: Store, history, tmp_path: Path) -> None:
    out = tmp_path / "runs.parquet"
    assert export_executions(st, fmt="parquet", out=out) == 3
    executions = read_parquet(out)
    all_ids = [run for runs in history.values() for run in runs]
    assert [row["id"] for row in executions] == all_ids  # oldest first
    assert json.loads(executions[0]["inputs"]) == {"topic": "run 1", "nested": {"k": [1, 2]}}
    assert executions[1]["status"] == "failed" and executions[0]["cost_usd"] == 0.25
    node_runs = read_parquet(node_runs_path(out))
    assert node_runs_path(out) == tmp_path / "runs.node_runs.parquet"
    assert len(node_runs) == 6
    assert {row["execution_id"] for row in node_runs} == set(all_ids)
    assert json.loads(node_runs[0]["outputs"])["text"].startswith("out of ")

    first, runs = next(iter(history.items()))
    only = tmp_path / "first.parquet"
    assert export_executions(st.db, fmt="parquet", out=only, workflow_id=first) == 2
    assert [row["id"] for row in read_parquet(only)] == runs
    assert {row["execution_id"] for row in read_parquet(node_runs_path(only))} == set(runs)
    assert len(read_parquet(node_runs_path(only))) == 5
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".parquet") == [
        "first.node_runs.parquet",
        "first.parquet",
        "runs.node_runs.parquet",
        "runs.parquet",
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".agentflow-export")]


def test_export_json_one_document(st: Store, history, tmp_path: Path) -> None:
    out = tmp_path / "runs.json"
    first = next(iter(history))
    assert export_executions(st, fmt="json", out=out, workflow_id=first) == 2
    document = json.loads(out.read_text(encoding="utf-8"))
    assert set(document) == {"executions", "nodeRuns"}
    assert [row["id"] for row in document["executions"]] == history[first]
    row = document["executions"][0]
    assert row["workflowId"] == first and row["workflowVersion"] == 1
    assert row["inputs"] == {"topic": "run 1", "nested": {"k": [1, 2]}}  # JSON, not a string
    assert row["tokenUsage"] == {"total": 12} and row["errorMessage"] is None
    assert "workflow_id" not in row
    assert len(document["nodeRuns"]) == 5
    assert {r["executionId"] for r in document["nodeRuns"]} == set(history[first])
    assert document["nodeRuns"][0]["nodeType"] == "template"


def test_export_of_empty_history_and_of_a_read_only_store(tmp_path: Path) -> None:
    path = tmp_path / "empty.duckdb"
    Store(path).close()
    with Store(path, read_only=True) as st:
        assert export_executions(st, fmt="json", out=tmp_path / "e.json") == 0
        assert export_executions(st, fmt="parquet", out=tmp_path / "e.parquet") == 0
    assert json.loads((tmp_path / "e.json").read_text()) == {"executions": [], "nodeRuns": []}
    assert read_parquet(tmp_path / "e.parquet") == []
    assert read_parquet(tmp_path / "e.node_runs.parquet") == []


def test_export_refuses_to_overwrite(st: Store, history, tmp_path: Path) -> None:
    out = tmp_path / "runs.json"
    out.write_text("precious")
    with pytest.raises(ConflictError, match=r"runs\.json exists"):
        export_executions(st, fmt="json", out=out)
    assert out.read_text() == "precious"
    assert export_executions(st, fmt="json", out=out, overwrite=True) == 3
    assert len(json.loads(out.read_text())["executions"]) == 3

    parquet = tmp_path / "runs.parquet"
    node_runs_path(parquet).write_text("also precious")
    with pytest.raises(ConflictError, match=r"runs\.node_runs\.parquet exists"):
        export_executions(st, fmt="parquet", out=parquet)
    assert not parquet.exists()
    assert node_runs_path(parquet).read_text() == "also precious"
    assert export_executions(st, fmt="parquet", out=parquet, overwrite=True) == 3
    assert len(read_parquet(node_runs_path(parquet))) == 6


def test_export_bad_format_or_directory(st: Store, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unknown export format 'csv'"):
        export_executions(st, fmt="csv", out=tmp_path / "x.csv")  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="no such directory"):
        export_executions(st, fmt="json", out=tmp_path / "missing" / "x.json")
    taken = tmp_path / "a-directory"
    taken.mkdir()
    with pytest.raises(StoreError, match=r"cannot write .*a-directory"):
        export_executions(st, fmt="json", out=taken, overwrite=True)
    assert taken.is_dir() and list(taken.iterdir()) == []
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith("agentflow.duckdb")] == [
        "a-directory"
    ]
