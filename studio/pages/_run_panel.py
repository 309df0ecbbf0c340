"""The editor's Run tab: an input form from the ``start`` node, live statuses, tokens, logs.

The run executes in the server's event loop (``RunManager``); its events reach
:meth:`RunPanel.listener` synchronously inside the run. The listener only queues them
and schedules a flush on the loop, so a slow browser never slows the run, and an error
while drawing never reaches the engine. Status changes flush on the next loop turn;
token deltas are coalesced for up to ``DELTA_FLUSH_S``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

import panel as pn
from panel.io.document import hold

if TYPE_CHECKING:
    from engine import Event
    from studio.pages.editor import EditorPage

__all__ = ["RunPanel", "parse_inputs"]

_LOG = logging.getLogger(__name__)
DELTA_FLUSH_S = 0.05
MAX_LOG_LINES = 300

_CSS = """
.af-run-status { font-size: 13px; margin: 4px 10px; }
.af-run-status b.ok { color: #15803d; } .af-run-status b.bad { color: #b91c1c; }
.af-run-status b.busy { color: #1d4ed8; }
.af-log { font: 12px/1.45 ui-monospace, SFMono-Regular, Menlo, monospace; max-height: 220px;
  overflow-y: auto; background: #0f172a; color: #e2e8f0; border-radius: 8px; padding: 8px 10px; }
.af-log .warning { color: #fbbf24; } .af-log .error { color: #f87171; }
.af-log .ok { color: #86efac; } .af-log .muted { color: #94a3b8; }
.af-stream { font: 13px/1.5 ui-monospace, SFMono-Regular, Menlo, monospace; white-space: pre-wrap;
  background: #f8fafc; border: 1px solid #e2e8f0; border-radius: 8px; padding: 8px 10px;
  min-height: 48px; max-height: 220px; overflow-y: auto; }
.af-outputs { font: 12px/1.45 ui-monospace, SFMono-Regular, Menlo, monospace; white-space: pre-wrap;
  background: #f0fdf4; border: 1px solid #bbf7d0; border-radius: 8px; padding: 8px 10px;
  max-height: 260px; overflow: auto; }
.af-form-error { color: #b91c1c; font-size: 12px; margin: 0 10px; }
"""

_STATUS_OF = {
    "node_started": "running",
    "node_retrying": "retrying",
    "node_skipped": "skipped",
}


def parse_inputs(
    declarations: Sequence[Mapping[str, Any]], values: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """(inputs, errors by input name) from the form's raw values.

    Empty optional inputs are left out so the engine applies their defaults.
    """
    inputs: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for decl in declarations:
        name = str(decl.get("name"))
        kind = str(decl.get("type") or "any")
        raw = values.get(name)
        if kind == "boolean":
            inputs[name] = bool(raw)
            continue
        text = "" if raw is None else str(raw)
        if text.strip() == "":
            if decl.get("required") and decl.get("default") is None:
                errors[name] = "required"
            continue
        if kind == "string":
            inputs[name] = text
        elif kind in ("number", "integer"):
            number: int | float | None = _number(text, integer=kind == "integer")
            if number is None:
                errors[name] = f"not a{'n integer' if kind == 'integer' else ' number'}: {text!r}"
                continue
            inputs[name] = number
        else:
            try:
                inputs[name] = json.loads(text)
            except json.JSONDecodeError as exc:
                if kind == "any":
                    inputs[name] = text
                else:
                    errors[name] = f"invalid JSON: {exc.msg}"
    return inputs, errors


def _number(text: str, *, integer: bool) -> int | float | None:
    try:
        return int(text.strip())
    except ValueError:
        if integer:
            return None
    try:
        return float(text.strip())
    except ValueError:
        return None


class RunPanel:
    def __init__(self, editor: EditorPage) -> None:
        self.editor = editor
        self.declarations: list[dict[str, Any]] = []
        self.widgets: dict[str, Any] = {}
        self.form = pn.Column(sizing_mode="stretch_width")
        self.form_errors = pn.pane.HTML("", sizing_mode="stretch_width", stylesheets=[_CSS])
        self.run_button = pn.widgets.Button(
            name="▶ Run", button_type="success", css_classes=["af-run-button"], width=110
        )
        self.cancel_button = pn.widgets.Button(
            name="■ Cancel", button_type="warning", disabled=True, width=100
        )
        self.history_button = pn.widgets.Button(
            name="Open in history",
            button_type="light",
            disabled=True,
            width=140,
            css_classes=["af-history"],
        )
        self.run_button.on_click(self._on_run)
        self.cancel_button.on_click(self._on_cancel)
        self.history_button.on_click(self._on_history)
        self.status = pn.pane.HTML(
            "<div class='af-run-status'>Not run yet.</div>",
            sizing_mode="stretch_width",
            stylesheets=[_CSS],
        )
        self.stream = pn.pane.HTML(
            "<div class='af-stream'></div>",
            sizing_mode="stretch_width",
            css_classes=["af-tokens"],
            stylesheets=[_CSS],
        )
        self.logs = pn.pane.HTML(
            "<div class='af-log'></div>",
            sizing_mode="stretch_width",
            css_classes=["af-logs"],
            stylesheets=[_CSS],
        )
        self.outputs = pn.pane.HTML(
            "", sizing_mode="stretch_width", visible=False, stylesheets=[_CSS]
        )
        self.layout = pn.Column(
            pn.pane.Markdown("**Inputs** (from the start node)", margin=(0, 10)),
            self.form,
            self.form_errors,
            pn.Row(self.run_button, self.cancel_button, self.history_button),
            self.status,
            pn.pane.Markdown("**Streamed tokens**", margin=(0, 10)),
            self.stream,
            pn.pane.Markdown("**Outputs**", margin=(0, 10)),
            self.outputs,
            pn.pane.Markdown("**Log**", margin=(0, 10)),
            self.logs,
            sizing_mode="stretch_width",
            stylesheets=[_CSS],
        )
        self.execution_id: str | None = None
        self.result_status: str | None = None
        self._pending: list[Event] = []
        self._soon: asyncio.Handle | None = None
        self._later: asyncio.TimerHandle | None = None
        self._stream_text = ""
        self._stream_node: str | None = None
        self._log_lines: list[str] = []
        self._log_dirty = False

    def view(self) -> pn.viewable.Viewable:
        return self.layout

    # -- the form ---------------------------------------------------------------------
    def set_start(self, start: Mapping[str, Any] | None) -> None:
        """Rebuild the input form when the start node's declarations change."""
        config = ((start or {}).get("data") or {}).get("config") or {}
        raw = config.get("inputs")
        declarations = [
            dict(d)
            for d in (raw if isinstance(raw, list) else [])
            if isinstance(d, Mapping) and isinstance(d.get("name"), str) and d["name"]
        ]
        if declarations == self.declarations and self.widgets:
            return
        old = {name: widget.value for name, widget in self.widgets.items()}
        self.declarations = declarations
        self.widgets = {}
        for decl in declarations:
            self.widgets[decl["name"]] = self._input_widget(decl, old.get(decl["name"]))
        self.form.objects = list(self.widgets.values()) or [
            pn.pane.Markdown("*This workflow declares no inputs.*", margin=(0, 10))
        ]

    def _input_widget(self, decl: Mapping[str, Any], previous: Any) -> Any:
        name, kind = str(decl["name"]), str(decl.get("type") or "any")
        title = f"{name} ({kind}){' *' if decl.get('required') else ''}"
        default = decl.get("default")
        widget: Any
        value: Any
        if kind == "boolean":
            value = previous if isinstance(previous, bool) else bool(default)
            widget = pn.widgets.Checkbox(name=title, value=value)
        else:
            if isinstance(previous, str):
                value = previous
            elif default is None:
                value = ""
            else:
                value = default if isinstance(default, str) else json.dumps(default)
            cls = (
                pn.widgets.TextInput
                if kind in ("string", "number", "integer")
                else (pn.widgets.TextAreaInput)
            )
            widget = cls(name=title, value=value, sizing_mode="stretch_width")
            widget.css_classes = [f"af-input-{name}"]
        if decl.get("description"):
            widget.description = str(decl["description"])
        return widget

    def read_inputs(self) -> tuple[dict[str, Any], dict[str, str]]:
        values = {name: widget.value for name, widget in self.widgets.items()}
        return parse_inputs(self.declarations, values)

    # -- running ----------------------------------------------------------------------
    def _on_run(self, _event: Any) -> None:
        self.start()

    def start(self) -> str | None:
        """Start a run of what the canvas shows; its execution id, or ``None`` (with why)."""
        from engine import AgentFlowError

        editor = self.editor
        if editor.workflow_id is None:
            self._say("bad", "Open a workflow first.")
            return None
        inputs, errors = self.read_inputs()
        if errors:
            self.form_errors.object = "".join(
                f"<div class='af-form-error'>⚠ {escape(k)}: {escape(v)}</div>"
                for k, v in errors.items()
            )
            self._say("bad", "Fix the inputs first.")
            return None
        self.form_errors.object = ""
        definition, issues = editor.checked_definition()
        if definition is None or issues:
            count = len(issues) or 1
            self._say("bad", f"The workflow has {count} problem(s); see the Problems bar.")
            return None
        self._reset_view()
        try:
            run = editor.app.runner.start(
                editor.workflow_id,
                inputs,
                definition=definition,
                version=editor.saved_version_of(definition.to_dict()),
                listeners=[self.listener],
            )
        except AgentFlowError as exc:
            self._say("bad", f"Not started: {exc}")
            return None
        self.execution_id = run.execution_id
        self.result_status = None
        self.run_button.disabled = True
        self.cancel_button.disabled = False
        self.history_button.disabled = False
        self._say("busy", f"Running… <code>{escape(run.execution_id[:8])}</code>")
        return run.execution_id

    def listener(self, event: Event) -> None:
        """Called inside the run for every event: queue it, never raise."""
        try:
            self._pending.append(event)
            loop = asyncio.get_running_loop()
            if event.type == "node_delta":
                if self._later is None and self._soon is None:
                    self._later = loop.call_later(DELTA_FLUSH_S, self.flush)
            elif self._soon is None:
                self._soon = loop.call_soon(self.flush)
        except Exception:  # the run must go on whatever happens to this page
            _LOG.exception("studio run listener")

    def flush(self) -> None:
        """Apply queued events to the page (one batch of document changes)."""
        if self._soon is not None:
            self._soon.cancel()
        if self._later is not None:
            self._later.cancel()
        self._soon = self._later = None
        events, self._pending = self._pending, []
        if not events:
            return
        try:
            with hold():
                self._apply(events)
        except Exception:
            _LOG.exception("studio run view update")

    def _apply(self, events: list[Event]) -> None:
        statuses: dict[str, str] = {}
        stream_changed = False
        self._log_dirty = False
        finished = None
        for event in events:
            if getattr(event, "execution_id", None) != self.execution_id:
                continue
            kind = event.type
            node_id = getattr(event, "node_id", None)
            if kind == "run_started":
                statuses.update(dict.fromkeys(getattr(event, "node_ids", []), "pending"))
                self._log("muted", "run started")
            elif kind in _STATUS_OF and node_id:
                statuses[node_id] = _STATUS_OF[kind]
                if kind == "node_retrying":
                    error = getattr(event, "error", {}) or {}
                    self._log("warning", f"{node_id}: retrying: {error.get('message', '')}")
                elif kind == "node_skipped":
                    self._log("muted", f"{node_id}: skipped ({getattr(event, 'reason', '')})")
            elif kind == "node_succeeded" and node_id:
                reused = getattr(event, "cached", False) or getattr(event, "reused", False)
                statuses[node_id] = "cached" if reused else "succeeded"
                took = getattr(event, "duration_ms", 0.0)
                self._log("ok", f"{node_id}: {statuses[node_id]} in {took:.0f} ms")
            elif kind == "node_failed" and node_id:
                status = getattr(event, "status", "failed")
                statuses[node_id] = "cancelled" if status == "cancelled" else "failed"
                error = getattr(event, "error", {}) or {}
                self._log("error", f"{node_id}: {status}: {error.get('message', '')}")
            elif kind == "node_delta" and node_id:
                if node_id != self._stream_node:
                    self._stream_text += ("\n\n" if self._stream_text else "") + f"[{node_id}] "
                    self._stream_node = node_id
                self._stream_text += str(getattr(event, "delta", ""))
                stream_changed = True
            elif kind == "log":
                level = str(getattr(event, "level", "info"))
                where = f"{node_id}: " if node_id else ""
                self._log(level, f"{where}{getattr(event, 'message', '')}")
            elif kind == "run_finished":
                finished = event
        if statuses:
            self.editor.set_run_statuses(statuses)
        if stream_changed:
            self.stream.object = f"<div class='af-stream'>{escape(self._stream_text)}</div>"
        if finished is not None:
            self._finish(finished)
        if self._log_dirty:
            self.logs.object = "<div class='af-log'>" + "".join(self._log_lines) + "</div>"

    def _finish(self, event: Any) -> None:
        status = str(getattr(event, "status", "?"))
        self.result_status = status
        self.editor.settle_run_statuses()
        took = getattr(event, "duration_ms", 0.0)
        error = getattr(event, "error", None) or {}
        tokens = (getattr(event, "token_usage", None) or {}).get("total", 0)
        detail = f" · {tokens} tokens" if tokens else ""
        detail += f" · run <code class='af-run-id'>{escape(str(self.execution_id)[:8])}</code>"
        if status == "succeeded":
            self._say("ok", f"Succeeded in {took:.0f} ms{detail}.")
        else:
            message = error.get("message") if isinstance(error, dict) else None
            self._say(
                "bad",
                f"{status.capitalize()} after {took:.0f} ms"
                + (f": {escape(str(message))}" if message else "."),
            )
        self._log("ok" if status == "succeeded" else "error", f"run {status} in {took:.0f} ms")
        outputs = getattr(event, "outputs", {}) or {}
        text = json.dumps(outputs, indent=2, ensure_ascii=False, default=str)
        self.outputs.object = f"<div class='af-outputs'>{escape(text)}</div>"
        self.outputs.visible = True
        self.run_button.disabled = False
        self.cancel_button.disabled = True

    def _on_cancel(self, _event: Any) -> None:
        if self.execution_id and self.editor.app.runner.cancel(self.execution_id):
            self._say("busy", "Cancelling…")
            self.cancel_button.disabled = True

    def _on_history(self, _event: Any) -> None:
        if self.execution_id:
            self.editor.app.open_run(self.execution_id)

    # -- helpers ----------------------------------------------------------------------
    def reset(self) -> None:
        """Another workflow is on the canvas: stop showing the last run (it goes on)."""
        self.execution_id = None
        self.result_status = None
        self._reset_view()
        self.run_button.disabled = False
        self.cancel_button.disabled = True
        self.history_button.disabled = True
        self.form_errors.object = ""
        self.status.object = "<div class='af-run-status'>Not run yet.</div>"

    def _reset_view(self) -> None:
        self.editor.clear_run_statuses()
        self._pending = []
        self._stream_text, self._stream_node = "", None
        self._log_lines = []
        self.stream.object = "<div class='af-stream'></div>"
        self.logs.object = "<div class='af-log'></div>"
        self.outputs.object = ""
        self.outputs.visible = False

    def _log(self, level: str, message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        css = level if level in ("warning", "error", "ok", "muted") else ""
        self._log_lines.append(
            f"<div class='{css}'><span class='muted'>{stamp}</span> {escape(message)}</div>"
        )
        del self._log_lines[: max(0, len(self._log_lines) - MAX_LOG_LINES)]
        self._log_dirty = True

    def _say(self, tone: str, html: str) -> None:
        self.status.object = f"<div class='af-run-status'><b class='{tone}'>●</b> {html}</div>"
