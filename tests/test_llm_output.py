"""What the llm node sends and returns: chat history, stop, seed, JSON and schema replies,
tokens and cost, through the real engine and clients against the fake provider."""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from engine import Executor, WorkflowValidationError, load_definition
from engine.events import Event, NodeDelta
from tests.fake_provider import FakeProvider, loopback_only

pytestmark = [
    pytest.mark.filterwarnings("ignore:Accessing the 'model_:DeprecationWarning"),
    # litellm builds pydantic models at import (in the warm-up thread); its noise, not ours.
    pytest.mark.filterwarnings("ignore:.*ReadOnly. qualifier:UserWarning"),
]

OPENAI = "/v1/chat/completions"
OLLAMA = "/api/chat"
SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["bug", "question"]},
        "score": {"type": "integer", "minimum": 0},
    },
    "required": ["label", "score"],
}


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with loopback_only() as refused, FakeProvider() as fake:
        yield fake
    assert refused == [], f"something tried to leave the machine: {refused}"


@pytest.fixture(autouse=True)
def clean_env(provider: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    provider.reset()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000000000000000")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{_closed_port()}/v1")
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    monkeypatch.setenv("OLLAMA_HOST", provider.url)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _workflow(llm: dict[str, Any], *, retries: int = 0) -> Any:
    inputs = [
        {"name": "question", "type": "string", "default": "is it broken"},
        {"name": "history", "type": "array", "default": []},
    ]
    return load_definition(
        {
            "version": "1.0.0",
            "nodes": [
                {"id": "start", "type": "start", "data": {"config": {"inputs": inputs}}},
                {"id": "ask", "type": "llm", "data": {"config": llm}},
                {"id": "end", "type": "end", "data": {"config": {"outputs": {"r": "{{ask}}"}}}},
            ],
            "edges": [
                {"id": "e1", "source": "start", "target": "ask"},
                {"id": "e2", "source": "ask", "target": "end"},
            ],
            "settings": {"retryPolicy": {"maxRetries": retries, "backoffMs": 1}},
        }
    )


async def _run(
    llm: dict[str, Any], inputs: dict[str, Any] | None = None, *, retries: int = 0
) -> tuple[Any, list[Event]]:
    events: list[Event] = []
    result = await Executor().run(
        _workflow(llm, retries=retries), inputs or {}, listeners=[events.append]
    )
    return result, events


def _node(route: str, provider: FakeProvider, model: str = "fake") -> dict[str, Any]:
    if route == "ollama":
        return {"model": f"ollama/{model}"}
    return {"model": f"openai/{model}", "baseUrl": provider.openai_base}


ROUTES = ["openai", "ollama"]


# -- messages, stop, seed ----------------------------------------------------------------------
@pytest.mark.parametrize("route", ROUTES)
async def test_history_goes_between_system_and_user_prompt(
    provider: FakeProvider, route: str
) -> None:
    history = [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi, how can I help?", "name": "ignored"},
        {"role": "user", "content": {"structured": True}},
    ]
    llm = {
        **_node(route, provider),
        "systemPrompt": "Be brief.",
        "messages": "{{start.history}}",
        "userPrompt": "{{start.question}}",
    }
    result, _ = await _run(llm, {"history": history})

    assert result.status == "succeeded", result.error
    body = provider.last_body(OPENAI if route == "openai" else OLLAMA)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi, how can I help?"},
        {"role": "user", "content": '{"structured": true}'},
        {"role": "user", "content": "is it broken"},
    ]
    assert result.outputs["r"]["text"] == "echo: is it broken"


async def test_history_alone_is_enough(provider: FakeProvider) -> None:
    history = [{"role": "user", "content": "only history"}]
    result, _ = await _run({"model": "ollama/fake", "messages": history})
    assert result.status == "succeeded", result.error
    assert result.outputs["r"]["text"] == "echo: only history"


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, None),  # neither a userPrompt nor messages
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ({"userPrompt": "x", "stop": ["ok", ""]}, "stop.1"),
        ({"userPrompt": "x", "responseFormat": "yaml"}, "responseFormat"),
        ({"userPrompt": "x", "responseFormat": {"type": "strng"}}, "responseFormat"),
        ({"userPrompt": "x", "seed": "abc"}, "seed"),
    ],
)
async def test_bad_config_is_rejected_before_running(
    provider: FakeProvider, config: dict[str, Any], field: str | None
) -> None:
    with pytest.raises(WorkflowValidationError) as caught:
        await _run({"model": "ollama/fake", **config})
    issues = [i for i in caught.value.issues if i.node_id == "ask"]
    assert issues, caught.value.issues
    if field is None:
        assert any("userPrompt" in i.message and "messages" in i.message for i in issues)
    else:
        assert any((i.field or "").startswith(field) for i in issues), issues
    assert provider.count(OLLAMA) == 0


