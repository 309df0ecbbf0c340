"""Recording runs in DuckDB: columns filled, node runs per attempt, concurrency, crash, resume."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import Executor, RunServices, load_definition
from store import NotFoundError, Store
from store.recorder import RunMeta
from tests.helpers import FlakyNode, chain, edge, make_registry, node, workflow
from tests.servers import LocalServer, local_server_fixture

AGENTFLOW = str(Path(sys.executable).with_name("agentflow"))
server = local_server_fixture()


def agentflow(*args: str, env: dict | None = None, timeout: float = 60):
    return subprocess.run(
        [AGENTFLOW, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **(env or {})},
    )


async def recorded_run(store: Store, doc: dict, inputs: dict, registry=None, **kw):
    record = store.workflows.create(load_definition(doc), name="wf")
    listener = store.recorder.listener(RunMeta(record.id, record.version))
    executor = Executor(registry or make_registry(), RunServices(cache=store.cache))
    result = await executor.run(
        load_definition(doc), inputs, listeners=[listener], workflow_id=record.id, **kw
    )
    store.recorder.flush()
    return record, result


START = node("start", "start", {"inputs": [{"name": "x", "type": "integer", "default": 2}]})


async def test_recorded_run_fills_the_seed_columns(tmp_path):
    doc = workflow(
        [
            START,
            node("f", "flaky", {"failures": 1, "key": "f"}),
            node(
                "c",
                "condition",
                {
                    "cases": [
                        {
                            "id": "big",
                            "conditions": [{"left": "{{start.x}}", "operator": ">", "right": 5}],
                        }
                    ]
                },
            ),
            node("big", "sleep", {"value": "big"}),
            node("end", "end", {"outputs": {"calls": "{{f.calls}}", "x": "{{start.x}}"}}),
        ],
        [edge("start", "f"), edge("f", "c"), edge("c", "big", "big"), edge("c", "end", "else")],
        retryPolicy={"maxRetries": 1, "backoffMs": 1},
    )
    with Store(tmp_path / "a.duckdb") as store:
        record, result = await recorded_run(store, doc, {"x": 3})
        run = store.executions.get(result.execution_id)
        assert run.status == "succeeded" and run.workflow_id == record.id
        assert run.workflow_version == 1 and run.trigger_type == "manual"
        assert run.inputs == {"x": 3} and run.outputs == {"calls": 2, "x": 3}
        assert run.started_at is not None and run.completed_at >= run.started_at
        assert run.duration_ms is not None and run.duration_ms >= 0
        assert run.token_usage == {"prompt": 0, "completion": 0, "total": 0}
        assert run.node_states["big"]["status"] == "skipped"
        assert run.node_states["f"] == {
            "status": "succeeded",
            "attempts": 2,
            "durationMs": pytest.approx(run.node_states["f"]["durationMs"]),
        }
        attempts = [(r.node_id, r.status, r.attempt) for r in run.node_runs if r.node_id == "f"]
        assert sorted(attempts, key=lambda a: a[2]) == [("f", "failed", 1), ("f", "succeeded", 2)]
        failed_attempt = next(r for r in run.node_runs if r.node_id == "f" and r.status == "failed")
        assert failed_attempt.error["message"] == "planned failure 1"
        skipped = next(r for r in run.node_runs if r.node_id == "big")
        assert (skipped.status, skipped.node_type, skipped.attempt) == ("skipped", "sleep", 0)
        end = next(r for r in run.node_runs if r.node_id == "end")
        assert end.inputs == {"outputs": {"calls": 2, "x": 3}}
        assert store.workflows.get(record.id).run_count == 1
        assert store.workflows.get(record.id).last_run_status == "succeeded"


async def test_failed_run_records_error_message_and_node(tmp_path):
    doc = workflow(
        [START, node("f", "flaky", {"failures": 9, "retryable": False})], [edge("start", "f")]
    )
    with Store(tmp_path / "a.duckdb") as store:
        _, result = await recorded_run(store, doc, {})
        run = store.executions.get(result.execution_id)
        assert run.status == "failed"
        assert run.error_node_id == "f" and "planned failure 1" in run.error_message


async def test_two_hundred_concurrent_runs_lose_no_rows(tmp_path):
    doc = workflow(
        [START, *[node(f"n{i}", "sleep", {"seconds": 0.01, "value": i}) for i in range(5)]],
        chain("start", "n0", "n1", "n2", "n3", "n4"),
    )
    with Store(tmp_path / "a.duckdb") as store:
        record = store.workflows.create(load_definition(doc), name="wf")
        executor = Executor(make_registry())
        listener = store.recorder.listener(RunMeta(record.id, 1))
        results = await asyncio.gather(
            *[
                executor.run(load_definition(doc), {"x": i}, listeners=[listener])
                for i in range(200)
            ]
        )
        store.recorder.flush()
        assert all(r.status == "succeeded" for r in results)
        assert store.executions.count(workflow_id=record.id) == 200
        assert store.db.execute("SELECT count(*) FROM node_runs")[0][0] == 200 * 6
        assert store.executions.count(status="succeeded") == 200
        inputs = store.db.execute(
            "SELECT list(inputs->>'x' ORDER BY (inputs->>'x')::INT) FROM executions"
        )
        assert inputs[0][0] == [str(i) for i in range(200)]


async def test_cached_nodes_are_recorded_as_cached(tmp_path):
    doc = workflow(
        [START, node("f", "flaky", {"failures": 0, "key": "k{{start.x}}"})],
        [edge("start", "f")],
        cache=True,
    )
    with Store(tmp_path / "a.duckdb") as store:
        registry = make_registry()
        _, first = await recorded_run(store, doc, {"x": 1}, registry=registry)
        _, second = await recorded_run(store, doc, {"x": 1}, registry=registry)
        assert first.status == second.status == "succeeded"
        assert FlakyNode.calls == {"k1": 1}
        statuses = [
            r.status
            for r in store.executions.get(second.execution_id).node_runs
            if r.node_id == "f"
        ]
        assert statuses == ["cached"]
        assert store.cache.stats() == {"entries": 1, "hits": 1}


def http_chain(server: LocalServer) -> dict:
    return workflow(
        [
            node("start", "start"),
            node("first", "http", {"url": server.url("/json")}),
            node("slow", "http", {"url": server.url("/slow?seconds=3")}),
            node("last", "http", {"url": server.url("/text?text=done")}),
            node("end", "end", {"outputs": {"text": "{{last.body}}", "first": "{{first.status}}"}}),
        ],
        chain("start", "first", "slow", "last", "end"),
        allowPrivateNetwork=True,
    )


def test_killed_run_is_marked_interrupted_and_resumes_without_rerunning(tmp_path, server):
    db, wf = tmp_path / "runs.duckdb", tmp_path / "wf.json"
    wf.write_text(json.dumps(http_chain(server)))
    process = subprocess.Popen(
        [AGENTFLOW, "run", str(wf), "--json", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )
    deadline = time.monotonic() + 20
    while server.count("/slow") == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.count("/slow") == 1, process.communicate(timeout=5)
    time.sleep(0.3)  # past the recorder's flush interval: 'first' is durable
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=5)

    listed = agentflow("runs", "list", "--json", "--db", str(db))
    assert listed.returncode == 0, listed.stderr
    (run,) = json.loads(listed.stdout)
    assert run["status"] == "interrupted"
    assert "resume" in run["errorMessage"]

    resumed = agentflow("runs", "resume", run["id"], "--json", "--db", str(db))
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["executionId"] == run["id"] and result["status"] == "succeeded"
    assert result["outputs"] == {"text": "done", "first": 200}
    assert (server.count("/json"), server.count("/slow"), server.count("/text")) == (1, 2, 1)

    shown = json.loads(agentflow("runs", "show", run["id"], "--json", "--db", str(db)).stdout)
    assert shown["status"] == "succeeded"
    first_runs = [r for r in shown["nodeRuns"] if r["nodeId"] == "first"]
    assert len(first_runs) == 1  # not executed, not recorded again
    again = agentflow("runs", "resume", run["id"], "--db", str(db))
    assert again.returncode == 2 and "already succeeded" in again.stderr


def test_second_process_gets_a_clear_lock_message(tmp_path):
    db = tmp_path / "held.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import time; from store import Store; s = Store({str(db)!r});"
            " print('ready', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        out = agentflow("runs", "list", "--db", str(db))
        assert out.returncode == 2
        assert f"in use by process {holder.pid}" in out.stderr and str(db) in out.stderr
        assert "Traceback" not in out.stderr
    finally:
        holder.kill()
        holder.wait()
    assert agentflow("runs", "list", "--db", str(db)).returncode == 0


def test_bad_inputs_give_clear_errors(tmp_path):
    db = tmp_path / "a.duckdb"
    missing = agentflow("runs", "show", "nope", "--db", str(db))
    assert missing.returncode == 1 and "no execution 'nope'" in missing.stderr
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes(b"this is not a database" * 100)
    out = agentflow("runs", "list", "--db", str(garbage))
    assert out.returncode == 2 and "not a DuckDB database" in out.stderr
    assert garbage.read_bytes() == b"this is not a database" * 100  # left as it was
    with pytest.raises(NotFoundError):
        Store(db).executions.get("nope")


def test_run_records_by_default_and_no_store_skips(tmp_path):
    wf = tmp_path / "wf.json"
    wf.write_text(
        json.dumps(
            workflow(
                [node("start", "start"), node("end", "end", {"outputs": {"a": 1}})],
                [edge("start", "end")],
            )
        )
    )
    env = {"AGENTFLOW_HOME": str(tmp_path / "home")}
    assert agentflow("run", str(wf), "--json", env=env).returncode == 0
    assert agentflow("run", str(wf), "--json", "--no-store", env=env).returncode == 0
    listed = json.loads(agentflow("runs", "list", "--json", env=env).stdout)
    assert len(listed) == 1 and listed[0]["workflowName"] == "wf"
    assert (tmp_path / "home" / "agentflow.duckdb").exists()
    # The same file changed on disk becomes a new version; runs point at what they ran.
    wf.write_text(
        json.dumps(
            workflow(
                [node("start", "start"), node("end", "end", {"outputs": {"a": 2}})],
                [edge("start", "end")],
            )
        )
    )
    agentflow("run", str(wf), "--json", env=env)
    versions = [
        r["workflowVersion"]
        for r in json.loads(agentflow("runs", "list", "--json", env=env).stdout)
    ]
    assert versions == [2, 1]


def test_subworkflow_runs_a_stored_workflow_from_the_cli(tmp_path):
    db = tmp_path / "a.duckdb"
    child = workflow(
        [
            node("start", "start", {"inputs": [{"name": "n", "type": "integer"}]}),
            node("end", "end", {"outputs": {"twice": "{{start.n}}-{{start.n}}"}}),
        ],
        [edge("start", "end")],
    )
    with Store(db) as store:
        child_id = store.workflows.create(load_definition(child), name="child").id
    parent = tmp_path / "parent.json"
    parent.write_text(
        json.dumps(
            workflow(
                [
                    node("start", "start"),
                    node("sub", "subworkflow", {"workflowId": child_id, "inputs": {"n": 7}}),
                    node("end", "end", {"outputs": {"v": "{{sub.twice}}"}}),
                ],
                chain("start", "sub", "end"),
            )
        )
    )
    out = agentflow("run", str(parent), "--json", "--db", str(db))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["outputs"] == {"v": "7-7"}


async def test_known_secret_values_are_redacted_from_recorded_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTFLOW_SECRET_KEY", "11" * 32)
    canary = "sk-canary-7d41e0c2-redact-me"
    doc = workflow(
        [
            node("start", "start", {"inputs": [{"name": "note", "type": "string"}]}),
            node("t", "template", {"template": "user pasted: {{ start.note }}"}),
            node("end", "end", {"outputs": {"echo": "{{t.text}}"}}),
        ],
        chain("start", "t", "end"),
    )
    db = tmp_path / "a.duckdb"
    with Store(db) as store:
        store.secrets.set("OPENAI_API_KEY", canary)
        _, result = await recorded_run(store, doc, {"note": f"my key is {canary}"})
        assert canary in result.outputs["echo"]  # the run itself is not altered
        run = store.executions.get(result.execution_id)
        assert "***" in json.dumps(run.to_dict(), default=str)
        assert canary not in json.dumps(run.to_dict(), default=str)
    data = db.read_bytes() + (
        db.with_suffix(".duckdb.wal").read_bytes()
        if db.with_suffix(".duckdb.wal").exists()
        else b""
    )
    assert canary.encode() not in data
