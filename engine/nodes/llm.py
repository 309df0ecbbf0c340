"""``llm``: one chat completion (seed §7.4), streamed to ``node_delta`` events as it arrives.

``ollama/<model>`` runs against a local Ollama server; any other litellm model name
(``gpt-4o-mini``, ``openai/…``, ``anthropic/…``) goes through litellm. A failed or cut
attempt raises; the executor decides whether to retry. Deltas of a failed attempt have
already been sent, so consumers start over at the ``node_started`` of the next attempt.
"""

from __future__ import annotations

import time
from contextlib import aclosing
from typing import Any

from pydantic import Field, field_validator

from engine._private.references import as_text
from engine.nodes.base import BaseNodeConfig, NodeContext, NodeResult, NodeType


class LlmConfig(BaseNodeConfig):
    model: str = Field(
        default="gpt-4o-mini",
        min_length=1,
        description="litellm model name: gpt-4o-mini, openai/…, anthropic/…, ollama/llama3.2.",
    )
    system_prompt: str = ""
    user_prompt: str = Field(min_length=1)
    temperature: float = Field(default=0.7, ge=0, le=2)
    max_tokens: int = Field(default=2048, gt=0)
    stream: bool = Field(default=True, description="Stream tokens as node_delta events.")
    base_url: str | None = Field(
        default=None, description="Provider base URL for this node (else the environment's)."
    )

    @field_validator("system_prompt", "user_prompt", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        # A prompt that is exactly one reference keeps the referenced value's type.
        return value if value is None or isinstance(value, str) else as_text(value)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value or None


class LlmNode(NodeType[LlmConfig]):
    type = "llm"
    description = "Ask a language model (litellm or local Ollama); streams tokens."
    Config = LlmConfig
    outputs = {"text": "the model's reply"}

    async def run(self, ctx: NodeContext, config: LlmConfig) -> NodeResult:
        from engine.llm import ChatDone, ChatRequest, LLMProviderError, provider_of, stream_chat

        messages = []
        if config.system_prompt:
            messages.append({"role": "system", "content": config.system_prompt})
        messages.append({"role": "user", "content": config.user_prompt})
        request = ChatRequest(
            model=config.model,
            messages=messages,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            stream=config.stream,
            base_url=config.base_url,
            timeout_s=config.timeout_ms / 1000 if config.timeout_ms else None,
        )
        pieces: list[str] = []
        done: ChatDone | None = None
        first_token_ms: float | None = None
        t0 = time.perf_counter()
        async with aclosing(stream_chat(request)) as replies:
            async for item in replies:
                if isinstance(item, ChatDone):
                    done = item
                    continue
                if first_token_ms is None and item:
                    first_token_ms = (time.perf_counter() - t0) * 1000
                pieces.append(item)
                if config.stream and item:
                    ctx.emit_delta(item)
        latency_ms = (time.perf_counter() - t0) * 1000
        if done is None:  # the client guarantees a ChatDone; never report a half answer
            raise LLMProviderError.build(
                provider_of(config.model), config.model, "no end of reply", retryable=True
            )
        if done.finish_reason == "length":
            ctx.log(f"the reply was cut at maxTokens ({config.max_tokens})", "warning")
        metadata = {
            "model": config.model,
            "provider": provider_of(config.model),
            "tokensUsed": done.total_tokens,
            "promptTokens": done.prompt_tokens,
            "completionTokens": done.completion_tokens,
            "finishReason": done.finish_reason,
            "latencyMs": round(latency_ms, 3),
            "firstTokenMs": None if first_token_ms is None else round(first_token_ms, 3),
        }
        return NodeResult({"text": "".join(pieces)}, metadata, tokens=done.total_tokens or 0)