async def test_history_reference_of_the_wrong_shape_fails_the_node(
    provider: FakeProvider,
) -> None:
    result, _ = await _run(
        {"model": "ollama/fake", "messages": "{{start.history}}"}, {"history": ["just text"]}
    )
    assert result.status == "failed"
    assert "messages" in (result.nodes["ask"].error["field"] or "")
    assert provider.count(OLLAMA) == 0


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("stop", ["tidal", ["zzz", "tidal"]])
async def test_stop_and_seed_are_sent(provider: FakeProvider, route: str, stop: Any) -> None:
    llm = {**_node(route, provider), "userPrompt": "about tidal pools", "stop": stop, "seed": 42}
    result, _ = await _run(llm)

    assert result.status == "succeeded", result.error
    assert result.outputs["r"]["text"] == "echo: about "  # the fake honours stop sequences
    expected_stop = [stop] if isinstance(stop, str) else stop
    if route == "openai":
        body = provider.last_body(OPENAI)
        assert (body["stop"], body["seed"]) == (expected_stop, 42)
    else:
        options = provider.last_body(OLLAMA)["options"]
        assert (options["stop"], options["seed"]) == (expected_stop, 42)


# -- JSON and schema output --------------------------------------------------------------------
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("stream", [True, False])
async def test_json_reply_is_parsed(provider: FakeProvider, route: str, stream: bool) -> None:
    reply = '{"label": "bug", "score": 3, "notes": ["a", "b"]}'
    provider.inject("reply", content=reply)
    llm = {**_node(route, provider), "userPrompt": "x", "responseFormat": "json", "stream": stream}
    result, events = await _run(llm)

    assert result.status == "succeeded", result.error
    out = result.outputs["r"]
    assert out["text"] == reply
    assert out["json"] == {"label": "bug", "score": 3, "notes": ["a", "b"]}
    deltas = "".join(e.delta for e in events if isinstance(e, NodeDelta))
    assert deltas == (reply if stream else "")
    if route == "openai":
        assert provider.last_body(OPENAI)["response_format"] == {"type": "json_object"}
    else:
        assert provider.last_body(OLLAMA)["format"] == "json"


@pytest.mark.parametrize("route", ROUTES)
async def test_schema_reply_is_validated(provider: FakeProvider, route: str) -> None:
    provider.inject("reply", content='```json\n{"label": "question", "score": 0}\n```')
    llm = {**_node(route, provider), "userPrompt": "x", "responseFormat": SCHEMA}
    result, _ = await _run(llm)

    assert result.status == "succeeded", result.error
    assert result.outputs["r"]["json"] == {"label": "question", "score": 0}
    if route == "openai":
        sent = provider.last_body(OPENAI)["response_format"]
        assert sent == {"type": "json_schema", "json_schema": {"name": "reply", "schema": SCHEMA}}
    else:
        assert provider.last_body(OLLAMA)["format"] == SCHEMA


@pytest.mark.parametrize(
    ("fmt", "reply", "words"),
    [
        ("json", "Sure! Here is the JSON you asked for: {", "not valid JSON"),
        (SCHEMA, '{"label": "feature", "score": 1}', "at $.label: 'feature' is not one of"),
        (SCHEMA, '{"label": "bug"}', "'score' is a required property"),
        (SCHEMA, '["bug", 1]', "is not of type 'object'"),
    ],
)
async def test_reply_that_breaks_the_format_is_a_clear_error(
    provider: FakeProvider, fmt: Any, reply: str, words: str
) -> None:
    provider.inject("reply", content=reply, times=3)
    result, _ = await _run(
        {**_node("openai", provider), "userPrompt": "x", "responseFormat": fmt}, retries=2
    )

    assert result.status == "failed"
    state = result.nodes["ask"]
    assert state.attempts == 1 and provider.count(OPENAI) == 1  # not retried
    error = state.error
    assert (error["nodeId"], error["field"], error["retryable"]) == ("ask", "responseFormat", False)
    assert words in error["message"]
    assert f"the reply starts: {json.dumps(reply[:160])}" in error["message"]


