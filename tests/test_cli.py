"""The ``agentflow`` command: exact output and exit-code contract (run as a real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import chain, edge, node, workflow

AGENTFLOW = str(Path(sys.executable).with_name("agentflow"))
ROOT = Path(__file__).resolve().parent.parent


def agentflow(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run(
        [AGENTFLOW, *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        env=env,
        cwd=ROOT,
    )


@pytest.fixture
def write(tmp_path):
    def _write(doc, name="wf.json"):
        path = tmp_path / name
        path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
        return str(path)

    return _write


GOOD = workflow(
    [
        node(
            "start",
            "start",
            {
                "inputs": [
                    {"name": "name", "type": "string", "required": True},
                    {"name": "n", "type": "integer", "default": 2},
                ]
            },
        ),
        node(
            "t",
            "template",
            {"template": "{% for i in range(start.n) %}hi {{ start.name }} {% endfor %}"},
        ),
        node("end", "end", {"outputs": {"greeting": "{{t.text}}", "n": "{{start.n}}"}}),
    ],
    chain("start", "t", "end"),
)


def test_validate_ok(write):
    out = agentflow("validate", write(GOOD))
    assert (out.returncode, out.stdout, out.stderr) == (0, "ok\n", "")


def test_validate_lists_every_error_one_per_line(write):
    bad = workflow(
        [node("start", "start"), node("a", "teleport"), node("b", "template", {})],
        [edge("start", "ghost", edge_id="e9"), edge("a", "a")],
    )
    out = agentflow("validate", write(bad))
    assert out.returncode == 1 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 4
    assert any("node 'a'" in line and "unknown node type" in line for line in lines)
    assert any("edge 'e9'" in line and "ghost" in line for line in lines)
    assert any("node 'b'" in line and "template" in line for line in lines)
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("command", ["validate", "run"])
def test_malformed_json_is_one_line_with_position(write, command):
    out = agentflow(command, write('{\n "nodes": [,\n}'))
    assert out.returncode == (1 if command == "validate" else 2)
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "wf.json:2:" in out.stderr and "invalid JSON" in out.stderr


def test_non_object_document(write):
    out = agentflow("run", write("[1, 2]"))
    assert out.returncode == 2
    assert "must be a JSON object, got array" in out.stderr


def test_missing_file_is_usage_error():
    out = agentflow("run", "/nonexistent/wf.json")
    assert out.returncode == 2 and "no such file" in out.stderr


def test_run_json_contract(write):
    out = agentflow("run", write(GOOD), "--json", "--input", "name=Ada", "--input", "n=3")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result) == {"executionId", "status", "outputs", "error", "nodes"}
    assert result["status"] == "succeeded" and result["error"] is None
    assert result["outputs"] == {"greeting": "hi Ada hi Ada hi Ada ", "n": 3}
    assert set(result["nodes"]) == {"start", "t", "end"}
    for state in result["nodes"].values():
        assert set(state) == {"status", "attempts", "durationMs", "error"}
        assert state["status"] == "succeeded" and state["attempts"] == 1


def test_run_inputs_json_and_stdin(write):
    out = agentflow(
        "run", "-", "--json", "--inputs", '{"name": "Bo", "n": 1}', stdin=json.dumps(GOOD)
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["outputs"]["greeting"] == "hi Bo "


def test_failed_run_exits_one_with_error_in_json(write):
    failing = workflow(
        [node("start", "start"), node("t", "template", {"template": "{{ start.missing.deeper }}"})],
        [edge("start", "t")],
    )
    out = agentflow("run", write(failing), "--json")
    assert out.returncode == 1
    result = json.loads(out.stdout)
    assert result["status"] == "failed"
    assert result["error"]["nodeId"] == "t"
    assert result["nodes"]["t"]["status"] == "failed"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--input", "n=3"], "missing required input 'name'"),
        (["--input", "name=x", "--input", "n=abc"], "not valid for type integer"),
        (["--inputs", "{bad"], "--inputs is not valid JSON"),
        (["--inputs", "[1]"], "must be a JSON object"),
        (["--input", "novalue"], "KEY=VALUE"),
    ],
)
def test_bad_inputs_exit_two(write, args, needle):
    out = agentflow("run", write(GOOD), "--json", *args)
    assert out.returncode == 2
    assert needle in out.stderr and out.stdout == ""
    assert "Traceback" not in out.stderr


def test_invalid_document_on_run_exits_two(write):
    out = agentflow("run", write(workflow([node("a", "end")], [])), "--json")
    assert out.returncode == 2 and "no 'start' node" in out.stderr


def test_run_without_json_shows_progress_and_outputs(write):
    out = agentflow("run", write(GOOD), "--input", "name=Cy")
    assert out.returncode == 0
    assert "✓ t succeeded" in out.stderr and "succeeded in" in out.stderr
    assert json.loads(out.stdout) == {"greeting": "hi Cy hi Cy ", "n": 2}


def test_nodes_lists_every_builtin_type():
    out = agentflow("nodes", "--json")
    assert out.returncode == 0
    described = {item["type"]: item for item in json.loads(out.stdout)}
    assert set(described) >= {
        "start",
        "end",
        "template",
        "condition",
        "loop",
        "code",
        "http",
        "sql",
        "aggregate",
        "llm",
    }
    assert "template" in described["template"]["config"]["properties"]
    text = agentflow("nodes").stdout
    assert "condition" in text and "cases" in text


def test_example_workflow_runs():
    out = agentflow("run", "examples/triage.json", "--json", "--input", "ticket=card declined")
    assert out.returncode == 0
    assert json.loads(out.stdout)["outputs"]["queue"] == "payment"
