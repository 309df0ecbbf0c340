"""Model discovery (``engine.llm.discover``, ``agentflow models``) and the litellm warm-up."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.llm import PROVIDER_KEYS, discover
from tests.fake_provider import FakeProvider, loopback_only

AGENTFLOW = str(Path(sys.executable).with_name("agentflow"))
ROOT = Path(__file__).resolve().parent.parent
CANARY = "sk-canary-discovery-0123456789LEAK"
KEY_NAMES = {name for names in PROVIDER_KEYS.values() for name in names}


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with loopback_only() as refused, FakeProvider() as fake:
        yield fake
    assert refused == [], f"something tried to leave the machine: {refused}"


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEY_NAMES:
        monkeypatch.delenv(name, raising=False)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MemorySecrets:
    def __init__(self, **values: str) -> None:
        self.values = values

    def get_secret(self, name: str) -> str | None:
        return self.values.get(name)


class BrokenSecrets:
    def get_secret(self, name: str) -> str | None:
        raise RuntimeError("wrong master key")


def _by_provider(found: dict) -> dict[str, dict]:
    return {entry["provider"]: entry for entry in found["cloud"]}


# -- discover() ------------------------------------------------------------------------------
def test_discover_lists_ollama_models_and_configured_providers(
    provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", provider.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-value-1234567890")
    found = discover(MemorySecrets(OPENAI_API_KEY=CANARY))

    ollama = found["ollama"]
    assert ollama["running"] is True and ollama["error"] is None
    assert ollama["host"] == f"http://127.0.0.1:{provider.port}"
    assert [m["model"] for m in ollama["models"]] == [
        "ollama/fake:latest",
        "ollama/fake-large:latest",
    ]
    assert ollama["models"][0]["parameterSize"] == "1B"
    assert provider.count("/api/tags") == 1
    cloud = _by_provider(found)
    assert (cloud["openai"]["keyFrom"], cloud["openai"]["configured"]) == ("store", True)
    assert (cloud["anthropic"]["keyFrom"], cloud["anthropic"]["envVar"]) == (
        "env",
        "ANTHROPIC_API_KEY",
    )
    assert (cloud["gemini"]["keyFrom"], cloud["gemini"]["configured"]) == (None, False)
    text = json.dumps(found)
    assert CANARY not in text and "env-value-1234567890" not in text


def test_discover_when_ollama_is_not_running(monkeypatch: pytest.MonkeyPatch) -> None:
    port = _closed_port()
    monkeypatch.setenv("OLLAMA_HOST", f"http://user:hunter2pass@127.0.0.1:{port}")
    found = discover()
    ollama = found["ollama"]
    assert ollama["running"] is False and ollama["models"] == []
    assert ollama["host"] == f"http://127.0.0.1:{port}"
    assert "cannot connect" in ollama["error"] and "ollama serve" in ollama["error"]
    assert "hunter2pass" not in json.dumps(found)
    assert all(entry["keyFrom"] is None for entry in found["cloud"])


def test_discover_when_the_host_is_not_ollama(
    provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", provider.url + "/elsewhere")
    ollama = discover()["ollama"]
    assert ollama["running"] is False
    assert "answered, but not like Ollama" in ollama["error"]


def test_discover_survives_an_unreadable_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("OPENAI_API_KEY", "env-value-1234567890")
    cloud = _by_provider(discover(BrokenSecrets()))
    assert cloud["openai"]["keyFrom"] == "env"
    assert "cannot read OPENAI_API_KEY" in cloud["openai"]["error"]
    assert cloud["mistral"]["keyFrom"] is None and cloud["mistral"]["error"]


# -- agentflow models ------------------------------------------------------------------------
def _agentflow(home: Path, ollama_host: str, *args: str, stdin: str | None = None) -> Any:
    env = {k: v for k, v in os.environ.items() if k not in KEY_NAMES}
    env.pop("AGENTFLOW_SECRET_KEY", None)
    env.update(
        AGENTFLOW_HOME=str(home), OLLAMA_HOST=ollama_host, LITELLM_LOCAL_MODEL_COST_MAP="True"
    )
    return subprocess.run(
        [AGENTFLOW, *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        env=env,
        cwd=ROOT,
    )


def test_models_command_with_ollama_and_a_stored_key(
    provider: FakeProvider, tmp_path: Path
) -> None:
    stored = _agentflow(tmp_path, provider.url, "keys", "set", "OPENAI_API_KEY", stdin=CANARY)
    assert stored.returncode == 0, stored.stderr

    out = _agentflow(tmp_path, provider.url, "models", "--json")
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert found["ollama"]["running"] is True
    assert [m["name"] for m in found["ollama"]["models"]] == ["fake:latest", "fake-large:latest"]
    assert _by_provider(found)["openai"]["keyFrom"] == "store"
    assert CANARY not in out.stdout + out.stderr

    text = _agentflow(tmp_path, provider.url, "models")
    assert text.returncode == 0, text.stderr
    assert f"Ollama at {provider.url}: running, 2 model(s)" in text.stdout
    assert "ollama/fake:latest" in text.stdout
    assert "OPENAI_API_KEY         key in the store" in text.stdout
    assert CANARY not in text.stdout + text.stderr


@pytest.mark.parametrize("as_json", [True, False])
def test_models_command_when_ollama_is_not_running(tmp_path: Path, as_json: bool) -> None:
    host = f"http://127.0.0.1:{_closed_port()}"
    out = _agentflow(tmp_path, host, "models", *(["--json"] if as_json else []))
    assert out.returncode == 0, out.stderr
    assert f"agentflow: Ollama not available: cannot connect to {host}" in out.stderr
    if as_json:
        found = json.loads(out.stdout)
        assert found["ollama"]["running"] is False and "cannot connect" in found["ollama"]["error"]
    else:
        assert f"Ollama at {host}: not running" in out.stdout
    assert not (tmp_path / "agentflow.duckdb").exists()  # listing models creates no database


# -- warm-up ---------------------------------------------------------------------------------
def test_warm_up_starts_only_for_cloud_models_and_never_blocks() -> None:
    code = textwrap.dedent(
        """
        import sys, time
        from engine import load_definition
        from engine.graph import compile_workflow
        from engine.llm import _loader

        def workflow(model):
            ask = {"model": model, "userPrompt": "x"}
            return load_definition({"nodes": [
                {"id": "start", "type": "start", "data": {"config": {"inputs": []}}},
                {"id": "ask", "type": "llm", "data": {"config": ask}},
            ], "edges": [{"id": "e", "source": "start", "target": "ask"}]})

        compile_workflow(workflow("ollama/llama3.2"))
        time.sleep(0.3)
        assert _loader._warming is None, "warmed up for an ollama-only workflow"
        assert "litellm" not in sys.modules

        t0 = time.perf_counter()
        compile_workflow(workflow("openai/gpt-4o-mini"))
        compile_workflow(workflow("{{start.model}}"))
        elapsed = time.perf_counter() - t0
        thread = _loader._warming
        assert thread is not None and thread.daemon
        _loader.warm_up()
        assert _loader._warming is thread, "a second warm-up thread"
        thread.join(60)
        assert _loader.loaded_litellm() is sys.modules["litellm"]
        print(f"{elapsed:.3f}")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )
    assert done.returncode == 0, done.stderr
    # Importing litellm takes seconds; validation that started it took a fraction of that.
    assert float(done.stdout.strip()) < 0.5
