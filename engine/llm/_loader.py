"""Loading the client libraries off the critical path.

Importing litellm takes about three seconds. :func:`warm_up` starts that import in a
background thread as soon as a workflow is known to need it (the llm node calls it
while the workflow is validated), so the first call finds it done. The event loop
never imports a client library itself: a call that finds it missing loads it in a
worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import threading
from typing import Any

__all__ = [
    "get_litellm",
    "get_ssl_context",
    "load_litellm",
    "loaded_litellm",
    "ollama_ready",
    "ssl_context",
    "warm_up",
]

_lock = threading.Lock()
_warm_lock = threading.Lock()
_litellm: Any = None
_warming: threading.Thread | None = None
_ssl: Any = None


def loaded_litellm() -> Any:
    """The litellm module if it is imported and configured, else ``None`` (never blocks)."""
    return _litellm


def load_litellm() -> Any:
    """Import and configure litellm once (thread-safe); blocks while it imports."""
    global _litellm
    if _litellm is not None:
        return _litellm
    with _lock:
        if _litellm is None:
            # Offline, litellm would try to download its price map and header config.
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
            import litellm as module

            module.suppress_debug_info = True  # no "Give Feedback / Get Help" banners
            if hasattr(module, "telemetry"):
                module.telemetry = False
            # The import leaves about a million objects that live as long as the process;
            # every full collection would walk them (~175 ms with the event loop stalled).
            gc.freeze()
            _litellm = module
    return _litellm


async def get_litellm() -> Any:
    """litellm for a coroutine: at once when loaded, else imported in a worker thread."""
    return _litellm if _litellm is not None else await asyncio.to_thread(load_litellm)


def warm_up() -> None:
    """Start importing litellm in a daemon thread; returns at once, idempotent."""
    global _warming
    if _litellm is not None or _warming is not None:
        return
    with _warm_lock:
        if _warming is not None:
            return
        _warming = threading.Thread(target=_warm, name="agentflow-litellm-warm-up", daemon=True)
        _warming.start()


def _warm() -> None:
    # A failed import shows up, with its real message, on the first call instead.
    with contextlib.suppress(Exception):
        load_litellm()


def ssl_context() -> Any:
    """One TLS context for every ollama client: building one loads CA files (~25 ms)."""
    global _ssl
    if _ssl is None:
        import httpx

        _ssl = httpx.create_ssl_context()
    return _ssl


async def get_ssl_context() -> Any:
    return _ssl if _ssl is not None else await asyncio.to_thread(ssl_context)


async def ollama_ready() -> None:
    """Import the ollama client (and httpx) in a worker thread the first time."""
    import sys

    if "ollama" not in sys.modules:
        await asyncio.to_thread(__import__, "ollama")
