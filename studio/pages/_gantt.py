"""The timing chart of a run: one bar per node attempt, on a row per node (a Gantt chart)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bokeh.models import ColumnDataSource, FactorRange, HoverTool
from bokeh.plotting import figure

from store.executions import NodeRunRecord
from studio.pages._ui import STATUS_COLORS, fmt_duration

__all__ = ["MAX_ROWS", "Span", "gantt_figure", "spans"]

_ROW_HEIGHT = 30
#: Beyond this many nodes the chart shows the first ones to start (a loop can run
#: thousands); the node table below lists every attempt.
MAX_ROWS = 60


@dataclass(frozen=True, slots=True)
class Span:
    node_id: str
    node_type: str
    attempt: int
    status: str
    start_ms: float
    end_ms: float

    @property
    def duration_ms(self) -> float:
        return self.end_ms - self.start_ms


def spans(node_runs: Sequence[NodeRunRecord], *, now: datetime | None = None) -> list[Span]:
    """Bars in milliseconds from the first node start; unfinished attempts end at ``now``."""
    started = [r.started_at for r in node_runs if r.started_at is not None]
    if not started:
        return []
    origin = min(started)
    result = []
    for run in node_runs:
        if run.started_at is None:
            continue
        end = run.ended_at or now or run.started_at
        start_ms = (run.started_at - origin).total_seconds() * 1000
        end_ms = max(start_ms, (end - origin).total_seconds() * 1000)
        result.append(Span(run.node_id, run.node_type, run.attempt, run.status, start_ms, end_ms))
    return result


def gantt_figure(bars: list[Span], *, title: str | None = None) -> figure:
    # Rows top-down in order of first start, like reading the run from top to bottom.
    order: list[str] = []
    for bar in sorted(bars, key=lambda b: (b.start_ms, b.node_id)):
        if bar.node_id not in order:
            order.append(bar.node_id)
    if len(order) > MAX_ROWS:
        title = f"first {MAX_ROWS} of {len(order)} nodes to start"
        kept = set(order[:MAX_ROWS])
        order = order[:MAX_ROWS]
        bars = [bar for bar in bars if bar.node_id in kept]
    total = max((b.end_ms for b in bars), default=0.0) or 1.0
    # Instant nodes (skipped, cached) still get a sliver so that they can be seen and hovered.
    sliver = total * 0.004
    source = ColumnDataSource(
        {
            "node": [b.node_id for b in bars],
            "type": [b.node_type for b in bars],
            "attempt": [b.attempt for b in bars],
            "status": [b.status for b in bars],
            "left": [b.start_ms for b in bars],
            "right": [max(b.end_ms, b.start_ms + sliver) for b in bars],
            "duration": [fmt_duration(b.duration_ms) for b in bars],
            "color": [STATUS_COLORS.get(b.status, "#6b7280") for b in bars],
            "label_x": [max(b.end_ms, b.start_ms + sliver) + total * 0.01 for b in bars],
        }
    )
    plot = figure(
        y_range=FactorRange(*reversed(order)),
        x_range=(0, total * 1.18),
        height=60 + _ROW_HEIGHT * max(len(order), 1),
        sizing_mode="stretch_width",
        title=title,
        x_axis_label="ms since the first node started",
        toolbar_location=None,
        tools="",
        name="af-gantt",
    )
    bars_renderer = plot.hbar(
        y="node",
        left="left",
        right="right",
        height=0.6,
        color="color",
        line_color="color",
        source=source,
    )
    plot.text(
        x="label_x",
        y="node",
        text="duration",
        source=source,
        text_font_size="11px",
        text_baseline="middle",
        text_color="#374151",
    )
    plot.add_tools(
        HoverTool(
            renderers=[bars_renderer],
            tooltips=[
                ("node", "@node (@type)"),
                ("attempt", "@attempt"),
                ("status", "@status"),
                ("start", "@left{0,0.0} ms"),
                ("duration", "@duration"),
            ],
        )
    )
    plot.ygrid.grid_line_color = None
    plot.outline_line_color = None
    return plot
