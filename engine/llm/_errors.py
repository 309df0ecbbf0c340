"""Provider failures as :class:`~engine.errors.NodeError`, with secrets taken out.

Provider messages sometimes quote the API key they were given (OpenAI's 401 does), and
they end up in events, the store and the studio, so every message is redacted first.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping
from email.utils import parsedate_to_datetime

from engine.errors import NodeError

__all__ = ["LLMProviderError", "redact", "retry_after_from", "transient_status"]

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)
# Key shapes worth hiding even when they come from somewhere other than the environment.
_KEY_SHAPES = re.compile(r"\b(sk-|Bearer\s+)[A-Za-z0-9_\-.=]{8,}")
_LIBRARY_PREFIX = re.compile(r"^(?:litellm\.)?[A-Za-z]+(?:Error|Exception)(?::\s*|\s+-\s+)")
_MAX_DETAIL = 500
_MIN_SECRET = 8


class LLMProviderError(NodeError):
    """A model provider refused or failed a request; says which provider and model."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str,
        status_code: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        field: str | None = None,
    ):
        super().__init__(message, field=field, retryable=retryable, retry_after=retry_after)
        self.provider = provider
        self.model = model
        self.status_code = status_code

    @classmethod
    def build(
        cls,
        provider: str,
        model: str,
        what: str,
        detail: str = "",
        *,
        status_code: int | None = None,
        retryable: bool,
        retry_after: float | None = None,
        secrets: Iterable[str] = (),
    ) -> LLMProviderError:
        detail = _clean(detail)
        message = f"{provider} model '{model}': {what}" + (f": {detail}" if detail else "")
        return cls(
            redact(message, secrets),
            provider=provider,
            model=model,
            status_code=status_code,
            retryable=retryable,
            retry_after=retry_after,
            field="model" if status_code == 404 else None,
        )


def transient_status(status: int | None) -> bool:
    """Statuses worth retrying: timeouts, conflicts, rate limits and server faults."""
    return status is not None and (status in (408, 409, 429) or status >= 500)


def _clean(detail: str) -> str:
    detail = detail.strip()
    # litellm stacks its class names in front of the provider's words; keep the words.
    while True:
        stripped = _LIBRARY_PREFIX.sub("", detail, count=1)
        if stripped == detail:
            break
        detail = stripped
    if len(detail) > _MAX_DETAIL:
        detail = detail[:_MAX_DETAIL] + "…"
    return detail


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without API keys: known secret values, then anything shaped like a key."""
    values = {value for value in secrets if value and len(value) >= _MIN_SECRET}
    values.update(
        value
        for name, value in os.environ.items()
        if _SECRET_NAME.search(name) and len(value) >= _MIN_SECRET
    )
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, "***")
    return _KEY_SHAPES.sub(lambda m: m.group(1) + "***", text)


def retry_after_from(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or HTTP date) or ``retry-after-ms``."""
    if not headers:
        return None
    lowered = {str(key).lower(): str(value) for key, value in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis is not None:
        try:
            return max(float(millis) / 1000, 0.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)
