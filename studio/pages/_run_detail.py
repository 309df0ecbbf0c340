"""One run in detail: summary, timing chart, every node attempt with inputs/outputs/errors.

Actions: re-run with the same inputs, resume an interrupted or failed run, open the
workflow. A run that is still going is followed live: its events trigger a reload
(at most a few per second) once the recorder has written them.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
import panel as pn

from store.errors import NotFoundError
from store.executions import RESUMABLE_STATUSES, ExecutionRecord, NodeRunRecord
from studio.pages._gantt import gantt_figure, spans
from studio.pages._ui import (
    CARD_CSS,
    badge,
    fmt_cost,
    fmt_duration,
    fmt_time,
    fmt_tokens,
    json_view,
    short_id,
)

if TYPE_CHECKING:
    from engine import Event, Run

__all__ = ["RunDetail"]

_RELOAD_DELAY = 0.25
_LIVE = ("pending", "running")


class RunDetail:
    """The detail view; ``load(execution_id)`` shows a run, ``back`` returns to the list."""

    def __init__(self, app: Any, back: Callable[[], None]) -> None:
        self.app = app
        self.record: ExecutionRecord | None = None
        self.execution_id: str | None = None
        self.selected: NodeRunRecord | None = None
        self._dirty = False
        self._reloader: asyncio.Task[None] | None = None
        self._doc: Any = None
        self._watched: set[str] = set()

        self.back_button = pn.widgets.Button(
            label="← All runs", color="light", css_classes=["af-back"]
        )
        self.back_button.on_click(lambda _event: back())
        self.refresh_button = pn.widgets.Button(label="Refresh", color="light")
        self.refresh_button.on_click(lambda _event: self.reload())
        self.open_button = pn.widgets.Button(label="Open workflow", color="light")
        self.open_button.on_click(lambda _event: self._open_workflow())
        self.rerun_button = pn.widgets.Button(
            label="Re-run",
            color="primary",
            description="Run the workflow again (its latest version) with the same inputs",
            css_classes=["af-rerun"],
        )
        self.rerun_button.on_click(lambda _event: self.rerun())
        self.resume_button = pn.widgets.Button(
            label="Resume",
            color="warning",
            description="Continue this run: nodes that already succeeded are not run again",
            css_classes=["af-resume"],
        )
        self.resume_button.on_click(lambda _event: self.resume())
        self.title = pn.pane.HTML(
            "", sizing_mode="stretch_width", stylesheets=[CARD_CSS], css_classes=["af-run-title"]
        )
        self.summary = pn.pane.HTML("", sizing_mode="stretch_width", stylesheets=[CARD_CSS])
        self.error = pn.pane.HTML(
            "", sizing_mode="stretch_width", stylesheets=[CARD_CSS], visible=False
        )
        self.gantt = pn.pane.Bokeh(None, sizing_mode="stretch_width", css_classes=["af-gantt"])
        self.nodes = pn.widgets.Tabulator(
            _node_frame([]),
            show_index=False,
            disabled=True,
            selectable=1,
            # A loop can leave thousands of attempts: only the visible page goes to the browser.
            pagination="remote",
            page_size=50,
            formatters={"Status": {"type": "html"}},
            hidden_columns=["key"],
            sizing_mode="stretch_width",
            layout="fit_data_stretch",
            configuration={"columnDefaults": {"headerSort": False}},
            css_classes=["af-node-runs"],
            max_height=420,
        )
        self.nodes.on_click(self._on_node_click)
        self.attempt_title = pn.pane.HTML("", stylesheets=[CARD_CSS])
        self.attempt_tabs = pn.Tabs(sizing_mode="stretch_width", css_classes=["af-attempt"])
        self.run_inputs = pn.Column(sizing_mode="stretch_width")
        self.run_outputs = pn.Column(sizing_mode="stretch_width")
        half = {
            "sizing_mode": "stretch_width",
            "min_width": 320,
            "collapsible": False,
            "styles": {"overflow": "auto"},
            "margin": (5, 10),
        }
        self.layout = pn.Column(
            pn.Row(
                self.back_button,
                self.title,
                self.refresh_button,
                self.open_button,
                self.resume_button,
                self.rerun_button,
                sizing_mode="stretch_width",
            ),
            self.summary,
            self.error,
            pn.Card(
                self.gantt,
                title="Timing",
                collapsible=False,
                sizing_mode="stretch_width",
                css_classes=["af-timing"],
                margin=(5, 10),
            ),
            pn.Row(
                pn.Card(self.nodes, title="Node runs (each attempt)", **half),
                pn.Card(self.attempt_title, self.attempt_tabs, title="Selected attempt", **half),
                sizing_mode="stretch_width",
            ),
            pn.Row(
                pn.Card(self.run_inputs, title="Run inputs", **half),
                pn.Card(self.run_outputs, title="Run outputs", **half),
                sizing_mode="stretch_width",
            ),
            sizing_mode="stretch_width",
            css_classes=["af-run-detail"],
        )

    def view(self) -> pn.viewable.Viewable:
        return self.layout

    # -- loading ------------------------------------------------------------------------
    def load(self, execution_id: str) -> None:
        """Show this run (raises :class:`NotFoundError` when there is none)."""
        record = self.app.store.executions.get(execution_id)
        self.execution_id = execution_id
        self.record = record
        self._render(record)
        if record.status in _LIVE and execution_id in self.app.runner.active:
            self._follow_existing(execution_id)

    def reload(self) -> None:
        if self.execution_id is None:
            return
        try:
            self.load(self.execution_id)
        except NotFoundError:
            self._waiting(self.execution_id)

    def _render(self, record: ExecutionRecord) -> None:
        workflow = html.escape(record.workflow_name or record.workflow_id)
        version = f" v{record.workflow_version}" if record.workflow_version is not None else ""
        self.title.object = (
            f'<div style="display:flex;align-items:center;gap:10px">'
            f'<h2 style="margin:4px 0">Run <code>{short_id(record.id)}</code></h2>'
            f"{badge(record.status)}<span class='af-muted'>{workflow}{version}"
            f" · {html.escape(record.trigger_type)} · id {html.escape(record.id)}</span></div>"
        )
        counts: dict[str, int] = {}
        for run in _latest_attempts(record.node_runs):
            counts[run.status] = counts.get(run.status, 0) + 1
        nodes_text = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "—"
        usage = record.token_usage if isinstance(record.token_usage, dict) else {}
        tokens_detail = (
            f"{usage.get('prompt', 0)} in / {usage.get('completion', 0)} out" if usage else ""
        )
        stats = [
            ("started", fmt_time(record.started_at)),
            ("duration", fmt_duration(record.duration_ms)),
            ("nodes", nodes_text),
            ("tokens", fmt_tokens(record.token_usage)),
            ("cost", fmt_cost(record.cost_usd)),
        ]
        self.summary.object = (
            '<div class="af-card af-run-summary">'
            + "".join(
                f'<div class="af-stat"><span>{name}</span><b>{html.escape(value)}</b></div>'
                for name, value in stats
            )
            + (
                f'<div class="af-muted">{html.escape(tokens_detail)}</div>'
                if usage.get("total")
                else ""
            )
            + "</div>"
        )
        if record.error_message:
            where = (
                f"Failed at node <b>{html.escape(record.error_node_id)}</b>"
                if record.error_node_id
                else f"Run {html.escape(record.status)}"
            )
            self.error.object = (
                f'<div class="af-error af-run-error"><div>{where}</div>'
                f'<pre style="margin:4px 0 0;white-space:pre-wrap">'
                f"{html.escape(record.error_message)}</pre></div>"
            )
            self.error.visible = True
        else:
            self.error.visible = False
        now = datetime.now().astimezone() if record.status in _LIVE else None
        bars = spans(record.node_runs, now=now)
        self.gantt.object = gantt_figure(bars) if bars else None
        self.gantt.visible = bool(bars)
        self.nodes.value = _node_frame(record.node_runs)
        self.rerun_button.disabled = record.status in _LIVE
        self.resume_button.disabled = record.status not in RESUMABLE_STATUSES
        self.resume_button.visible = record.status in RESUMABLE_STATUSES
        self.run_inputs.objects = [json_view(record.inputs)]
        self.run_outputs.objects = [json_view(record.outputs)]
        self._select(_initial_attempt(record))

    def _waiting(self, execution_id: str) -> None:
        self.title.object = (
            f"<h2 style='margin:4px 0'>Run <code>{short_id(execution_id)}</code></h2>"
            "<span class='af-muted'>starting…</span>"
        )

    # -- node attempts --------------------------------------------------------------------
    def _on_node_click(self, event: Any) -> None:
        if self.record is None:
            return
        runs = self.record.node_runs
        if 0 <= event.row < len(runs):
            self._select(runs[event.row])

    def select(self, node_id: str, attempt: int | None = None) -> NodeRunRecord | None:
        """Show one attempt of a node (its latest when ``attempt`` is None)."""
        if self.record is None:
            return None
        matches = [r for r in self.record.node_runs if r.node_id == node_id]
        if attempt is not None:
            matches = [r for r in matches if r.attempt == attempt]
        chosen = max(matches, key=lambda r: r.attempt) if matches else None
        self._select(chosen)
        return chosen

    def _select(self, run: NodeRunRecord | None) -> None:
        self.selected = run
        if run is None:
            self.attempt_title.object = "<span class='af-muted'>No node has run yet.</span>"
            self.attempt_tabs.objects = []
            return
        if self.record is not None:
            index = self.record.node_runs.index(run)
            if self.nodes.selection != [index]:
                self.nodes.selection = [index]
        self.attempt_title.object = (
            f"<b>{html.escape(run.node_id)}</b> <span class='af-muted'>{html.escape(run.node_type)}"
            f" · attempt {run.attempt}</span> {badge(run.status)}"
            f" <span class='af-muted'>{html.escape(fmt_duration(run.duration_ms))}"
            f" · {run.tokens} tokens · {html.escape(fmt_cost(run.cost))}</span>"
        )
        tabs = [
            ("Inputs", json_view(run.inputs)),
            ("Outputs", json_view(run.outputs)),
            ("Error", json_view(run.error)),
        ]
        if run.metadata:
            tabs.append(("Metadata", json_view(run.metadata)))
        self.attempt_tabs.objects = [pn.Column(view, name=name) for name, view in tabs]
        self.attempt_tabs.active = 2 if run.error else 1 if run.outputs is not None else 0

    # -- actions ---------------------------------------------------------------------------
    def _open_workflow(self) -> None:
        if self.record is not None:
            self.app.open_editor(self.record.workflow_id)

    def rerun(self) -> str | None:
        """Start the workflow again with this run's inputs; shows the new run, returns its id."""
        if self.record is None:
            return None
        workflow_id = self.record.workflow_id
        inputs = self.record.inputs if isinstance(self.record.inputs, dict) else {}
        return self._launch(
            lambda listeners: self.app.runner.start(workflow_id, inputs, listeners=listeners),
            "re-run",
        )

    def resume(self) -> str | None:
        """Continue this interrupted/failed run under its own id."""
        if self.record is None or self.record.status not in RESUMABLE_STATUSES:
            return None
        execution_id = self.record.id
        return self._launch(
            lambda listeners: self.app.runner.resume(execution_id, listeners=listeners),
            "resume",
        )

    def _launch(self, start: Callable[[list[Any]], Run], what: str) -> str | None:
        self._doc = pn.state.curdoc
        try:
            run = start([self._on_event])
        except Exception as exc:  # store or engine: a missing workflow, invalid inputs...
            self.app.notify(f"cannot {what}: {_describe(exc)}", "error")
            return None
        self.execution_id = run.execution_id
        self._watched.add(run.execution_id)
        self._waiting(run.execution_id)
        self.rerun_button.disabled = self.resume_button.disabled = True
        self.app.notify(f"{what}: run {short_id(run.execution_id)} started", "info")
        return str(run.execution_id)

    def _follow_existing(self, execution_id: str) -> None:
        if execution_id in self._watched:
            return
        self._watched.add(execution_id)
        self._doc = pn.state.curdoc
        self.app.runner.watch(execution_id, self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.type == "run_finished":
            self._watched.discard(event.execution_id)
        if event.execution_id != self.execution_id:
            return
        self._dirty = True
        if self._reloader is None or self._reloader.done():
            with contextlib.suppress(RuntimeError):  # no loop: nothing live to follow
                self._reloader = asyncio.get_running_loop().create_task(self._reload_soon())

    async def _reload_soon(self) -> None:
        while self._dirty:
            self._dirty = False
            await asyncio.sleep(_RELOAD_DELAY)
            await asyncio.to_thread(self.app.store.recorder.flush, 10.0)
            doc = self._doc
            if doc is not None and doc.session_context is not None:
                doc.add_next_tick_callback(self.reload)
            else:
                self.reload()

    async def settled(self) -> None:
        """Wait until pending live reloads are done (for tests and the bench)."""
        while self._reloader is not None and not self._reloader.done():
            await self._reloader


def _describe(exc: BaseException) -> str:
    return str(getattr(exc, "message", None) or exc)


def _latest_attempts(node_runs: list[NodeRunRecord]) -> list[NodeRunRecord]:
    latest: dict[str, NodeRunRecord] = {}
    for run in node_runs:
        if run.node_id not in latest or run.attempt >= latest[run.node_id].attempt:
            latest[run.node_id] = run
    return list(latest.values())


def _initial_attempt(record: ExecutionRecord) -> NodeRunRecord | None:
    if not record.node_runs:
        return None
    failed = [r for r in record.node_runs if r.status == "failed"]
    if record.error_node_id:
        failed = [r for r in failed if r.node_id == record.error_node_id] or failed
    if failed:
        return failed[-1]
    ends = [r for r in record.node_runs if r.node_type == "end"]
    return ends[-1] if ends else record.node_runs[-1]


def _node_frame(node_runs: list[NodeRunRecord]) -> pd.DataFrame:
    origin = min((r.started_at for r in node_runs if r.started_at is not None), default=None)
    rows = []
    for index, run in enumerate(node_runs):
        offset = (
            f"+{fmt_duration((run.started_at - origin).total_seconds() * 1000)}"
            if origin is not None and run.started_at is not None
            else "—"
        )
        rows.append(
            {
                "key": index,
                "Node": run.node_id,
                "Type": run.node_type,
                "Attempt": run.attempt,
                "Status": badge(run.status),
                "Start": offset,
                "Duration": fmt_duration(run.duration_ms),
                "Tokens": run.tokens,
                "Cost": fmt_cost(run.cost),
            }
        )
    columns = ["key", "Node", "Type", "Attempt", "Status", "Start", "Duration", "Tokens", "Cost"]
    return pd.DataFrame(rows, columns=columns)
