"""Notebook sessions: each node cell runs its node through the engine, cached and recorded.

Sessions run here as marimo runs them headless (``app.run()``), or by calling the helpers
directly (a thread is a session). No model is called: the nodes are templates, SQL and
code. The store is a real DuckDB file under a temporary ``AGENTFLOW_HOME``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import notebooks as af
from notebooks._compile import compile_notebook
from notebooks._context import current, reset_session
from notebooks._live import LiveSession, NodeRunError
from notebooks._marimo_adapter import write_notebook
from store.store import Store

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def fresh_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    monkeypatch.setenv("AGENTFLOW_HOME", str(home))
    reset_session()
    yield home
    reset_session()


def _session() -> LiveSession:
    session = current()
    assert isinstance(session, LiveSession)
    return session


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"nb_{path.stem}_{id(path)}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REACTIVE_CELLS = [
    "import os\nimport marimo as mo\nimport notebooks as af",
    'PREFIX = os.environ.get("NB_PREFIX", "A")',
    'topic = af.start(topic=af.input(str, default="tides"))\ntopic',
    'a = af.template(PREFIX + ": {{ topic.topic }}", after=topic)\na',
    "def shout(text):\n    return text.upper()\n\nb = af.code(shout, text=a.text)\nb",
    'c = af.template("C {{ b.result }}", after=b)\nc',
    'd = af.template("D {{ topic.topic }}", after=topic)\nd',
    "out = af.end(c=c.text, d=d.text)\nout",
]


def _executed(session: LiveSession, since: int) -> dict[str, bool]:
    """Node id -> whether it ran for real (not from the cache), start nodes left out."""
    runs = session.history[since:]
    return {run.node_id: not run.cached for run in runs if run.node_id != "topic"}


def test_an_edit_reruns_exactly_the_node_and_its_descendants(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_session: Path
) -> None:
    path = tmp_path / "reactive.py"
    path.write_text(write_notebook([("_", code, {}) for code in REACTIVE_CELLS]))
    module = _load(path)
    monkeypatch.setenv("NB_PREFIX", "A")
    _, defs = module.app.run()
    session = _session()
    assert _executed(session, 0) == dict.fromkeys(["a", "b", "c", "d", "out"], True)
    assert af.value(defs["c"].text) == "C A: TIDES"
    first = len(session.history)

    module.app.run()  # nothing changed: everything comes from the cache
    assert _executed(session, first) == dict.fromkeys(["a", "b", "c", "d", "out"], False)
    second = len(session.history)

    monkeypatch.setenv("NB_PREFIX", "B")  # the edit: node a's template changes
    _, defs = module.app.run()
    assert _executed(session, second) == {
        "a": True,
        "b": True,
        "c": True,
        "out": True,
        "d": False,
    }
    assert af.value(defs["out"]) == {"c": "C B: TIDES", "d": "D tides"}
    assert af.run_info(defs["d"])["cached"] is True

    # Every node run was recorded in the store, as a notebook run of this file.
    with Store(fresh_session / "agentflow.duckdb") as store:
        rows = store.db.query(
            "SELECT e.trigger_type, w.name, count(*) AS n FROM executions e "
            "JOIN workflows w ON w.id = e.workflow_id GROUP BY ALL"
        )
        assert [(r["trigger_type"], r["n"]) for r in rows] == [("notebook", len(session.history))]
        assert rows[0]["name"] == "reactive"
        # ... under the workflow the notebook compiles to, as `agentflow run` would record it
        [workflow] = store.workflows.list()
        assert {node.id for node in workflow.definition.nodes} == {
            "topic",
            "a",
            "b",
            "c",
            "d",
            "out",
        }
        assert store.cache.stats()["hits"] >= 6


def test_branches_skip_and_a_whole_run_works_with_notebook_runs_off(fresh_session: Path) -> None:
    topic = af.start(n=af.input(int, default=12))
    route = af.condition(cases={"big": af.when(topic.n, ">", 10)})
    big = af.template("big {{ topic.n }}", after=route.big)
    small = af.template("small", after=route.otherwise)
    answer = af.aggregate(big.text, small.text)
    assert af.value(route.branch) == "big"
    assert af.run_info(small)["status"] == "skipped"
    assert af.value(small.text) is None
    assert af.value(answer) == {"value": "big 12"}

    af.set_live(False)
    done = af.end(answer=answer.value)
    assert af.run_info(done)["status"] == "not run"
    view = af.run(done, inputs={"n": 3})
    assert view.status == "succeeded"
    assert view.outputs == {"answer": "small"}
    assert {node.id for node in view.definition.nodes} == {
        "topic",
        "route",
        "big",
        "small",
        "answer",
        "done",
    }
    with Store(fresh_session / "agentflow.duckdb") as store:
        run = store.executions.get(view.result.execution_id)
        assert run.status == "succeeded"


def test_a_failing_node_stops_its_cell_and_says_why() -> None:
    def boom(x):
        raise ValueError(f"bad value {x}")

    topic = af.start(x=af.input(int, default=1))
    with pytest.raises(NodeRunError, match="bad value 1"):
        broken = af.code(boom, x=topic.x)
        del broken
    failed = _session().nodes["broken"]
    assert af.run_info(failed)["status"] == "failed"
    with pytest.raises(NodeRunError, match="needs node 'broken'"):
        after = af.template("{{ broken.result }}", after=failed)
        del after


def test_inputs_without_values_and_unknown_nodes_are_explained() -> None:
    with pytest.raises(NodeRunError, match="required and has no value"):
        topic = af.start(topic=str)
        del topic
    topic = af.start(topic=af.input(str, required=True, example="tides"))
    assert af.value(topic) == {"topic": "tides"}
    with pytest.raises(NodeRunError, match="reads 'ghost', which is no node"):
        lost = af.template("{{ ghost.text }}", after=topic)
        del lost


def test_a_locked_store_is_said_once_and_runs_go_on(fresh_session: Path) -> None:
    fresh_session.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys
                from store.store import Store
                store = Store({str(fresh_session / "agentflow.duckdb")!r})
                print("open", flush=True)
                sys.stdin.read()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"open"
        topic = af.start(topic=af.input(str, default="tides"))
        first = af.template("one {{ topic.topic }}", after=topic)
        again = af.template("one {{ topic.topic }}", after=topic)
        states: list[Any] = [topic._live, first._live, again._live]
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()
    assert states[0].notice is not None
    assert "not recorded" in states[0].notice and "in use by process" in states[0].notice
    assert states[1].notice is None and states[2].notice is None  # said once
    assert [state.status for state in states] == ["succeeded"] * 3
    assert states[2].cached  # the in-memory cache stands in for the store's
    assert af.value(first.text) == "one tides"


def test_the_app_session_declares_the_workflow_that_compile_sees() -> None:
    module = _load(ROOT / "notebooks" / "app.py")
    _, defs = module.app.run()  # notebook runs are off in the app: no model is called
    session = _session()
    assert not session.live
    assert all(handle._live is None for handle in session.nodes.values())
    from_session = af.workflow(defs["result"])
    assert af.equivalent(from_session, compile_notebook(ROOT / "notebooks" / "app.py"))
