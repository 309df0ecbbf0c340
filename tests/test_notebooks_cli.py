"""The notebooks through the ``agentflow`` command and ``marimo run``, as real subprocesses.

The data-science example runs headless against the fake LLM provider on 127.0.0.1
(``tests/fake_provider.py``), which the example reaches through ``AGENTFLOW_MODEL`` and
``OLLAMA_HOST``. Nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from notebooks import equivalent
from notebooks._marimo_adapter import write_notebook
from store.store import Store
from tests.fake_provider import FakeProvider

ROOT = Path(__file__).resolve().parent.parent
AGENTFLOW = str(Path(sys.executable).with_name("agentflow"))
MARIMO = str(Path(sys.executable).with_name("marimo"))


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def env(tmp_path: Path, provider: FakeProvider) -> dict[str, str]:
    provider.reset()
    return {
        **os.environ,
        "AGENTFLOW_HOME": str(tmp_path / "home"),
        "AGENTFLOW_MODEL": "ollama/fake",
        "AGENTFLOW_MODEL_B": "ollama/fake-large",
        "OLLAMA_HOST": provider.url,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "MARIMO_SKIP_UPDATE_CHECK": "1",
    }


def _agentflow(
    *args: str, env: dict[str, str], cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AGENTFLOW, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_the_data_science_example_runs_headless_through_the_engine(
    env: dict[str, str], provider: FakeProvider, tmp_path: Path
) -> None:
    # From another directory: the CSV path is built from the notebook's own location.
    done = _agentflow(
        "run", str(ROOT / "notebooks" / "data_science.py"), "--json", env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded"
    assert set(result["nodes"]) == {"request", "sales", "monthly", "growth", "summary", "report"}
    outputs = result["outputs"]
    assert outputs["best_month"] == "2024-11"
    assert len(outputs["rows"]) == 12 and outputs["rows"][0]["growth_pct"] is None
    assert outputs["summary"].startswith("echo: Monthly revenue")
    assert "Best month: 2024-11." in outputs["summary"]
    assert provider.count("/api/chat") == 1
    assert provider.last_body("/api/chat")["model"] == "fake"

    north = _agentflow(
        "run", "notebooks/data_science.py", "--json", "--input", "region=north", env=env
    )
    assert north.returncode == 0, north.stderr
    assert json.loads(north.stdout)["outputs"]["total"] < outputs["total"]
    with Store(Path(env["AGENTFLOW_HOME"]) / "agentflow.duckdb") as store:
        names = {run.workflow_id for run in store.executions.list()}
        assert len(names) == 1  # both runs belong to the notebook's workflow


def test_compile_notebook_and_validate_commands(env: dict[str, str], tmp_path: Path) -> None:
    printed = _agentflow("compile", "notebooks/data_science.py", env=env)
    assert printed.returncode == 0, printed.stderr
    document = json.loads(printed.stdout)
    assert document["nodes"][0]["id"] == "request"

    target = tmp_path / "wf.json"
    written = _agentflow("compile", "notebooks/app.py", "-o", str(target), env=env)
    assert written.returncode == 0 and written.stdout == ""
    notebook = tmp_path / "app_again.py"
    back = _agentflow("notebook", str(target), "-o", str(notebook), env=env)
    assert back.returncode == 0, back.stderr
    again = _agentflow("compile", str(notebook), env=env)
    assert again.returncode == 0, again.stderr
    assert equivalent(json.loads(again.stdout), json.loads(target.read_text()))
    assert _agentflow("validate", str(notebook), env=env).stdout.strip() == "ok"

    to_stdout = _agentflow("notebook", "examples/triage.json", env=env)
    assert to_stdout.returncode == 0 and "app = marimo.App(" in to_stdout.stdout


def test_compile_errors_exit_2_with_one_line_each(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text(
        write_notebook(
            [
                ("_", "import notebooks as af", {}),
                ("topic", "topic = af.start(topic=str)", {}),
                ("bad", 'x = af.llm(model="ollama/m", user_prompt="a")\nn = len(af.value(x))', {}),
                ("dup", "topic = 1", {}),
            ]
        )
    )
    done = _agentflow("compile", str(path), env=env)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2
    assert all(line.startswith(f"{path}:") for line in lines)
    assert any("cell 'bad': computes on node output" in line for line in lines)
    assert any("cell 'dup': 'topic' is also defined by cell 'topic'" in line for line in lines)
    ran = _agentflow("run", str(path), "--json", env=env)
    assert ran.returncode == 2 and "does not compile" in ran.stderr
    missing = _agentflow("compile", str(tmp_path / "nope.py"), env=env)
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_registering_the_notebook_commands_does_not_import_marimo(env: dict[str, str]) -> None:
    probe = (
        "import sys\n"
        "from engine.cli import _parser\n"
        "parser, cli = _parser()\n"
        "assert '.py' in cli.loaders\n"
        "print(sorted(m for m in sys.modules if m == 'marimo' or m.startswith('notebooks.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['notebooks.cli']"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_app_is_served_by_marimo_run(env: dict[str, str]) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [
            MARIMO,
            "run",
            "notebooks/app.py",
            "--headless",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        page = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    assert response.status == 200
                    page = response.read().decode()
                    break
            except OSError:
                if server.poll() is not None:
                    break
                time.sleep(0.2)
        assert "<title>Explain it</title>" in page, server.poll()
        assert "marimo" in page
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
