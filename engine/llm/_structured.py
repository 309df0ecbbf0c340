"""Structured replies: ``responseFormat`` ``"json"`` or a JSON Schema object.

The provider is asked for JSON (OpenAI-style ``response_format`` through litellm, which
translates it for other providers; Ollama's ``format``), and the reply is parsed, and
validated against the schema, here: providers differ in how well they obey, and a
workflow must never pass on a reply that does not have the promised shape.
"""

from __future__ import annotations

import json
import re
from typing import Any

from engine.errors import NodeError

__all__ = ["check_schema", "litellm_format", "ollama_format", "parse_reply"]

ResponseFormat = str | dict[str, Any]

_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n(?P<body>.*?)\n?```$", re.DOTALL)
_PREVIEW = 160


def check_schema(schema: dict[str, Any]) -> None:
    """Raise ``ValueError`` when ``schema`` is not a valid JSON Schema."""
    from jsonschema import exceptions, validators  # type: ignore[import-untyped]

    try:
        validators.validator_for(schema).check_schema(schema)
    except exceptions.SchemaError as exc:
        raise ValueError(f"not a valid JSON Schema at {exc.json_path}: {exc.message}") from None


def litellm_format(fmt: ResponseFormat) -> dict[str, Any] | None:
    if fmt == "json":
        return {"type": "json_object"}
    if isinstance(fmt, dict):
        return {"type": "json_schema", "json_schema": {"name": "reply", "schema": fmt}}
    return None


def ollama_format(fmt: ResponseFormat) -> str | dict[str, Any] | None:
    if fmt == "json" or isinstance(fmt, dict):
        return fmt
    return None


def parse_reply(text: str, fmt: ResponseFormat, *, node_id: str, finish_reason: str | None) -> Any:
    """The reply as JSON, validated against the schema; a non-retryable error otherwise."""
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:  # models often wrap JSON in a Markdown code block despite being asked not to
        body = fenced.group("body").strip()
    cut = " (the reply was cut at maxTokens)" if finish_reason == "length" else ""
    try:
        value = json.loads(body)
    except ValueError as exc:
        reason = getattr(exc, "msg", str(exc))
        raise _error(node_id, f"the reply is not valid JSON ({reason}){cut}", text) from None
    if isinstance(fmt, dict):
        from jsonschema import exceptions, validators

        validator = validators.validator_for(fmt)(fmt)
        problem = exceptions.best_match(validator.iter_errors(value))
        if problem is not None:
            raise _error(
                node_id,
                f"the reply does not match the responseFormat schema at {problem.json_path}: "
                f"{problem.message}{cut}",
                text,
            )
    return value


def _error(node_id: str, message: str, reply: str) -> NodeError:
    preview = reply[:_PREVIEW] + ("…" if len(reply) > _PREVIEW else "")
    return NodeError(
        f"{message}; the reply starts: {json.dumps(preview, ensure_ascii=False)}",
        node_id=node_id,
        field="responseFormat",
        retryable=False,
    )
