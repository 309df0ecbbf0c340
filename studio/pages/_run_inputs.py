"""A run's input form, built from the ``start`` node's declared inputs.

Each input gets a widget by type (text, number, integer, boolean, JSON for the rest)
with its default filled in, and a message under it when the value does not fit.
``values()`` returns the inputs or raises :class:`InputFormError` (nothing is cleared).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any

import panel as pn

from engine import WorkflowDefinition
from studio.pages._ui import set_text

__all__ = ["InputField", "InputForm", "InputFormError", "declared_inputs"]


@dataclass(frozen=True, slots=True)
class InputField:
    name: str
    type: str = "any"
    required: bool = False
    default: Any = None
    description: str | None = None


class InputFormError(ValueError):
    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {text}" for name, text in problems.items()))
        self.problems = problems


def declared_inputs(definition: WorkflowDefinition) -> list[InputField]:
    """The start node's inputs; entries that are not well formed are left out."""
    start = next((node for node in definition.nodes if node.type == "start"), None)
    raw = start.data.config.get("inputs") if start is not None else None
    fields = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"]:
            fields.append(
                InputField(
                    name=item["name"],
                    type=str(item.get("type") or "any"),
                    required=bool(item.get("required")),
                    default=item.get("default"),
                    description=item.get("description"),
                )
            )
    return fields


class InputForm:
    def __init__(self, fields: list[InputField] | None = None) -> None:
        self.fields: list[InputField] = []
        self.widgets: dict[str, Any] = {}
        self.messages: dict[str, pn.pane.HTML] = {}
        self.layout = pn.Column(sizing_mode="stretch_width", css_classes=["af-input-form"])
        self.set_fields(fields or [])

    def view(self) -> pn.viewable.Viewable:
        return self.layout

    def set_fields(self, fields: list[InputField]) -> None:
        self.fields = list(fields)
        self.widgets, self.messages, parts = {}, {}, []
        for item in self.fields:
            widget = _widget(item)
            message = pn.pane.HTML(
                "",
                visible=False,
                css_classes=["af-field-error"],
                styles={"color": "#b91c1c", "font-size": "12px"},
                margin=(0, 10, 6, 10),
            )
            self.widgets[item.name] = widget
            self.messages[item.name] = message
            parts += [widget, message]
        if not parts:
            parts = [
                pn.pane.HTML("<span style='color:#6b7280'>This workflow takes no inputs.</span>")
            ]
        self.layout.objects = parts

    def set_values(self, values: dict[str, Any]) -> None:
        for item in self.fields:
            if item.name in values:
                _set(self.widgets[item.name], item, values[item.name])

    def values(self) -> dict[str, Any]:
        """The typed inputs; messages appear under the fields that do not fit."""
        problems: dict[str, str] = {}
        values: dict[str, Any] = {}
        for item in self.fields:
            try:
                value = _read(self.widgets[item.name], item)
            except ValueError as exc:
                problems[item.name] = str(exc)
                continue
            if value is None and item.required and item.default is None:
                problems[item.name] = "required"
            elif value is not None:
                values[item.name] = value
        self.show_problems(problems)
        if problems:
            raise InputFormError(problems)
        return values

    def show_problems(self, problems: dict[str, str]) -> None:
        for name, message in self.messages.items():
            text = problems.get(name)
            message.object = html.escape(text) if text else ""
            message.visible = bool(text)


def _label(item: InputField) -> str:
    return f"{item.name}{' *' if item.required else ''} ({item.type})"


def _widget(item: InputField) -> Any:
    common = {
        "label": _label(item),
        "sizing_mode": "stretch_width",
        "css_classes": [f"af-input-{item.name}"],
    }
    if item.description:
        common["description"] = item.description
    if item.type == "boolean":
        return pn.widgets.Checkbox(
            label=_label(item), value=bool(item.default), css_classes=[f"af-input-{item.name}"]
        )
    if item.type == "string":
        text = item.default if isinstance(item.default, str) else ""
        return pn.widgets.TextAreaInput(value=text, rows=2, auto_grow=True, max_rows=8, **common)
    if item.type in ("number", "integer"):
        text = "" if item.default is None else json.dumps(item.default)
        return pn.widgets.TextInput(value=text, placeholder=item.type, **common)
    text = "" if item.default is None else json.dumps(item.default, indent=2)
    return pn.widgets.TextAreaInput(value=text, rows=3, placeholder="JSON", **common)


def _set(widget: Any, item: InputField, value: Any) -> None:
    if item.type == "boolean":
        widget.value = bool(value)
    elif item.type == "string" and isinstance(value, str):
        set_text(widget, value)
    else:
        set_text(widget, "" if value is None else json.dumps(value))


def _read(widget: Any, item: InputField) -> Any:
    if item.type == "boolean":
        return bool(widget.value)
    text = str(widget.value or "")
    if item.type == "string":
        return text if text else None
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        if item.type == "any":
            return text
        raise ValueError(
            f"not a valid {item.type}"
            + ("" if item.type in ("number", "integer") else " (JSON expected)")
        ) from None
    expected = {
        "number": (int, float),
        "integer": (int,),
        "object": (dict,),
        "array": (list,),
    }.get(item.type)
    if expected is not None and (not isinstance(value, expected) or isinstance(value, bool)):
        raise ValueError(f"not a valid {item.type}")
    return value
