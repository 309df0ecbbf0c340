"""Editor state that is not drawing: undo/redo snapshots and the copy/paste clipboard.

Pure Python on canonical documents (``WorkflowDefinition.to_dict()`` shapes), so the
behaviour is tested without a browser. Snapshots are whole documents: workflows are
small, and a snapshot cannot drift from what the canvas shows the way a list of
inverse operations can.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Clipboard", "History", "copy_nodes", "diff_documents", "paste", "unique_id"]


class History:
    """Linear undo/redo over document snapshots.

    ``record`` after every change; a change equal to the present is ignored. Changes
    recorded with the same ``group`` in a row (the nodes of one multi-node drag) merge
    into one step.
    """

    def __init__(self, limit: int = 200) -> None:
        self.limit = limit
        self._past: list[dict[str, Any]] = []
        self._future: list[dict[str, Any]] = []
        self._present: dict[str, Any] | None = None
        self._group: str | None = None

    def reset(self, doc: Mapping[str, Any]) -> None:
        self._past.clear()
        self._future.clear()
        self._present = copy.deepcopy(dict(doc))
        self._group = None

    @property
    def present(self) -> dict[str, Any] | None:
        return copy.deepcopy(self._present)

    @property
    def can_undo(self) -> bool:
        return bool(self._past)

    @property
    def can_redo(self) -> bool:
        return bool(self._future)

    def record(self, doc: Mapping[str, Any], *, group: str | None = None) -> bool:
        """Make ``doc`` the present; whether it was a change."""
        snapshot = copy.deepcopy(dict(doc))
        if self._present is None:
            self._present = snapshot
            return True
        if snapshot == self._present:
            return False
        if group is None or group != self._group or not self._past:
            self._past.append(self._present)
            del self._past[: max(0, len(self._past) - self.limit)]
        self._present = snapshot
        self._future.clear()
        self._group = group
        return True

    def undo(self) -> dict[str, Any] | None:
        if not self._past or self._present is None:
            return None
        self._future.append(self._present)
        self._present = self._past.pop()
        self._group = None
        return copy.deepcopy(self._present)

    def redo(self) -> dict[str, Any] | None:
        if not self._future or self._present is None:
            return None
        self._past.append(self._present)
        self._present = self._future.pop()
        self._group = None
        return copy.deepcopy(self._present)


@dataclass(slots=True)
class Clipboard:
    """Copied nodes and the edges among them (canonical dicts)."""

    nodes: list[dict[str, Any]] = field(default_factory=list)
    edges: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.nodes)


def copy_nodes(doc: Mapping[str, Any], node_ids: Iterable[str]) -> Clipboard:
    """The given nodes and every edge whose both ends are among them."""
    wanted = set(node_ids)
    nodes = [copy.deepcopy(n) for n in doc.get("nodes", []) if n.get("id") in wanted]
    present = {n["id"] for n in nodes}
    edges = [
        copy.deepcopy(e)
        for e in doc.get("edges", [])
        if e.get("source") in present and e.get("target") in present
    ]
    return Clipboard(nodes, edges)


def unique_id(base: str, taken: Iterable[str]) -> str:
    """``base`` if free, else ``base_2``, ``base_3``... (ids stay valid reference roots)."""
    used = set(taken)
    stem = re.sub(r"[^\w\-]", "_", base) or "node"
    if not re.match(r"[A-Za-z_]", stem):
        stem = f"n_{stem}"
    if stem not in used:
        return stem
    match = re.fullmatch(r"(.*?)_(\d+)", stem)
    root, number = (match.group(1), int(match.group(2))) if match else (stem, 1)
    while True:
        number += 1
        candidate = f"{root}_{number}"
        if candidate not in used:
            return candidate


def paste(
    doc: Mapping[str, Any], clip: Clipboard, *, offset: tuple[float, float] = (40.0, 40.0)
) -> tuple[dict[str, Any], list[str]]:
    """``doc`` with the clipboard's nodes added under fresh ids; (new doc, new node ids).

    References between pasted nodes (``{{a.text}}`` in b's config) follow the renaming;
    references to nodes outside the clipboard are kept.
    """
    out = copy.deepcopy(dict(doc))
    nodes = out.setdefault("nodes", [])
    edges = out.setdefault("edges", [])
    taken = {n.get("id") for n in nodes}
    renamed: dict[str, str] = {}
    for node in clip.nodes:
        new_id = unique_id(str(node["id"]), taken)
        taken.add(new_id)
        renamed[str(node["id"])] = new_id
    new_ids = []
    for node in clip.nodes:
        pasted = copy.deepcopy(node)
        pasted["id"] = renamed[str(node["id"])]
        position = dict(pasted.get("position") or {})
        position["x"] = float(position.get("x", 0.0)) + offset[0]
        position["y"] = float(position.get("y", 0.0)) + offset[1]
        pasted["position"] = position
        if isinstance(pasted.get("data"), dict) and "config" in pasted["data"]:
            pasted["data"]["config"] = _rename_references(pasted["data"]["config"], renamed)
        nodes.append(pasted)
        new_ids.append(pasted["id"])
    edge_ids = {e.get("id") for e in edges}
    for edge in clip.edges:
        pasted_edge = copy.deepcopy(edge)
        pasted_edge["id"] = unique_id(f"{edge.get('id', 'e')}_copy", edge_ids)
        edge_ids.add(pasted_edge["id"])
        pasted_edge["source"] = renamed[str(edge["source"])]
        pasted_edge["target"] = renamed[str(edge["target"])]
        edges.append(pasted_edge)
    return out, new_ids


_BLOCK = re.compile(r"(\{\{.*?\}\}|\{%.*?%\})", re.S)


def _rename_references(value: Any, renamed: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        if not renamed or "{" not in value:
            return value
        names = "|".join(re.escape(name) for name in sorted(renamed, key=len, reverse=True))
        root = re.compile(rf"(?<![\w.\-])({names})(?=\s*\.)")

        def block(match: re.Match[str]) -> str:
            return root.sub(lambda m: renamed[m.group(1)], match.group(0))

        return _BLOCK.sub(block, value)
    if isinstance(value, list):
        return [_rename_references(item, renamed) for item in value]
    if isinstance(value, dict):
        return {key: _rename_references(item, renamed) for key, item in value.items()}
    return value


def diff_documents(
    old: Mapping[str, Any], new: Mapping[str, Any], *, old_name: str = "a", new_name: str = "b"
) -> list[str]:
    """A unified diff of two canonical documents as pretty JSON (empty when equal)."""
    import difflib
    import json

    def lines(doc: Mapping[str, Any]) -> list[str]:
        return json.dumps(doc, indent=2, ensure_ascii=False).splitlines()

    return list(difflib.unified_diff(lines(old), lines(new), old_name, new_name, lineterm="", n=3))
