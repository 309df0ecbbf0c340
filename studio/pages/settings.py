"""Settings: provider API keys (write-only), Ollama and local models, model defaults.

A key typed here goes straight to the encrypted store (``store.secrets.set``) and the
field is emptied: the page only ever shows the masks of ``store.secrets.list()``.
Model discovery (``engine.llm.discover``) may take up to its timeout when Ollama's host
does not answer, so in the server it runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
from typing import Any

import panel as pn

from store.errors import StoreError
from studio.pages._ui import CARD_CSS, fmt_time, set_text
from studio.preferences import (
    ROUTING_MODES,
    ModelPreferences,
    PreferenceError,
    check_preferences,
    load_preferences,
    save_preferences,
)

__all__ = ["SettingsPage", "discover_models"]

_CUSTOM = "__custom__"
_PICK = "… or pick a local model"
_ROUTING_HELP = {
    "local": "Only Ollama models: prompts never leave this machine.",
    "cloud": "Every node uses its model as written (the engine's default).",
    "hybrid": "A local model first; on failure, the cloud fallback model.",
}


def discover_models(secrets: Any) -> dict[str, Any]:
    """``engine.llm.discover()``, or a description of why it is not available."""
    try:
        from engine.llm import discover
    except ImportError as exc:
        return _unavailable(f"model discovery is not available: {exc}")
    try:
        found = discover(secrets)
    except Exception as exc:  # discovery must never take the page down
        return _unavailable(f"model discovery failed: {type(exc).__name__}: {exc}")
    return found if isinstance(found, dict) else _unavailable("model discovery gave no result")


def _unavailable(reason: str) -> dict[str, Any]:
    return {"ollama": {"host": None, "running": False, "models": [], "error": reason}, "cloud": []}


def _key_names() -> dict[str, str]:
    """Label -> secret name for the providers the LLM layer knows."""
    try:
        from engine.llm import PROVIDER_KEYS
    except ImportError:
        return {}
    names: dict[str, str] = {}
    for provider, variables in PROVIDER_KEYS.items():
        for variable in variables:
            if variable not in names.values():
                names[f"{provider} — {variable}"] = variable
    return names


class SettingsPage:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.discovered: dict[str, Any] = _unavailable("not checked yet")
        self._discovering: asyncio.Task[None] | None = None

        # -- keys -----------------------------------------------------------------------
        self.key_name = pn.widgets.Select(
            label="Provider key",
            options={**_key_names(), "Other (type a name)": _CUSTOM},
            width=280,
            css_classes=["af-key-name"],
        )
        self.custom_name = pn.widgets.TextInput(
            label="Secret name",
            placeholder="MY_SERVICE_API_KEY",
            width=220,
            visible=False,
            css_classes=["af-custom-name"],
        )
        self.key_name.param.watch(
            lambda event: setattr(self.custom_name, "visible", event.new == _CUSTOM), "value"
        )
        self.key_value = pn.widgets.PasswordInput(
            label="Value",
            placeholder="paste the key; it is stored encrypted",
            width=320,
            css_classes=["af-key-value"],
        )
        self.save_key_button = pn.widgets.Button(
            label="Save key", color="primary", css_classes=["af-save-key"]
        )
        self.save_key_button.on_click(lambda _event: self.save_key())
        self.key_message = pn.pane.Alert(
            "", visible=False, sizing_mode="stretch_width", css_classes=["af-key-message"]
        )
        self.keys_table = pn.Column(sizing_mode="stretch_width", css_classes=["af-keys"])

        # -- models ---------------------------------------------------------------------
        self.ollama_status = pn.pane.HTML(
            "",
            stylesheets=[CARD_CSS],
            sizing_mode="stretch_width",
            css_classes=["af-ollama-status"],
        )
        self.models_table = pn.pane.HTML(
            "", stylesheets=[CARD_CSS], sizing_mode="stretch_width", css_classes=["af-local-models"]
        )
        self.providers_table = pn.pane.HTML(
            "", stylesheets=[CARD_CSS], sizing_mode="stretch_width", css_classes=["af-providers"]
        )
        self.check_button = pn.widgets.Button(label="Check again", color="light")
        self.check_button.on_click(lambda _event: self.refresh_models())

        # -- defaults -------------------------------------------------------------------
        self.default_model = pn.widgets.TextInput(
            label="Default model",
            placeholder="ollama/llama3.2 or gpt-4o-mini",
            width=320,
            css_classes=["af-default-model"],
        )
        self.pick_local = pn.widgets.Select(
            label="", options=[_PICK], value=_PICK, width=320, css_classes=["af-pick-local"]
        )
        self.pick_local.param.watch(self._picked_local, "value")
        self.routing = pn.widgets.RadioButtonGroup(
            label="Routing",
            options=list(ROUTING_MODES),
            value="cloud",
            color="light",
            css_classes=["af-routing"],
        )
        self.routing_help = pn.pane.HTML("", styles={"color": "#6b7280", "font-size": "12px"})
        self.routing.param.watch(lambda _event: self._show_routing_help(), "value")
        self.fallback_model = pn.widgets.TextInput(
            label="Fallback model (hybrid)",
            placeholder="gpt-4o-mini",
            width=320,
            css_classes=["af-fallback-model"],
        )
        self.field_messages = {
            name: pn.pane.HTML(
                "",
                visible=False,
                styles={"color": "#b91c1c", "font-size": "12px"},
                css_classes=[f"af-error-{name}"],
            )
            for name in ("default_model", "routing", "fallback_model")
        }
        self.save_prefs_button = pn.widgets.Button(
            label="Save defaults", color="primary", css_classes=["af-save-defaults"]
        )
        self.save_prefs_button.on_click(lambda _event: self.save_defaults())

        self.layout = pn.Column(
            pn.pane.HTML("<h2 style='margin:4px 0'>Settings</h2>"),
            pn.Row(
                pn.Card(
                    pn.pane.HTML(
                        "<span class='af-muted'>Stored encrypted (AES-256-GCM) in the database; "
                        "only masks are ever shown. A key in the environment works too.</span>",
                        stylesheets=[CARD_CSS],
                    ),
                    pn.Row(self.key_name, self.custom_name),
                    pn.Row(self.key_value, pn.Column(pn.Spacer(height=18), self.save_key_button)),
                    self.key_message,
                    self.keys_table,
                    title="API keys",
                    collapsible=False,
                    sizing_mode="stretch_width",
                    css_classes=["af-keys-card"],
                ),
                pn.Card(
                    self.default_model,
                    self.pick_local,
                    self.field_messages["default_model"],
                    pn.pane.HTML("<b style='font-size:13px'>Routing</b>"),
                    self.routing,
                    self.routing_help,
                    self.field_messages["routing"],
                    self.fallback_model,
                    self.field_messages["fallback_model"],
                    self.save_prefs_button,
                    title="Model defaults",
                    collapsible=False,
                    width=380,
                    css_classes=["af-defaults-card"],
                ),
                sizing_mode="stretch_width",
            ),
            pn.Card(
                pn.Row(self.ollama_status, self.check_button, sizing_mode="stretch_width"),
                self.models_table,
                self.providers_table,
                title="Models on this machine",
                collapsible=False,
                sizing_mode="stretch_width",
                css_classes=["af-models-card"],
            ),
            sizing_mode="stretch_width",
            scroll=True,
        )
        self._show_routing_help()

    # -- page protocol ---------------------------------------------------------------------
    def view(self) -> pn.viewable.Viewable:
        return self.layout

    def refresh(self) -> None:
        self.load_keys()
        self.load_defaults()
        self.refresh_models(background=True)

    # -- keys ------------------------------------------------------------------------------
    def load_keys(self) -> None:
        try:
            secrets = self.app.store.secrets.list()
        except StoreError as exc:  # a wrong master key: say so instead of failing the page
            self.keys_table.objects = [pn.pane.Alert(exc.message, alert_type="danger")]
            return
        if not secrets:
            self.keys_table.objects = [
                pn.pane.HTML(
                    "<span class='af-muted'>No keys stored.</span>", stylesheets=[CARD_CSS]
                )
            ]
            return
        rows = []
        for info in secrets:
            delete = pn.widgets.Button(
                label="Delete", color="light", width=80, css_classes=[f"af-delete-{info.name}"]
            )
            delete.on_click(lambda _event, name=info.name: self.delete_key(name))
            rows.append(
                pn.Row(
                    pn.pane.HTML(
                        f"<code>{html.escape(info.name)}</code>&nbsp; "
                        f"<span class='af-masked'>{html.escape(info.masked)}</span>"
                        f"<div class='af-muted'>updated {html.escape(fmt_time(info.updated_at))}"
                        "</div>",
                        stylesheets=[CARD_CSS],
                        sizing_mode="stretch_width",
                    ),
                    delete,
                    sizing_mode="stretch_width",
                    css_classes=["af-key-row"],
                )
            )
        self.keys_table.objects = rows

    def _chosen_name(self) -> str:
        if self.key_name.value == _CUSTOM:
            return (self.custom_name.value or "").strip()
        return str(self.key_name.value or "")

    def save_key(self) -> bool:
        name = self._chosen_name()
        value = self.key_value.value or self.key_value.value_input or ""
        # The typed value is dropped from the page whatever happens next.
        set_text(self.key_value, "")
        if not value.strip():
            return self._key_feedback("Type or paste the key first.", "warning")
        try:
            self.app.store.secrets.set(name, value.strip())
        except StoreError as exc:
            return self._key_feedback(f"Not saved: {exc.message}", "danger")
        self._key_feedback(f"Saved {name}.", "success")
        self.load_keys()
        self.refresh_models(background=True)
        return True

    def delete_key(self, name: str) -> bool:
        try:
            self.app.store.secrets.delete(name)
        except StoreError as exc:
            return self._key_feedback(f"Not deleted: {exc.message}", "danger")
        self._key_feedback(f"Deleted {name}.", "info")
        self.load_keys()
        self.refresh_models(background=True)
        return True

    def _key_feedback(self, text: str, level: str) -> bool:
        self.key_message.object = html.escape(text)
        self.key_message.alert_type = level
        self.key_message.visible = True
        return level in ("success", "info")

    # -- models ----------------------------------------------------------------------------
    def refresh_models(self, *, background: bool = False) -> None:
        """Ask ``engine.llm.discover`` again (in a thread when the server's loop runs)."""
        secrets = self.app.store.secret_source
        loop = None
        if background:
            with contextlib.suppress(RuntimeError):
                loop = asyncio.get_running_loop()
        if loop is None:
            self.show_models(discover_models(secrets))
            return
        if self._discovering is not None and not self._discovering.done():
            return
        self.ollama_status.object = "<span class='af-muted'>Checking Ollama…</span>"
        doc = pn.state.curdoc

        async def check() -> None:
            found = await asyncio.to_thread(discover_models, secrets)
            if doc is not None and doc.session_context is not None:
                doc.add_next_tick_callback(lambda: self.show_models(found))
            else:
                self.show_models(found)

        self._discovering = loop.create_task(check())

    async def models_checked(self) -> None:
        """Wait for a background check (tests)."""
        if self._discovering is not None:
            await self._discovering

    def show_models(self, found: dict[str, Any]) -> None:
        self.discovered = found
        raw = found.get("ollama")
        ollama: dict[str, Any] = raw if isinstance(raw, dict) else {}
        models = [m for m in ollama.get("models") or [] if isinstance(m, dict)]
        host = html.escape(str(ollama.get("host") or "Ollama"))
        if ollama.get("running"):
            self.ollama_status.object = (
                f"<span class='af-ollama-running' style='color:#15803d;font-weight:600'>● Ollama "
                f"is running</span> <span class='af-muted'>at {host} · {len(models)} local "
                f"model{'s' if len(models) != 1 else ''}</span>"
            )
        else:
            reason = html.escape(str(ollama.get("error") or "not reachable"))
            self.ollama_status.object = (
                f"<span class='af-ollama-down' style='color:#b91c1c;font-weight:600'>● Ollama is "
                f"not running</span> <div class='af-muted'>{reason}</div>"
            )
        if models:
            rows = "".join(
                "<tr>"
                f"<td><code>{html.escape(str(m.get('model') or m.get('name')))}</code></td>"
                f"<td>{html.escape(str(m.get('parameterSize') or '—'))}</td>"
                f"<td>{html.escape(str(m.get('family') or '—'))}</td>"
                f"<td>{html.escape(str(m.get('quantization') or '—'))}</td>"
                f"<td>{_size(m.get('sizeBytes'))}</td></tr>"
                for m in models
            )
            self.models_table.object = (
                "<table class='af-table'><thead><tr><th>local model</th><th>parameters</th>"
                f"<th>family</th><th>quantization</th><th>size</th></tr></thead>{rows}</table>"
            )
        else:
            self.models_table.object = "<span class='af-muted'>No local models listed.</span>"
        cloud = [c for c in found.get("cloud") or [] if isinstance(c, dict)]
        if cloud:
            chips = "".join(_provider_chip(c) for c in cloud)
            self.providers_table.object = (
                "<div style='font-weight:600;font-size:13px;margin:8px 0 4px'>Cloud providers"
                "</div><div style='display:flex;flex-wrap:wrap;gap:6px'>" + chips + "</div>"
            )
        else:
            self.providers_table.object = ""
        local_ids = [str(m.get("model") or m.get("name")) for m in models]
        self.pick_local.options = [_PICK, *local_ids] if local_ids else [_PICK]
        self.pick_local.value = _PICK

    # -- defaults --------------------------------------------------------------------------
    def load_defaults(self) -> None:
        prefs = load_preferences(self.app.store)
        set_text(self.default_model, prefs.default_model or "")
        self.routing.value = prefs.routing
        set_text(self.fallback_model, prefs.fallback_model or "")
        self._show_problems({})

    def _form_preferences(self) -> ModelPreferences:
        def text(widget: Any) -> str | None:
            return str(widget.value or "").strip() or None

        return ModelPreferences(
            default_model=text(self.default_model),
            routing=str(self.routing.value),
            fallback_model=text(self.fallback_model),
        )

    def save_defaults(self) -> bool:
        prefs = self._form_preferences()
        problems = check_preferences(prefs)
        if not problems:
            try:
                save_preferences(self.app.store, prefs)
            except PreferenceError as exc:
                problems = exc.problems
            except StoreError as exc:
                self.app.notify(f"not saved: {exc.message}", "error")
                return False
        self._show_problems(problems)
        if problems:
            self.app.notify("model defaults not saved: see the messages", "error")
            return False
        self.app.notify("model defaults saved", "success")
        return True

    def _show_problems(self, problems: dict[str, str]) -> None:
        for name, pane in self.field_messages.items():
            text = problems.get(name)
            pane.object = html.escape(text) if text else ""
            pane.visible = bool(text)

    def _picked_local(self, event: Any) -> None:
        if event.new and event.new != _PICK:
            set_text(self.default_model, str(event.new))

    def _show_routing_help(self) -> None:
        self.routing_help.object = html.escape(_ROUTING_HELP.get(str(self.routing.value), ""))


def _provider_chip(entry: dict[str, Any]) -> str:
    name = html.escape(str(entry.get("provider")))
    variable = html.escape(str(entry.get("envVar") or ""))
    if entry.get("configured"):
        where = html.escape(str(entry.get("keyFrom") or ""))
        style, status = "background:#ecfdf5;color:#065f46;border-color:#a7f3d0", f"✓ key ({where})"
    else:
        style, status = "background:#f9fafb;color:#6b7280;border-color:#e5e7eb", "no key"
    problem = f" · {html.escape(str(entry['error']))}" if entry.get("error") else ""
    return (
        f"<span class='af-provider' title='{variable}' style='border:1px solid;"
        f"border-radius:12px;padding:2px 10px;font-size:12px;{style}'>"
        f"<b>{name}</b> {status}{problem}</span>"
    )


def _size(value: Any) -> str:
    if not isinstance(value, int | float) or value <= 0:
        return "—"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return "—"
