"""Two runs side by side: summary, per-node status and timings, outputs; differences marked."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from store.executions import ExecutionRecord, NodeRunRecord
from studio.pages._ui import badge, fmt_cost, fmt_duration, fmt_time, fmt_tokens, short_id

__all__ = ["NodeTiming", "Row", "compare_html", "node_timings", "output_rows", "summary_rows"]

#: A node counts as slower or faster only beyond both thresholds (noise otherwise).
_REL_THRESHOLD, _ABS_THRESHOLD_MS = 0.2, 5.0


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    a: Any
    b: Any
    differs: bool


def _row(key: str, a: Any, b: Any) -> Row:
    return Row(key, a, b, bool(a != b))


def _times_differ(ms_a: float | None, ms_b: float | None) -> bool:
    if ms_a is None or ms_b is None:
        return ms_a != ms_b
    delta = abs(ms_b - ms_a)
    return delta >= _ABS_THRESHOLD_MS and delta / max(ms_a, ms_b, 1e-9) >= _REL_THRESHOLD


@dataclass(frozen=True, slots=True)
class NodeTiming:
    node_id: str
    status_a: str | None
    status_b: str | None
    ms_a: float | None
    ms_b: float | None
    attempts_a: int
    attempts_b: int

    @property
    def delta_ms(self) -> float | None:
        if self.ms_a is None or self.ms_b is None:
            return None
        return self.ms_b - self.ms_a

    @property
    def status_differs(self) -> bool:
        return self.status_a != self.status_b

    @property
    def time_differs(self) -> bool:
        return _times_differ(self.ms_a, self.ms_b)


def summary_rows(a: ExecutionRecord, b: ExecutionRecord) -> list[Row]:
    def version(run: ExecutionRecord) -> str:
        return f"{run.workflow_name or run.workflow_id} v{run.workflow_version or '?'}"

    return [
        _row("workflow", version(a), version(b)),
        _row("status", a.status, b.status),
        Row(
            "duration",
            a.duration_ms,
            b.duration_ms,
            _times_differ(
                float(a.duration_ms) if a.duration_ms is not None else None,
                float(b.duration_ms) if b.duration_ms is not None else None,
            ),
        ),
        _row("inputs", a.inputs, b.inputs),
        _row("error", a.error_message, b.error_message),
        _row("tokens", fmt_tokens(a.token_usage), fmt_tokens(b.token_usage)),
        _row("cost", fmt_cost(a.cost_usd), fmt_cost(b.cost_usd)),
    ]


def _final(node_runs: list[NodeRunRecord]) -> dict[str, list[NodeRunRecord]]:
    by_node: dict[str, list[NodeRunRecord]] = {}
    for run in node_runs:
        by_node.setdefault(run.node_id, []).append(run)
    for attempts in by_node.values():
        attempts.sort(key=lambda r: r.attempt)
    return by_node


def node_timings(a: ExecutionRecord, b: ExecutionRecord) -> list[NodeTiming]:
    """One row per node of either run; time = the sum of its attempts."""
    runs_a, runs_b = _final(a.node_runs), _final(b.node_runs)
    order = list(runs_a) + [node for node in runs_b if node not in runs_a]

    def total(attempts: list[NodeRunRecord] | None) -> float | None:
        if not attempts:
            return None
        times = [r.duration_ms for r in attempts if r.duration_ms is not None]
        return sum(times) if times else None

    return [
        NodeTiming(
            node_id=node,
            status_a=runs_a[node][-1].status if node in runs_a else None,
            status_b=runs_b[node][-1].status if node in runs_b else None,
            ms_a=total(runs_a.get(node)),
            ms_b=total(runs_b.get(node)),
            attempts_a=len(runs_a.get(node, ())),
            attempts_b=len(runs_b.get(node, ())),
        )
        for node in order
    ]


def output_rows(a: ExecutionRecord, b: ExecutionRecord) -> list[Row]:
    """The run outputs key by key, then each node's outputs (latest attempt)."""
    rows = []
    out_a = a.outputs if isinstance(a.outputs, dict) else {"(value)": a.outputs}
    out_b = b.outputs if isinstance(b.outputs, dict) else {"(value)": b.outputs}
    for key in list(out_a) + [k for k in out_b if k not in out_a]:
        rows.append(_row(f"output · {key}", out_a.get(key), out_b.get(key)))
    runs_a, runs_b = _final(a.node_runs), _final(b.node_runs)
    for node in list(runs_a) + [n for n in runs_b if n not in runs_a]:
        value_a = runs_a[node][-1].outputs if node in runs_a else None
        value_b = runs_b[node][-1].outputs if node in runs_b else None
        rows.append(_row(f"node · {node}", value_a, value_b))
    return rows


