"""The node palette: drag a node type onto the canvas (or click it), plus editor shortcuts.

A small JS component: palette items are HTML5-draggable with the MIME type the canvas
accepts (``DRAG_TYPE``), so React Flow reports a ``drop`` with the flow position. The
same component listens for Ctrl/Cmd+Z, Shift+Ctrl+Z / Ctrl+Y, Ctrl+C, Ctrl+V and Ctrl+S
while the editor is on screen and no text field has the focus.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import param
from panel.custom import JSComponent

__all__ = ["DRAG_TYPE", "Palette"]

DRAG_TYPE = "application/x-agentflow-node"

_ESM = """
const DRAG_TYPE = "__DRAG_TYPE__";

export function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "af-palette";
  el.appendChild(root);

  const draw = () => {
    root.innerHTML = "";
    let group = null;
    for (const item of model.items) {
      if (item.group !== group) {
        group = item.group;
        const heading = document.createElement("div");
        heading.className = "af-pal-group";
        heading.textContent = group;
        root.appendChild(heading);
      }
      const row = document.createElement("div");
      row.className = "af-pal-item";
      row.style.setProperty("--accent", item.color);
      row.draggable = true;
      row.dataset.type = item.type;
      row.title = item.description + "\\n(drag onto the canvas, or click to add)";
      const name = document.createElement("div");
      name.className = "af-pal-name";
      name.textContent = item.label;
      const desc = document.createElement("div");
      desc.className = "af-pal-desc";
      desc.textContent = item.description;
      row.append(name, desc);
      row.addEventListener("dragstart", (event) => {
        event.dataTransfer.setData(DRAG_TYPE, JSON.stringify({ type: item.type }));
        event.dataTransfer.effectAllowed = "copy";
      });
      row.addEventListener("click", () => model.send_msg({ action: "add", node_type: item.type }));
      root.appendChild(row);
    }
  };
  draw();
  model.on("items", draw);

  const keys = { z: "undo", y: "redo", c: "copy", v: "paste", s: "save" };
  const onKey = (event) => {
    if (!(event.ctrlKey || event.metaKey) || event.altKey) return;
    if (!el.isConnected || el.offsetParent === null) return;
    const target = event.composedPath()[0];
    const tag = (target && target.tagName || "").toUpperCase();
    if (["INPUT", "TEXTAREA", "SELECT"].includes(tag) || (target && target.isContentEditable)) {
      return;
    }
    let action = keys[event.key.toLowerCase()];
    if (!action) return;
    if (action === "undo" && event.shiftKey) action = "redo";
    if (action === "copy" && String(window.getSelection() || "")) return;
    event.preventDefault();
    model.send_msg({ action });
  };
  document.addEventListener("keydown", onKey);
  model.on("remove", () => document.removeEventListener("keydown", onKey));
}
""".replace("__DRAG_TYPE__", DRAG_TYPE)

_CSS = """
.af-palette { display: flex; flex-direction: column; gap: 6px; font-family: inherit; }
.af-pal-group { font-size: 11px; font-weight: 600; letter-spacing: .06em; text-transform: uppercase;
  color: #64748b; margin: 8px 2px 0; }
.af-pal-item { border: 1px solid #e2e8f0; border-left: 4px solid var(--accent, #64748b);
  border-radius: 8px; padding: 6px 8px; background: white; cursor: grab; user-select: none;
  transition: box-shadow .1s, transform .1s; }
.af-pal-item:hover { box-shadow: 0 2px 6px rgba(16, 24, 40, .12); transform: translateY(-1px); }
.af-pal-item:active { cursor: grabbing; }
.af-pal-name { font-size: 13px; font-weight: 600; color: #0f172a; }
.af-pal-desc { font-size: 11px; color: #64748b; line-height: 1.3; margin-top: 2px;
  overflow: hidden; display: -webkit-box; -webkit-line-clamp: 2; -webkit-box-orient: vertical; }
"""


class Palette(JSComponent):  # type: ignore[misc]
    """Palette items: ``{"type", "label", "description", "group", "color"}`` dicts."""

    items = param.List(default=[])

    _esm = _ESM
    _stylesheets = [_CSS]

    def __init__(self, on_action: Callable[[dict[str, Any]], None], **params: Any) -> None:
        super().__init__(**params)
        self._on_action = on_action

    def _handle_msg(self, msg: Any) -> None:
        if isinstance(msg, dict) and isinstance(msg.get("action"), str):
            self._on_action(msg)
