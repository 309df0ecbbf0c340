"""Where a node's request may go (seed §2.2 mode C): local Ollama, the cloud, or both.

The workflow setting ``routing`` chooses:

- ``cloud`` (the default): every node uses its model as written;
- ``local``: only Ollama models; a cloud model is an error, never a silent substitute;
- ``hybrid``: a local model first (the node's, else ``localModel``), and when it is
  unavailable or fails, a cloud model (the node's, else ``fallbackModel``).

A node with ``sensitive: true`` never leaves the machine, whatever the routing: a
cloud model on it is an error and hybrid routing never falls back for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from engine.errors import NodeError

__all__ = [
    "DEFAULT_LOCAL_MODEL",
    "ROUTING_MODES",
    "RoutePlan",
    "Target",
    "is_local",
    "plan_route",
    "setting",
]

ROUTING_MODES = ("local", "cloud", "hybrid")
DEFAULT_LOCAL_MODEL = "ollama/llama3.2"
LOCAL_PREFIXES = ("ollama/", "ollama_chat/")


def is_local(model: str) -> bool:
    """Whether a model runs on Ollama (the only provider that keeps data on the machine)."""
    return model.startswith(LOCAL_PREFIXES)


@dataclass(frozen=True, slots=True)
class Target:
    model: str
    base_url: str | None

    @property
    def local(self) -> bool:
        return is_local(self.model)

    @property
    def route(self) -> str:
        return "local" if self.local else "cloud"


@dataclass(frozen=True, slots=True)
class RoutePlan:
    routing: str
    primary: Target
    fallback: Target | None = None


def setting(settings: Any, name: str) -> Any:
    """A workflow setting by its JSON name (``fallbackModel``), or None.

    ``WorkflowSettings`` keeps fields it does not declare as extras under the JSON name;
    should it declare them one day, they become snake_case attributes.
    """
    snake = "".join("_" + c.lower() if c.isupper() else c for c in name)
    value = getattr(settings, snake, None)
    if value is not None:
        return value
    extra = getattr(settings, "model_extra", None) or {}
    return extra.get(name, extra.get(snake))


def _text_setting(settings: Any, name: str) -> str | None:
    value = setting(settings, name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise NodeError(
            f"workflow setting '{name}' must be a string, not {type(value).__name__}",
            field=name,
        )
    return value


def plan_route(model: str, *, base_url: str | None, sensitive: bool, settings: Any) -> RoutePlan:
    routing = _text_setting(settings, "routing") or "cloud"
    if routing not in ROUTING_MODES:
        raise NodeError(
            f"workflow setting 'routing' is {routing!r}; use one of: {', '.join(ROUTING_MODES)}",
            field="routing",
        )
    own = Target(model, base_url)
    if sensitive and not own.local:
        raise NodeError(
            f"this node is marked sensitive, so its data must stay on this machine, but "
            f"model '{model}' is a cloud model; use a local model (ollama/...)",
            field="model",
        )
    if routing == "local" and not own.local:
        raise NodeError(
            f"the workflow's routing is 'local' (only Ollama models), but model '{model}' "
            "is a cloud model; use an ollama/... model or change settings.routing",
            field="model",
        )
    if routing != "hybrid":
        return RoutePlan(routing, own)

    if own.local:
        primary = own
    else:
        local_model = (
            _text_setting(settings, "localModel")
            or os.environ.get("AGENTFLOW_LOCAL_MODEL")
            or DEFAULT_LOCAL_MODEL
        )
        if not is_local(local_model):
            raise NodeError(
                f"workflow setting 'localModel' is '{local_model}', not a local model (ollama/...)",
                field="localModel",
            )
        primary = Target(local_model, None)
    if sensitive:
        return RoutePlan(routing, primary)
    if not own.local:
        return RoutePlan(routing, primary, own)
    fallback_model = _text_setting(settings, "fallbackModel")
    if fallback_model is None:
        return RoutePlan(routing, primary)
    if is_local(fallback_model):
        raise NodeError(
            f"workflow setting 'fallbackModel' is '{fallback_model}', a local model; hybrid "
            "routing falls back to a cloud model (e.g. gpt-4o-mini)",
            field="fallbackModel",
        )
    return RoutePlan(
        routing, primary, Target(fallback_model, _text_setting(settings, "fallbackBaseUrl"))
    )
