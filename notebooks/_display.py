"""How nodes, references and runs look in a marimo cell (called by marimo only).

marimo asks an object for ``_display_()`` when it is a cell's output; the functions here
build the view with marimo's public API (imported here, never on the CLI path).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from notebooks._handles import LiveState, NodeHandle, Ref
    from notebooks._live import RunView

__all__ = ["VegaLite", "node_view", "ref_view", "run_view"]

_ICONS = {"succeeded": "✅", "failed": "❌", "skipped": "⏭️", "cancelled": "⏹️"}


class VegaLite:
    """A Vega-Lite spec shown by marimo's bundled renderer (works offline)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec

    def _mime_(self) -> tuple[str, str]:
        return "application/vnd.vegalite.v5+json", json.dumps(self.spec, default=str)


def _duration(ms: float | None) -> str:
    if ms is None:
        return ""
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.0f} ms"


def _header(handle: NodeHandle, state: LiveState | None) -> str:
    spec = handle._spec
    parts = [f"**{spec.id}**", f"`{spec.type}`"]
    if spec.label not in (None, spec.id):
        parts.append(str(spec.label))
    if state is None:
        parts.append("defined (runs with the workflow)")
        return " · ".join(parts)
    parts.append(f"{_ICONS.get(state.status, '')} {state.status}".strip())
    if state.duration_ms is not None and state.status != "skipped":
        parts.append(_duration(state.duration_ms))
    if state.cached:
        parts.append("from cache")
    if state.tokens:
        parts.append(f"{state.tokens} tokens")
    model = state.metadata.get("model")
    if model:
        parts.append(f"`{model}`")
    return " · ".join(parts)


def _is_rows(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(row, dict) for row in value)


_CODE = re.compile(r"(```[\s\S]*?(?:```|$)|`[^`\n]*`)")


def safe_markdown(text: str) -> str:
    """Markdown with raw HTML disarmed: model output must not run script in the page."""
    # Code spans and blocks are escaped by the renderer itself; elsewhere a "<" could
    # open a tag (marimo's markdown keeps raw HTML as it is).
    parts = _CODE.split(text)
    return "".join(
        part if index % 2 else part.replace("&", "&amp;").replace("<", "&lt;")
        for index, part in enumerate(parts)
    )


def value_view(value: Any) -> Any:
    """Text as markdown (without raw HTML), rows as a table, anything else as JSON."""
    import marimo as mo

    if isinstance(value, str):
        return mo.md(safe_markdown(value)) if value.strip() else mo.md("_(empty text)_")
    if _is_rows(value):
        return mo.ui.table(value, selection=None, pagination=len(value) > 10)
    return mo.json(json.loads(json.dumps(value, default=str)))


def _outputs_view(node_type: str, outputs: Any) -> Any:
    import marimo as mo

    if not isinstance(outputs, dict):
        return value_view(outputs)
    if node_type in ("llm", "template") and isinstance(outputs.get("text"), str):
        return value_view(outputs["text"])
    if node_type == "condition":
        return mo.md(f"branch taken: **{outputs.get('branch')}**")
    if node_type == "sql" and isinstance(outputs.get("rows"), list):
        rows = outputs["rows"]
        note = " (truncated at maxRows)" if outputs.get("truncated") else ""
        if not rows:
            return mo.md(f"_no rows_{note}")
        return mo.vstack([value_view(rows), mo.md(f"{len(rows)} rows{note}")])
    tables = {key: value for key, value in outputs.items() if _is_rows(value)}
    if tables:
        rest = {key: value for key, value in outputs.items() if key not in tables}
        parts = [mo.vstack([mo.md(f"`{key}`"), value_view(rows)]) for key, rows in tables.items()]
        if rest:
            parts.append(value_view(rest))
        return mo.vstack(parts)
    return value_view(outputs)


def node_view(handle: NodeHandle) -> Any:
    import marimo as mo

    state = handle._live
    parts: list[Any] = [mo.md(_header(handle, state))]
    if state is None:
        parts.append(mo.json(handle._spec.config))
    elif state.status == "failed":
        message = (state.error or {}).get("message") or "failed"
        parts.append(mo.callout(mo.plain_text(message), kind="danger"))
    elif state.status == "skipped":
        parts.append(mo.md(f"_skipped: {state.skip_reason or 'branch not taken'}_"))
    else:
        parts.append(_outputs_view(handle._spec.type, state.outputs))
    if state is not None and state.notice:
        parts.append(mo.callout(mo.md(state.notice), kind="warn"))
    return mo.vstack(parts)


def ref_view(ref: Ref) -> Any:
    import marimo as mo

    from notebooks._live import live_value

    state = ref._node._live
    if ref._node._owner.kind != "live" or state is None or state.status != "succeeded":
        return mo.md(f"`{ref!s}`")
    return value_view(live_value(ref))


def run_view(view: RunView) -> Any:
    import marimo as mo

    result = view.result
    icon = _ICONS.get(result.status, "")
    parts: list[Any] = [
        mo.md(f"**run** {icon} {result.status} · {_duration(result.duration_ms)}"),
    ]
    if result.error:
        parts.append(mo.callout(mo.plain_text(str(result.error.get("message"))), kind="danger"))
    rows = [
        {
            "node": node_id,
            "type": state.node_type,
            "status": state.status,
            "time": _duration(state.duration_ms),
            "cached": state.cached,
        }
        for node_id, state in result.nodes.items()
    ]
    parts.append(mo.ui.table(rows, selection=None, pagination=False))
    if result.outputs:
        parts.append(value_view(result.outputs))
    if view.notice:
        parts.append(mo.callout(mo.md(view.notice), kind="warn"))
    return mo.vstack(parts)
