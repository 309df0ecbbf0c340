"""The Workflows page: list, search, create, duplicate, (soft) delete, import, export, open."""

from __future__ import annotations

import io
import re
from html import escape
from typing import TYPE_CHECKING, Any

import panel as pn

if TYPE_CHECKING:
    from store.workflows import WorkflowRecord
    from studio.app import StudioApp

__all__ = ["WorkflowsPage", "new_workflow_document"]

_STATUS_COLOURS = {
    "succeeded": "#15803d",
    "failed": "#b91c1c",
    "running": "#1d4ed8",
    "cancelled": "#6b7280",
    "interrupted": "#b45309",
    "timed_out": "#b91c1c",
}
_CSS = """
.af-page-title { font-size: 20px; font-weight: 600; margin: 4px 10px 0; color: #0f172a; }
.af-page-sub { font-size: 13px; color: #64748b; margin: 0 10px 6px; }
.af-msg-error { color: #b91c1c; font-size: 13px; white-space: pre-wrap; }
.af-msg-ok { color: #15803d; font-size: 13px; }
"""


def new_workflow_document(settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """A new workflow: start (one text input) → end (echoes it): valid and runnable."""
    return {
        "version": "1.0.0",
        "nodes": [
            {
                "id": "start",
                "type": "start",
                "position": {"x": 0.0, "y": 100.0},
                "data": {
                    "label": "Start",
                    "config": {"inputs": [{"name": "text", "type": "string", "required": True}]},
                },
            },
            {
                "id": "end",
                "type": "end",
                "position": {"x": 320.0, "y": 100.0},
                "data": {"label": "End", "config": {"outputs": {"text": "{{start.text}}"}}},
            },
        ],
        "edges": [
            {
                "id": "e1",
                "source": "start",
                "sourceHandle": "out",
                "target": "end",
                "targetHandle": "in",
            }
        ],
        "settings": {"timeout": 300, **(settings or {})},
    }


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower() or "workflow"


class WorkflowsPage:
    def __init__(self, app: StudioApp) -> None:
        import pandas as pd

        self.app = app
        self.records: list[WorkflowRecord] = []
        self.search = pn.widgets.TextInput(
            placeholder="Search by name or description…", width=320, css_classes=["af-search"]
        )
        self.search.param.watch(lambda _e: self.refresh(), "value_input")
        self.show_deleted = pn.widgets.Checkbox(name="Show deleted", width=120)
        self.show_deleted.param.watch(lambda _e: self.refresh(), "value")
        self.new_name = pn.widgets.TextInput(
            placeholder="New workflow name", width=220, css_classes=["af-new-name"]
        )
        self.create_button = pn.widgets.Button(
            name="+ New workflow", button_type="primary", css_classes=["af-create"]
        )
        self.create_button.on_click(lambda _e: self.create())

        self.table = pn.widgets.Tabulator(
            pd.DataFrame(columns=self._columns()),
            show_index=False,
            disabled=True,
            selectable=1,
            hidden_columns=["id"],
            buttons={"open": "<b style='color:#2563eb'>Open &rsaquo;</b>"},
            formatters={"Last run": {"type": "html"}, "Name": {"type": "html"}},
            layout="fit_columns",
            widths={
                "Version": 90,
                "Nodes": 80,
                "Runs": 80,
                "Last run": 130,
                "Updated": 150,
                "open": 90,
            },
            pagination="local",
            page_size=15,
            sizing_mode="stretch_width",
            css_classes=["af-workflows-table"],
        )
        self.table.on_click(self._on_cell_click)
        self.table.param.watch(lambda _e: self._on_select(), "selection")

        self.open_button = pn.widgets.Button(name="Open in editor", button_type="primary")
        self.duplicate_button = pn.widgets.Button(name="Duplicate", button_type="default")
        self.delete_button = pn.widgets.Button(name="Delete", button_type="danger")
        self.export_button = pn.widgets.FileDownload(
            callback=self._export_file,
            filename="workflow.json",
            label="Export JSON",
            button_type="default",
            embed=False,
            width=130,
            css_classes=["af-export"],
        )
        self.open_button.on_click(lambda _e: self.open_selected())
        self.duplicate_button.on_click(lambda _e: self.duplicate_selected())
        self.delete_button.on_click(lambda _e: self.delete_or_restore_selected())

        self.import_file = pn.widgets.FileInput(accept=".json,application/json")
        self.import_text = pn.widgets.TextAreaInput(
            placeholder="…or paste a workflow's JSON here",
            rows=6,
            sizing_mode="stretch_width",
            css_classes=["af-import-text"],
        )
        self.import_name = pn.widgets.TextInput(placeholder="Name (optional)", width=220)
        self.import_button = pn.widgets.Button(
            name="Import", button_type="primary", css_classes=["af-import"]
        )
        self.import_button.on_click(lambda _e: self.import_document())
        self.import_message = pn.pane.HTML("", sizing_mode="stretch_width", stylesheets=[_CSS])

        self.layout = pn.Column(
            pn.pane.HTML(
                "<div class='af-page-title'>Workflows</div>"
                "<div class='af-page-sub'>Open one to edit and run it on the canvas.</div>",
                stylesheets=[_CSS],
            ),
            pn.Row(
                self.search,
                self.show_deleted,
                pn.Spacer(),
                self.new_name,
                self.create_button,
                sizing_mode="stretch_width",
            ),
            self.table,
            pn.Row(self.open_button, self.duplicate_button, self.export_button, self.delete_button),
            pn.Card(
                pn.Row(self.import_file, self.import_name, self.import_button),
                self.import_text,
                self.import_message,
                title="Import a workflow (JSON)",
                collapsed=False,
                sizing_mode="stretch_width",
            ),
            sizing_mode="stretch_width",
            stylesheets=[_CSS],
        )
        self._on_select()

    def view(self) -> pn.viewable.Viewable:
        return self.layout

    # -- the list ---------------------------------------------------------------------
    @staticmethod
    def _columns() -> list[str]:
        return ["id", "Name", "Description", "Version", "Nodes", "Last run", "Runs", "Updated"]

    def refresh(self) -> None:
        import pandas as pd

        selected = self.selected()
        self.records = self.app.store.workflows.list(
            search=self.search.value_input or None,
            include_deleted=bool(self.show_deleted.value),
        )
        rows = []
        for record in self.records:
            status = record.last_run_status
            colour = _STATUS_COLOURS.get(status or "", "#64748b")
            name = escape(record.name)
            if record.deleted_at is not None:
                name = f"<s>{name}</s> <i style='color:#b91c1c'>deleted</i>"
            rows.append(
                {
                    "id": record.id,
                    "Name": name,
                    "Description": record.description or "",
                    "Version": record.version,
                    "Nodes": len(record.definition.nodes),
                    "Last run": (
                        f"<span style='color:{colour};font-weight:600'>● {escape(status)}</span>"
                        if status
                        else "<span style='color:#94a3b8'>never run</span>"
                    ),
                    "Runs": record.run_count,
                    "Updated": f"{record.updated_at:%Y-%m-%d %H:%M}",
                }
            )
        self.table.value = pd.DataFrame(rows, columns=self._columns())
        ids = [r.id for r in self.records]
        self.table.selection = [ids.index(selected.id)] if selected and selected.id in ids else []
        self._on_select()

    def selected(self) -> WorkflowRecord | None:
        rows = self.table.selection
        if rows and int(rows[0]) < len(self.records):
            return self.records[int(rows[0])]
        return None

    def select(self, workflow_id: str) -> None:
        ids = [r.id for r in self.records]
        if workflow_id in ids:
            self.table.selection = [ids.index(workflow_id)]

    def _on_select(self) -> None:
        record = self.selected()
        for button in (self.open_button, self.duplicate_button, self.delete_button):
            button.disabled = record is None
        self.export_button.disabled = record is None
        deleted = record is not None and record.deleted_at is not None
        self.delete_button.name = "Restore" if deleted else "Delete"
        self.delete_button.button_type = "success" if deleted else "danger"
        self.open_button.disabled = record is None or deleted
        self.duplicate_button.disabled = record is None or deleted
        if record is not None:
            self.export_button.filename = f"{_slug(record.name)}.json"

    def _on_cell_click(self, event: Any) -> None:
        if getattr(event, "column", None) == "open" and event.row < len(self.records):
            record = self.records[event.row]
            if record.deleted_at is None:
                self.app.open_editor(record.id)

    # -- actions ----------------------------------------------------------------------
    def create(self) -> str:
        from engine import load_definition

        name = self.new_name.value.strip() or "Untitled workflow"
        record = self.app.store.workflows.create(
            load_definition(new_workflow_document(self._new_settings())), name=name
        )
        self.new_name.value = ""
        self.app.notify(f"Created '{name}'.", "success")
        self.app.open_editor(record.id)
        return record.id

    def _new_settings(self) -> dict[str, Any]:
        """The routing keys the Settings page asks new workflows to carry, if any."""
        try:
            from studio.preferences import load_preferences, workflow_settings

            return workflow_settings(load_preferences(self.app.store))
        except Exception:  # preferences are optional; a new workflow must still be made
            return {}

    def open_selected(self) -> None:
        record = self.selected()
        if record is not None and record.deleted_at is None:
            self.app.open_editor(record.id)

    def duplicate_selected(self) -> None:
        record = self.selected()
        if record is None:
            return
        copy = self.app.store.workflows.duplicate(record.id)
        self.refresh()
        self.select(copy.id)
        self._on_select()
        self.app.notify(f"Duplicated as '{copy.name}'.", "success")

    def delete_or_restore_selected(self) -> None:
        record = self.selected()
        if record is None:
            return
        if record.deleted_at is not None:
            self.app.store.workflows.restore(record.id)
            self.app.notify(f"Restored '{record.name}'.", "success")
        else:
            self.app.store.workflows.delete(record.id)
            self.app.notify(
                f"Deleted '{record.name}' (tick 'Show deleted' to restore it).", "warning"
            )
        self.refresh()

    def _export_file(self) -> io.StringIO:
        record = self.selected()
        if record is None:
            return io.StringIO("")
        return io.StringIO(self.app.store.workflows.export_json(record.id))

    def import_document(self) -> str | None:
        """Import the pasted text (else the chosen file); the new id, or ``None`` (why shown)."""
        from store import StoreError

        text = self.import_text.value or ""
        source = None
        if not text.strip() and self.import_file.value:
            raw = self.import_file.value
            source = self.import_file.filename
            try:
                text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            except UnicodeDecodeError:
                self._import_error("the file is not UTF-8 text")
                return None
        if not text.strip():
            self._import_error("paste a workflow's JSON or choose a .json file first")
            return None
        try:
            record = self.app.store.workflows.import_json(
                text, name=self.import_name.value.strip() or None, source=source
            )
        except StoreError as exc:
            issues = getattr(exc, "issues", None) or []
            more = "".join(f"\n• {issue}" for issue in issues[1:6])
            self._import_error(f"{exc.message}{more}")
            return None
        self.import_text.value = ""
        self.import_name.value = ""
        self.import_message.object = (
            f"<div class='af-msg-ok'>Imported '{escape(record.name)}' "
            f"({len(record.definition.nodes)} nodes).</div>"
        )
        self.app.notify(f"Imported '{record.name}'.", "success")
        self.refresh()
        self.select(record.id)
        self._on_select()
        return record.id

    def _import_error(self, message: str) -> None:
        self.import_message.object = (
            f"<div class='af-msg-error'>⚠ Not imported: {escape(message)}</div>"
        )