async def test_cut_json_says_it_was_cut(provider: FakeProvider) -> None:
    provider.inject("reply", content='{"label": "bug", "score": 3}')
    result, _ = await _run(
        {**_node("ollama", provider), "userPrompt": "x", "responseFormat": "json", "maxTokens": 2}
    )
    assert result.status == "failed"
    assert "cut at maxTokens" in result.nodes["ask"].error["message"]


async def test_text_format_has_no_json_output(provider: FakeProvider) -> None:
    provider.inject("reply", content='{"a": 1}')
    result, _ = await _run({**_node("openai", provider), "userPrompt": "x"})
    assert result.outputs["r"] == {"text": '{"a": 1}'}
    assert "response_format" not in provider.last_body(OPENAI)


@pytest.mark.parametrize("route", ROUTES)
async def test_async_consumers_get_tokens_one_by_one(provider: FakeProvider, route: str) -> None:
    # The fake sends the whole reply at once, so the client parses every chunk back to
    # back; the node must still let an ``async for`` consumer see each token in turn.
    emitted: list[str] = []
    seen_at_emit_count: list[int] = []

    def count(event: Event) -> None:
        if isinstance(event, NodeDelta):
            emitted.append(event.delta)

    run = Executor().start(
        _workflow({**_node(route, provider), "userPrompt": "one two three four"}),
        {},
        listeners=[count],
    )
    async for event in run.events():
        if isinstance(event, NodeDelta):
            seen_at_emit_count.append(len(emitted))
    result = await run
    assert result.status == "succeeded", result.error
    assert emitted == ["echo:", " one", " two", " three", " four"]
    assert seen_at_emit_count == [1, 2, 3, 4, 5]


# -- tokens and cost ---------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [True, False])
async def test_priced_model_has_a_cost(provider: FakeProvider, stream: bool) -> None:
    result, _ = await _run(
        {
            **_node("openai", provider, "gpt-4o-mini"),
            "userPrompt": "one two three",
            "stream": stream,
        }
    )
    assert result.status == "succeeded", result.error
    meta = result.nodes["ask"].metadata
    assert (meta["promptTokens"], meta["completionTokens"], meta["tokensUsed"]) == (3, 4, 7)
    import litellm

    prompt_cost, completion_cost = litellm.cost_per_token(
        model="openai/gpt-4o-mini", prompt_tokens=3, completion_tokens=4
    )
    assert meta["costUsd"] > 0
    assert meta["costUsd"] == pytest.approx(prompt_cost + completion_cost)
    assert (meta["provider"], meta["route"], meta["keyFrom"]) == ("openai", "cloud", "env")
    assert result.token_usage == {"prompt": 3, "completion": 4, "total": 7}


@pytest.mark.parametrize(("model", "route"), [("fake", "openai"), ("fake", "ollama")])
async def test_unpriced_and_local_models_cost_nothing(
    provider: FakeProvider, model: str, route: str
) -> None:
    result, _ = await _run({**_node(route, provider, model), "userPrompt": "one two"})
    assert result.status == "succeeded", result.error
    meta = result.nodes["ask"].metadata
    assert meta["costUsd"] == 0.0 and meta["tokensUsed"] == 5


# -- the fake provider's own controls ----------------------------------------------------------
async def test_fake_reply_in_the_model_name_and_latency(provider: FakeProvider) -> None:
    content = '{"x": "a+b c"}'
    model = "fake+reply=" + urllib.parse.quote(content, safe="")
    result, _ = await _run({**_node("ollama", provider, model), "userPrompt": "x"})
    assert result.outputs["r"]["text"] == content

    provider.latency = 0.2
    try:
        t0 = time.perf_counter()
        slow, _ = await _run({**_node("openai", provider), "userPrompt": "x"})
        elapsed = time.perf_counter() - t0
    finally:
        provider.latency = 0.0
    assert slow.status == "succeeded", slow.error
    assert slow.nodes["ask"].metadata["firstTokenMs"] >= 200 and elapsed >= 0.2
