"""Run history: a paged table of executions, run detail, and two runs compared.

The table asks the store for the visible page only (``executions.list(limit, offset)``
and ``count``), so it stays as fast with 100k runs as with ten. Tick two runs to
compare them; click a run to open its detail.
"""

from __future__ import annotations

import html
from datetime import date, datetime, time, timedelta
from typing import Any

import pandas as pd
import panel as pn

from store.errors import NotFoundError
from store.executions import ExecutionRecord
from studio.pages._run_compare import compare_html
from studio.pages._run_detail import RunDetail
from studio.pages._ui import (
    CARD_CSS,
    badge,
    fmt_cost,
    fmt_duration,
    fmt_time,
    fmt_tokens,
    short_id,
)

__all__ = ["PERIODS", "STATUSES", "RunsPage"]

STATUSES = ("succeeded", "failed", "running", "interrupted", "cancelled", "pending")
PERIODS: dict[str, timedelta | None] = {
    "Any time": None,
    "Last hour": timedelta(hours=1),
    "Last 24 hours": timedelta(days=1),
    "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30),
}
PAGE_SIZES = (25, 50, 100)
_ALL = ""
_COLUMNS = [
    "id",
    "Started",
    "Workflow",
    "Status",
    "Duration",
    "Nodes",
    "Tokens",
    "Cost",
    "Trigger",
    "Run",
]


