"""What models this machine can use: Ollama's local models and the cloud providers with a key.

Used by ``agentflow models`` and the studio's settings page. Only names and where a
key was found are reported, never a key.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from engine.llm._client import display_host, ollama_host
from engine.llm._keys import PROVIDER_KEYS

if TYPE_CHECKING:
    from engine.services import SecretSource

__all__ = ["CLOUD_PROVIDERS", "discover"]

#: Providers listed by :func:`discover`, in display order (``cohere_chat`` shares a key).
CLOUD_PROVIDERS = tuple(name for name in PROVIDER_KEYS if name != "cohere_chat")


def discover(secrets: SecretSource | None = None, *, timeout: float = 2.0) -> dict[str, Any]:
    """``{"ollama": {...}, "cloud": [...]}``; never raises for an absent Ollama or store."""
    return {
        "ollama": _ollama(timeout),
        "cloud": [_cloud(name, secrets) for name in CLOUD_PROVIDERS],
    }


def _ollama(timeout: float) -> dict[str, Any]:
    host = ollama_host()
    shown = display_host(host)
    try:
        from ollama import Client

        from engine.llm._loader import ssl_context

        with Client(host=host, timeout=timeout, verify=ssl_context()) as client:
            listed = client.list()
    except Exception as exc:
        return {"host": shown, "running": False, "models": [], "error": _why(exc, shown)}
    models = []
    for item in listed.models:
        details = item.details
        models.append(
            {
                "name": item.model,
                "model": f"ollama/{item.model}",
                "sizeBytes": item.size,
                "family": getattr(details, "family", None),
                "parameterSize": getattr(details, "parameter_size", None),
                "quantization": getattr(details, "quantization_level", None),
            }
        )
    return {"host": shown, "running": True, "models": models, "error": None}


def _why(exc: Exception, host: str) -> str:
    import httpx

    if isinstance(exc, ConnectionError | httpx.ConnectError):
        return (
            f"cannot connect to {host}; is Ollama running? "
            "(start it with 'ollama serve', or set OLLAMA_HOST)"
        )
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer from {host} in time"
    text = str(getattr(exc, "error", None) or exc) or type(exc).__name__
    return f"{host} answered, but not like Ollama: {text[:200]}"


def _cloud(provider: str, secrets: SecretSource | None) -> dict[str, Any]:
    names = PROVIDER_KEYS[provider]
    found: str | None = None
    error: str | None = None
    if secrets is not None:
        for name in names:
            try:
                if secrets.get_secret(name):
                    found = "store"
                    break
            except Exception as exc:  # a wrong master key: say so, keep listing
                error = f"cannot read {name} from the key store: {type(exc).__name__}"
    if found is None and any(os.environ.get(name) for name in names):
        found = "env"
    return {
        "provider": provider,
        "envVar": names[0],
        "keyFrom": found,
        "configured": found is not None,
        "error": error,
    }
