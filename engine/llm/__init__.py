"""The LLM layer: one streamed chat call over ollama (local) or litellm (everything else).

Importing this package is cheap; the client libraries load on the first call.
"""

from engine.llm._client import DEFAULT_OLLAMA_HOST, ChatDone, ChatRequest, provider_of, stream_chat
from engine.llm._errors import LLMProviderError, redact

__all__ = [
    "DEFAULT_OLLAMA_HOST",
    "ChatDone",
    "ChatRequest",
    "LLMProviderError",
    "provider_of",
    "redact",
    "stream_chat",
]
