"""The ``llm`` node through the real engine, real litellm and ollama clients, and a fake
provider on 127.0.0.1 that speaks their HTTP protocols (see ``tests/fake_provider.py``).

Every connection outside loopback is refused for the whole module, so a client that
ignored its base URL fails here instead of calling a real service.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from engine import Executor, WorkflowValidationError, load_definition
from engine.events import Event, LogEvent, NodeDelta, NodeRetrying
from engine.llm import redact
from engine.llm._errors import retry_after_from
from tests.fake_provider import FakeProvider, loopback_only

pytestmark = [
    # litellm reads pydantic fields off instances; its noise, not ours.
    pytest.mark.filterwarnings("ignore:Accessing the 'model_:DeprecationWarning"),
    # litellm builds pydantic models at import (in the warm-up thread).
    pytest.mark.filterwarnings("ignore:.*ReadOnly. qualifier:UserWarning"),
]

CANARY = "sk-canary-0123456789abcdefDONOTLEAK"


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with loopback_only() as refused, FakeProvider() as fake:
        yield fake
    assert refused == [], f"something tried to leave the machine: {refused}"


@pytest.fixture(autouse=True)
def clean_env(provider: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    provider.reset()
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    # A client that forgets its configured base URL must hit a closed local port.
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{_closed_port()}/v1")
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{_closed_port()}")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _definition(llm: dict[str, Any], *, retries: int = 0, backoff_ms: int = 10) -> Any:
    def node(node_id: str, node_type: str, config: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": node_id,
            "type": node_type,
            "position": {"x": 0, "y": 0},
            "data": {"label": node_id, "config": config},
        }

    def edge(source: str, target: str) -> dict[str, Any]:
        return {
            "id": f"{source}-{target}",
            "source": source,
            "sourceHandle": "out",
            "target": target,
            "targetHandle": "in",
        }

    return load_definition(
        {
            "version": "1.0.0",
            "nodes": [
                node(
                    "start",
                    "start",
                    {"inputs": [{"name": "topic", "type": "string", "required": True}]},
                ),
                node("ask", "llm", {"userPrompt": "Tell me about {{start.topic}}", **llm}),
                node("end", "end", {"outputs": {"answer": "{{ask.text}}"}}),
            ],
            "edges": [edge("start", "ask"), edge("ask", "end")],
            "settings": {
                "timeout": 30,
                "errorHandling": "stop",
                "retryPolicy": {"maxRetries": retries, "backoffMs": backoff_ms},
            },
        }
    )


async def _run(llm: dict[str, Any], **options: Any) -> tuple[Any, list[Event]]:
    events: list[Event] = []
    result = await Executor().run(
        _definition(llm, **options), {"topic": "tidal pools"}, listeners=[events.append]
    )
    return result, events


def _deltas(events: list[Event]) -> list[str]:
    return [e.delta for e in events if isinstance(e, NodeDelta) and e.node_id == "ask"]


def _openai(provider: FakeProvider, model: str = "fake", **config: Any) -> dict[str, Any]:
    return {"model": f"openai/{model}", "baseUrl": provider.openai_base, **config}


# -- success paths ------------------------------------------------------------------------
async def test_openai_streaming_sends_config_and_streams_deltas(provider: FakeProvider) -> None:
    result, events = await _run(
        _openai(provider, systemPrompt="Answer briefly.", temperature=0.2, maxTokens=64)
    )

    assert result.status == "succeeded", result.error
    assert result.outputs == {"answer": "echo: Tell me about tidal pools"}
    assert _deltas(events) == ["echo:", " Tell", " me", " about", " tidal", " pools"]
    state = result.nodes["ask"]
    meta = state.metadata
    assert (meta["promptTokens"], meta["completionTokens"], meta["tokensUsed"]) == (7, 6, 13)
    assert state.tokens == 13 and result.token_usage == {"prompt": 7, "completion": 6, "total": 13}
    assert meta["model"] == "openai/fake" and meta["finishReason"] == "stop"
    assert 0 < meta["firstTokenMs"] <= meta["latencyMs"]

    body = provider.last_body("/v1/chat/completions")
    assert body["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Tell me about tidal pools"},  # the reference, resolved
    ]
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("fake", 0.2, 64)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    headers = provider.last_request("/v1/chat/completions").headers
    assert headers["authorization"] == f"Bearer {CANARY}"


async def test_openai_non_streaming_reports_length_cut(provider: FakeProvider) -> None:
    result, events = await _run(_openai(provider, stream=False, maxTokens=3))

    assert result.status == "succeeded", result.error
    assert result.outputs == {"answer": "echo: Tell me"}
    assert _deltas(events) == []
    assert result.nodes["ask"].metadata["finishReason"] == "length"
    assert result.nodes["ask"].tokens == 5 + 3
    body = provider.last_body("/v1/chat/completions")
    assert body.get("stream", False) is False and "stream_options" not in body
    warnings = [e.message for e in events if isinstance(e, LogEvent) and e.level == "warning"]
    assert warnings == ["the reply was cut at maxTokens (3)"]


@pytest.mark.parametrize("stream", [True, False])
async def test_ollama_path_uses_ollama_host(
    provider: FakeProvider, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", provider.url)
    result, events = await _run(
        {
            "model": "ollama/fake",
            "stream": stream,
            "temperature": 0.1,
            "maxTokens": 50,
            "systemPrompt": "Be kind.",
        }
    )

    assert result.status == "succeeded", result.error
    assert result.outputs == {"answer": "echo: Tell me about tidal pools"}
    assert _deltas(events) == (
        ["echo:", " Tell", " me", " about", " tidal", " pools"] if stream else []
    )
    meta = result.nodes["ask"].metadata
    assert (meta["promptTokens"], meta["completionTokens"], meta["tokensUsed"]) == (7, 6, 13)
    assert meta["provider"] == "ollama" and meta["finishReason"] == "stop"
    body = provider.last_body("/api/chat")
    assert body["model"] == "fake" and body["stream"] is stream
    assert body["options"] == {"temperature": 0.1, "num_predict": 50}
    assert body["messages"][0] == {"role": "system", "content": "Be kind."}
    assert provider.count("/v1/chat/completions") == 0


@pytest.mark.parametrize("route", ["openai", "ollama"])
async def test_node_base_url_wins_over_environment(provider: FakeProvider, route: str) -> None:
    # clean_env points OPENAI_BASE_URL and OLLAMA_HOST at closed ports.
    if route == "openai":
        llm = _openai(provider)
    else:
        llm = {"model": "ollama/fake", "baseUrl": provider.url}
    result, _ = await _run(llm)

    assert result.status == "succeeded", result.error
    assert provider.count("/v1/chat/completions" if route == "openai" else "/api/chat") == 1


async def test_openai_base_url_from_environment(
    provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", provider.openai_base)
    result, _ = await _run({"model": "openai/fake"})

    assert result.status == "succeeded", result.error
    assert result.outputs["answer"] == "echo: Tell me about tidal pools"
    assert provider.count("/v1/chat/completions") == 1


# -- faults -------------------------------------------------------------------------------
@pytest.mark.parametrize(("retries", "status"), [(2, "succeeded"), (1, "failed")])
async def test_server_error_is_retried(provider: FakeProvider, retries: int, status: str) -> None:
    provider.inject("status", status=500, times=2)
    result, events = await _run(_openai(provider), retries=retries)

    assert result.status == status
    assert result.nodes["ask"].attempts == retries + 1
    assert provider.count("/v1/chat/completions") == retries + 1  # no retries inside the SDK
    retrying = [e for e in events if isinstance(e, NodeRetrying)]
    assert len(retrying) == retries
    assert retrying[0].error["retryable"] is True
    assert retrying[0].error["message"].startswith("openai model 'openai/fake': HTTP 500")
    if status == "failed":
        assert "HTTP 500" in result.nodes["ask"].error["message"]
        assert result.nodes["ask"].outputs is None


@pytest.mark.parametrize("route", ["openai", "ollama"])
async def test_rate_limit_waits_for_retry_after(provider: FakeProvider, route: str) -> None:
    provider.inject("status", status=429, retry_after=0.4)
    llm = (
        _openai(provider)
        if route == "openai"
        else {"model": "ollama/fake", "baseUrl": provider.url}
    )
    t0 = time.perf_counter()
    result, events = await _run(llm, retries=1, backoff_ms=1)

    assert result.status == "succeeded", result.error
    assert result.nodes["ask"].attempts == 2
    (retrying,) = [e for e in events if isinstance(e, NodeRetrying)]
    assert retrying.delay_ms >= 400
    assert "429" in retrying.error["message"]
    assert time.perf_counter() - t0 >= 0.4


async def test_bad_key_is_not_retried_and_never_leaks(provider: FakeProvider) -> None:
    provider.api_key = "sk-the-right-one-000000"
    result, events = await _run(_openai(provider), retries=3)

    assert result.status == "failed"
    error = result.nodes["ask"].error
    assert result.nodes["ask"].attempts == 1 and provider.count("/v1/chat/completions") == 1
    assert error["retryable"] is False
    assert error["message"].startswith("openai model 'openai/fake': HTTP 401")
    assert "Incorrect API key provided" in error["message"]
    # The provider did get the key and quoted it back; none of it may reach the run's record.
    assert provider.last_request("/v1/chat/completions").headers["authorization"].endswith(CANARY)
    recorded = json.dumps([e.to_dict() for e in events], default=str) + json.dumps(
        {"error": result.error, "node": error}, default=str
    )
    assert CANARY not in recorded and CANARY[3:15] not in recorded


@pytest.mark.parametrize(
    ("model", "field"),
    [
        ("openai/fake+status=400", None),
        ("openai/fake+status=404", "model"),
        ("ollama/no-such-model", "model"),
    ],
)
async def test_client_errors_are_not_retried(
    provider: FakeProvider, model: str, field: str | None
) -> None:
    base = provider.openai_base if model.startswith("openai/") else provider.url
    result, _ = await _run({"model": model, "baseUrl": base}, retries=2)

    assert result.status == "failed"
    error = result.nodes["ask"].error
    assert result.nodes["ask"].attempts == 1
    assert error["retryable"] is False and error["field"] == field
    assert error["message"].startswith(f"{model.split('/')[0]} model '{model}'")


@pytest.mark.parametrize("route", ["openai", "ollama"])
@pytest.mark.parametrize("kind", ["cut", "truncate", "malformed"])
async def test_broken_stream_is_a_failed_attempt(
    provider: FakeProvider, route: str, kind: str
) -> None:
    base = provider.openai_base if route == "openai" else provider.url
    llm = {"model": f"{route}/fake", "baseUrl": base}

    provider.inject(kind)
    retried, events = await _run(llm, retries=1)
    assert retried.status == "succeeded", retried.error
    assert retried.nodes["ask"].attempts == 2
    assert retried.outputs["answer"] == "echo: Tell me about tidal pools"
    # The broken attempt streamed a prefix before it failed; the retry streamed it all.
    assert "".join(_deltas(events)).endswith("echo: Tell me about tidal pools")
    assert len(_deltas(events)) > 6

    provider.inject(kind)
    failed, _ = await _run(llm)
    assert failed.status == "failed" and failed.outputs == {}
    state = failed.nodes["ask"]
    assert state.outputs is None
    assert state.error["retryable"] is True
    assert state.error["message"].startswith(f"{route} model '{route}/fake'")


async def test_unreachable_provider_is_retryable(provider: FakeProvider) -> None:
    result, _ = await _run(
        {"model": "openai/fake", "baseUrl": f"http://127.0.0.1:{_closed_port()}/v1"}, retries=1
    )
    assert result.status == "failed" and result.nodes["ask"].attempts == 2
    assert "cannot connect" in result.nodes["ask"].error["message"]


@pytest.mark.parametrize("fault", ["503", "down", "timeout"])
async def test_ollama_transient_faults_are_retried(provider: FakeProvider, fault: str) -> None:
    llm: dict[str, Any] = {"model": "ollama/fake", "baseUrl": provider.url}
    if fault == "503":
        provider.inject("status", status=503)
    elif fault == "down":
        llm["baseUrl"] = f"http://127.0.0.1:{_closed_port()}"
    else:
        llm.update(model="ollama/fake+slow=1", timeoutMs=150)
    result, events = await _run(llm, retries=1)

    state = result.nodes["ask"]
    assert state.attempts == 2
    (retrying,) = [e for e in events if isinstance(e, NodeRetrying)]
    assert retrying.error["retryable"] is True
    if fault == "503":
        assert result.status == "succeeded", result.error
        assert retrying.error["message"].startswith("ollama model 'ollama/fake': HTTP 503")
        assert provider.count("/api/chat") == 2
    elif fault == "down":
        assert result.status == "failed"
        assert "cannot connect to http://127.0.0.1:" in state.error["message"]
    else:
        assert result.status == "failed" and state.error["type"] == "NodeTimeoutError"


async def test_slow_first_token(provider: FakeProvider) -> None:
    result, _ = await _run(_openai(provider, "fake+slow=0.3"))
    assert result.status == "succeeded", result.error
    assert result.nodes["ask"].metadata["firstTokenMs"] >= 300

    timed_out, _ = await _run(_openai(provider, "fake+slow=2", timeoutMs=200))
    error = timed_out.nodes["ask"].error
    assert timed_out.status == "failed"
    assert error["type"] == "NodeTimeoutError" and error["retryable"] is True


# -- config and helpers ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"userPrompt": ""}, "userPrompt"),
        ({"baseUrl": "ftp://x"}, "baseUrl"),
        ({"temperature": 3}, "temperature"),
        ({"maxTokens": 0}, "maxTokens"),
    ],
)
async def test_bad_config_is_rejected_before_running(
    provider: FakeProvider, config: dict[str, Any], field: str
) -> None:
    with pytest.raises(WorkflowValidationError) as caught:
        await _run({"model": "openai/fake", **config})
    assert any(
        issue.node_id == "ask" and field in (issue.field or "") for issue in caught.value.issues
    )
    assert provider.count("/v1/chat/completions") == 0


def test_redact_and_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "tok-abcdefgh1234")
    text = "key sk-proj-AAAAAAAAAAAA, header Bearer zzzzzzzzzzzz, token tok-abcdefgh1234"
    assert redact(text) == "key sk-***, header Bearer ***, token ***"
    assert redact("short ok") == "short ok"
    assert retry_after_from({"Retry-After": "2.5"}) == 2.5
    assert retry_after_from({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert 50 < retry_after_from({"Retry-After": _http_date(time.time() + 60)}) <= 60
    assert retry_after_from({"Retry-After": "soon"}) is None
    assert retry_after_from(None) is None


def _http_date(ts: float) -> str:
    from email.utils import formatdate

    return formatdate(ts, usegmt=True)


def test_fake_provider_control_and_listing_endpoints(provider: FakeProvider) -> None:
    def call(method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(provider.url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    assert call("GET", "/api/version") == (200, {"version": "0.6.3"})
    assert [m["name"] for m in call("GET", "/api/tags")[1]["models"]] == [
        "fake:latest",
        "fake-large:latest",
    ]
    assert call("GET", "/v1/models")[1]["data"][0]["id"] == "fake"
    assert call("POST", "/_fake/faults", {"kind": "nonsense"})[0] == 400
    assert call("POST", "/_fake/faults", {"kind": "status", "status": 503, "times": 2}) == (
        200,
        {"queued": 2},
    )
    chat = {"model": "fake", "messages": [{"role": "user", "content": "hi"}]}
    assert call("POST", "/v1/chat/completions", chat)[0] == 503
    assert call("POST", "/api/chat", {**chat, "stream": False})[0] == 503
    status, reply = call("POST", "/api/chat", {**chat, "stream": False})
    assert status == 200 and reply["message"]["content"] == "echo: hi" and reply["done"] is True
    stats = call("GET", "/_fake/stats")[1]
    assert stats["counts"]["/api/chat"] == 2 and stats["pendingFaults"] == 0


def test_importing_the_node_loads_no_client_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys, engine.nodes.llm, engine.llm\n"
        "heavy = {'litellm', 'ollama', 'httpx', 'openai'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
