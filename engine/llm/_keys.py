"""Which secret holds a provider's API key, and where to find it: the store, then the env.

Names are the environment variables litellm itself reads (``OPENAI_API_KEY``...), so a
key stored with ``agentflow keys set OPENAI_API_KEY`` and one exported in the shell are
the same thing to the user.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from engine.llm._errors import LLMProviderError

if TYPE_CHECKING:
    from engine.services import SecretSource

__all__ = ["PROVIDER_KEYS", "FoundKey", "find_key", "key_names"]

#: Provider (litellm's name) -> the variables that may hold its key, preferred first.
PROVIDER_KEYS: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "azure": ("AZURE_API_KEY",),
    "mistral": ("MISTRAL_API_KEY",),
    "groq": ("GROQ_API_KEY",),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "cohere": ("COHERE_API_KEY",),
    "cohere_chat": ("COHERE_API_KEY",),
    "openrouter": ("OPENROUTER_API_KEY",),
    "xai": ("XAI_API_KEY",),
    "together_ai": ("TOGETHERAI_API_KEY",),
    "perplexity": ("PERPLEXITYAI_API_KEY",),
    "fireworks_ai": ("FIREWORKS_AI_API_KEY",),
    "huggingface": ("HUGGINGFACE_API_KEY",),
    "cerebras": ("CEREBRAS_API_KEY",),
}


@dataclass(frozen=True, slots=True)
class FoundKey:
    value: str | None
    source: Literal["store", "env"] | None
    name: str | None

    def __repr__(self) -> str:  # the value must never reach a log line via repr
        return f"FoundKey(source={self.source!r}, name={self.name!r})"


def key_names(provider: str) -> tuple[str, ...]:
    return PROVIDER_KEYS.get(provider, ())


def find_key(provider: str, model: str, secrets: SecretSource | None) -> FoundKey:
    """The provider's key from the store, else from the environment, else none.

    A store that cannot be read (wrong master key) is an error rather than a silent
    fallback to the environment: the user stored a key and expects it to be used.
    """
    names = key_names(provider)
    if secrets is not None:
        for name in names:
            try:
                value = secrets.get_secret(name)
            except Exception as exc:
                raise LLMProviderError.build(
                    provider,
                    model,
                    f"cannot read {name} from the key store",
                    _describe(exc),
                    retryable=False,
                ) from None
            if value:
                return FoundKey(value, "store", name)
    for name in names:
        value = os.environ.get(name)
        if value:
            return FoundKey(value, "env", name)
    return FoundKey(None, None, names[0] if names else None)


def _describe(exc: Exception) -> str:
    return str(getattr(exc, "message", None) or exc) or type(exc).__name__
