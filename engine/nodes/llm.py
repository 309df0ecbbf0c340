"""``llm``: one chat completion (seed §7.4), streamed to ``node_delta`` events as it arrives.

``ollama/<model>`` runs against a local Ollama server; any other litellm model name
(``gpt-4o-mini``, ``openai/…``, ``anthropic/…``) goes through litellm with the
provider's key from the run's secret store, else the environment. The workflow's
``routing`` setting and the node's ``sensitive`` flag decide where a request may go
(see :mod:`engine.llm._routing`). A failed or cut attempt raises; the executor decides
whether to retry. Deltas of a failed attempt have already been sent, so consumers
start over at the ``node_started`` of the next attempt (and at a ``warning`` log
saying so when hybrid routing falls back to the cloud within an attempt).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine._private.references import as_text
from engine.errors import ValidationIssue
from engine.nodes.base import BaseNodeConfig, NodeContext, NodeResult, NodeType

if TYPE_CHECKING:
    from engine.definition import Node, WorkflowSettings
    from engine.llm import ChatDone, ChatRequest, Target
    from engine.nodes.registry import NodeRegistry

_LOCAL_PREFIXES = ("ollama/", "ollama_chat/")


class ChatMessage(BaseModel):
    """One turn of a chat history; other keys a history may carry are ignored."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str

    @field_validator("content", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return "" if value is None else as_text(value)


class LlmConfig(BaseNodeConfig):
    model: str = Field(
        default="gpt-4o-mini",
        min_length=1,
        description="litellm model name: gpt-4o-mini, openai/…, anthropic/…, ollama/llama3.2.",
    )
    system_prompt: str = ""
    user_prompt: str | None = Field(
        default=None, min_length=1, description="Sent last, after the messages."
    )
    messages: list[ChatMessage] = Field(
        default_factory=list,
        description="Chat history ([{role, content}], usually a reference), sent before "
        "the userPrompt.",
    )
    temperature: float = Field(default=0.7, ge=0, le=2)
    max_tokens: int = Field(default=2048, gt=0)
    stop: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="Stop sequence(s): a string or a list."
    )
    seed: int | None = Field(default=None, description="For providers that sample repeatably.")
    response_format: Literal["text", "json"] | dict[str, Any] = Field(
        default="text",
        description="'text', 'json', or a JSON Schema the reply must match "
        "(outputs then hold 'json').",
    )
    stream: bool = Field(default=True, description="Stream tokens as node_delta events.")
    base_url: str | None = Field(
        default=None, description="Provider base URL for this node (else the environment's)."
    )
    sensitive: bool = Field(
        default=False, description="Never send this node's data off the machine (Ollama only)."
    )

    @field_validator("system_prompt", "user_prompt", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        # A prompt that is exactly one reference keeps the referenced value's type.
        return value if value is None or isinstance(value, str) else as_text(value)

    @field_validator("stop", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if value is None:
            return []
        return [value] if isinstance(value, str) else value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value or None

    @field_validator("response_format")
    @classmethod
    def _schema(cls, value: Any) -> Any:
        if isinstance(value, dict):
            from engine.llm._structured import check_schema

            check_schema(value)
        return value

    @model_validator(mode="after")
    def _something_to_say(self) -> LlmConfig:
        if self.user_prompt is None and not self.messages:
            raise ValueError("give a userPrompt, a chat history in messages, or both")
        return self


@dataclass(slots=True)
class _Reply:
    text: str
    done: ChatDone
    provider: str
    key_from: str | None
    first_token_at: float | None


class LlmNode(NodeType[LlmConfig]):
    type = "llm"
    description = "Ask a language model (litellm or local Ollama); streams tokens."
    Config = LlmConfig
    outputs = {
        "text": "the model's reply",
        "json": "the reply parsed as JSON (responseFormat 'json' or a schema)",
    }

    def check(self, node: Node, config: Any, registry: NodeRegistry) -> Iterable[ValidationIssue]:
        raw = node.config
        model = config.model if config is not None else raw.get("model", "gpt-4o-mini")
        sensitive = config.sensitive if config is not None else raw.get("sensitive") is True
        static = isinstance(model, str) and "{{" not in model
        if not (static and model.startswith(_LOCAL_PREFIXES)):
            from engine.llm import warm_up

            # Validation comes before the run: start importing litellm (~3 s) now.
            warm_up()
        if sensitive and static and not model.startswith(_LOCAL_PREFIXES):
            yield ValidationIssue(
                "config",
                f"the node is sensitive, so its data must stay on this machine, but "
                f"'{model}' is a cloud model; use a local model (ollama/...)",
                node_id=node.id,
                field="model",
            )

    def check_settings(
        self, node: Node, config: Any, settings: WorkflowSettings
    ) -> Iterable[ValidationIssue]:
        model = config.model if config is not None else node.config.get("model")
        if not isinstance(model, str) or "{{" in model:
            return
        if settings.routing == "local" and not model.startswith(_LOCAL_PREFIXES):
            yield ValidationIssue(
                "config",
                f"the workflow's routing is 'local' (only Ollama models), but '{model}' is a "
                "cloud model; use an ollama/... model or change settings.routing",
                node_id=node.id,
                field="model",
            )

    async def run(self, ctx: NodeContext, config: LlmConfig) -> NodeResult:
        from engine.llm import LLMProviderError, cost_usd, plan_route

        plan = plan_route(
            config.model,
            base_url=config.base_url,
            sensitive=config.sensitive,
            settings=ctx.settings,
        )
        t0 = time.perf_counter()
        target = plan.primary
        failure: LLMProviderError | None = None
        try:
            reply = await self._ask(ctx, config, target)
        except LLMProviderError as local_failure:
            if plan.fallback is None:
                raise
            failure = local_failure
        if failure is not None:
            # Outside the except block: the cloud call's errors must not chain to this one.
            assert plan.fallback is not None
            ctx.log(
                f"local model '{target.model}' failed ({failure.message}); falling back to "
                f"cloud model '{plan.fallback.model}' (hybrid routing); text streamed so far "
                "is discarded",
                "warning",
            )
            target = plan.fallback
            reply = await self._ask(ctx, config, target)
        latency_ms = (time.perf_counter() - t0) * 1000
        done = reply.done
        if done.finish_reason == "length":
            ctx.log(f"the reply was cut at maxTokens ({config.max_tokens})", "warning")
        outputs: dict[str, Any] = {"text": reply.text}
        if config.response_format != "text":
            from engine.llm._structured import parse_reply

            outputs["json"] = parse_reply(
                reply.text,
                config.response_format,
                node_id=ctx.node_id,
                finish_reason=done.finish_reason,
            )
        first_ms = None if reply.first_token_at is None else (reply.first_token_at - t0) * 1000
        metadata: dict[str, Any] = {
            "model": target.model,
            "provider": reply.provider,
            "route": target.route,
            "tokensUsed": done.total_tokens,
            "promptTokens": done.prompt_tokens,
            "completionTokens": done.completion_tokens,
            "finishReason": done.finish_reason,
            "costUsd": cost_usd(
                target.model,
                local=target.local,
                prompt_tokens=done.prompt_tokens,
                completion=done.completion_tokens,
            ),
            "latencyMs": round(latency_ms, 3),
            "firstTokenMs": None if first_ms is None else round(first_ms, 3),
        }
        if reply.key_from is not None:
            metadata["keyFrom"] = reply.key_from
        if failure is not None:
            metadata["fallbackFrom"] = plan.primary.model
            metadata["fallbackReason"] = failure.message
        return NodeResult(outputs, metadata, tokens=done.total_tokens or 0)

    async def _ask(self, ctx: NodeContext, config: LlmConfig, target: Target) -> _Reply:
        from engine.llm import ChatDone, LLMProviderError, resolve_provider, stream_chat

        provider = await resolve_provider(target.model)
        api_key: str | None = None
        key_from: str | None = None
        if not target.local:
            from engine.llm import find_key

            secrets = ctx.services.secrets if ctx.services is not None else None
            key = find_key(provider, target.model, secrets)
            if key.value is None and key.name is not None and target.base_url is None:
                raise LLMProviderError.build(
                    provider,
                    target.model,
                    f"no API key: store one with 'agentflow keys set {key.name}' or set "
                    f"the environment variable {key.name}",
                    retryable=False,
                )
            api_key, key_from = key.value, key.source
        request = _request(config, target, api_key=api_key)
        pieces: list[str] = []
        done: ChatDone | None = None
        first_token_at: float | None = None
        async with aclosing(stream_chat(request)) as replies:
            async for item in replies:
                if isinstance(item, ChatDone):
                    done = item
                    continue
                if not item:
                    continue
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                pieces.append(item)
                if config.stream:
                    ctx.emit_delta(item)
                    # Chunks that arrived together are parsed back to back without the loop
                    # running anyone else; let event consumers see each token as it comes.
                    await asyncio.sleep(0)
        if done is None:  # the client guarantees a ChatDone; never report a half answer
            raise LLMProviderError.build(provider, target.model, "no end of reply", retryable=True)
        return _Reply("".join(pieces), done, provider, key_from, first_token_at)


def _request(config: LlmConfig, target: Target, *, api_key: str | None) -> ChatRequest:
    from engine.llm import ChatRequest

    messages = []
    if config.system_prompt:
        messages.append({"role": "system", "content": config.system_prompt})
    messages.extend({"role": m.role, "content": m.content} for m in config.messages)
    if config.user_prompt is not None:
        messages.append({"role": "user", "content": config.user_prompt})
    return ChatRequest(
        model=target.model,
        messages=messages,
        temperature=config.temperature,
        max_tokens=config.max_tokens,
        stream=config.stream,
        base_url=target.base_url,
        timeout_s=config.timeout_ms / 1000 if config.timeout_ms else None,
        stop=tuple(config.stop),
        seed=config.seed,
        response_format=config.response_format,
        api_key=api_key,
    )
