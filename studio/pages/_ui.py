"""Small shared pieces of the history, agents and settings pages: badges, numbers, JSON."""

from __future__ import annotations

import html
import json
from datetime import datetime
from typing import Any

import panel as pn

__all__ = [
    "CARD_CSS",
    "STATUS_COLORS",
    "badge",
    "fmt_cost",
    "fmt_duration",
    "fmt_time",
    "fmt_tokens",
    "json_view",
    "message",
    "set_text",
    "short_id",
    "to_json_text",
]

STATUS_COLORS = {
    "succeeded": "#16a34a",
    "failed": "#dc2626",
    "running": "#2563eb",
    "pending": "#6b7280",
    "skipped": "#9ca3af",
    "cached": "#0d9488",
    "cancelled": "#d97706",
    "interrupted": "#9333ea",
    "retrying": "#f59e0b",
}

CARD_CSS = """
:host { --af-border: #e5e7eb; }
.af-card { border: 1px solid var(--af-border); border-radius: 8px; padding: 10px 14px;
           background: white; }
.af-muted { color: #6b7280; font-size: 12px; }
.af-stat { display: inline-block; margin-right: 28px; }
.af-stat b { display: block; font-size: 18px; color: #111827; }
.af-stat span { color: #6b7280; font-size: 12px; text-transform: uppercase; }
.af-error { background: #fef2f2; border: 1px solid #fecaca; color: #991b1b; border-radius: 6px;
            padding: 8px 12px; white-space: pre-wrap; }
table.af-table { border-collapse: collapse; width: 100%; font-size: 13px; }
table.af-table.af-fixed { table-layout: fixed; }
table.af-table.af-fixed th:first-child { width: 150px; }
table.af-table th { text-align: left; background: #f9fafb; color: #374151; font-weight: 600; }
table.af-table th, table.af-table td { border-bottom: 1px solid var(--af-border);
           padding: 6px 8px; vertical-align: top; }
table.af-table td pre { margin: 0; white-space: pre-wrap; word-break: break-word;
           font-size: 12px; max-height: 160px; overflow: auto; }
table.af-table tr.af-diff td { background: #fffbeb; }
table.af-table tr.af-diff td:first-child { border-left: 3px solid #f59e0b; }
.af-delta-up { color: #b91c1c; } .af-delta-down { color: #15803d; }
"""

#: Values larger than this are shown as (truncated) text: a JSON tree of megabytes
#: would freeze the browser tab.
_MAX_JSON_CHARS = 100_000


def badge(status: str | None) -> str:
    """An HTML pill for a status (inline styles: it is also used inside Tabulator cells)."""
    text = status or "unknown"
    color = STATUS_COLORS.get(text, "#6b7280")
    return (
        f'<span class="af-badge af-status-{html.escape(text)}" style="background:{color}1a;'
        f"color:{color};border:1px solid {color}66;border-radius:10px;padding:1px 8px;"
        f'font-size:12px;font-weight:600;white-space:nowrap">{html.escape(text)}</span>'
    )


def fmt_time(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms < 1:
        return f"{ms:.2f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    minutes, seconds = divmod(ms / 1000, 60)
    return f"{int(minutes)} min {seconds:.0f} s"


def fmt_cost(usd: float | None) -> str:
    if not usd:
        return "$0"
    return f"${usd:.4f}" if usd < 1 else f"${usd:.2f}"


def fmt_tokens(usage: Any) -> str:
    if isinstance(usage, dict):
        total = usage.get("total")
        return f"{int(total):,}" if isinstance(total, int | float) else "0"
    if isinstance(usage, int | float):
        return f"{int(usage):,}"
    return "0"


def short_id(execution_id: str) -> str:
    return execution_id[:8]


def to_json_text(value: Any, limit: int = _MAX_JSON_CHARS) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=True)
    if len(text) > limit:
        return text[:limit] + f"\n… ({len(text) - limit:,} more characters)"
    return text


def json_view(value: Any, *, name: str = "") -> pn.viewable.Viewable:
    """A collapsible JSON tree, or plain text for scalars and very large values."""
    if isinstance(value, dict | list) and value:
        text = json.dumps(value, default=str)
        if len(text) <= _MAX_JSON_CHARS:
            return pn.pane.JSON(
                text,
                depth=2,
                name=name,
                theme="light",
                sizing_mode="stretch_width",
                styles={"overflow-x": "auto"},
            )
    if value is None or value == {} or value == []:
        return pn.pane.HTML('<span class="af-muted">(none)</span>', stylesheets=[CARD_CSS])
    return pn.pane.HTML(
        f"<pre style='margin:0;white-space:pre-wrap;word-break:break-word'>"
        f"{html.escape(to_json_text(value))}</pre>",
        sizing_mode="stretch_width",
    )


def set_text(widget: Any, text: str) -> None:
    """Set a text input from Python: ``value_input`` too, or a stale copy of the last
    typing would hide the browser's next identical keystrokes (and be read back)."""
    widget.value_input = text
    widget.value = text


def message(text: str, level: str = "danger") -> pn.pane.Alert:
    """An inline message next to a form (stays until the next action, unlike a toast)."""
    return pn.pane.Alert(text, alert_type=level, sizing_mode="stretch_width")
