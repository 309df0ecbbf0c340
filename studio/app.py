"""The studio shell: a header with the page navigation, and one page shown at a time.

One :class:`StudioApp` per browser session. Pages are small classes in ``studio.pages``
with ``view()`` (their layout, built once) and ``refresh()`` (re-read the store when the
page is shown); they reach each other through the app (``open_editor``, ``open_run``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import panel as pn

if TYPE_CHECKING:
    from store import Store
    from studio.runner import RunManager

__all__ = ["PAGES", "StudioApp"]

PAGES = ("workflows", "editor", "runs", "agents", "settings")
_TITLES = {
    "workflows": "Workflows",
    "editor": "Editor",
    "runs": "Run history",
    "agents": "Agents",
    "settings": "Settings",
}
_CSS = """
.af-header { background: #1f2937; color: white; padding: 6px 16px; }
body, .notyf { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
"""

pn.extension("tabulator", notifications=True, raw_css=[_CSS], inline=True)


class StudioApp:
    def __init__(self, store: Store, runner: RunManager) -> None:
        from studio.pages.agents import AgentsPage
        from studio.pages.editor import EditorPage
        from studio.pages.runs import RunsPage
        from studio.pages.settings import SettingsPage
        from studio.pages.workflows import WorkflowsPage

        self.store = store
        self.runner = runner
        self.pages: dict[str, Any] = {
            "workflows": WorkflowsPage(self),
            "editor": EditorPage(self),
            "runs": RunsPage(self),
            "agents": AgentsPage(self),
            "settings": SettingsPage(self),
        }
        self.nav = {
            name: pn.widgets.Button(
                name=_TITLES[name], button_type="light", css_classes=[f"af-nav-{name}"]
            )
            for name in PAGES
        }
        for name, button in self.nav.items():
            button.on_click(lambda _event, page=name: self.show(page))
        self.current = "workflows"
        self.main = pn.Column(sizing_mode="stretch_both")
        self.layout = pn.Column(
            pn.Row(
                pn.pane.HTML(
                    "<h1>AgentFlow Studio</h1>",
                    # raw_css does not reach into Panel's shadow DOM; style the pane itself.
                    stylesheets=["h1 { color: white; font-size: 18px; margin: 6px 24px 6px 0; }"],
                ),
                *self.nav.values(),
                css_classes=["af-header"],
                sizing_mode="stretch_width",
            ),
            self.main,
            sizing_mode="stretch_both",
        )
        self.show("workflows")

    # -- navigation -------------------------------------------------------------
    def show(self, name: str) -> None:
        page = self.pages[name]
        self.current = name
        for other, button in self.nav.items():
            button.button_type = "primary" if other == name else "light"
        page.refresh()
        self.main.objects = [page.view()]

    def open_editor(self, workflow_id: str) -> None:
        self.pages["editor"].load(workflow_id)
        self.show("editor")

    def open_run(self, execution_id: str) -> None:
        self.pages["runs"].open(execution_id)
        self.show("runs")

    # -- feedback ---------------------------------------------------------------
    def notify(self, message: str, level: str = "info") -> None:
        """A toast in the browser (``info``, ``success``, ``warning``, ``error``)."""
        notifications = pn.state.notifications
        if notifications is not None:
            getattr(notifications, level, notifications.info)(message, duration=5000)

    def view(self) -> pn.viewable.Viewable:
        return self.layout
