"""Routing (local / cloud / hybrid, sensitive nodes) and API keys, through the real engine,
the real litellm and ollama clients, and the fake provider on 127.0.0.1.

"Never reaches the cloud" is checked on the wire: the fake provider counts requests on
its OpenAI path, which stands for every cloud endpoint here.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from engine import Executor, WorkflowValidationError, load_definition
from engine.events import Event, LogEvent
from engine.services import RunServices
from tests.fake_provider import FakeProvider, loopback_only

pytestmark = [
    pytest.mark.filterwarnings("ignore:Accessing the 'model_:DeprecationWarning"),
    # litellm builds pydantic models at import (in the warm-up thread); its noise, not ours.
    pytest.mark.filterwarnings("ignore:.*ReadOnly. qualifier:UserWarning"),
]

OPENAI = "/v1/chat/completions"
OLLAMA = "/api/chat"
ENV_CANARY = "sk-canary-env-0123456789abcdefLEAK"
# Not shaped like a key, so only redaction by value can hide it.
STORE_CANARY = "canary-store-9876543210ZYXWVUleak"


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with loopback_only() as refused, FakeProvider() as fake:
        yield fake
    assert refused == [], f"something tried to leave the machine: {refused}"


@pytest.fixture(autouse=True)
def clean_env(provider: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    provider.reset()
    monkeypatch.setenv("OPENAI_API_KEY", ENV_CANARY)
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{_closed_port()}/v1")
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    monkeypatch.delenv("AGENTFLOW_LOCAL_MODEL", raising=False)
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{_closed_port()}")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MemorySecrets:
    """A SecretSource holding a few keys in memory (the store's role in a recorded run)."""

    def __init__(self, **values: str) -> None:
        self.values = values
        self.asked: list[str] = []

    def get_secret(self, name: str) -> str | None:
        self.asked.append(name)
        return self.values.get(name)


class BrokenSecrets:
    def get_secret(self, name: str) -> str | None:
        raise RuntimeError("the master key does not match")


def _workflow(llm: dict[str, Any], settings: dict[str, Any] | None = None) -> Any:
    nodes = [
        {
            "id": "start",
            "type": "start",
            "data": {
                "config": {
                    "inputs": [
                        {"name": "topic", "type": "string", "required": True},
                        {"name": "model", "type": "string", "default": "ollama/fake"},
                    ]
                }
            },
        },
        {"id": "ask", "type": "llm", "data": {"config": {"userPrompt": "{{start.topic}}", **llm}}},
        {"id": "end", "type": "end", "data": {"config": {"outputs": {"answer": "{{ask.text}}"}}}},
    ]
    edges = [
        {"id": "e1", "source": "start", "target": "ask"},
        {"id": "e2", "source": "ask", "target": "end"},
    ]
    return load_definition(
        {
            "version": "1.0.0",
            "nodes": nodes,
            "edges": edges,
            "settings": {
                "retryPolicy": {"maxRetries": 0, "backoffMs": 1},
                "errorHandling": "stop",
                **(settings or {}),
            },
        }
    )


async def _run(
    llm: dict[str, Any],
    settings: dict[str, Any] | None = None,
    *,
    secrets: Any = None,
    inputs: dict[str, Any] | None = None,
) -> tuple[Any, list[Event]]:
    events: list[Event] = []
    executor = Executor(services=RunServices(secrets=secrets)) if secrets else Executor()
    result = await executor.run(
        _workflow(llm, settings),
        {"topic": "tidal pools", **(inputs or {})},
        listeners=[events.append],
    )
    return result, events


def _hybrid(provider: FakeProvider, **extra: Any) -> dict[str, Any]:
    return {
        "routing": "hybrid",
        "fallbackModel": "openai/gpt-4o-mini",
        "fallbackBaseUrl": provider.openai_base,
        **extra,
    }


def _warnings(events: list[Event]) -> list[str]:
    return [e.message for e in events if isinstance(e, LogEvent) and e.level == "warning"]


# -- sensitive nodes and local routing -------------------------------------------------------
async def test_sensitive_node_with_a_cloud_model_is_invalid(provider: FakeProvider) -> None:
    with pytest.raises(WorkflowValidationError) as caught:
        await _run(
            {"model": "openai/gpt-4o-mini", "baseUrl": provider.openai_base, "sensitive": True}
        )
    (issue,) = [i for i in caught.value.issues if i.node_id == "ask"]
    assert issue.field == "model" and "sensitive" in issue.message
    assert provider.count(OPENAI) == 0


@pytest.mark.parametrize("routing", ["cloud", "hybrid", "local"])
async def test_sensitive_node_never_reaches_the_cloud(provider: FakeProvider, routing: str) -> None:
    # The model arrives by reference, so only the run can see it is a cloud model.
    settings = _hybrid(provider, routing=routing)
    result, _ = await _run(
        {"model": "{{start.model}}", "baseUrl": provider.openai_base, "sensitive": True},
        settings,
        inputs={"model": "openai/gpt-4o-mini"},
    )
    assert result.status == "failed"
    error = result.nodes["ask"].error
    assert error["retryable"] is False and error["field"] == "model"
    assert "sensitive" in error["message"] and "openai/gpt-4o-mini" in error["message"]
    assert provider.count(OPENAI) == 0


async def test_sensitive_node_is_never_sent_to_the_fallback(
    provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", provider.url)
    provider.inject("status", status=500)
    result, events = await _run({"model": "ollama/fake", "sensitive": True}, _hybrid(provider))

    assert result.status == "failed"
    assert "HTTP 500" in result.nodes["ask"].error["message"]
    assert provider.count(OLLAMA) == 1 and provider.count(OPENAI) == 0
    assert not any("falling back" in w for w in _warnings(events))

    ok, _ = await _run({"model": "ollama/fake", "sensitive": True}, _hybrid(provider))
    assert ok.status == "succeeded", ok.error
    assert ok.nodes["ask"].metadata["route"] == "local"


async def test_local_routing_refuses_cloud_models(provider: FakeProvider) -> None:
    from engine import WorkflowValidationError

    # A model written in the config is refused when the workflow is validated...
    with pytest.raises(WorkflowValidationError) as refused:
        await _run(
            {"model": "openai/gpt-4o-mini", "baseUrl": provider.openai_base}, {"routing": "local"}
        )
    (issue,) = refused.value.issues
    assert (issue.node_id, issue.field) == ("ask", "model")
    assert "'local'" in issue.message and "openai/gpt-4o-mini" in issue.message
    # ...and one that arrives through a reference when the node runs.
    result, _ = await _run(
        {"model": "{{start.topic}}", "baseUrl": provider.openai_base},
        {"routing": "local"},
        inputs={"topic": "openai/gpt-4o-mini"},
    )
    assert result.status == "failed"
    error = result.nodes["ask"].error
    assert error["retryable"] is False and error["field"] == "model"
    assert provider.count(OPENAI) == 0


async def test_local_routing_runs_ollama_models(
    provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", provider.url)
    result, _ = await _run({"model": "ollama/fake"}, {"routing": "local"})
    assert result.status == "succeeded", result.error
    meta = result.nodes["ask"].metadata
    assert (meta["route"], meta["provider"], meta["costUsd"]) == ("local", "ollama", 0.0)
    assert "fallbackFrom" not in meta and "keyFrom" not in meta


# -- hybrid ------------------------------------------------------------------------------------
async def test_hybrid_uses_the_local_model_when_it_works(
    provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", provider.url)
    result, _ = await _run({"model": "ollama/fake"}, _hybrid(provider))
    assert result.status == "succeeded", result.error
    assert result.nodes["ask"].metadata["route"] == "local"
    assert provider.count(OLLAMA) == 1 and provider.count(OPENAI) == 0


async def test_hybrid_falls_back_when_ollama_is_down(provider: FakeProvider) -> None:
    # OLLAMA_HOST points at a closed port (clean_env).
    result, events = await _run({"model": "ollama/fake"}, _hybrid(provider))

    assert result.status == "succeeded", result.error
    assert result.outputs == {"answer": "echo: tidal pools"}
    meta = result.nodes["ask"].metadata
    assert meta["route"] == "cloud" and meta["model"] == "openai/gpt-4o-mini"
    assert meta["fallbackFrom"] == "ollama/fake"
    assert "cannot connect" in meta["fallbackReason"]
    assert meta["costUsd"] > 0 and meta["keyFrom"] == "env"
    assert provider.count(OPENAI) == 1
    (warning,) = _warnings(events)
    assert "falling back to cloud model 'openai/gpt-4o-mini'" in warning


@pytest.mark.parametrize("fault", [{"kind": "status", "status": 500}, {"kind": "cut"}])
async def test_hybrid_falls_back_when_ollama_fails(
    provider: FakeProvider, monkeypatch: pytest.MonkeyPatch, fault: dict[str, Any]
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", provider.url)
    provider.inject(**fault)
    result, _ = await _run({"model": "ollama/fake"}, _hybrid(provider))

    assert result.status == "succeeded", result.error
    assert result.outputs == {"answer": "echo: tidal pools"}
    assert result.nodes["ask"].attempts == 1
    meta = result.nodes["ask"].metadata
    assert (meta["route"], meta["fallbackFrom"]) == ("cloud", "ollama/fake")
    assert provider.count(OLLAMA) == 1 and provider.count(OPENAI) == 1


async def test_hybrid_failure_of_both_reports_the_cloud_error(provider: FakeProvider) -> None:
    result, _ = await _run(
        {"model": "ollama/fake"}, _hybrid(provider, fallbackModel="openai/gpt-4o-mini+status=503")
    )
    assert result.status == "failed"
    error = result.nodes["ask"].error
    assert error["retryable"] is True and "HTTP 503" in error["message"]
    assert provider.count(OPENAI) == 1


async def test_hybrid_cloud_node_tries_the_local_default_first(
    provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", provider.url)
    llm = {"model": "openai/gpt-4o-mini", "baseUrl": provider.openai_base}
    local, _ = await _run(llm, {"routing": "hybrid", "localModel": "ollama/fake"})
    assert local.status == "succeeded", local.error
    assert local.nodes["ask"].metadata["model"] == "ollama/fake"
    assert provider.count(OPENAI) == 0

    # The local default is not installed (404): the node's own cloud model answers.
    monkeypatch.setenv("AGENTFLOW_LOCAL_MODEL", "ollama/not-installed")
    cloud, _ = await _run(llm, {"routing": "hybrid"})
    assert cloud.status == "succeeded", cloud.error
    meta = cloud.nodes["ask"].metadata
    assert (meta["model"], meta["fallbackFrom"]) == ("openai/gpt-4o-mini", "ollama/not-installed")
    assert provider.count(OPENAI) == 1


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"routing": "hybrid", "fallbackModel": "ollama/fake"}, "fallbackModel"),
        ({"routing": "hybrid", "localModel": "gpt-4o"}, "localModel"),
    ],
)
async def test_bad_routing_settings_are_clear_errors(
    provider: FakeProvider, settings: dict[str, Any], field: str
) -> None:
    llm = {"model": "openai/gpt-4o-mini", "baseUrl": provider.openai_base}
    if field == "fallbackModel":
        llm = {"model": "ollama/fake"}
    result, _ = await _run(llm, settings)
    assert result.status == "failed"
    error = result.nodes["ask"].error
    assert error["field"] == field and error["retryable"] is False
    assert provider.count(OPENAI) == 0 and provider.count(OLLAMA) == 0


# -- keys ------------------------------------------------------------------------------------
def _recorded(result: Any, events: list[Event]) -> str:
    return json.dumps([e.to_dict() for e in events], default=str) + json.dumps(
        result.to_dict(), default=str
    )


async def test_key_from_the_store_wins_and_never_leaks(provider: FakeProvider) -> None:
    secrets = MemorySecrets(OPENAI_API_KEY=STORE_CANARY)
    result, events = await _run(
        {"model": "openai/gpt-4o-mini", "baseUrl": provider.openai_base}, secrets=secrets
    )

    assert result.status == "succeeded", result.error
    assert secrets.asked == ["OPENAI_API_KEY"]
    headers = provider.last_request(OPENAI).headers
    assert headers["authorization"] == f"Bearer {STORE_CANARY}"
    assert result.nodes["ask"].metadata["keyFrom"] == "store"
    recorded = _recorded(result, events)
    assert STORE_CANARY not in recorded and ENV_CANARY not in recorded


@pytest.mark.parametrize("source", ["store", "env"])
async def test_rejected_key_is_not_echoed(
    provider: FakeProvider, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    provider.api_key = "sk-the-right-one-000000"  # the fake quotes the wrong key back
    secrets = MemorySecrets(OPENAI_API_KEY=STORE_CANARY) if source == "store" else None
    canary = STORE_CANARY if source == "store" else ENV_CANARY
    result, events = await _run(
        {"model": "openai/gpt-4o-mini", "baseUrl": provider.openai_base}, secrets=secrets
    )

    assert result.status == "failed"
    error = result.nodes["ask"].error
    assert error["retryable"] is False
    assert error["message"].startswith("openai model 'openai/gpt-4o-mini': HTTP 401")
    assert "Incorrect API key provided: ***" in error["message"]
    assert provider.last_request(OPENAI).headers["authorization"] == f"Bearer {canary}"
    recorded = _recorded(result, events)
    assert canary not in recorded and canary[6:20] not in recorded


async def test_env_key_is_used_without_a_store_entry(provider: FakeProvider) -> None:
    secrets = MemorySecrets()
    result, events = await _run(
        {"model": "openai/gpt-4o-mini", "baseUrl": provider.openai_base}, secrets=secrets
    )
    assert result.status == "succeeded", result.error
    assert result.nodes["ask"].metadata["keyFrom"] == "env"
    assert provider.last_request(OPENAI).headers["authorization"] == f"Bearer {ENV_CANARY}"
    assert ENV_CANARY not in _recorded(result, events)


async def test_missing_key_is_a_clear_error(
    provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    result, _ = await _run({"model": "openai/gpt-4o-mini"}, secrets=MemorySecrets())
    assert result.status == "failed"
    error = result.nodes["ask"].error
    assert error["retryable"] is False
    assert "agentflow keys set OPENAI_API_KEY" in error["message"]
    assert provider.count(OPENAI) == 0


async def test_unreadable_store_is_an_error_not_a_silent_env_fallback(
    provider: FakeProvider,
) -> None:
    result, _ = await _run(
        {"model": "openai/gpt-4o-mini", "baseUrl": provider.openai_base}, secrets=BrokenSecrets()
    )
    assert result.status == "failed"
    error = result.nodes["ask"].error
    assert "cannot read OPENAI_API_KEY from the key store" in error["message"]
    assert "master key does not match" in error["message"]
    assert provider.count(OPENAI) == 0


async def test_local_models_never_ask_for_a_key(
    provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", provider.url)
    secrets = MemorySecrets(OPENAI_API_KEY=STORE_CANARY)
    result, _ = await _run({"model": "ollama/fake"}, secrets=secrets)
    assert result.status == "succeeded", result.error
    assert secrets.asked == []
    assert "authorization" not in provider.last_request(OLLAMA).headers


def test_local_routing_with_a_cloud_model_is_a_validation_error() -> None:
    from engine import load_definition, validate_definition

    doc = {
        "nodes": [
            {"id": "start", "type": "start"},
            {
                "id": "ask",
                "type": "llm",
                "data": {"config": {"model": "gpt-4o-mini", "userPrompt": "hi"}},
            },
            {
                "id": "local",
                "type": "llm",
                "data": {"config": {"model": "ollama/llama3.2", "userPrompt": "hi"}},
            },
        ],
        "edges": [
            {"id": "e1", "source": "start", "target": "ask"},
            {"id": "e2", "source": "start", "target": "local"},
        ],
        "settings": {"routing": "local"},
    }
    issues = validate_definition(load_definition(doc))
    assert [(i.node_id, i.field) for i in issues] == [("ask", "model")]
    doc["settings"] = {"routing": "hybird"}
    from engine import WorkflowValidationError

    try:
        load_definition(doc)
    except WorkflowValidationError as exc:
        assert exc.issues[0].field == "settings.routing"
    else:
        raise AssertionError("a misspelt routing mode must be refused")
