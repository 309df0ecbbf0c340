"""The selected node's config form, generated from its type's JSON schema.

One widget per schema property: a select for enums and booleans, a text box for
strings and numbers (a number field also takes a ``{{reference}}``), a JSON box for
objects, arrays and untyped values. A field the user never touched stays absent from
the config, so opening and saving a node changes nothing. The engine's validation
issues for the node are shown under the fields they name; a JSON box that does not
parse keeps its text, shows the parse error and leaves the config as it was.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any

import panel as pn

if TYPE_CHECKING:
    from engine.errors import ValidationIssue
    from engine.nodes.registry import NodeRegistry

__all__ = ["ConfigPanel", "field_kind", "parse_field"]

POLICY_FIELDS = ("timeoutMs", "maxRetries", "errorHandling", "fallback", "cache")
LONG_TEXT = {"template", "code", "query", "userPrompt", "systemPrompt"}
UNSET = ""

_CSS = """
.af-field-error { color: #b91c1c; font-size: 12px; margin: -4px 10px 6px; }
.af-node-head { font-size: 12px; color: #475569; margin: 0 10px; }
.af-node-head code { background: #f1f5f9; padding: 1px 4px; border-radius: 4px; }
.af-issue-list { color: #b91c1c; font-size: 12px; margin: 4px 10px; }
"""


@dataclass(slots=True)
class _Field:
    key: str
    kind: str  # enum | boolean | text | longtext | integer | number | json | json_or_text
    widget: Any
    message: pn.pane.HTML


def _resolve(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = defs.get(ref.rsplit("/", 1)[1])
        if isinstance(target, Mapping):
            return target
    return schema


def field_kind(key: str, schema: Mapping[str, Any], defs: Mapping[str, Any]) -> str:
    """The widget kind for one JSON-schema property."""
    schema = _resolve(schema, defs)
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        schema = _resolve(options[0], defs)
    elif options:
        types = {s.get("type") for s in options}
        return "json_or_text" if "string" in types else "json"
    if "enum" in schema:
        return "enum"
    kind = schema.get("type")
    if kind == "string":
        return "longtext" if key in LONG_TEXT else "text"
    if kind in ("boolean", "integer", "number"):
        return str(kind)
    if kind in ("object", "array"):
        return "json"
    return "json_or_text"


def _enum_values(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> list[Any]:
    schema = _resolve(schema, defs)
    for option in schema.get("anyOf", []):
        if "enum" in option:
            return list(option["enum"])
    return list(schema.get("enum", []))


def parse_field(kind: str, text: Any) -> tuple[bool, Any, str | None]:
    """(set?, value, error) for what a widget holds; ``set`` False means "remove the key"."""
    if kind in ("enum", "boolean"):
        return (text != UNSET, text, None)
    if not isinstance(text, str):
        return (True, text, None)
    if kind in ("text", "longtext"):
        return (text != "", text, None)
    stripped = text.strip()
    if stripped == "":
        return (False, None, None)
    if kind in ("integer", "number"):
        try:
            return (True, int(stripped), None)
        except ValueError:
            pass
        try:
            return (True, float(stripped), None)
        except ValueError:
            return (True, stripped, None)  # a reference, or a mistake the validator names
    try:
        return (True, json.loads(stripped), None)
    except json.JSONDecodeError as exc:
        if kind == "json_or_text" or re.fullmatch(r"\{\{[^{}]+\}\}", stripped):
            return (True, text, None)
        return (False, None, f"invalid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}")


def _display(kind: str, present: bool, value: Any) -> Any:
    if kind in ("enum", "boolean"):
        return value if present else UNSET
    if not present:
        return ""
    if kind in ("text", "longtext"):
        return value if isinstance(value, str) else json.dumps(value)
    if kind in ("integer", "number"):
        return value if isinstance(value, str) else json.dumps(value)
    if kind == "json_or_text" and isinstance(value, str):
        try:
            json.loads(value)
        except json.JSONDecodeError:
            return value  # plain text shows as typed; JSON-looking text stays quoted
    return json.dumps(value, indent=2, ensure_ascii=False)


def _title(key: str) -> str:
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", key).lower()
    return words[:1].upper() + words[1:]


class ConfigPanel:
    """Edits one node at a time; reports a new canonical node dict through ``on_change``."""

    def __init__(
        self, registry: NodeRegistry, on_change: Callable[[str, dict[str, Any]], None]
    ) -> None:
        self.registry = registry
        self.on_change = on_change
        self.node: dict[str, Any] | None = None
        self.fields: dict[str, _Field] = {}
        self.label = pn.widgets.TextInput(
            name="Label", sizing_mode="stretch_width", css_classes=["af-field-label"]
        )
        self.label.param.watch(self._on_label, "value")
        self.head = pn.pane.HTML("", sizing_mode="stretch_width", stylesheets=[_CSS])
        self.issues = pn.pane.HTML("", sizing_mode="stretch_width", stylesheets=[_CSS])
        self.json_box = pn.widgets.TextAreaInput(
            name="Config as JSON", rows=12, sizing_mode="stretch_width"
        )
        self.json_apply = pn.widgets.Button(name="Apply JSON", button_type="default")
        self.json_apply.on_click(self._on_json_apply)
        self.json_message = pn.pane.HTML("", stylesheets=[_CSS], sizing_mode="stretch_width")
        self.form = pn.Column(sizing_mode="stretch_width")
        self.empty = pn.pane.Markdown(
            "Select a node on the canvas to edit it. Shift-click or drag a box to "
            "select several (then copy, paste or delete them).",
            sizing_mode="stretch_width",
        )
        self.layout = pn.Column(self.empty, sizing_mode="stretch_width", stylesheets=[_CSS])
        self._loading = False
        self._parse_errors: set[str] = set()

    def view(self) -> pn.viewable.Viewable:
        return self.layout

    # -- showing ----------------------------------------------------------------------
    def show(self, node: Mapping[str, Any] | None, issues: list[ValidationIssue]) -> None:
        """Build the form for ``node`` (``None``: the empty hint)."""
        if node is None:
            self.node = None
            self.fields = {}
            self.layout.objects = [self.empty]
            return
        self.node = copy.deepcopy(dict(node))
        node_type = str(self.node.get("type", ""))
        data = self.node.get("data") or {}
        config = data.get("config") or {}
        self._loading = True
        try:
            self.label.value = str(data.get("label") or "")
            try:
                described = self.registry.get(node_type).describe()
            except Exception as exc:  # an unknown type still gets the JSON editor
                described = {"description": f"unknown node type: {exc}", "config": {}}
            node_id = escape(str(self.node.get("id")))
            self.head.object = (
                f"<div class='af-node-head'><b>{escape(node_type)}</b> · id <code>{node_id}</code>"
                f"<br>{escape(str(described.get('description') or ''))}</div>"
            )
            schema = described.get("config") or {}
            defs = schema.get("$defs", {})
            required = set(schema.get("required", []))
            self.fields = {}
            self._parse_errors = set()
            main: list[Any] = []
            policy: list[Any] = []
            for key, prop in (schema.get("properties") or {}).items():
                made = self._make_field(key, prop, defs, key in required, config)
                self.fields[key] = made
                box = pn.Column(made.widget, made.message, sizing_mode="stretch_width", margin=0)
                (policy if key in POLICY_FIELDS else main).append(box)
            self.json_box.value = json.dumps(config, indent=2, ensure_ascii=False)
            self.json_message.object = ""
        finally:
            self._loading = False
        sections: list[Any] = [self.head, self.issues, self.label, *main]
        if policy:
            sections.append(
                pn.Card(
                    *policy,
                    title="Retries, timeout, error handling, cache",
                    collapsed=True,
                    sizing_mode="stretch_width",
                )
            )
        sections.append(
            pn.Card(
                self.json_box,
                self.json_apply,
                self.json_message,
                title="Config as JSON",
                collapsed=True,
                sizing_mode="stretch_width",
            )
        )
        self.form.objects = sections
        self.layout.objects = [self.form]
        self.set_issues(issues)

    def _make_field(
        self,
        key: str,
        prop: Mapping[str, Any],
        defs: Mapping[str, Any],
        required: bool,
        config: Mapping[str, Any],
    ) -> _Field:
        kind = field_kind(key, prop, defs)
        title = _title(key) + (" *" if required else "")
        description = prop.get("description")
        default = prop.get("default")
        present = key in config
        value = _display(kind, present, config.get(key))
        hint = "" if default is None else f"default: {json.dumps(default)}"
        widget: Any
        if kind in ("enum", "boolean"):
            choices = _enum_values(prop, defs) if kind == "enum" else [True, False]
            options: dict[str, Any] = {f"({hint or 'not set'})": UNSET}
            options.update({json.dumps(c) if kind == "boolean" else str(c): c for c in choices})
            if present and value not in choices:
                options[f"{value!r} (invalid)"] = value
            widget = pn.widgets.Select(name=title, options=options, value=value)
        elif kind == "text":
            widget = pn.widgets.TextInput(name=title, value=value, placeholder=hint)
        elif kind in ("integer", "number"):
            widget = pn.widgets.TextInput(
                name=title, value=value, placeholder=hint or "a number or {{reference}}"
            )
        else:
            lines = str(value).count("\n") + 1
            rows = 8 if kind == "longtext" else min(14, max(3, lines))
            placeholder = hint or ("JSON, or a {{reference}}" if kind.startswith("json") else "")
            widget = pn.widgets.TextAreaInput(
                name=title, value=value, rows=rows, placeholder=placeholder
            )
        widget.sizing_mode = "stretch_width"
        widget.css_classes = [f"af-field-{key}"]
        if description:
            widget.description = description
        message = pn.pane.HTML(
            "",
            visible=False,
            margin=0,
            sizing_mode="stretch_width",
            stylesheets=[_CSS],
            css_classes=[f"af-msg-{key}"],
        )
        made = _Field(key, kind, widget, message)
        widget.param.watch(lambda event, f=made: self._on_field(f, event.new), "value")
        return made

    def set_issues(self, issues: list[ValidationIssue]) -> None:
        """Show the node's validation issues next to their fields (the rest on top)."""
        by_field: dict[str, list[str]] = {}
        general: list[str] = []
        for issue in issues:
            root = (issue.field or "").split(".")[0]
            if root in self.fields:
                suffix = issue.field[len(root) :].lstrip(".") if issue.field else ""
                text = f"{suffix}: {issue.message}" if suffix else issue.message
                by_field.setdefault(root, []).append(text)
            else:
                general.append(f"{issue.field + ': ' if issue.field else ''}{issue.message}")
        for key, made in self.fields.items():
            if key in self._parse_errors:
                continue  # a JSON parse error stays until the box parses
            texts = by_field.get(key, [])
            made.message.object = "".join(
                f"<div class='af-field-error'>⚠ {escape(t)}</div>" for t in texts
            )
            made.message.visible = bool(texts)
        self.issues.object = (
            "<div class='af-issue-list'>"
            + "".join(f"<div>⚠ {escape(t)}</div>" for t in general)
            + "</div>"
            if general
            else ""
        )

    # -- editing ----------------------------------------------------------------------
    def _on_label(self, event: Any) -> None:
        if self._loading or self.node is None:
            return
        node = copy.deepcopy(self.node)
        node.setdefault("data", {})["label"] = event.new
        self._emit(node)

    def _on_field(self, made: _Field, value: Any) -> None:
        if self._loading or self.node is None:
            return
        present, parsed, error = parse_field(made.kind, value)
        if error is not None:
            self._parse_errors.add(made.key)
            made.message.object = (
                f"<div class='af-field-error'>⚠ {escape(error)} (not applied)</div>"
            )
            made.message.visible = True
            return
        if made.key in self._parse_errors:
            self._parse_errors.discard(made.key)
            made.message.object, made.message.visible = "", False
        node = copy.deepcopy(self.node)
        config = node.setdefault("data", {}).setdefault("config", {})
        if present:
            config[made.key] = parsed
        else:
            config.pop(made.key, None)
        self._emit(node)

    def _on_json_apply(self, _event: Any) -> None:
        if self.node is None:
            return
        try:
            config = json.loads(self.json_box.value or "{}")
        except json.JSONDecodeError as exc:
            self.json_message.object = (
                f"<div class='af-field-error'>⚠ invalid JSON (line {exc.lineno}, column "
                f"{exc.colno}): {escape(exc.msg)} (not applied)</div>"
            )
            return
        if not isinstance(config, dict):
            self.json_message.object = (
                "<div class='af-field-error'>⚠ the config must be a JSON object (not applied)</div>"
            )
            return
        self.json_message.object = ""
        node = copy.deepcopy(self.node)
        node.setdefault("data", {})["config"] = config
        self.show(node, [])
        self.on_change(str(node["id"]), node)

    def _emit(self, node: dict[str, Any]) -> None:
        self.node = node
        config = (node.get("data") or {}).get("config") or {}
        self._loading = True
        try:
            self.json_box.value = json.dumps(config, indent=2, ensure_ascii=False)
        finally:
            self._loading = False
        self.on_change(str(node["id"]), node)
