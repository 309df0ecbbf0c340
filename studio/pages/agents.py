"""Agents: workflows published under a slug, browsed by category, run from an input form.

Publishing validates in the store (slug format, unique slug); a refused publish shows
the store's message next to the form and keeps every field as typed. Opening an agent
builds its input form from the workflow's ``start`` node; running it counts one use.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Any

import panel as pn

from store.agents import SLUG_PATTERN, AgentRecord
from store.errors import NotFoundError, StoreError
from studio.pages._run_inputs import InputForm, InputFormError, declared_inputs
from studio.pages._ui import CARD_CSS, badge, fmt_duration, json_view, set_text, short_id

if TYPE_CHECKING:
    from engine import Event

__all__ = ["AgentsPage", "avatar", "slugify"]

_ALL = "All"
_MAX_CARDS = 120
_GALLERY_CSS = (
    CARD_CSS
    + """
.af-agent-card { width: 260px; min-height: 150px; }
.af-agent-icon { font-size: 26px; line-height: 1; }
.af-agent-name { font-weight: 600; font-size: 15px; margin: 6px 0 2px; color: #111827; }
.af-agent-desc { color: #4b5563; font-size: 13px; margin: 4px 0; max-height: 56px;
                 overflow: hidden; }
.af-chip { display: inline-block; background: #eef2ff; color: #3730a3; border-radius: 10px;
           padding: 0 8px; margin: 2px 4px 2px 0; font-size: 11px; }
.af-chip-cat { background: #ecfdf5; color: #065f46; }
"""
)


_AVATAR_COLORS = ("#6366f1", "#0ea5e9", "#10b981", "#f59e0b", "#ef4444", "#8b5cf6", "#14b8a6")


def avatar(agent: AgentRecord, size: int = 36) -> str:
    """The agent's icon, or its initials on a colour picked from its slug."""
    if agent.icon:
        return (
            f"<div class='af-agent-icon' style='font-size:{int(size * 0.8)}px'>"
            f"{html.escape(agent.icon)}</div>"
        )
    initials = "".join(word[0] for word in agent.name.split()[:2]).upper() or "A"
    color = _AVATAR_COLORS[sum(map(ord, agent.slug)) % len(_AVATAR_COLORS)]
    return (
        f"<div class='af-agent-icon' style='width:{size}px;height:{size}px;border-radius:8px;"
        f"background:{color};color:white;display:flex;align-items:center;"
        f"justify-content:center;font-weight:700;font-size:{size // 2.6:.0f}px'>"
        f"{html.escape(initials)}</div>"
    )


def slugify(text: str) -> str:
    """A slug suggestion from a name: ``"Ticket triage!"`` -> ``"ticket-triage"``."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:99]


class AgentsPage:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.agent: AgentRecord | None = None
        self.last_run_id: str | None = None
        self._doc: Any = None
        self._slug_touched = False
        self._setting_slug = False

        # -- browse ---------------------------------------------------------------------
        self.search = pn.widgets.TextInput(
            label="Search",
            placeholder="name, description, tag…",
            width=260,
            css_classes=["af-agent-search"],
        )
        self.search.param.watch(lambda _event: self.load_gallery(), "value_input")
        self.category = pn.widgets.RadioButtonGroup(
            label="Category",
            options=[_ALL],
            value=_ALL,
            color="light",
            css_classes=["af-categories"],
        )
        self.category.param.watch(lambda _event: self.load_gallery(), "value")
        self.gallery = pn.FlexBox(sizing_mode="stretch_width", css_classes=["af-gallery"])
        self.gallery_note = pn.pane.HTML("", stylesheets=[CARD_CSS])

        # -- publish --------------------------------------------------------------------
        self.pub_workflow = pn.widgets.Select(
            label="Workflow",
            options={},
            sizing_mode="stretch_width",
            css_classes=["af-pub-workflow"],
        )
        self.pub_name = pn.widgets.TextInput(
            label="Name *",
            placeholder="Ticket triage",
            sizing_mode="stretch_width",
            css_classes=["af-pub-name"],
        )
        self.pub_slug = pn.widgets.TextInput(
            label="Slug *",
            placeholder="ticket-triage",
            sizing_mode="stretch_width",
            description="2-99 characters a-z, 0-9 and '-'; unique among agents",
            css_classes=["af-pub-slug"],
        )
        self.pub_description = pn.widgets.TextAreaInput(
            label="Description",
            rows=3,
            sizing_mode="stretch_width",
            css_classes=["af-pub-description"],
        )
        self.pub_category = pn.widgets.TextInput(
            label="Category",
            placeholder="support",
            sizing_mode="stretch_width",
            css_classes=["af-pub-category"],
        )
        self.pub_tags = pn.widgets.TextInput(
            label="Tags",
            placeholder="email, triage",
            sizing_mode="stretch_width",
            description="comma separated",
            css_classes=["af-pub-tags"],
        )
        self.pub_icon = pn.widgets.TextInput(
            label="Icon",
            placeholder="an emoji, e.g. ⚡ (initials if empty)",
            sizing_mode="stretch_width",
            css_classes=["af-pub-icon"],
        )
        self.pub_button = pn.widgets.Button(
            label="Publish", color="primary", css_classes=["af-publish"]
        )
        self.pub_message = pn.pane.Alert(
            "",
            alert_type="danger",
            visible=False,
            sizing_mode="stretch_width",
            css_classes=["af-publish-message"],
        )
        self.pub_name.param.watch(self._name_typed, "value_input")
        self.pub_slug.param.watch(self._slug_typed, "value_input")
        self.pub_button.on_click(lambda _event: self.publish())
        self.publish_card = pn.Card(
            self.pub_workflow,
            self.pub_name,
            self.pub_slug,
            self.pub_description,
            self.pub_category,
            self.pub_tags,
            self.pub_icon,
            self.pub_message,
            self.pub_button,
            title="Publish a workflow as an agent",
            collapsible=False,
            width=340,
            css_classes=["af-publish-card"],
        )
        self.browse_view = pn.Row(
            pn.Column(
                pn.pane.HTML("<h2 style='margin:4px 0'>Agents</h2>"),
                pn.Row(self.search, self.category),
                self.gallery_note,
                self.gallery,
                sizing_mode="stretch_width",
            ),
            self.publish_card,
            sizing_mode="stretch_width",
        )

        # -- one agent ------------------------------------------------------------------
        self.back_button = pn.widgets.Button(
            label="← All agents", color="light", css_classes=["af-back"]
        )
        self.back_button.on_click(lambda _event: self.show_gallery())
        self.agent_header = pn.pane.HTML(
            "", stylesheets=[_GALLERY_CSS], sizing_mode="stretch_width"
        )
        self.form = InputForm()
        self.run_button = pn.widgets.Button(
            label="Run agent", color="primary", css_classes=["af-run-agent"]
        )
        self.run_button.on_click(lambda _event: self.run_agent())
        self.unpublish_button = pn.widgets.Button(label="Unpublish", color="light")
        self.unpublish_button.on_click(lambda _event: self.unpublish())
        self.result_status = pn.pane.HTML(
            "", stylesheets=[CARD_CSS], css_classes=["af-agent-status"]
        )
        self.result = pn.Column(sizing_mode="stretch_width")
        self.open_run_button = pn.widgets.Button(label="Run details", color="light", visible=False)
        self.open_run_button.on_click(lambda _event: self._open_last_run())
        self.agent_view = pn.Column(
            pn.Row(
                self.back_button,
                pn.Spacer(sizing_mode="stretch_width"),
                self.unpublish_button,
                sizing_mode="stretch_width",
            ),
            self.agent_header,
            pn.Row(
                pn.Card(
                    self.form.view(), self.run_button, title="Inputs", collapsible=False, width=420
                ),
                pn.Card(
                    pn.Row(self.result_status, self.open_run_button),
                    self.result,
                    title="Result",
                    collapsible=False,
                    sizing_mode="stretch_width",
                    css_classes=["af-agent-result"],
                ),
                sizing_mode="stretch_width",
            ),
            sizing_mode="stretch_width",
        )
        self.body = pn.Column(self.browse_view, sizing_mode="stretch_width")
        self.layout = pn.Column(self.body, sizing_mode="stretch_both", scroll=True)

    # -- page protocol ---------------------------------------------------------------------
    def view(self) -> pn.viewable.Viewable:
        return self.layout

    def refresh(self) -> None:
        self._refresh_workflows()
        self._refresh_categories()
        if self.agent is None:
            self.load_gallery()
        else:
            self._reload_agent()

    # -- browsing --------------------------------------------------------------------------
    def _refresh_workflows(self) -> None:
        options = {record.name: record.id for record in self.app.store.workflows.list()}
        current = self.pub_workflow.value
        self.pub_workflow.options = options
        if current in options.values():
            self.pub_workflow.value = current
        elif options:
            self.pub_workflow.value = next(iter(options.values()))

    def _refresh_categories(self) -> None:
        counts = self.app.store.agents.categories()
        total = len(self.app.store.agents.list())
        options = {f"{_ALL} ({total})": _ALL, **{f"{name} ({n})": name for name, n in counts}}
        current = self.category.value
        self.category.options = options
        self.category.value = current if current in options.values() else _ALL
        known = ", ".join(name for name, _ in counts[:6])
        self.pub_category.placeholder = f"e.g. {known}" if known else "support"

    def agents(self) -> list[AgentRecord]:
        """The listed agents for the current search and category."""
        category = self.category.value
        return list(
            self.app.store.agents.list(
                category=None if category in (_ALL, None) else category,
                search=(self.search.value_input or "").strip() or None,
                limit=_MAX_CARDS,
            )
        )

    def load_gallery(self) -> None:
        found = self.agents()
        self.gallery.objects = [self._card(agent) for agent in found]
        if not found:
            searching = bool((self.search.value_input or "").strip())
            self.gallery_note.object = (
                "<div class='af-card af-muted'>"
                + (
                    "No agent matches this search."
                    if searching
                    else "No agents yet. Publish a workflow with the form on the right."
                )
                + "</div>"
            )
        else:
            self.gallery_note.object = (
                f"<span class='af-muted'>{len(found)} agent{'s' if len(found) != 1 else ''}"
                + (" (first ones shown)" if len(found) >= _MAX_CARDS else "")
                + "</span>"
            )

    def _card(self, agent: AgentRecord) -> pn.viewable.Viewable:
        chips = "".join(f"<span class='af-chip'>{html.escape(t)}</span>" for t in agent.tags)
        if agent.category:
            chips = (
                f"<span class='af-chip af-chip-cat'>{html.escape(agent.category)}</span>" + chips
            )
        body = pn.pane.HTML(
            f"{avatar(agent)}"
            f"<div class='af-agent-name'>{html.escape(agent.name)}</div>"
            f"<div class='af-muted'>/{html.escape(agent.slug)} · {agent.use_count} "
            f"use{'s' if agent.use_count != 1 else ''}</div>"
            f"<div class='af-agent-desc'>{html.escape(agent.description or '')}</div>"
            f"<div>{chips}</div>",
            stylesheets=[_GALLERY_CSS],
            sizing_mode="stretch_width",
        )
        button = pn.widgets.Button(
            label="Open",
            color="primary",
            width=80,
            css_classes=[f"af-open-agent-{agent.slug}"],
        )
        button.on_click(lambda _event, slug=agent.slug: self.open(slug))
        return pn.Column(
            body,
            button,
            css_classes=["af-card", "af-agent-card", f"af-agent-{agent.slug}"],
            stylesheets=[_GALLERY_CSS],
            styles={"border": "1px solid #e5e7eb", "border-radius": "8px", "background": "white"},
            width=260,
            margin=6,
        )

    def show_gallery(self) -> None:
        self.agent = None
        self.refresh()
        self.body.objects = [self.browse_view]

    # -- publishing ------------------------------------------------------------------------
    def _name_typed(self, event: Any) -> None:
        if not self._slug_touched:
            self._setting_slug = True
            set_text(self.pub_slug, slugify(event.new or ""))
            self._setting_slug = False

    def _slug_typed(self, event: Any) -> None:
        if not self._setting_slug:
            self._slug_touched = bool(event.new)

    def publish(self) -> AgentRecord | None:
        """Publish from the form; on a refusal the message shows and the fields stay."""
        workflow_id = self.pub_workflow.value
        slug = (self.pub_slug.value or "").strip()
        name = (self.pub_name.value or "").strip()
        problems = []
        if not workflow_id:
            problems.append("choose a workflow to publish")
        if not name:
            problems.append("the name is required")
        if not SLUG_PATTERN.fullmatch(slug):
            problems.append(
                f"the slug {slug!r} is not valid: 2-99 characters a-z, 0-9 and '-', "
                "starting with a letter or digit"
            )
        if problems:
            self._publish_failed("; ".join(problems))
            return None
        tags = [t.strip() for t in (self.pub_tags.value or "").split(",")]
        try:
            agent = self.app.store.agents.publish(
                workflow_id,
                name=name,
                slug=slug,
                description=(self.pub_description.value or "").strip() or None,
                category=(self.pub_category.value or "").strip() or None,
                tags=[t for t in tags if t],
                icon=(self.pub_icon.value or "").strip() or None,
            )
        except StoreError as exc:
            self._publish_failed(exc.message)
            return None
        self.pub_message.object = f"Published **{agent.name}** as `/{agent.slug}`."
        self.pub_message.alert_type = "success"
        self.pub_message.visible = True
        for widget in (
            self.pub_name,
            self.pub_slug,
            self.pub_description,
            self.pub_category,
            self.pub_tags,
            self.pub_icon,
        ):
            set_text(widget, "")
        self._slug_touched = False
        self.app.notify(f"agent /{agent.slug} published", "success")
        self.refresh()
        published: AgentRecord = agent
        return published

    def _publish_failed(self, text: str) -> None:
        self.pub_message.object = f"Not published: {text}"
        self.pub_message.alert_type = "danger"
        self.pub_message.visible = True
        self.app.notify(f"not published: {text}", "error")

    # -- one agent -------------------------------------------------------------------------
    def open(self, slug: str) -> None:
        try:
            agent = self.app.store.agents.get_by_slug(slug)
            workflow = self.app.store.workflows.get(agent.workflow_id)
        except NotFoundError as exc:
            self.app.notify(exc.message, "error")
            return
        self.agent = agent
        self.last_run_id = None
        self.form.set_fields(declared_inputs(workflow.definition))
        self._render_agent(agent)
        self.result_status.object = "<span class='af-muted'>Not run yet.</span>"
        self.result.objects = []
        self.open_run_button.visible = False
        self.run_button.disabled = False
        self.body.objects = [self.agent_view]

    def _reload_agent(self) -> None:
        if self.agent is None:
            return
        try:
            self.agent = self.app.store.agents.get_by_slug(self.agent.slug)
        except NotFoundError:
            self.show_gallery()
            return
        self._render_agent(self.agent)

    def _render_agent(self, agent: AgentRecord) -> None:
        chips = "".join(f"<span class='af-chip'>{html.escape(t)}</span>" for t in agent.tags)
        if agent.category:
            chips = (
                f"<span class='af-chip af-chip-cat'>{html.escape(agent.category)}</span>" + chips
            )
        uses = f"<span class='af-use-count'>{agent.use_count}</span> use" + (
            "s" if agent.use_count != 1 else ""
        )
        description = html.escape(agent.description or "")
        self.agent_header.object = (
            f"<div style='display:flex;gap:14px;align-items:center'>{avatar(agent, 56)}"
            f"<div><h2 style='margin:2px 0'>{html.escape(agent.name)}</h2>"
            f"<div class='af-muted'>/{html.escape(agent.slug)} · workflow "
            f"{html.escape(agent.workflow_name)} · {uses} · {html.escape(agent.status)}</div>"
            f"<div class='af-agent-desc' style='max-height:none'>{description}</div>"
            f"<div>{chips}</div></div></div>"
        )
        self.unpublish_button.visible = agent.status == "published"

    def run_agent(self) -> str | None:
        """Run the open agent with the form's inputs; returns the execution id."""
        agent = self.agent
        if agent is None:
            return None
        try:
            inputs = self.form.values()
        except InputFormError:
            self.result_status.object = (
                "<span style='color:#b91c1c'>Fix the inputs marked below the fields.</span>"
            )
            return None
        self._doc = pn.state.curdoc
        try:
            run = self.app.runner.start(agent.workflow_id, inputs, listeners=[self._on_event])
        except Exception as exc:  # engine validation/input errors: shown, nothing lost
            text = str(getattr(exc, "message", None) or exc)
            field = getattr(exc, "field", None)
            if field in self.form.widgets:
                self.form.show_problems({field: text})
            self.result_status.object = (
                f"<span style='color:#b91c1c'>Cannot run: {html.escape(text)}</span>"
            )
            return None
        try:
            uses = self.app.store.agents.record_use(agent.slug)
        except StoreError as exc:
            uses = agent.use_count
            self.app.notify(exc.message, "warning")
        self.last_run_id = run.execution_id
        agent.use_count = uses
        self._render_agent(agent)
        self.run_button.disabled = True
        self.result_status.object = (
            f"{badge('running')} <span class='af-muted'>run {short_id(run.execution_id)}</span>"
        )
        self.result.objects = []
        self.open_run_button.visible = False
        return str(run.execution_id)

    def _on_event(self, event: Event) -> None:
        if event.type != "run_finished" or event.execution_id != self.last_run_id:
            return
        doc = self._doc

        def show() -> None:
            self._show_result(event)

        if doc is not None and doc.session_context is not None:
            doc.add_next_tick_callback(show)
        else:
            show()

    def _show_result(self, event: Any) -> None:
        self.run_button.disabled = False
        error = getattr(event, "error", None)
        self.result_status.object = (
            f"{badge(event.status)} <span class='af-muted'>run {short_id(event.execution_id)} · "
            f"{html.escape(fmt_duration(getattr(event, 'duration_ms', None)))}</span>"
        )
        parts = [json_view(event.outputs)]
        if error:
            message = error.get("message") if isinstance(error, dict) else str(error)
            parts.insert(
                0,
                pn.pane.HTML(
                    f"<div class='af-error'>{html.escape(str(message))}</div>",
                    stylesheets=[CARD_CSS],
                    sizing_mode="stretch_width",
                ),
            )
        self.result.objects = parts
        self.open_run_button.visible = True

    def _open_last_run(self) -> None:
        if self.last_run_id is not None:
            self.app.open_run(self.last_run_id)

    def unpublish(self) -> None:
        if self.agent is None:
            return
        try:
            self.agent = self.app.store.agents.unpublish(self.agent.slug)
        except StoreError as exc:
            self.app.notify(exc.message, "error")
            return
        self.app.notify(f"agent /{self.agent.slug} unpublished", "info")
        self.show_gallery()
