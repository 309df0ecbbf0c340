"""How node types look in the editor: palette groups, colours, starter configs, canvas CSS."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.nodes.registry import NodeRegistry

__all__ = ["CANVAS_CSS", "label_of", "palette_items", "starter_config"]

# type -> (label, group, colour); unknown (plugin) types land in "Other".
_INFO: dict[str, tuple[str, str, str]] = {
    "start": ("Start", "Flow", "#16a34a"),
    "end": ("End", "Flow", "#475569"),
    "condition": ("Condition", "Flow", "#d97706"),
    "loop": ("Loop", "Flow", "#db2777"),
    "aggregate": ("Aggregate", "Flow", "#64748b"),
    "subworkflow": ("Sub-workflow", "Flow", "#92400e"),
    "llm": ("LLM", "AI", "#7c3aed"),
    "template": ("Template", "Transform", "#2563eb"),
    "code": ("Code", "Transform", "#0891b2"),
    "sql": ("SQL", "Transform", "#4f46e5"),
    "http": ("HTTP request", "Integrations", "#0d9488"),
}
_GROUPS = ("Flow", "AI", "Transform", "Integrations", "Other")

_STARTERS: dict[str, dict[str, Any]] = {
    "start": {"inputs": [{"name": "text", "type": "string", "required": True}]},
    "end": {"outputs": {}},
    "condition": {
        "cases": [
            {
                "id": "case_1",
                "logic": "and",
                "conditions": [{"left": "", "operator": "is_not_empty", "right": ""}],
            }
        ]
    },
    "llm": {"model": "gpt-4o-mini", "userPrompt": ""},
    "template": {"template": ""},
    "code": {"code": "def main() -> dict:\n    return {}\n", "inputs": {}},
    "sql": {"query": "select 1 as one", "tables": {}},
    "http": {"method": "GET", "url": ""},
    "aggregate": {"values": []},
    "subworkflow": {"workflowId": "", "inputs": {}},
    "loop": {
        "items": [],
        "body": {
            "version": "1.0.0",
            "nodes": [
                {
                    "id": "start",
                    "type": "start",
                    "data": {"config": {"inputs": [{"name": "item"}, {"name": "index"}]}},
                },
                {"id": "end", "type": "end", "data": {"config": {"outputs": {}}}},
            ],
            "edges": [{"id": "e1", "source": "start", "target": "end"}],
        },
    },
}


def label_of(node_type: str) -> str:
    return _INFO.get(node_type, (node_type.replace("_", " ").title(), "", ""))[0]


def starter_config(node_type: str) -> dict[str, Any]:
    """The config a node gets when dropped from the palette (valid where it can be)."""
    return copy.deepcopy(_STARTERS.get(node_type, {}))


def palette_items(registry: NodeRegistry) -> list[dict[str, str]]:
    items = []
    for name in registry.names():
        label, group, colour = _INFO.get(name, (label_of(name), "Other", "#64748b"))
        description = registry.get(name).description
        items.append(
            {
                "type": name,
                "label": label,
                "group": group,
                "color": colour,
                "description": description,
            }
        )
    items.sort(key=lambda item: (_GROUPS.index(item["group"]), item["label"]))
    return items


def _type_rules() -> str:
    rules = []
    for name, (label, _group, colour) in _INFO.items():
        rules.append(f'.af-t-{name} {{ --af-accent: {colour}; --af-kind: "{label}"; }}')
    return "\n".join(rules)


CANVAS_CSS = """
.react-flow__node.af-node {
  min-width: 168px; max-width: 240px; border-radius: 10px; border: 1px solid #d0d5dd;
  border-left: 5px solid var(--af-accent, #64748b); background: #ffffff;
  box-shadow: 0 1px 3px rgba(16, 24, 40, .08); color: #0f172a; font-size: 13px;
  transition: border-color .12s, box-shadow .12s, background-color .12s;
}
.react-flow__node.af-node .rf-node-content { padding: 8px 12px 10px; }
.react-flow__node.af-node .rf-node-label { margin: 0 !important; font-weight: 600;
  overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.react-flow__node.af-node .rf-node-label::before {
  content: var(--af-kind, "node"); display: block; font-size: 10px; font-weight: 700;
  letter-spacing: .07em; text-transform: uppercase; color: var(--af-accent, #64748b);
  margin-bottom: 2px;
}
.react-flow__node.af-node.selected { box-shadow: 0 0 0 2px rgba(37, 99, 235, .45); }
.react-flow__node.af-node.af-editing { outline: 2px solid #2563eb; outline-offset: 3px; }
.react-flow__node.af-t-condition { min-height: 92px; }
.react-flow__node.af-t-condition .react-flow__handle.source::after {
  opacity: 1; background: transparent; color: #92400e; left: auto; right: calc(100% + 5px);
  padding: 0; font-size: 10px; font-weight: 600;
}
.react-flow__handle { width: 9px; height: 9px; background: #64748b; border: 1.5px solid #fff; }
.react-flow__handle[data-handleid="error"] { background: #ef4444; }
.react-flow__edge.af-edge-error .react-flow__edge-path { stroke: #ef4444; }

.react-flow__node.af-node.af-invalid {
  border-color: #dc2626; background: #fef2f2; box-shadow: 0 0 0 2px rgba(220, 38, 38, .25);
}
.react-flow__node.af-node.af-invalid::after {
  content: "!"; position: absolute; top: -9px; right: -9px; width: 18px; height: 18px;
  border-radius: 9px; background: #dc2626; color: white; font-size: 12px; font-weight: 700;
  line-height: 18px; text-align: center;
}
.react-flow__node.af-node.af-run-pending { opacity: .7; }
.react-flow__node.af-node.af-run-running {
  border-color: #2563eb; background: #eff6ff; animation: af-pulse 1s ease-in-out infinite;
}
.react-flow__node.af-node.af-run-retrying { border-color: #d97706; background: #fffbeb; }
.react-flow__node.af-node.af-run-succeeded {
  border-color: #16a34a; background: #f0fdf4; box-shadow: 0 0 0 2px rgba(22, 163, 74, .25);
}
.react-flow__node.af-node.af-run-cached {
  border-color: #0891b2; background: #ecfeff; box-shadow: 0 0 0 2px rgba(8, 145, 178, .25);
}
.react-flow__node.af-node.af-run-failed {
  border-color: #dc2626; background: #fef2f2; box-shadow: 0 0 0 2px rgba(220, 38, 38, .3);
}
.react-flow__node.af-node.af-run-skipped { border-style: dashed; opacity: .5; }
.react-flow__node.af-node.af-run-cancelled { border-color: #6b7280; background: #f3f4f6; }
.react-flow__node.af-node[class*="af-run-"]::after {
  position: absolute; top: -9px; right: -9px; width: 18px; height: 18px; border-radius: 9px;
  color: white; font-size: 11px; font-weight: 700; line-height: 18px; text-align: center;
}
.react-flow__node.af-node.af-run-succeeded::after { content: "✓"; background: #16a34a; }
.react-flow__node.af-node.af-run-cached::after { content: "↺"; background: #0891b2; }
.react-flow__node.af-node.af-run-failed::after { content: "✕"; background: #dc2626; }
.react-flow__node.af-node.af-run-running::after { content: "…"; background: #2563eb; }
@keyframes af-pulse {
  0%, 100% { box-shadow: 0 0 0 2px rgba(37, 99, 235, .25); }
  50% { box-shadow: 0 0 0 6px rgba(37, 99, 235, .12); }
}
""" + _type_rules()
