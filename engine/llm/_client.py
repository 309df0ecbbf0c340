"""One chat call, streamed: ``ollama/*`` through the ollama client, the rest through litellm.

:func:`stream_chat` yields the reply's text pieces and then exactly one :class:`ChatDone`.
A stream that ends before the provider said it was finished raises a retryable
:class:`LLMProviderError`, so a half answer never passes for a whole one. Both client
libraries are imported on first use: importing litellm alone takes seconds.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from functools import cache
from typing import Any

from engine.llm._errors import LLMProviderError, retry_after_from, transient_status

__all__ = ["DEFAULT_OLLAMA_HOST", "ChatDone", "ChatRequest", "provider_of", "stream_chat"]

DEFAULT_OLLAMA_HOST = "http://localhost:11434"
_OLLAMA_PREFIXES = ("ollama/", "ollama_chat/")


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: list[dict[str, str]]
    temperature: float = 0.7
    max_tokens: int = 2048
    stream: bool = True
    base_url: str | None = None
    timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class ChatDone:
    """How the reply ended, and what it cost (``None`` where the provider did not say)."""

    finish_reason: str | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


def is_ollama(model: str) -> bool:
    return model.startswith(_OLLAMA_PREFIXES)


def provider_of(model: str) -> str:
    """The provider's name for messages: ``ollama``, or litellm's name for the model."""
    if is_ollama(model):
        return "ollama"
    prefix, slash, _ = model.partition("/")
    if slash:
        return prefix
    try:
        return str(_litellm().get_llm_provider(model=model)[1])
    except Exception:  # an unknown model: litellm's own call will say so
        return "litellm"


def stream_chat(request: ChatRequest) -> AsyncGenerator[str | ChatDone, None]:
    """Text pieces of the reply, then one :class:`ChatDone`."""
    if is_ollama(request.model):
        return _ollama_chat(request)
    return _litellm_chat(request)


def _done(
    finish_reason: str | None, prompt: int | None, completion: int | None, total: int | None
) -> ChatDone:
    if total is None and prompt is not None and completion is not None:
        total = prompt + completion
    return ChatDone(finish_reason, prompt, completion, total)


# -- litellm ------------------------------------------------------------------------------
@cache
def _litellm() -> Any:
    # Offline, litellm would try to download its price map and header config at import.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
    import litellm

    litellm.suppress_debug_info = True  # no "Give Feedback / Get Help" banners on stderr
    if hasattr(litellm, "telemetry"):
        litellm.telemetry = False
    return litellm


async def _litellm_chat(request: ChatRequest) -> AsyncGenerator[str | ChatDone, None]:
    # The first import takes seconds; in a thread, the event loop keeps serving others.
    litellm = await asyncio.to_thread(_litellm)
    provider = provider_of(request.model)
    kwargs: dict[str, Any] = {
        "model": request.model,
        "messages": request.messages,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "stream": request.stream,
        # The executor owns retries (with backoff and events); the SDK must not add its own.
        "max_retries": 0,
        "num_retries": 0,
    }
    if request.stream:
        kwargs["stream_options"] = {"include_usage": True}
    if request.base_url:
        kwargs["api_base"] = request.base_url
    if request.timeout_s:
        kwargs["timeout"] = request.timeout_s
    try:
        response = await litellm.acompletion(**kwargs)
        if not request.stream:
            choice = response.choices[0]
            yield choice.message.content or ""
            yield _done(choice.finish_reason, *_usage(getattr(response, "usage", None)))
            return
        finish: str | None = None
        usage: Any = None
        async for chunk in response:
            usage = getattr(chunk, "usage", None) or usage
            for choice in chunk.choices or ():
                if getattr(choice, "index", 0) != 0:
                    continue
                text = getattr(choice.delta, "content", None)
                if text:
                    yield text
                if choice.finish_reason:
                    finish = choice.finish_reason
    except LLMProviderError:
        raise
    except Exception as exc:
        raise _from_litellm(exc, provider, request.model, litellm.exceptions) from None
    if finish is None:
        raise LLMProviderError.build(
            provider,
            request.model,
            "the stream ended before the reply was finished",
            retryable=True,
        )
    yield _done(finish, *_usage(usage))


def _usage(usage: Any) -> tuple[int | None, int | None, int | None]:
    if usage is None:
        return None, None, None
    return (
        getattr(usage, "prompt_tokens", None),
        getattr(usage, "completion_tokens", None),
        getattr(usage, "total_tokens", None),
    )


def _from_litellm(exc: Exception, provider: str, model: str, errors: Any) -> LLMProviderError:
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    detail = str(getattr(exc, "message", None) or exc)
    if isinstance(exc, errors.MidStreamFallbackError):
        return LLMProviderError.build(
            provider, model, "the stream broke off mid-way", detail, retryable=True
        )
    import httpx

    if isinstance(exc, errors.Timeout) or _in_chain(exc, (TimeoutError, httpx.TimeoutException)):
        return LLMProviderError.build(provider, model, "timed out", detail, retryable=True)
    if isinstance(exc, errors.APIConnectionError) or _in_chain(
        exc, (ConnectionError, httpx.ConnectError)
    ):
        # litellm reports a refused connection as a 500; say what happened instead.
        return LLMProviderError.build(provider, model, "cannot connect", detail, retryable=True)
    if status is None:
        return LLMProviderError.build(provider, model, type(exc).__name__, detail, retryable=False)
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
    return LLMProviderError.build(
        provider,
        model,
        _status_text(status),
        detail,
        status_code=status,
        retryable=transient_status(status),
        retry_after=retry_after_from(headers) if status == 429 else None,
    )


def _in_chain(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    current: BaseException | None = exc
    for _ in range(12):  # causes can loop; a real chain is a handful deep
        if current is None:
            return False
        if isinstance(current, kinds):
            return True
        current = current.__cause__ or current.__context__
    return False


def _status_text(status: int) -> str:
    names = {
        400: "bad request",
        401: "authentication failed",
        403: "permission denied",
        404: "not found",
        408: "request timed out",
        429: "rate limited",
    }
    name = names.get(status, "server error" if status >= 500 else "request failed")
    return f"HTTP {status} {name}"


# -- ollama -------------------------------------------------------------------------------
async def _ollama_chat(request: ChatRequest) -> AsyncGenerator[str | ChatDone, None]:
    import json

    import httpx
    from ollama import AsyncClient, ResponseError

    model = request.model.split("/", 1)[1]
    host = request.base_url or os.environ.get("OLLAMA_HOST") or DEFAULT_OLLAMA_HOST
    last_headers: dict[str, str] = {}

    async def remember_headers(response: httpx.Response) -> None:
        # ResponseError keeps only the body; Retry-After lives in the headers.
        last_headers.clear()
        last_headers.update(response.headers)

    def failed(what: str, detail: str = "", status: int | None = None) -> LLMProviderError:
        return LLMProviderError.build(
            "ollama",
            request.model,
            what,
            detail,
            status_code=status,
            retryable=status is None or transient_status(status),
            retry_after=retry_after_from(last_headers) if status == 429 else None,
        )

    options = {"temperature": request.temperature, "num_predict": request.max_tokens}
    client = AsyncClient(
        host=host, timeout=request.timeout_s, event_hooks={"response": [remember_headers]}
    )
    async with client:
        try:
            if not request.stream:
                reply = await client.chat(
                    model=model, messages=request.messages, stream=False, options=options
                )
                yield reply.message.content or ""
                yield _ollama_done(reply)
                return
            final: Any = None
            async for part in await client.chat(
                model=model, messages=request.messages, stream=True, options=options
            ):
                if part.message.content:
                    yield part.message.content
                if part.done:
                    final = part
        except ResponseError as exc:
            status = exc.status_code if exc.status_code > 0 else None
            what = _status_text(status) if status else "error"
            raise failed(what, str(exc.error), status) from None
        except (ConnectionError, httpx.ConnectError):
            # ConnectionError is ollama's own wording for a refused connection.
            raise failed(f"cannot connect to {_origin(host)}") from None
        except httpx.TimeoutException:
            raise failed("timed out") from None
        except httpx.TransportError as exc:
            raise failed("connection failed", f"{type(exc).__name__}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise failed("malformed response", str(exc)) from None
    if final is None:
        raise failed("the stream ended before the reply was finished")
    yield _ollama_done(final)


def _ollama_done(part: Any) -> ChatDone:
    return _done(
        getattr(part, "done_reason", None) or "stop",
        getattr(part, "prompt_eval_count", None),
        getattr(part, "eval_count", None),
        None,
    )


def _origin(host: str) -> str:
    # A host URL may carry credentials (user:pass@); name only where we tried to go.
    from urllib.parse import urlsplit

    parts = urlsplit(host if "://" in host else f"http://{host}")
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 11434}" if parts.hostname else host