class RunsPage:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.mode = "list"
        self.page = 0
        self.total = 0
        self.records: list[ExecutionRecord] = []
        #: Runs ticked for comparison, in the order they were ticked (kept across pages).
        self.picked: list[str] = []
        self._syncing = False
        self._opening = False

        self.workflow = pn.widgets.Select(
            label="Workflow",
            options={"All workflows": _ALL},
            width=220,
            css_classes=["af-filter-workflow"],
        )
        self.status = pn.widgets.Select(
            label="Status",
            options={"Any status": _ALL, **{s: s for s in STATUSES}},
            width=150,
            css_classes=["af-filter-status"],
        )
        self.period = pn.widgets.Select(
            label="When", options=list(PERIODS), width=150, css_classes=["af-filter-period"]
        )
        self.since_date = pn.widgets.DatePicker(
            label="Since date", width=150, css_classes=["af-filter-since"]
        )
        self.page_size = pn.widgets.Select(
            label="Per page",
            options=list(PAGE_SIZES),
            value=PAGE_SIZES[0],
            width=90,
            css_classes=["af-page-size"],
        )
        for widget in (self.workflow, self.status, self.period, self.page_size):
            widget.param.watch(lambda _event: self._filters_changed(), "value")
        self.since_date.param.watch(self._date_changed, "value")

        self.first_button = pn.widgets.Button(
            label="«", width=40, color="light", css_classes=["af-page-first"]
        )
        self.prev_button = pn.widgets.Button(
            label="\u2039 Prev", width=80, color="light", css_classes=["af-page-prev"]
        )
        self.next_button = pn.widgets.Button(
            label="Next \u203a", width=80, color="light", css_classes=["af-page-next"]
        )
        self.last_button = pn.widgets.Button(
            label="»", width=40, color="light", css_classes=["af-page-last"]
        )
        self.first_button.on_click(lambda _event: self.go_to(0))
        self.prev_button.on_click(lambda _event: self.go_to(self.page - 1))
        self.next_button.on_click(lambda _event: self.go_to(self.page + 1))
        self.last_button.on_click(lambda _event: self.go_to(self.page_count() - 1))
        self.page_label = pn.pane.HTML("", css_classes=["af-page-label"], margin=(12, 10))
        self.refresh_button = pn.widgets.Button(label="Refresh", color="light")
        self.refresh_button.on_click(lambda _event: self.load_page())
        self.compare_button = pn.widgets.Button(
            label="Compare (0/2)",
            color="primary",
            disabled=True,
            css_classes=["af-compare-button"],
        )
        self.compare_button.on_click(lambda _event: self.compare_picked())

        self.table = pn.widgets.Tabulator(
            _frame([]),
            show_index=False,
            disabled=True,
            selectable="checkbox",
            pagination=None,
            formatters={"Status": {"type": "html"}},
            hidden_columns=["id"],
            sizing_mode="stretch_width",
            layout="fit_data_stretch",
            configuration={"columnDefaults": {"headerSort": False}},
            css_classes=["af-runs-table"],
        )
        self.table.on_click(self._on_row_click)
        self.table.param.watch(self._selection_changed, "selection")
        self.empty = pn.pane.HTML(
            "<div class='af-card af-muted'>No runs match. Run a workflow from the editor, "
            "or with <code>agentflow run FILE</code>, and it appears here.</div>",
            stylesheets=[CARD_CSS],
            visible=False,
            sizing_mode="stretch_width",
        )
        self.list_view = pn.Column(
            pn.pane.HTML("<h2 style='margin:4px 0'>Run history</h2>"),
            pn.Row(
                self.workflow,
                self.status,
                self.period,
                self.since_date,
                pn.Column(pn.Spacer(height=18), self.refresh_button),
                pn.Spacer(sizing_mode="stretch_width"),
                pn.Column(pn.Spacer(height=18), self.compare_button),
                sizing_mode="stretch_width",
            ),
            self.table,
            self.empty,
            pn.Row(
                self.first_button,
                self.prev_button,
                self.page_label,
                self.next_button,
                self.last_button,
                pn.Spacer(width=20),
                self.page_size,
            ),
            sizing_mode="stretch_width",
            css_classes=["af-runs-list"],
        )
        self.detail = RunDetail(app, back=self.show_list)
        self.compare_back = pn.widgets.Button(
            label="← All runs", color="light", css_classes=["af-back"]
        )
        self.compare_back.on_click(lambda _event: self.show_list())
        self.compare_open_a = pn.widgets.Button(label="Open A", color="light")
        self.compare_open_b = pn.widgets.Button(label="Open B", color="light")
        self.compare_open_a.on_click(lambda _event: self._open_compared(0))
        self.compare_open_b.on_click(lambda _event: self._open_compared(1))
        self.compare_body = pn.pane.HTML(
            "", stylesheets=[CARD_CSS], sizing_mode="stretch_width", css_classes=["af-compare"]
        )
        self.compared: tuple[str, str] | None = None
        self.compare_view = pn.Column(
            pn.Row(
                self.compare_back,
                pn.pane.HTML("<h2 style='margin:4px 0'>Compare runs</h2>"),
                pn.Spacer(sizing_mode="stretch_width"),
                self.compare_open_a,
                self.compare_open_b,
                sizing_mode="stretch_width",
            ),
            self.compare_body,
            sizing_mode="stretch_width",
        )
        self.body = pn.Column(self.list_view, sizing_mode="stretch_width")
        self.layout = pn.Column(self.body, sizing_mode="stretch_both", scroll=True)

    # -- page protocol -----------------------------------------------------------------
    def view(self) -> pn.viewable.Viewable:
        return self.layout

    def refresh(self) -> None:
        """Shown from the navigation: the list (or, right after ``open``, that run)."""
        self._refresh_workflows()
        if self._opening:
            self._opening = False
            return
        self.show_list()

    def open(self, execution_id: str) -> None:
        """Show one run's detail (``app.open_run``)."""
        try:
            self.detail.load(execution_id)
        except NotFoundError:
            self.app.notify(f"no run '{execution_id}'", "error")
            return
        self._opening = True
        self.mode = "detail"
        self.body.objects = [self.detail.view()]

    def show_list(self) -> None:
        self.mode = "list"
        self.load_page()
        self.body.objects = [self.list_view]

    # -- the list ----------------------------------------------------------------------
    def filters(self) -> dict[str, Any]:
        """The store query's filters from the widgets."""
        since: datetime | None = None
        if isinstance(self.since_date.value, date):
            since = datetime.combine(self.since_date.value, time.min).astimezone()
        else:
            window = PERIODS.get(self.period.value)
            if window is not None:
                since = datetime.now().astimezone() - window
        return {
            "workflow_id": self.workflow.value or None,
            "status": self.status.value or None,
            "since": since,
        }

    def page_count(self) -> int:
        return max(1, -(-self.total // int(self.page_size.value)))

    def go_to(self, page: int) -> None:
        self.page = min(max(page, 0), self.page_count() - 1)
        self.load_page()

    def load_page(self) -> None:
        executions = self.app.store.executions
        filters = self.filters()
        self.total = executions.count(**filters)
        size = int(self.page_size.value)
        self.page = min(self.page, self.page_count() - 1)
        self.records = executions.list(**filters, limit=size, offset=self.page * size)
        self._syncing = True
        try:
            self.table.value = _frame(self.records)
            on_page = [i for i, record in enumerate(self.records) if record.id in self.picked]
            self.table.selection = on_page
        finally:
            self._syncing = False
        first = self.page * size + 1 if self.total else 0
        last = self.page * size + len(self.records)
        self.page_label.object = (
            f"Runs {first:,}\u2013{last:,} of {self.total:,} · page {self.page + 1:,} of "
            f"{self.page_count():,}"
        )
        self.prev_button.disabled = self.first_button.disabled = self.page == 0
        self.next_button.disabled = self.last_button.disabled = self.page >= self.page_count() - 1
        self.empty.visible = self.total == 0
        self.table.visible = self.total > 0
        self._update_compare_button()

    def _filters_changed(self) -> None:
        self.page = 0
        self.load_page()

    def _date_changed(self, event: Any) -> None:
        if event.new is not None and self.period.value != "Any time":
            self.period.value = "Any time"  # the date wins; its own watcher reloads
        self._filters_changed()

    def _refresh_workflows(self) -> None:
        records = self.app.store.workflows.list()
        names = [record.name for record in records]
        options = {"All workflows": _ALL}
        for record in records:
            label = (
                record.name
                if names.count(record.name) == 1
                else (f"{record.name} ({record.id[:6]})")
            )
            options[label] = record.id
        current = self.workflow.value
        self.workflow.options = options
        if current in options.values():
            self.workflow.value = current

    def _on_row_click(self, event: Any) -> None:
        # The tick box column selects for comparison; any other cell opens the run.
        if getattr(event, "column", None) in ("_selection", None):
            return
        if 0 <= event.row < len(self.records):
            self.app.open_run(self.records[event.row].id)

    def _selection_changed(self, event: Any) -> None:
        if self._syncing:
            return
        page_ids = [record.id for record in self.records]
        chosen = [page_ids[i] for i in event.new if 0 <= i < len(page_ids)]
        kept = [run_id for run_id in self.picked if run_id not in page_ids or run_id in chosen]
        self.picked = kept + [run_id for run_id in chosen if run_id not in kept]
        self._update_compare_button()

    def pick(self, *execution_ids: str) -> None:
        """Tick runs for comparison (as the tick boxes do)."""
        self.picked = list(dict.fromkeys(execution_ids))
        self.load_page()

    def _update_compare_button(self) -> None:
        count = len(self.picked)
        self.compare_button.label = f"Compare ({count}/2)"
        self.compare_button.disabled = count != 2

    # -- compare -----------------------------------------------------------------------
    def compare_picked(self) -> None:
        if len(self.picked) != 2:
            self.app.notify("tick exactly two runs to compare them", "warning")
            return
        self.compare(self.picked[0], self.picked[1])

    def compare(self, first: str, second: str) -> None:
        try:
            a = self.app.store.executions.get(first)
            b = self.app.store.executions.get(second)
        except NotFoundError as exc:
            self.app.notify(exc.message, "error")
            return
        # Older run on the left, so that "B minus A" reads as "what changed since".
        a, b = sorted((a, b), key=lambda r: r.created_at)
        self.compared = (a.id, b.id)
        self.compare_body.object = compare_html(a, b)
        self.mode = "compare"
        self.body.objects = [self.compare_view]

    def _open_compared(self, index: int) -> None:
        if self.compared is not None:
            self.open(self.compared[index])


def _frame(records: list[ExecutionRecord]) -> pd.DataFrame:
    rows = []
    for record in records:
        states = record.node_states if isinstance(record.node_states, dict) else {}
        done = sum(
            1
            for s in states.values()
            if isinstance(s, dict) and s.get("status") in ("succeeded", "cached")
        )
        workflow = record.workflow_name or record.workflow_id[:8]
        if record.workflow_version is not None:
            workflow += f" v{record.workflow_version}"
        rows.append(
            {
                "id": record.id,
                "Started": fmt_time(record.started_at or record.created_at),
                "Workflow": html.escape(workflow),
                "Status": badge(record.status),
                "Duration": fmt_duration(record.duration_ms),
                "Nodes": f"{done}/{len(states)}" if states else "—",
                "Tokens": fmt_tokens(record.token_usage),
                "Cost": fmt_cost(record.cost_usd),
                "Trigger": record.trigger_type,
                "Run": short_id(record.id),
            }
        )
    return pd.DataFrame(rows, columns=_COLUMNS)
