"""The store's database file and its workflows, over real DuckDB files in tmp_path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import duckdb
import pytest

import store.db
from engine import load_definition
from store.db import Database
from store.errors import (
    ImportDocumentError,
    NotADatabaseError,
    NotFoundError,
    SchemaVersionError,
    StoreError,
)
from store.store import Store
from tests.helpers import chain, node, workflow

ROOT = Path(__file__).resolve().parent.parent


def doc(label: str = "hello", **settings: object) -> dict:
    return workflow(
        [
            node("start", "start", {"inputs": [{"name": "x", "type": "string"}]}),
            node("t", "template", {"template": label + " {{ start.x }}"}),
            node("end", "end", {"outputs": {"text": "{{t.text}}"}}),
        ],
        chain("start", "t", "end"),
        **settings,
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "agentflow.duckdb"


@pytest.fixture
def st(db_path: Path):
    with Store(db_path) as opened:
        yield opened


def count(st: Store, sql: str, *params: object) -> int:
    return int(st.db.execute(sql, list(params))[0][0])


# -- create / save / versions -------------------------------------------------------------
def test_create_stores_version_one(st: Store) -> None:
    record = st.workflows.create(load_definition(doc()), name="Greeter", description="says hi")
    assert uuid.UUID(record.id)
    assert (record.name, record.description, record.version) == ("Greeter", "says hi", 1)
    assert record.status == "draft" and record.run_count == 0 and record.deleted_at is None
    assert record.icon == "workflow"
    assert record.definition.to_dict() == load_definition(doc()).to_dict()
    versions = st.workflows.versions(record.id)
    assert [(v.version, v.message) for v in versions] == [(1, "created")]
    summary = record.summary()
    assert summary["runCount"] == 0 and summary["deletedAt"] is None
    assert summary["lastRunStatus"] is None


def test_save_increments_version_and_keeps_each_version(st: Store) -> None:
    first = st.workflows.create(load_definition(doc("one")), name="W")
    second = st.workflows.save(first.id, load_definition(doc("two")), message="edit 1")
    third = st.workflows.save(first.id, load_definition(doc("three")), message=None)
    assert (second.version, third.version) == (2, 3)
    assert st.workflows.get(first.id).definition.node("t").config["template"].startswith("three")
    versions = st.workflows.versions(first.id)
    assert [(v.version, v.message) for v in versions] == [(1, "created"), (2, "edit 1"), (3, None)]
    assert [v.definition.node("t").config["template"].split()[0] for v in versions] == [
        "one",
        "two",
        "three",
    ]
    assert count(st, "SELECT count(*) FROM workflow_versions WHERE workflow_id = ?", first.id) == 3
    assert st.workflows.get_version(first.id, 2).message == "edit 1"
    with pytest.raises(NotFoundError, match=rf"no workflow version '{first.id}@9'"):
        st.workflows.get_version(first.id, 9)


def test_save_unknown_or_deleted_workflow_is_not_found_and_writes_nothing(st: Store) -> None:
    with pytest.raises(NotFoundError, match="no workflow 'nope'"):
        st.workflows.save("nope", load_definition(doc()))
    record = st.workflows.create(load_definition(doc()), name="W")
    st.workflows.delete(record.id)
    with pytest.raises(NotFoundError):
        st.workflows.save(record.id, load_definition(doc("later")))
    assert count(st, "SELECT count(*) FROM workflow_versions") == 1


def test_rename_changes_only_what_is_given(st: Store) -> None:
    record = st.workflows.create(load_definition(doc()), name="Old", description="d")
    renamed = st.workflows.rename(record.id, name="New")
    assert (renamed.name, renamed.description, renamed.version) == ("New", "d", 1)
    with pytest.raises(NotFoundError):
        st.workflows.rename("missing", name="x")


# -- list / search / delete / restore / duplicate -----------------------------------------
def test_list_and_search(st: Store) -> None:
    alpha = st.workflows.create(load_definition(doc()), name="Alpha report", description="daily")
    beta = st.workflows.create(load_definition(doc()), name="Beta", description="weekly REPORT")
    st.workflows.create(load_definition(doc()), name="Gamma")
    assert {r.name for r in st.workflows.list()} == {"Alpha report", "Beta", "Gamma"}
    assert {r.id for r in st.workflows.list(search="report")} == {alpha.id, beta.id}
    assert [r.id for r in st.workflows.list(search="DAILY")] == [alpha.id]
    assert st.workflows.list(search="nothing like it") == []
    assert len(st.workflows.list(limit=2)) == 2
    st.workflows.save(beta.id, load_definition(doc("newer")))
    assert st.workflows.list()[0].id == beta.id  # most recently changed first


def test_soft_delete_hides_but_keeps_rows_and_restore_brings_back(st: Store) -> None:
    record = st.workflows.create(load_definition(doc()), name="Doomed")
    st.workflows.save(record.id, load_definition(doc("v2")))
    st.workflows.delete(record.id)
    assert st.workflows.list() == []
    with pytest.raises(NotFoundError, match=f"no workflow '{record.id}'"):
        st.workflows.get(record.id)
    deleted = st.workflows.get(record.id, include_deleted=True)
    assert deleted.deleted_at is not None and deleted.summary()["deletedAt"]
    assert [r.id for r in st.workflows.list(include_deleted=True)] == [record.id]
    assert count(st, "SELECT count(*) FROM workflows WHERE id = ?", record.id) == 1
    assert count(st, "SELECT count(*) FROM workflow_versions WHERE workflow_id = ?", record.id) == 2
    assert [v.version for v in st.workflows.versions(record.id)] == [1, 2]
    with pytest.raises(NotFoundError):
        st.workflows.delete(record.id)  # already deleted

    restored = st.workflows.restore(record.id)
    assert restored.deleted_at is None and restored.version == 2
    assert [r.id for r in st.workflows.list()] == [record.id]
    with pytest.raises(NotFoundError):
        st.workflows.restore("never-existed")


def test_duplicate_is_a_new_workflow_at_version_one(st: Store) -> None:
    original = st.workflows.create(
        load_definition(doc()), name="Orig", description="d", icon="bolt"
    )
    st.workflows.save(original.id, load_definition(doc("v2")))
    copy = st.workflows.duplicate(original.id)
    assert copy.id != original.id
    assert (copy.name, copy.description, copy.icon, copy.version) == (
        "Orig (copy)",
        "d",
        "bolt",
        1,
    )
    assert copy.definition.to_dict() == st.workflows.get(original.id).definition.to_dict()
    named = st.workflows.duplicate(original.id, name="Fork")
    assert named.name == "Fork"
    assert st.workflows.get(original.id).version == 2
    assert len(st.workflows.list()) == 3
    with pytest.raises(NotFoundError):
        st.workflows.duplicate("missing")


def test_record_run_and_last_run_status(st: Store) -> None:
    record = st.workflows.create(load_definition(doc()), name="W")
    st.workflows.record_run(record.id)
    st.workflows.record_run(record.id)
    for minute, status in ((1, "failed"), (2, "succeeded")):
        st.db.execute(
            "INSERT INTO executions (id, workflow_id, user_id, status, created_at)"
            " VALUES (?, ?, 'local', ?, TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_minutes(?))",
            [str(uuid.uuid4()), record.id, status, minute],
        )
    again = st.workflows.get(record.id)
    assert again.run_count == 2
    assert again.last_run_status == "succeeded"


# -- import / export -------------------------------------------------------------------
def test_import_valid_documents(st: Store) -> None:
    plain = st.workflows.import_json(json.dumps(doc()), source="/some/where/my-flow.json")
    assert plain.name == "my-flow" and plain.version == 1
    wrapped = st.workflows.import_json(
        json.dumps(
            {"metadata": {"name": "Wrapped", "description": "from meta"}, "definition": doc()}
        )
    )
    assert (wrapped.name, wrapped.description) == ("Wrapped", "from meta")
    assert st.workflows.import_json(json.dumps(doc()), name="Given").name == "Given"
    assert st.workflows.import_json(json.dumps(doc())).name == "Imported workflow"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"version": "1.0.0", "nodes": [', r"wf\.json:1:\d+: invalid JSON"),
        ("", "invalid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('"a string"', "must be a JSON object"),
        ('{"nodes": [{"id": "a"}]}', "not a workflow definition: .*node 'a'.*type"),
        ('{"nodes": "no"}', "not a workflow definition"),
        ('{"definition": {"nodes": [{"id": "a"}]}}', "not a workflow definition"),
        ('{"settings": {"timeout": -1}}', "not a workflow definition"),
    ],
)
def test_import_invalid_leaves_nothing_behind(st: Store, text: str, match: str) -> None:
    st.workflows.create(load_definition(doc()), name="existing")
    with pytest.raises(ImportDocumentError, match=match) as caught:
        st.workflows.import_json(text, source="wf.json")
    assert caught.value.issues or "JSON" in caught.value.message
    assert "\n" not in caught.value.message
    assert count(st, "SELECT count(*) FROM workflows") == 1
    assert count(st, "SELECT count(*) FROM workflow_versions") == 1


def test_export_round_trip_is_byte_equivalent(st: Store) -> None:
    original = doc("round", errorHandling="continue", variables={"who": "x", "n": [1, 2]})
    original["nodes"][1]["data"]["description"] = "unicode ✓ text"
    canonical = load_definition(original).to_json()
    assert json.loads(canonical) == original  # nothing added or lost on the way in

    # Same document, other layout and top-level key order: stored and exported canonically.
    shuffled = {key: original[key] for key in ("settings", "edges", "nodes", "version")}
    record = st.workflows.import_json(json.dumps(shuffled, indent=4, ensure_ascii=True))
    exported = st.workflows.export_json(record.id)
    assert exported == canonical
    again = st.workflows.import_json(exported)
    assert st.workflows.export_json(again.id) == exported

    st.workflows.save(record.id, load_definition(doc("changed")))
    assert st.workflows.export_json(record.id, version=1) == canonical
    assert st.workflows.export_json(record.id) != canonical
    with pytest.raises(NotFoundError):
        st.workflows.export_json(record.id, version=7)
    with pytest.raises(NotFoundError):
        st.workflows.export_json("missing")


def test_upsert_file_saves_a_version_only_when_changed(st: Store, tmp_path: Path) -> None:
    path = tmp_path / "flow.json"
    first = st.workflows.upsert_file(path, load_definition(doc("a")))
    assert first.id == st.workflows.upsert_file(path, load_definition(doc("a"))).id
    assert st.workflows.get(first.id).version == 1
    assert (first.name, first.description) == ("flow", f"from {path}")

    changed = st.workflows.upsert_file(path, load_definition(doc("b")))
    assert (changed.id, changed.version) == (first.id, 2)
    assert st.workflows.versions(first.id)[-1].message == f"changed on disk: {path}"
    assert st.workflows.upsert_file(path, load_definition(doc("b"))).version == 2

    other = st.workflows.upsert_file(tmp_path / "other.json", load_definition(doc("a")))
    assert other.id != first.id

    st.workflows.delete(first.id)
    back = st.workflows.upsert_file(path, load_definition(doc("b")))
    assert st.workflows.get(first.id).deleted_at is None
    # The returned record must describe the restored row, not the deleted one it found.
    assert back.id == first.id and back.deleted_at is None and back.version == 2


def test_load_workflow_for_subworkflows(st: Store) -> None:
    record = st.workflows.create(load_definition(doc("one")), name="Sub")
    st.workflows.save(record.id, load_definition(doc("two")))
    assert st.workflows.load_workflow(record.id).node("t").config["template"].startswith("two")
    assert st.workflows.load_workflow(record.id, 1).node("t").config["template"].startswith("one")
    with pytest.raises(KeyError):
        st.workflows.load_workflow("missing")
    with pytest.raises(KeyError):
        st.workflows.load_workflow(record.id, 5)
    st.workflows.delete(record.id)
    with pytest.raises(KeyError):
        st.workflows.load_workflow(record.id)


# -- the database file ------------------------------------------------------------------
def test_reopen_keeps_data_and_applies_no_migration_twice(db_path: Path) -> None:
    with Store(db_path) as first:
        record = first.workflows.create(load_definition(doc()), name="Kept")
        latest = first.db.schema_version
    assert latest == len(store.db.migrations())
    with Store(db_path) as second:
        assert second.db.migrate() == []
        assert second.db.schema_version == latest
        assert count(second, "SELECT count(*) FROM schema_migrations") == latest
        assert count(second, "SELECT count(*) FROM users") == 1
        assert second.workflows.get(record.id).name == "Kept"


def test_older_file_is_migrated_forward(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = store.db.migrations()
    monkeypatch.setattr(store.db, "migrations", lambda: shipped[:1])
    with Database(db_path) as old:
        assert old.schema_version == 1
        old.execute(
            "INSERT INTO workflows (id, user_id, name, definition)"
            " VALUES ('w1', 'local', 'Old', ?)",
            [json.dumps(doc())],
        )

    extra = (
        len(shipped) + 1,
        f"{len(shipped) + 1:04d}_test_extra.sql",
        "CREATE TABLE test_extra (id INTEGER); INSERT INTO test_extra VALUES (7);",
    )
    monkeypatch.setattr(store.db, "migrations", lambda: [*shipped, extra])
    with Database(db_path) as newer:
        assert newer.schema_version == len(shipped) + 1
        applied = newer.execute("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [version for version, _ in applied] == list(range(1, len(shipped) + 2))
        assert applied[-1][1] == extra[1]
        assert newer.execute("SELECT id FROM test_extra") == [(7,)]
        assert newer.execute("SELECT name FROM workflows WHERE id = 'w1'") == [("Old",)]


def test_failed_migration_rolls_back_and_is_retried(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = store.db.migrations()
    broken = (len(shipped) + 1, "broken.sql", "CREATE TABLE half (i INTEGER); SELECT nope();")
    monkeypatch.setattr(store.db, "migrations", lambda: [*shipped, broken])
    with pytest.raises(duckdb.Error):
        Database(db_path)
    monkeypatch.setattr(store.db, "migrations", lambda: shipped)
    with Database(db_path) as db:
        assert db.schema_version == len(shipped)
        tables = {row[0] for row in db.execute("SELECT table_name FROM information_schema.tables")}
        assert "half" not in tables and "workflows" in tables


def test_newer_schema_is_refused(db_path: Path) -> None:
    with Database(db_path) as db:
        db.execute("INSERT INTO schema_migrations (version, name) VALUES (99, '0099_future.sql')")
    for read_only in (False, True):
        with pytest.raises(SchemaVersionError) as caught:
            Store(db_path, read_only=read_only)
        assert (caught.value.found, caught.value.supported) == (99, len(store.db.migrations()))
        assert "newer than this AgentFlow" in caught.value.message
        assert str(db_path) in caught.value.message


def test_file_that_is_not_duckdb_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.duckdb"
    garbage = b"this is a text file, not a database\n" + bytes(range(256)) * 64
    path.write_bytes(garbage)
    with pytest.raises(NotADatabaseError) as caught:
        Store(path)
    assert str(path) in caught.value.message
    assert (
        "not a DuckDB database" in caught.value.message
        or "cannot be opened" in caught.value.message
    )
    assert caught.value.path == str(path)
    assert path.read_bytes() == garbage
    with pytest.raises(NotADatabaseError):
        Store(path, read_only=True)


def test_directory_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotADatabaseError, match="is a directory"):
        Store(tmp_path)
    missing = tmp_path / "absent.duckdb"
    with pytest.raises(StoreError, match="no such database"):
        Store(missing, read_only=True)
    assert not missing.exists()


def test_second_process_gets_store_locked_error_naming_pid(db_path: Path) -> None:
    probe = textwrap.dedent(
        """
        import sys
        from store.store import Store
        try:
            Store(sys.argv[1])
        except Exception as exc:
            print(type(exc).__name__)
            print(getattr(exc, "pid", None))
            print(exc)
        else:
            print("opened")
        """
    )
    with Store(db_path) as holder:
        holder.workflows.create(load_definition(doc()), name="held")
        done = subprocess.run(
            [sys.executable, "-c", probe, str(db_path)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
    assert done.returncode == 0, done.stderr
    kind, pid, message = done.stdout.strip().split("\n", 2)
    assert kind == "StoreLockedError"
    assert pid == str(os.getpid())
    assert f"in use by process {os.getpid()}" in message and str(db_path) in message
    assert "Traceback" not in done.stderr
    # Released on close: the same probe now opens it.
    again = subprocess.run(
        [sys.executable, "-c", probe, str(db_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert again.stdout.strip() == "opened", again.stdout + again.stderr
