"""``agentflow workflows|agents|sql`` as real subprocesses of the console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from engine import load_definition
from store.store import Store
from tests.helpers import chain, node, workflow

AGENTFLOW = str(Path(sys.executable).with_name("agentflow"))
ROOT = Path(__file__).resolve().parent.parent

DOC = workflow(
    [
        node("start", "start", {"inputs": [{"name": "topic", "type": "string"}]}),
        node("t", "template", {"template": "About {{ start.topic }} — ✓"}),
        node("end", "end", {"outputs": {"text": "{{t.text}}"}}),
    ],
    chain("start", "t", "end"),
    variables={"tone": "dry"},
)
CANONICAL = load_definition(DOC).to_json()


def agentflow(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("AGENTFLOW_HOME", None)
    return subprocess.run(
        [AGENTFLOW, *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        env=env,
        cwd=ROOT,
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("agentflow: ")
    return lines[0]


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "cli.duckdb")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "topic-flow.json"
    path.write_text(json.dumps(DOC, indent=4), encoding="utf-8")
    return path


@pytest.fixture
def imported(source: Path, db: str) -> str:
    """A stored workflow, put there in-process: the CLI's import has tests of its own."""
    with Store(db) as st:
        return st.workflows.import_json(source.read_text(), source=str(source)).id


def test_import_list_show_export_round_trip(tmp_path: Path, db: str, source: Path) -> None:
    done = agentflow("workflows", "import", str(source), "--db", db)
    assert done.returncode == 0, done.stderr
    imported = done.stdout.strip()
    assert str(uuid.UUID(imported)) == imported  # stdout is exactly the new id

    listed = agentflow("workflows", "list", "--db", db)
    assert listed.returncode == 0, listed.stderr
    header, rule, row = listed.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "VERSION", "RUNS", "LAST", "RUN", "UPDATED"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert row.split()[:4] == [imported, "topic-flow", "1", "0"]

    searched = agentflow("workflows", "list", "--search", "TOPIC", "--json", "--db", db)
    as_json = json.loads(searched.stdout)
    assert [(w["id"], w["name"], w["version"]) for w in as_json] == [(imported, "topic-flow", 1)]

    shown = agentflow("workflows", "show", imported, "--versions", "--db", db)
    assert shown.returncode == 0, shown.stderr
    assert f"ID:          {imported}" in shown.stdout
    assert "Nodes:       3 (end, start, template)" in shown.stdout
    assert "v1" in shown.stdout and "created" in shown.stdout
    detail = json.loads(
        agentflow("workflows", "show", imported, "--json", "--versions", "--db", db).stdout
    )
    assert detail["definition"] == DOC and [v["version"] for v in detail["versions"]] == [1]

    exported = agentflow("workflows", "export", imported, "--db", db)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == CANONICAL + "\n"
    assert json.loads(exported.stdout) == DOC

    out = tmp_path / "out.json"
    written = agentflow("workflows", "export", imported, "--out", str(out), "--db", db)
    assert written.returncode == 0 and written.stdout == ""
    assert out.read_text(encoding="utf-8") == CANONICAL + "\n"
    refused = agentflow("workflows", "export", imported, "--out", str(out), "--db", db)
    assert refused.returncode == 2 and "exists" in one_line_error(refused)

    second = agentflow("workflows", "import", str(out), "--name", "Again", "--db", db)
    assert second.returncode == 0, second.stderr
    with Store(db) as st:
        assert st.workflows.get(second.stdout.strip()).name == "Again"
        assert st.workflows.export_json(second.stdout.strip()) + "\n" == exported.stdout


