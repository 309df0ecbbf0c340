"""The LLM layer: one streamed chat call over ollama (local) or litellm (everything else).

Importing this package is cheap; the client libraries load on the first call, or in
the background after :func:`warm_up`.
"""

from engine.llm._client import (
    DEFAULT_OLLAMA_HOST,
    ChatDone,
    ChatRequest,
    ollama_host,
    provider_of,
    resolve_provider,
    stream_chat,
)
from engine.llm._cost import cost_usd
from engine.llm._discover import CLOUD_PROVIDERS, discover
from engine.llm._errors import LLMProviderError, redact
from engine.llm._keys import PROVIDER_KEYS, FoundKey, find_key
from engine.llm._loader import warm_up
from engine.llm._routing import ROUTING_MODES, RoutePlan, Target, is_local, plan_route

__all__ = [
    "CLOUD_PROVIDERS",
    "DEFAULT_OLLAMA_HOST",
    "PROVIDER_KEYS",
    "ROUTING_MODES",
    "ChatDone",
    "ChatRequest",
    "FoundKey",
    "LLMProviderError",
    "RoutePlan",
    "Target",
    "cost_usd",
    "discover",
    "find_key",
    "is_local",
    "ollama_host",
    "plan_route",
    "provider_of",
    "redact",
    "resolve_provider",
    "stream_chat",
    "warm_up",
]
