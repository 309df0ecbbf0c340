"""Live per-node progress for ``agentflow run``: a rich table on a terminal, lines otherwise."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from engine.events import (
    Event,
    LogEvent,
    NodeDelta,
    NodeFailed,
    NodeRetrying,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
)

_MARKS = {
    "pending": "·",
    "running": "…",
    "succeeded": "✓",
    "failed": "✗",
    "skipped": "-",
    "cancelled": "⊘",
    "retrying": "↻",
}


class _Board:
    """Node rows kept up to date from events."""

    def __init__(self, compiled: Any) -> None:
        self.rows: dict[str, dict[str, Any]] = {
            node_id: {
                "type": cn.node.type,
                "status": "pending",
                "attempts": 0,
                "ms": None,
                "note": "",
                "t0": None,
            }
            for node_id, cn in ((nid, compiled.nodes[nid]) for nid in compiled.order)
        }

    def apply(self, event: Event) -> str | None:
        """Update the board; return a one-line description of what happened."""
        if isinstance(event, NodeStarted):
            row = self.rows[event.node_id]
            row.update(status="running", attempts=event.attempt, t0=time.perf_counter())
            return None
        if isinstance(event, NodeDelta):
            row = self.rows[event.node_id]
            row["note"] = (row["note"] + event.delta)[-60:].replace("\n", " ")
            return None
        if isinstance(event, NodeSucceeded):
            row = self.rows[event.node_id]
            row.update(status="succeeded", ms=event.duration_ms)
            return f"{_MARKS['succeeded']} {event.node_id} succeeded ({event.duration_ms:.1f} ms)"
        if isinstance(event, NodeFailed):
            row = self.rows[event.node_id]
            row.update(status=event.status, ms=event.duration_ms, note=event.error.get("message"))
            return f"{_MARKS.get(event.status, '✗')} {event.node_id} {event.status}: " + str(
                event.error.get("message")
            )
        if isinstance(event, NodeSkipped):
            self.rows[event.node_id].update(status="skipped", note=event.reason)
            return f"{_MARKS['skipped']} {event.node_id} skipped ({event.reason})"
        if isinstance(event, NodeRetrying):
            row = self.rows[event.node_id]
            row.update(status="retrying", note=event.error.get("message"))
            return (
                f"{_MARKS['retrying']} {event.node_id} attempt {event.attempt} failed, retrying "
                f"in {event.delay_ms:.0f} ms: {event.error.get('message')}"
            )
        if isinstance(event, LogEvent):
            return f"  [{event.node_id or 'run'}] {event.message}"
        return None


@contextmanager
def progress_display(compiled: Any, stream: TextIO) -> Iterator[Callable[[Event], None]]:
    """Yield an event listener that shows progress on ``stream``."""
    board = _Board(compiled)
    if not stream.isatty():

        def print_line(event: Event) -> None:
            line = board.apply(event)
            if line:
                print(line, file=stream, flush=True)

        yield print_line
        return

    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    console = Console(file=stream)

    def render() -> Table:
        table = Table(box=None, pad_edge=False)
        for column in ("", "node", "type", "status", "try", "ms", ""):
            table.add_column(column)
        for node_id, row in board.rows.items():
            ms = row["ms"]
            if row["status"] == "running" and row["t0"] is not None:
                ms = (time.perf_counter() - row["t0"]) * 1000
            table.add_row(
                _MARKS.get(row["status"], "?"),
                node_id,
                row["type"],
                row["status"],
                str(row["attempts"] or ""),
                "" if ms is None else f"{ms:.0f}",
                str(row["note"] or "")[:60],
            )
        return table

    with Live(render(), console=console, refresh_per_second=10, transient=False) as live:

        def update(event: Event) -> None:
            line = board.apply(event)
            if isinstance(event, LogEvent) and line:
                live.console.print(line)
            live.update(render())

        yield update
