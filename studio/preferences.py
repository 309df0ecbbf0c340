"""The local user's model preferences: default model and routing mode.

They live in the ``settings`` JSON of the ``local`` row of ``users``, under ``"llm"``,
next to whatever else is kept there (other keys are preserved). The Settings page
writes them; the editor reads them as defaults for new LLM nodes::

    from studio.preferences import load_preferences
    prefs = load_preferences(store)        # ModelPreferences, defaults when never saved
    prefs.default_model                    # "ollama/llama3.2", or None
    prefs.routing                          # "local" | "cloud" | "hybrid"
    prefs.fallback_model                   # cloud model used on local failure (hybrid)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from engine.llm import ROUTING_MODES, is_local
from store.errors import StoreError

if TYPE_CHECKING:
    from store import Store

__all__ = [
    "ROUTING_MODES",
    "ModelPreferences",
    "PreferenceError",
    "check_preferences",
    "load_preferences",
    "save_preferences",
    "workflow_settings",
]

_SETTINGS_KEY = "llm"
_MAX_MODEL = 200


@dataclass(frozen=True, slots=True)
class ModelPreferences:
    #: For new LLM nodes; in ``local`` and ``hybrid`` mode a local (``ollama/...``) model.
    default_model: str | None = None
    #: As the engine's workflow setting ``routing`` (``engine.llm``), whose default is cloud:
    #: ``local`` never leaves the machine; ``hybrid`` = local first, cloud on failure.
    routing: str = "cloud"
    #: The cloud model hybrid routing falls back to (workflow setting ``fallbackModel``).
    fallback_model: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "defaultModel": self.default_model,
            "routing": self.routing,
            "fallbackModel": self.fallback_model,
        }

    @classmethod
    def from_json(cls, data: Any) -> ModelPreferences:
        """Lenient: a value of the wrong type is taken as not set, never an error."""
        if not isinstance(data, dict):
            return cls()
        routing = data.get("routing")
        return cls(
            default_model=_text_or_none(data.get("defaultModel")),
            routing=routing if routing in ROUTING_MODES else "cloud",
            fallback_model=_text_or_none(data.get("fallbackModel")),
        )


class PreferenceError(StoreError):
    """Invalid preferences; ``problems`` maps a field name to its message."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {text}" for name, text in problems.items()))
        self.problems = problems


def check_preferences(prefs: ModelPreferences) -> dict[str, str]:
    """Problems by field (``default_model``, ``routing``, ``fallback_model``); empty if fine."""
    problems: dict[str, str] = {}
    for name in ("default_model", "fallback_model"):
        value = getattr(prefs, name)
        if value is not None and (message := _model_problem(value)):
            problems[name] = message
    if prefs.routing not in ROUTING_MODES:
        problems["routing"] = f"choose one of {', '.join(ROUTING_MODES)}"
        return problems
    default, fallback = prefs.default_model, prefs.fallback_model
    if prefs.routing == "local":
        # Local mode promises that prompts never leave the machine.
        if default and "default_model" not in problems and not is_local(default):
            problems["default_model"] = "local mode needs a local model (ollama/...)"
        if fallback and "fallback_model" not in problems and not is_local(fallback):
            problems["fallback_model"] = "local mode cannot fall back to a cloud model"
    elif prefs.routing == "hybrid":
        if default and "default_model" not in problems and not is_local(default):
            problems["default_model"] = "hybrid mode tries a local model (ollama/...) first"
        if fallback and "fallback_model" not in problems and is_local(fallback):
            problems["fallback_model"] = "the fallback of hybrid mode is a cloud model"
    return problems


def workflow_settings(prefs: ModelPreferences) -> dict[str, Any]:
    """The routing keys for a new workflow's ``settings`` (as ``engine.llm`` reads them)."""
    settings: dict[str, Any] = {"routing": prefs.routing}
    if prefs.routing == "hybrid" and prefs.default_model:
        settings["localModel"] = prefs.default_model
    if prefs.routing == "hybrid" and prefs.fallback_model:
        settings["fallbackModel"] = prefs.fallback_model
    return settings


def load_preferences(store: Store) -> ModelPreferences:
    return ModelPreferences.from_json(_read_settings(store).get(_SETTINGS_KEY))


def save_preferences(store: Store, prefs: ModelPreferences) -> ModelPreferences:
    """Validate and store; raises :class:`PreferenceError` and keeps the old ones if invalid."""
    prefs = replace(
        prefs,
        default_model=_text_or_none(prefs.default_model),
        fallback_model=_text_or_none(prefs.fallback_model),
    )
    problems = check_preferences(prefs)
    if problems:
        raise PreferenceError(problems)
    with store.db.transaction() as connection:
        row = connection.execute("SELECT settings FROM users WHERE id = 'local'").fetchone()
        if row is None:
            raise StoreError("the local user is missing from the database")
        settings = _parse(row[0])
        settings[_SETTINGS_KEY] = prefs.to_json()
        connection.execute(
            "UPDATE users SET settings = ?, updated_at = now() WHERE id = 'local'",
            [json.dumps(settings)],
        )
    return prefs


def _read_settings(store: Store) -> dict[str, Any]:
    rows = store.db.execute("SELECT settings FROM users WHERE id = 'local'")
    return _parse(rows[0][0]) if rows else {}


def _parse(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            return {}  # a hand-edited row must not lock the user out of Settings
    return dict(raw) if isinstance(raw, dict) else {}


def _text_or_none(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _model_problem(model: str) -> str | None:
    if len(model) > _MAX_MODEL:
        return f"a model name has at most {_MAX_MODEL} characters"
    if any(char.isspace() for char in model) or not model.isprintable():
        return "a model name has no spaces (e.g. ollama/llama3.2 or gpt-4o-mini)"
    return None