def test_export_of_a_saved_version(db: str, imported: str) -> None:
    with Store(db) as st:
        changed = json.loads(CANONICAL)
        changed["nodes"][1]["data"]["config"]["template"] = "v2"
        st.workflows.save(imported, load_definition(changed))
    latest = agentflow("workflows", "export", imported, "--db", db)
    first = agentflow("workflows", "export", imported, "--version", "1", "--db", db)
    assert json.loads(latest.stdout)["nodes"][1]["data"]["config"]["template"] == "v2"
    assert first.stdout == CANONICAL + "\n"
    missing = agentflow("workflows", "export", imported, "--version", "9", "--db", db)
    assert missing.returncode == 1
    assert one_line_error(missing) == f"agentflow: no workflow version '{imported}@9'"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"version": "1.0.0", "nodes": [', "invalid JSON"),
        ("[]", "must be a JSON object"),
        ('{"nodes": [{"id": "a", "position": {"x": 0, "y": 0}}]}', "not a workflow definition"),
    ],
)
def test_bad_import_exits_2_and_stores_nothing(
    tmp_path: Path, db: str, content: str, message: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    done = agentflow("workflows", "import", str(bad), "--db", db)
    assert done.returncode == 2 and done.stdout == ""
    assert message in one_line_error(done)
    with Store(db) as st:
        assert st.db.execute("SELECT count(*) FROM workflows") == [(0,)]
        assert st.db.execute("SELECT count(*) FROM workflow_versions") == [(0,)]


def test_import_missing_file_and_stdin(tmp_path: Path, db: str) -> None:
    missing = agentflow("workflows", "import", str(tmp_path / "nope.json"), "--db", db)
    assert missing.returncode == 2 and "no such file" in one_line_error(missing)
    piped = agentflow("workflows", "import", "-", "--name", "Piped", "--db", db, stdin=CANONICAL)
    assert piped.returncode == 0, piped.stderr
    with Store(db) as st:
        assert [(w.id, w.name) for w in st.workflows.list()] == [(piped.stdout.strip(), "Piped")]


def test_unknown_ids_exit_1(db: str, imported: str) -> None:
    for action in ("show", "export", "delete"):
        done = agentflow("workflows", action, "nope", "--db", db)
        assert done.returncode == 1, (action, done.stderr)
        assert one_line_error(done) == "agentflow: no workflow 'nope'"
    done = agentflow("agents", "show", "nobody", "--db", db)
    assert done.returncode == 1 and one_line_error(done) == "agentflow: no agent 'nobody'"


def test_delete_hides_and_restore_brings_back(db: str, imported: str) -> None:
    deleted = agentflow("workflows", "delete", imported, "--db", db)
    assert deleted.returncode == 0 and deleted.stdout.startswith(f"deleted {imported}")
    hidden = agentflow("workflows", "list", "--all", "--db", db)
    assert "topic-flow (deleted)" in hidden.stdout
    shown = agentflow("workflows", "show", imported, "--db", db)
    assert "Deleted:" in shown.stdout
    with Store(db) as st:
        assert st.workflows.list() == []
        assert st.db.execute("SELECT count(*) FROM workflow_versions") == [(1,)]
    restored = agentflow("workflows", "restore", imported, "--db", db)
    assert restored.returncode == 0 and restored.stdout.strip() == f"restored {imported}"
    with Store(db) as st:
        assert [w.id for w in st.workflows.list()] == [imported]


def test_agents_publish_list_show(db: str, imported: str) -> None:
    published = agentflow(
        "agents", "publish", imported, "--slug", "topic-bot", "--name", "Topic bot",
        "--category", "writing", "--tag", "demo", "--tag", "text", "--db", db,
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    assert published.stdout.strip() == "topic-bot"

    listed = agentflow("agents", "list", "--db", db)
    assert listed.stdout.splitlines()[2].split()[:5] == [
        "topic-bot", "Topic", "bot", "writing", "0",
    ]  # fmt: skip
    as_json = json.loads(
        agentflow("agents", "list", "--category", "writing", "--json", "--db", db).stdout
    )
    assert [(a["slug"], a["workflowId"], a["tags"]) for a in as_json] == [
        ("topic-bot", imported, ["demo", "text"])
    ]
    shown = json.loads(agentflow("agents", "show", "topic-bot", "--json", "--db", db).stdout)
    assert shown["status"] == "published" and shown["workflowName"] == "topic-flow"
    categories = agentflow("agents", "categories", "--json", "--db", db)
    assert json.loads(categories.stdout) == {"writing": 1}

    taken = agentflow(
        "agents", "publish", imported, "--slug", "topic-bot", "--name", "X", "--db", db
    )
    assert taken.returncode == 2
    assert one_line_error(taken) == "agentflow: agent slug 'topic-bot' is taken"
    bad = agentflow("agents", "publish", imported, "--slug", "Bad Slug", "--name", "X", "--db", db)
    assert bad.returncode == 2 and "invalid agent slug" in one_line_error(bad)
    ghost = agentflow("agents", "publish", "nope", "--slug", "ghost", "--name", "X", "--db", db)
    assert ghost.returncode == 1 and one_line_error(ghost) == "agentflow: no workflow 'nope'"

    assert agentflow("agents", "unpublish", "topic-bot", "--db", db).returncode == 0
    with Store(db) as st:
        assert st.agents.list() == []
        assert st.agents.get_by_slug("topic-bot").status == "unpublished"


def test_sql_reads_and_refuses_writes(tmp_path: Path, db: str, imported: str) -> None:
    rows = agentflow(
        "sql", "SELECT id, name, variables, version FROM workflows", "--json", "--db", db
    )
    assert rows.returncode == 0, rows.stderr
    assert json.loads(rows.stdout) == [
        {"id": imported, "name": "topic-flow", "variables": {"tone": "dry"}, "version": 1}
    ]
    table = agentflow(
        "sql", "SELECT name, version, 'a' || chr(10) || 'b' AS multi FROM workflows", "--db", db
    )
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["name", "version", "multi"]
    assert lines[2].split() == ["topic-flow", "1", "a\\nb"]
    assert lines[-1] == "(1 row)"

    for statement, kind in (
        ("DELETE FROM workflows", "DELETE"),
        ("DROP TABLE agents", "DROP"),
    ):
        refused = agentflow("sql", statement, "--db", db)
        assert refused.returncode == 1, refused.stderr
        assert one_line_error(refused) == (
            f"agentflow: the store is opened read-only: a {kind} statement cannot change it"
        )
    leak = tmp_path / "leak.csv"
    copied = agentflow("sql", f"COPY workflows TO '{leak}'", "--db", db)
    assert copied.returncode == 1 and "query failed" in one_line_error(copied)
    assert not leak.exists()
    typo = agentflow("sql", "SELEC 1", "--db", db)
    assert typo.returncode == 1 and "syntax error" in one_line_error(typo)

    with Store(db) as st:
        assert [w.name for w in st.workflows.list()] == ["topic-flow"]
        assert st.db.execute("SELECT count(*) FROM agents") == [(0,)]


def test_sql_on_a_missing_database_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "absent.duckdb"
    done = agentflow("sql", "SELECT 1", "--db", str(missing))
    assert done.returncode == 2 and "no such database" in one_line_error(done)
    assert not missing.exists()


def test_database_held_by_another_process(db: str, imported: str) -> None:
    with Store(db):
        done = agentflow("workflows", "list", "--db", db)
    assert done.returncode == 2
    assert f"in use by process {os.getpid()}" in one_line_error(done)
