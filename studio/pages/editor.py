"""The workflow editor: a React Flow canvas of the canonical definition.

The canvas holds the document: every drawn node and edge carries its canonical dict
(``studio.convert``), and :meth:`EditorPage.document` rebuilds the definition from the
canvas at any time. Every change (a drop, a connection, a deletion, a config edit, a
move) is committed: recorded for undo, validated with the engine, and drawn (invalid
nodes red, their issues next to their fields). Saving stores a new version.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from collections.abc import Iterator, Mapping
from html import escape
from typing import TYPE_CHECKING, Any

import panel as pn
from panel_reactflow import ReactFlow

from engine import (
    DefinitionError,
    ValidationIssue,
    WorkflowDefinition,
    WorkflowValidationError,
    default_registry,
    load_definition,
    validate_definition,
)
from studio.convert import (
    ERROR_HANDLE,
    FLOW_KEY,
    auto_layout,
    edge_look,
    from_flow,
    node_classes,
    node_handles,
    node_type_spec,
    to_flow,
)
from studio.history import Clipboard, History, copy_nodes, diff_documents, paste, unique_id
from studio.pages._catalog import CANVAS_CSS, label_of, palette_items, starter_config
from studio.pages._config_panel import ConfigPanel
from studio.pages._palette import DRAG_TYPE, Palette
from studio.pages._run_panel import RunPanel

if TYPE_CHECKING:
    from store.workflows import WorkflowRecord
    from studio.app import StudioApp

__all__ = ["EditorPage"]

MOVE_MERGE_S = 0.6
PASTE_STEP = 40.0

_CSS = """
.af-toolbar { align-items: center; gap: 2px; border-bottom: 1px solid #e2e8f0;
  padding: 2px 4px; background: #f8fafc; }
.af-badge { font-size: 12px; color: #334155; padding: 0 8px; white-space: nowrap; }
.af-badge .dirty { color: #b45309; font-weight: 600; }
.af-badge .clean { color: #15803d; }
.af-problems { font-size: 12px; padding: 4px 12px; border-bottom: 1px solid #e2e8f0; }
.af-problems .ok { color: #15803d; }
.af-problems .bad { color: #b91c1c; }
.af-diff { font: 12px/1.45 ui-monospace, SFMono-Regular, Menlo, monospace; white-space: pre;
  overflow: auto; max-height: 420px; background: #f8fafc; border: 1px solid #e2e8f0;
  border-radius: 8px; padding: 6px 8px; }
.af-diff .add { background: #dcfce7; color: #14532d; display: block; }
.af-diff .del { background: #fee2e2; color: #7f1d1d; display: block; }
.af-diff .hunk { color: #6366f1; display: block; }
.af-side-title { font-size: 12px; color: #64748b; margin: 0 10px; }
"""


def _no_editor(*_args: Any, **_kwargs: Any) -> None:
    """panel-reactflow's built-in editors are replaced by the side config panel."""
    return None


def canonical(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """The document as the store would keep it, or ``None`` when it is not a workflow."""
    try:
        return load_definition(dict(doc)).to_dict()
    except (DefinitionError, WorkflowValidationError):
        return None


class EditorPage:
    def __init__(self, app: StudioApp) -> None:
        self.app = app
        self.registry = default_registry()
        self.workflow_id: str | None = None
        self.record: WorkflowRecord | None = None
        self.history = History()
        self.clipboard = Clipboard()
        self.issues: list[ValidationIssue] = []
        self.selected: list[str] = []
        self.selected_edges: list[str] = []
        self.run_status: dict[str, str] = {}
        self._base: dict[str, Any] = {}
        self._saved: dict[str, Any] | None = None
        self._invalid: set[str] = set()
        self._quiet_depth = 0
        self._pastes = 0
        self._last_move = 0.0
        self._move_group = 0
        self.editing: str | None = None

        self.flow = ReactFlow(
            nodes=[],
            edges=[],
            node_types={},
            editor_mode="side",
            default_node_editor=_no_editor,
            default_edge_editor=_no_editor,
            drop_types=[DRAG_TYPE],
            connection_validation={"direction": True, "cycles": True, "duplicates": True},
            default_edge_options={"markerEnd": {"type": "arrowclosed", "width": 18, "height": 18}},
            stylesheets=[CANVAS_CSS],
            min_zoom=0.2,
            max_zoom=1.5,
            sizing_mode="stretch_both",
            min_height=520,
            css_classes=["af-canvas"],
        )
        for name in ("edge_added", "node_deleted", "edge_deleted"):
            self.flow.on(name, self._on_graph_event)
        self.flow.on("node_moved", self._on_moved)
        self.flow.on("selection_changed", self._on_selection)
        self.flow.on("drop", self._on_drop)

        self.palette = Palette(
            on_action=self._on_palette, items=palette_items(self.registry), width=190
        )
        self.config = ConfigPanel(self.registry, self._on_config)
        self.run_panel = RunPanel(self)
        self._build_toolbar()
        self._build_versions()
        self._build_settings()
        self.problems = pn.pane.HTML(
            "", sizing_mode="stretch_width", css_classes=["af-problems-bar"], stylesheets=[_CSS]
        )
        self.tabs = pn.Tabs(
            ("Node", pn.Column(self.config.view(), scroll=True, sizing_mode="stretch_both")),
            ("Run", pn.Column(self.run_panel.view(), scroll=True, sizing_mode="stretch_both")),
            ("Versions", pn.Column(self.versions_box, scroll=True, sizing_mode="stretch_both")),
            ("Workflow", pn.Column(self.settings_box, scroll=True, sizing_mode="stretch_both")),
            width=400,
            sizing_mode="stretch_height",
            dynamic=False,
        )
        self.body = pn.Column(
            self.toolbar,
            self.problems,
            pn.Row(
                pn.Column(
                    pn.pane.HTML(
                        "<div class='af-side-title'>Drag onto the canvas, or click</div>",
                        stylesheets=[_CSS],
                    ),
                    self.palette,
                    width=210,
                    scroll=True,
                    sizing_mode="stretch_height",
                ),
                self.flow,
                self.tabs,
                sizing_mode="stretch_both",
                min_height=560,
            ),
            sizing_mode="stretch_both",
            stylesheets=[_CSS],
        )
        go = pn.widgets.Button(name="Go to workflows", button_type="primary")
        go.on_click(lambda _e: self.app.show("workflows"))
        self.placeholder = pn.Column(
            pn.pane.Markdown("### No workflow open\nOpen one from the Workflows page."), go
        )
        self.layout = pn.Column(self.placeholder, sizing_mode="stretch_both")

    # -- page protocol ----------------------------------------------------------------
    def view(self) -> pn.viewable.Viewable:
        return self.layout

    def refresh(self) -> None:
        """Shown again: keep the canvas (it may hold unsaved work); re-read versions."""
        if self.workflow_id is not None:
            self._refresh_versions()

    def load(self, workflow_id: str) -> None:
        """Open a stored workflow's latest version.

        Opening the workflow already on the canvas keeps its unsaved changes; opening
        another one drops them (with a warning).
        """
        if workflow_id == self.workflow_id and self.dirty:
            self._refresh_versions()
            return
        if self.workflow_id is not None and self.dirty and self.record is not None:
            self.app.notify(f"Unsaved changes to '{self.record.name}' were dropped.", "warning")
        record = self.app.store.workflows.get(workflow_id)
        if workflow_id != self.workflow_id:
            self.run_panel.reset()  # a run of the previous workflow is not drawn here
        self.workflow_id = workflow_id
        self.record = record
        doc = record.definition.to_dict()
        self._saved = copy.deepcopy(doc)
        self._invalid = set()
        self.selected, self.selected_edges = [], []
        self.editing = None
        self._pastes = 0
        self.name_input.value = record.name
        self.save_message.value = ""
        self._check(doc)
        self._draw(doc)
        self.history.reset(doc)
        self._show_issues()
        self.show_node(None)
        self.run_panel.set_start(self._start_node(doc))
        self._show_settings(doc)
        self._refresh_versions()
        self._refresh_state(doc)
        self.layout.objects = [self.body]

    # -- the document -----------------------------------------------------------------
    def document(self) -> dict[str, Any]:
        """The canonical definition of what the canvas shows."""
        return from_flow(self.flow.nodes, self.flow.edges, self._base)

    def checked_definition(self) -> tuple[WorkflowDefinition | None, list[ValidationIssue]]:
        doc = self.document()
        try:
            definition = load_definition(doc)
        except WorkflowValidationError as exc:
            return None, exc.issues
        except DefinitionError as exc:
            return None, [ValidationIssue("schema", exc.message)]
        return definition, validate_definition(definition, self.registry)

    def saved_version_of(self, doc: Mapping[str, Any]) -> int | None:
        """The stored version number when ``doc`` is exactly it, else ``None``."""
        if self.record is not None and canonical(doc) == self._saved:
            return self.record.version
        return None

    @property
    def dirty(self) -> bool:
        return self.workflow_id is not None and canonical(self.document()) != self._saved

    # -- drawing ----------------------------------------------------------------------
    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Programmatic canvas changes: the graph events they fire are not new edits."""
        self._quiet_depth += 1
        try:
            yield
        finally:
            self._quiet_depth -= 1

    def _draw(self, doc: Mapping[str, Any]) -> None:
        """Replace the whole canvas (node classes must be final: see ``_restyle``)."""
        self._base = {k: copy.deepcopy(v) for k, v in doc.items() if k not in ("nodes", "edges")}
        graph = to_flow(doc, self.registry)
        for rf_node in graph.nodes:
            rf_node["className"] = self._classes(rf_node)
            # Keeps the selection: panel-reactflow derives it from these flags.
            rf_node["selected"] = rf_node["id"] in self.selected
        with self._quiet():
            self.flow.param.update(
                node_types=graph.node_types, nodes=graph.nodes, edges=graph.edges
            )

    def _classes(self, rf_node: Mapping[str, Any]) -> str:
        node_id = str(rf_node.get("id"))
        canonical_type = str(rf_node.get("data", {}).get(FLOW_KEY, {}).get("type", ""))
        status = self.run_status.get(node_id)
        return node_classes(
            canonical_type,
            "af-editing" if node_id == self.editing else "",
            "af-invalid" if node_id in self._invalid else "",
            f"af-run-{status}" if status else "",
        )

    def _restyle(self, node_ids: set[str] | None = None, *, full: bool = False) -> None:
        """Bring node classes up to date.

        ``full`` resends the node list instead of patching nodes one by one. It is a
        must right after another full update (an edit): panel-reactflow applies a full
        update on the next animation frame, over any patch that arrived meanwhile.
        """
        changed = False
        for rf_node in self.flow.nodes:
            if node_ids is not None and rf_node.get("id") not in node_ids:
                continue
            classes = self._classes(rf_node)
            if rf_node.get("className") == classes:
                continue
            changed = True
            if full:
                rf_node["className"] = classes
            else:
                self.flow.patch_node_props(str(rf_node["id"]), {"className": classes})
        if changed and full:
            self.flow.param.trigger("nodes")

    def _ensure_type(self, key: str, spec: dict[str, Any]) -> None:
        if self.flow.node_types.get(key) != spec:
            self.flow.node_types = {**self.flow.node_types, key: spec}

    def _rf_node(self, node_id: str) -> dict[str, Any] | None:
        for rf_node in self.flow.nodes:
            if rf_node.get("id") == node_id:
                return rf_node  # type: ignore[no-any-return]
        return None

    # -- committing edits ---------------------------------------------------------------
    def _commit(self, *, group: str | None = None) -> None:
        """An edit happened on the canvas: record it, validate, mark the nodes."""
        doc = self.document()
        self.history.record(doc, group=group)
        self._restyle(self._check(doc), full=True)
        self._show_issues()
        self._refresh_state(doc)

    def _replace(self, doc: dict[str, Any]) -> None:
        """An edit that redraws everything (add, paste, layout, a stored version)."""
        self._check(doc)
        self._draw(doc)
        self.history.record(self.document())
        self._show_issues()
        self._refresh_state(doc)

    def _check(self, doc: Mapping[str, Any]) -> set[str]:
        """Validate ``doc``; the ids of nodes whose invalid mark changes."""
        try:
            self.issues = validate_definition(load_definition(dict(doc)), self.registry)
        except WorkflowValidationError as exc:
            self.issues = exc.issues
        except DefinitionError as exc:
            self.issues = [ValidationIssue("schema", exc.message)]
        invalid = {issue.node_id for issue in self.issues if issue.node_id is not None}
        changed = invalid ^ self._invalid
        self._invalid = invalid
        return changed

    def _show_issues(self) -> None:
        if self.config.node is not None and self._shown_node() is None:
            self.show_node(None)  # its node was deleted
        if self.config.node is not None:
            node_id = self.config.node.get("id")
            self.config.set_issues([i for i in self.issues if i.node_id == node_id])
        self._show_problems()

    def _show_problems(self) -> None:
        if not self.issues:
            self.problems.object = (
                "<div class='af-problems'><span class='ok'>✓ No problems: ready to run.</span>"
                "</div>"
            )
            return
        shown = "; ".join(escape(str(issue)) for issue in self.issues[:4])
        more = f"; and {len(self.issues) - 4} more" if len(self.issues) > 4 else ""
        self.problems.object = (
            f"<div class='af-problems'><span class='bad'>⚠ {len(self.issues)} problem(s): "
            f"{shown}{more}</span></div>"
        )

    def _refresh_state(self, doc: Mapping[str, Any]) -> None:
        dirty = canonical(doc) != self._saved
        version = self.record.version if self.record else "-"
        state = (
            "<span class='dirty'>● unsaved changes</span>"
            if dirty
            else "<span class='clean'>saved</span>"
        )
        self.badge.object = f"<div class='af-badge'>v{version} · {state}</div>"
        self.undo_button.disabled = not self.history.can_undo
        self.redo_button.disabled = not self.history.can_redo
        self.paste_button.disabled = not self.clipboard

    # -- canvas events ------------------------------------------------------------------
    def _on_graph_event(self, payload: dict[str, Any]) -> None:
        if self._quiet_depth:
            return
        added = payload.get("edge") if payload.get("type") == "edge_added" else None
        if isinstance(added, dict) and added.get("sourceHandle") == ERROR_HANDLE:
            for rf_edge in self.flow.edges:
                if rf_edge.get("id") == added.get("id"):
                    edge_look(rf_edge)
            self.flow.param.trigger("edges")  # a full update: a patch could be overtaken
        self._commit()

    def _on_moved(self, _payload: dict[str, Any]) -> None:
        if self._quiet_depth:
            return
        now = time.monotonic()
        if now - self._last_move > MOVE_MERGE_S:
            self._move_group += 1
        self._last_move = now
        self.history.record(self.document(), group=f"move-{self._move_group}")
        self._refresh_state(self.document())

    def _on_selection(self, payload: dict[str, Any]) -> None:
        # The selection is the browser's: the editor never sets it (panel-reactflow keeps
        # the browser's flags across redraws, so a selection set here would not stick).
        self.selected = [str(n) for n in payload.get("nodes") or []]
        self.selected_edges = [str(e) for e in payload.get("edges") or []]
        shown = self._shown_node()
        if self.selected == [shown] or (not self.selected and shown is not None):
            return  # shown already (a click on the empty canvas keeps the panel)
        self._show_selected()

    def _shown_node(self) -> str | None:
        """The node in the config panel, if it is still on the canvas."""
        node_id = self.config.node.get("id") if self.config.node else None
        return str(node_id) if node_id is not None and self._rf_node(str(node_id)) else None

    def _show_selected(self) -> None:
        """Show the selected node's config (none selected: keep the shown one, refreshed)."""
        if len(self.selected) > 1:
            self.show_node(None)
            return
        self.show_node(self.selected[0] if self.selected else self._shown_node())

    def show_node(self, node_id: str | None) -> None:
        """Put a node in the config panel (outlined on the canvas as the one edited)."""
        rf_node = self._rf_node(node_id) if node_id else None
        node = from_flow([rf_node], [], {})["nodes"][0] if rf_node else None
        issues = [i for i in self.issues if node and i.node_id == node.get("id")]
        previous = self.editing
        self.editing = str(node["id"]) if node else None
        self.config.show(node, issues)
        if previous != self.editing:
            self._restyle({n for n in (previous, self.editing) if n})
        if node is not None:
            self.tabs.active = 0

    def _on_drop(self, payload: dict[str, Any]) -> None:
        data = payload.get("data")
        node_type = data.get("type") if isinstance(data, dict) else data
        position = payload.get("position") or {}
        if not isinstance(node_type, str) or node_type not in self.registry:
            self.app.notify(f"Cannot add a node of type {node_type!r}", "warning")
            return
        x = float(position.get("x", 0.0)) - 84.0
        y = float(position.get("y", 0.0)) - 24.0
        self.add_node(node_type, (x, y))

    def _on_palette(self, msg: dict[str, Any]) -> None:
        action = msg.get("action")
        if action == "add" and isinstance(msg.get("node_type"), str):
            self.add_node(str(msg["node_type"]))
        elif action in ("undo", "redo", "copy", "paste", "save"):
            getattr(self, action)()

    # -- edits ------------------------------------------------------------------------
    def add_node(self, node_type: str, position: tuple[float, float] | None = None) -> str:
        """Add a node with its starter config; its id (the config panel shows it)."""
        doc = self.document()
        node_id = unique_id(node_type, [str(n["id"]) for n in doc["nodes"]])
        if position is None:
            position = self._free_spot(doc)
        suffix = node_id[len(node_type) :].replace("_", " ")
        config = starter_config(node_type)
        if node_type == "llm":
            config["model"] = self._default_model() or config["model"]
        node = {
            "id": node_id,
            "type": node_type,
            "position": {"x": position[0], "y": position[1]},
            "data": {
                "label": f"{label_of(node_type)}{suffix}",
                "config": config,
            },
        }
        doc["nodes"].append(node)
        self.editing = node_id  # drawn outlined at once, then shown in the panel
        self._replace(doc)
        self.show_node(node_id)
        return node_id

    def _default_model(self) -> str | None:
        """The Settings page's default model for new LLM nodes, if one is set."""
        try:
            from studio.preferences import load_preferences

            return load_preferences(self.app.store).default_model
        except Exception:  # preferences are optional; the node keeps its starter model
            return None

    def _free_spot(self, doc: Mapping[str, Any]) -> tuple[float, float]:
        """Right of the selected node (else of everything), moved down until it is free."""
        spots = [
            (
                float((n.get("position") or {}).get("x", 0.0)),
                float((n.get("position") or {}).get("y", 0.0)),
            )
            for n in doc["nodes"]
        ]
        by_id = dict(zip((str(n["id"]) for n in doc["nodes"]), spots, strict=True))
        if len(self.selected) == 1 and self.selected[0] in by_id:
            x, y = by_id[self.selected[0]]
            x += 280.0
        elif spots:
            x, y = max(s[0] for s in spots) + 280.0, sum(s[1] for s in spots) / len(spots)
        else:
            return 0.0, 0.0
        while any(abs(x - sx) < 220.0 and abs(y - sy) < 90.0 for sx, sy in spots):
            y += 110.0
        return x, y

    def _on_config(self, node_id: str, node: dict[str, Any]) -> None:
        rf_node = self._rf_node(node_id)
        if rf_node is None:
            return
        edges = self.document()["edges"]
        with self._quiet():
            self.flow.patch_node_data(node_id, {FLOW_KEY: node})
            label = str((node.get("data") or {}).get("label") or node_id)
            if rf_node.get("label") != label:
                self.flow.patch_node_props(node_id, {"label": label})
            inputs, outputs = node_handles(node, edges, self.registry)
            key, spec = node_type_spec(str(node.get("type")), inputs, outputs)
            if rf_node.get("type") != key:
                self._ensure_type(key, spec)
                self.flow.patch_node_props(node_id, {"type": key})
        self._commit()
        if node.get("type") == "start":
            self.run_panel.set_start(node)

    def delete_selected(self) -> None:
        nodes, edges = list(self.selected), list(self.selected_edges)
        if not nodes and not edges:
            self.app.notify("Select nodes or edges to delete first.", "info")
            return
        with self._quiet():
            self.flow.remove_edge(edges)
            self.flow.remove_node(nodes)
        self.selected, self.selected_edges = [], []
        self.show_node(None)
        self._commit()

    def copy(self) -> None:
        if not self.selected:
            self.app.notify("Select the nodes to copy first.", "info")
            return
        self.clipboard = copy_nodes(self.document(), self.selected)
        self._pastes = 0
        self._refresh_state(self.document())
        self.app.notify(f"Copied {len(self.clipboard.nodes)} node(s).", "info")

    def paste(self) -> None:
        if not self.clipboard:
            return
        self._pastes += 1
        step = PASTE_STEP * self._pastes
        doc, new_ids = paste(self.document(), self.clipboard, offset=(step, step))
        self.editing = new_ids[0] if len(new_ids) == 1 else self.editing
        self._replace(doc)
        if len(new_ids) == 1:
            self.show_node(new_ids[0])

    def undo(self) -> None:
        self._travel(self.history.undo())

    def redo(self) -> None:
        self._travel(self.history.redo())

    def _travel(self, doc: dict[str, Any] | None) -> None:
        if doc is None:
            return
        self._check(doc)
        self._draw(doc)
        self._show_issues()
        self._refresh_state(doc)
        self._show_settings(doc)
        self.run_panel.set_start(self._start_node(doc))
        self.selected = [n for n in self.selected if self._rf_node(n) is not None]
        self._show_selected()

    def layout_graph(self) -> None:
        self._replace(auto_layout(self.document()))

    def save(self) -> None:
        """Store the canvas as a new version (a workflow with problems saves too, warned)."""
        if self.workflow_id is None:
            return
        doc = self.document()
        try:
            definition = load_definition(doc)
        except (DefinitionError, WorkflowValidationError) as exc:
            self.app.notify(f"Not saved: {exc}", "error")
            return
        store = self.app.store
        record = store.workflows.save(
            self.workflow_id, definition, message=self.save_message.value.strip() or None
        )
        name = self.name_input.value.strip()
        if name and name != record.name:
            record = store.workflows.rename(self.workflow_id, name=name)
        self.record = record
        self._saved = definition.to_dict()
        self.save_message.value = ""
        self._refresh_versions()
        self._refresh_state(doc)
        problems = f" ({len(self.issues)} problem(s) remain)" if self.issues else ""
        level = "warning" if self.issues else "success"
        self.app.notify(f"Saved version {record.version}{problems}.", level)

    # -- toolbar ----------------------------------------------------------------------
    def _build_toolbar(self) -> None:
        self.name_input = pn.widgets.TextInput(
            name="", placeholder="Workflow name", width=220, css_classes=["af-name"]
        )
        self.badge = pn.pane.HTML("", css_classes=["af-badge-pane"], stylesheets=[_CSS])
        self.save_message = pn.widgets.TextInput(
            placeholder="Version note (optional)", width=190, css_classes=["af-save-note"]
        )
        self.save_button = pn.widgets.Button(
            name="Save", button_type="primary", css_classes=["af-save"], width=80
        )

        def button(label: str, action: Any, tip: str, css: str) -> pn.widgets.Button:
            made = pn.widgets.Button(
                name=label, button_type="light", description=tip, css_classes=[css], width=78
            )
            made.on_click(lambda _event: action())
            return made

        self.save_button.on_click(lambda _event: self.save())
        self.undo_button = button("↶ Undo", self.undo, "Undo (Ctrl+Z)", "af-undo")
        self.redo_button = button("↷ Redo", self.redo, "Redo (Ctrl+Shift+Z)", "af-redo")
        self.copy_button = button("Copy", self.copy, "Copy the selected nodes (Ctrl+C)", "af-copy")
        self.paste_button = button("Paste", self.paste, "Paste (Ctrl+V)", "af-paste")
        self.delete_button = button(
            "Delete", self.delete_selected, "Delete the selection (Del)", "af-delete"
        )
        self.layout_button = button(
            "Layout", self.layout_graph, "Arrange left to right", "af-layout"
        )
        self.toolbar = pn.Row(
            self.name_input,
            self.badge,
            self.save_message,
            self.save_button,
            pn.Spacer(width=12),
            self.undo_button,
            self.redo_button,
            self.copy_button,
            self.paste_button,
            self.delete_button,
            self.layout_button,
            sizing_mode="stretch_width",
            css_classes=["af-toolbar"],
        )

    # -- versions ---------------------------------------------------------------------
    def _build_versions(self) -> None:
        self.version_list = pn.pane.HTML("", sizing_mode="stretch_width", stylesheets=[_CSS])
        self.version_a = pn.widgets.Select(name="Compare", width=170)
        self.version_b = pn.widgets.Select(name="with", width=170)
        self.diff_button = pn.widgets.Button(name="Show diff", button_type="default")
        self.diff_button.on_click(lambda _event: self.show_diff())
        self.load_version_button = pn.widgets.Button(
            name="Put the second version on the canvas", button_type="light"
        )
        self.load_version_button.on_click(lambda _event: self.load_version())
        self.diff_view = pn.pane.HTML("", sizing_mode="stretch_width", stylesheets=[_CSS])
        self.versions_box = pn.Column(
            self.version_list,
            pn.Row(self.version_a, self.version_b),
            pn.Row(self.diff_button, self.load_version_button),
            self.diff_view,
            sizing_mode="stretch_width",
        )

    def _refresh_versions(self) -> None:
        if self.workflow_id is None:
            return
        versions = self.app.store.workflows.versions(self.workflow_id)
        rows = "".join(
            f"<tr><td><b>v{v.version}</b></td><td>{escape(v.message or '')}</td>"
            f"<td>{v.created_at:%Y-%m-%d %H:%M:%S}</td></tr>"
            for v in reversed(versions)
        )
        self.version_list.object = (
            "<table class='af-versions' style='font-size:12px;width:100%'>"
            "<tr><th align=left>Version</th><th align=left>Note</th>"
            f"<th align=left>Saved</th></tr>{rows}</table>"
        )
        options = {f"v{v.version}": v.version for v in reversed(versions)}
        self.version_a.options = options
        self.version_b.options = options
        if versions:
            self.version_b.value = versions[-1].version
            self.version_a.value = (
                versions[-2].version if len(versions) > 1 else versions[-1].version
            )

    def show_diff(self) -> list[str]:
        if self.workflow_id is None or self.version_a.value is None or self.version_b.value is None:
            return []
        repo = self.app.store.workflows
        a = repo.get_version(self.workflow_id, int(self.version_a.value))
        b = repo.get_version(self.workflow_id, int(self.version_b.value))
        lines = diff_documents(
            a.definition.to_dict(),
            b.definition.to_dict(),
            old_name=f"v{a.version}",
            new_name=f"v{b.version}",
        )
        if not lines:
            self.diff_view.object = "<div class='af-diff'>The two versions are identical.</div>"
            return lines
        out = []
        for line in lines:
            css = ""
            if line.startswith("@@"):
                css = "hunk"
            elif line.startswith("+") and not line.startswith("+++"):
                css = "add"
            elif line.startswith("-") and not line.startswith("---"):
                css = "del"
            out.append(f"<span class='{css}'>{escape(line)}</span>" if css else escape(line))
        self.diff_view.object = "<div class='af-diff'>" + "\n".join(out) + "</div>"
        return lines

    def load_version(self) -> None:
        """Put a stored version on the canvas as an (undoable) edit; save to keep it."""
        if self.workflow_id is None or self.version_b.value is None:
            return
        version = self.app.store.workflows.get_version(self.workflow_id, int(self.version_b.value))
        doc = version.definition.to_dict()
        self._replace(doc)
        self._show_settings(doc)
        self.run_panel.set_start(self._start_node(doc))
        self.app.notify(f"v{version.version} is on the canvas; Save to make it the latest.")

    # -- workflow settings ------------------------------------------------------------
    def _build_settings(self) -> None:
        self.settings_input = pn.widgets.TextAreaInput(
            name="Settings (timeout, retryPolicy, errorHandling, variables, …)",
            rows=14,
            sizing_mode="stretch_width",
        )
        self.settings_apply = pn.widgets.Button(name="Apply settings", button_type="default")
        self.settings_apply.on_click(lambda _event: self.apply_settings())
        self.settings_message = pn.pane.HTML("", sizing_mode="stretch_width")
        self.settings_box = pn.Column(
            self.settings_input,
            self.settings_apply,
            self.settings_message,
            sizing_mode="stretch_width",
        )

    def _show_settings(self, doc: Mapping[str, Any]) -> None:
        self.settings_input.value = json.dumps(doc.get("settings", {}), indent=2)
        self.settings_message.object = ""

    def apply_settings(self) -> bool:
        from pydantic import ValidationError

        from engine import WorkflowSettings

        try:
            settings = json.loads(self.settings_input.value or "{}")
            if not isinstance(settings, dict):
                raise ValueError("settings must be a JSON object")
            WorkflowSettings.model_validate(settings)
        except (ValueError, ValidationError) as exc:
            first = str(exc).splitlines()[0] if isinstance(exc, ValidationError) else str(exc)
            detail = (
                "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                if isinstance(exc, ValidationError)
                else first
            )
            self.settings_message.object = (
                f"<div style='color:#b91c1c;font-size:12px'>⚠ {escape(detail)} (not applied)</div>"
            )
            return False
        self._base["settings"] = settings
        self.settings_message.object = "<div style='color:#15803d;font-size:12px'>Applied.</div>"
        self._commit()
        return True

    @staticmethod
    def _start_node(doc: Mapping[str, Any]) -> dict[str, Any] | None:
        for node in doc.get("nodes", []):
            if node.get("type") == "start":
                return dict(node)
        return None

    # -- run statuses (called by the run panel) -----------------------------------------
    def set_run_statuses(self, statuses: Mapping[str, str]) -> None:
        self.run_status.update(statuses)
        self._restyle(set(statuses))

    def clear_run_statuses(self) -> None:
        previous = set(self.run_status)
        self.run_status = {}
        self._restyle(previous)

    def settle_run_statuses(self) -> None:
        """The run ended: nodes still running were cancelled; pending ones never ran."""
        changed = set()
        for node_id, status in list(self.run_status.items()):
            if status in ("running", "retrying"):
                self.run_status[node_id] = "cancelled"
                changed.add(node_id)
            elif status == "pending":
                del self.run_status[node_id]
                changed.add(node_id)
        self._restyle(changed)
