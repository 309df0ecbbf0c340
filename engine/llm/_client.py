"""One chat call, streamed: ``ollama/*`` through the ollama client, the rest through litellm.

:func:`stream_chat` yields the reply's text pieces and then exactly one :class:`ChatDone`.
A stream that ends before the provider said it was finished raises a retryable
:class:`LLMProviderError`, so a half answer never passes for a whole one. Both client
libraries are imported on first use: importing litellm alone takes seconds.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.llm._errors import LLMProviderError, retry_after_from, transient_status
from engine.llm._loader import (
    get_litellm,
    get_ssl_context,
    load_litellm,
    ollama_ready,
)
from engine.llm._routing import is_local as is_ollama
from engine.llm._structured import litellm_format, ollama_format

__all__ = [
    "DEFAULT_OLLAMA_HOST",
    "ChatDone",
    "ChatRequest",
    "display_host",
    "ollama_host",
    "provider_of",
    "resolve_provider",
    "stream_chat",
]

DEFAULT_OLLAMA_HOST = "http://localhost:11434"


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: list[dict[str, str]]
    temperature: float = 0.7
    max_tokens: int = 2048
    stream: bool = True
    base_url: str | None = None
    timeout_s: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    #: ``"text"``, ``"json"`` or a JSON Schema object.
    response_format: str | dict[str, Any] = "text"
    #: Never shown by ``repr``: requests end up in tracebacks and debug output.
    api_key: str | None = field(default=None, repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values to take out of any message about this request."""
        return (self.api_key,) if self.api_key else ()


@dataclass(frozen=True, slots=True)
class ChatDone:
    """How the reply ended, and what it cost (``None`` where the provider did not say)."""

    finish_reason: str | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


def provider_of(model: str) -> str:
    """The provider's name: ``ollama``, or litellm's name for the model.

    A bare model name (``gpt-4o-mini``) needs litellm's tables, so this may import
    litellm; coroutines use :func:`resolve_provider`, which does that in a thread.
    """
    if is_ollama(model):
        return "ollama"
    prefix, slash, _ = model.partition("/")
    if slash:
        return prefix
    try:
        return str(load_litellm().get_llm_provider(model=model)[1])
    except Exception:  # an unknown model: litellm's own call will say so
        return "litellm"


async def resolve_provider(model: str) -> str:
    if is_ollama(model) or "/" in model:
        return provider_of(model)
    await get_litellm()
    return provider_of(model)


def ollama_host(base_url: str | None = None) -> str:
    return base_url or os.environ.get("OLLAMA_HOST") or DEFAULT_OLLAMA_HOST


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
async def _litellm_chat(request: ChatRequest) -> AsyncGenerator[str | ChatDone, None]:
    # The first import takes seconds; in a thread, the event loop keeps serving others.
    litellm = await get_litellm()
    provider = await resolve_provider(request.model)
    kwargs: dict[str, Any] = {
        "model": request.model,
        "messages": request.messages,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "stream": request.stream,
        # The executor owns retries (with backoff and events); the SDK must not add its own.
        "max_retries": 0,
        "num_retries": 0,
        # seed, stop or temperature that a provider does not take are left out rather than
        # failing the node; a JSON reply is checked here whatever the provider did with
        # response_format.
        "drop_params": True,
    }
    if request.stream:
        kwargs["stream_options"] = {"include_usage": True}
    if request.base_url:
        kwargs["api_base"] = request.base_url
    if request.timeout_s:
        kwargs["timeout"] = request.timeout_s
    if request.stop:
        kwargs["stop"] = list(request.stop)
    if request.seed is not None:
        kwargs["seed"] = request.seed
    response_format = litellm_format(request.response_format)
    if response_format is not None:
        kwargs["response_format"] = response_format
    if request.api_key:
        kwargs["api_key"] = request.api_key
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
        raise _from_litellm(
            exc, provider, request.model, litellm.exceptions, request.secrets
        ) from None
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


def _from_litellm(
    exc: Exception, provider: str, model: str, errors: Any, secrets: Iterable[str]
) -> LLMProviderError:
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    detail = str(getattr(exc, "message", None) or exc)
    if isinstance(exc, errors.MidStreamFallbackError):
        return LLMProviderError.build(
            provider,
            model,
            "the stream broke off mid-way",
            detail,
            retryable=True,
            secrets=secrets,
        )
    import httpx

    if isinstance(exc, errors.Timeout) or _in_chain(exc, (TimeoutError, httpx.TimeoutException)):
        return LLMProviderError.build(
            provider, model, "timed out", detail, retryable=True, secrets=secrets
        )
    if isinstance(exc, errors.APIConnectionError) or _in_chain(
        exc, (ConnectionError, httpx.ConnectError)
    ):
        # litellm reports a refused connection as a 500; say what happened instead.
        return LLMProviderError.build(
            provider, model, "cannot connect", detail, retryable=True, secrets=secrets
        )
    if status is None:
        return LLMProviderError.build(
            provider, model, type(exc).__name__, detail, retryable=False, secrets=secrets
        )
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
        secrets=secrets,
    )


def _in_chain(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    current: BaseException | None = exc
    for _ in range(12):  # causes can loop; a real chain is a handful deep
        if current is None:
            return False
        if isinstance(current, kinds):
            return True
        # A suppressed context is an earlier, handled failure (e.g. the local model's
        # in hybrid routing), not the cause of this one.
        context = None if current.__suppress_context__ else current.__context__
        current = current.__cause__ or context
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

    await ollama_ready()
    verify = await get_ssl_context()
    import httpx
    from ollama import AsyncClient, ResponseError

    model = request.model.split("/", 1)[1]
    host = ollama_host(request.base_url)
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

    options: dict[str, Any] = {
        "temperature": request.temperature,
        "num_predict": request.max_tokens,
    }
    if request.stop:
        options["stop"] = list(request.stop)
    if request.seed is not None:
        options["seed"] = request.seed
    extra: dict[str, Any] = {}
    response_format = ollama_format(request.response_format)
    if response_format is not None:
        extra["format"] = response_format
    client = AsyncClient(
        host=host,
        timeout=request.timeout_s,
        verify=verify,
        event_hooks={"response": [remember_headers]},
    )
    async with client:
        try:
            if not request.stream:
                reply = await client.chat(
                    model=model,
                    messages=request.messages,
                    stream=False,
                    options=options,
                    **extra,
                )
                yield reply.message.content or ""
                yield _ollama_done(reply)
                return
            final: Any = None
            async for part in await client.chat(
                model=model, messages=request.messages, stream=True, options=options, **extra
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
            raise failed(f"cannot connect to {display_host(host)}") from None
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


def display_host(host: str) -> str:
    """``scheme://host:port`` of an Ollama host, without any credentials in it."""
    # A host URL may carry credentials (user:pass@); name only where we tried to go.
    from urllib.parse import urlsplit

    parts = urlsplit(host if "://" in host else f"http://{host}")
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 11434}" if parts.hostname else host