# -- HTML -------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    if value is None:
        return '<span class="af-muted">—</span>'
    if isinstance(value, str):
        return html.escape(value)
    from studio.pages._ui import to_json_text

    return f"<pre>{html.escape(to_json_text(value, limit=4000))}</pre>"


def _table(head: list[str], rows: list[tuple[bool, list[str]]], css_class: str) -> str:
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        f'<tr class="{"af-diff" if differs else "af-same"}">'
        + "".join(f"<td>{cell}</td>" for cell in cells)
        + "</tr>"
        for differs, cells in rows
    )
    return f'<table class="af-table {css_class}"><thead><tr>{header}</tr></thead>{body}</table>'


def _bar(ms: float | None, scale: float, color: str) -> str:
    if ms is None:
        return '<span class="af-muted">—</span>'
    width = 0 if scale <= 0 else max(2, int(120 * ms / scale))
    return (
        f'<div style="display:flex;align-items:center;gap:6px">'
        f'<div style="width:{width}px;height:8px;border-radius:4px;background:{color}"></div>'
        f"<span>{html.escape(fmt_duration(ms))}</span></div>"
    )


def _delta(timing: NodeTiming) -> str:
    delta = timing.delta_ms
    if delta is None:
        return '<span class="af-muted">—</span>'
    sign = "+" if delta > 0 else "\u2212" if delta < 0 else "±"  # a real minus sign
    text = f"{sign}{fmt_duration(abs(delta))}"
    if not timing.time_differs:
        return f'<span class="af-muted">{html.escape(text)}</span>'
    css = "af-delta-up" if delta > 0 else "af-delta-down"
    return f'<b class="{css}">{html.escape(text)}</b>'


def compare_html(a: ExecutionRecord, b: ExecutionRecord) -> str:
    label_a = f"A · {short_id(a.id)} · {fmt_time(a.started_at)}"
    label_b = f"B · {short_id(b.id)} · {fmt_time(b.started_at)}"
    summary_cells = []
    for row in summary_rows(a, b):
        if row.key == "status":
            cells = [badge(a.status), badge(b.status)]
        elif row.key == "duration":
            cells = [
                html.escape(fmt_duration(a.duration_ms)),
                html.escape(fmt_duration(b.duration_ms)),
            ]
        else:
            cells = [_cell(row.a), _cell(row.b)]
        summary_cells.append((row.differs, [html.escape(row.key), *cells]))
    timings = node_timings(a, b)
    scale = max([t.ms_a or 0.0 for t in timings] + [t.ms_b or 0.0 for t in timings] + [0.0])
    timing_cells = [
        (
            t.status_differs or t.time_differs,
            [
                html.escape(t.node_id),
                badge(t.status_a) if t.status_a else "—",
                badge(t.status_b) if t.status_b else "—",
                _bar(t.ms_a, scale, "#3b82f6"),
                _bar(t.ms_b, scale, "#a855f7"),
                _delta(t),
                f"{t.attempts_a} / {t.attempts_b}",
            ],
        )
        for t in timings
    ]
    outputs = output_rows(a, b)
    output_cells = [
        (row.differs, [html.escape(row.key), _cell(row.a), _cell(row.b)]) for row in outputs
    ]
    changed = sum(1 for row in outputs if row.differs)
    return (
        "<h3>Summary</h3>"
        + _table(["", label_a, label_b], summary_cells, "af-fixed af-compare-summary")
        + "<h3>Per-node status and timings</h3>"
        + _table(
            ["node", "status A", "status B", "time A", "time B", "Δ (B \u2212 A)", "attempts"],
            timing_cells,
            "af-compare-timings",
        )
        + f"<h3>Outputs <span class='af-muted'>({changed} of {len(outputs)} differ)</span></h3>"
        + _table(["", label_a, label_b], output_cells, "af-fixed af-compare-outputs")
    )
