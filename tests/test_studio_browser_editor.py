"""The studio's editor in a real headless Chromium, against `agentflow studio` itself.

The studio runs as the real command in a subprocess on a free port with a fresh
database; the LLM node talks to the fake provider on 127.0.0.1. The browser aborts
every request that is not for 127.0.0.1, so the page also proves it works offline.
Screenshots land in ``test-artifacts/``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from engine import load_definition
from store import Store
from tests.fake_provider import FakeProvider

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _example_names() -> dict[str, str]:
    """File stem -> the name the store gives the example (its metadata's, else the stem)."""
    names = {}
    for path in sorted(EXAMPLES.glob("*.json")):
        meta = json.loads(path.read_text(encoding="utf-8")).get("metadata")
        names[path.stem] = str((meta or {}).get("name") or path.stem)
    return names


NAMES = _example_names()
EXAMPLE_NAMES = sorted(NAMES.values())
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LATENCY_BUDGET_MS = 500.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Studio:
    process: subprocess.Popen[str]
    url: str
    db: Path
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    measured: dict[str, float] = field(default_factory=dict)


def _pump(stream: object, sink: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        sink.append(line.rstrip("\n"))


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory, provider: FakeProvider) -> Iterator[Studio]:
    home = tmp_path_factory.mktemp("studio-home")
    port = _free_port()
    db = home / "studio.duckdb"
    env = {
        **os.environ,
        "HOME": str(home),
        "OPENAI_API_KEY": "sk-fake-for-tests",
        "OPENAI_BASE_URL": provider.openai_base,
        "OLLAMA_HOST": f"http://127.0.0.1:{_free_port()}",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        str(Path(sys.executable).parent / "agentflow"),
        "studio",
        "--no-browser",
        "--port",
        str(port),
        "--db",
        str(db),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    found = Studio(process, f"http://127.0.0.1:{port}", db)
    for stream, sink in ((process.stdout, found.stdout), (process.stderr, found.stderr)):
        threading.Thread(target=_pump, args=(stream, sink), daemon=True).start()
    deadline = time.monotonic() + 60
    while not any(found.url in line for line in found.stdout):
        assert process.poll() is None, f"studio exited early: {found.stderr}"
        assert time.monotonic() < deadline, f"no address printed: {found.stdout} {found.stderr}"
        time.sleep(0.05)
    yield found
    if process.poll() is None:
        process.kill()
        process.wait(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        yield _launch(playwright)


def _launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)


@pytest.fixture(scope="module")
def page(browser: Browser, studio: Studio) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1500, "height": 940})
    tab = context.new_page()

    def only_loopback(route: object) -> None:
        request = route.request  # type: ignore[attr-defined]
        if re.match(r"^(http|ws)s?://127\.0\.0\.1[:/]", request.url):
            route.continue_()  # type: ignore[attr-defined]
        else:
            studio.blocked.append(request.url)
            route.abort()  # type: ignore[attr-defined]

    tab.route("**/*", only_loopback)
    started = time.perf_counter()
    tab.goto(studio.url)
    tab.locator(".af-workflows-table .tabulator-row").first.wait_for(timeout=30_000)
    studio.measured["first_paint_ms"] = (time.perf_counter() - started) * 1000
    yield tab
    context.close()


# -- helpers ------------------------------------------------------------------------------
def node(page: Page, node_id: str) -> object:
    return page.locator(f'.react-flow__node[data-id="{node_id}"]')


def wait_class(page: Page, node_id: str, css: str, timeout: float = 15_000) -> None:
    page.locator(f'.react-flow__node[data-id="{node_id}"].{css}').wait_for(timeout=timeout)


def has_class(page: Page, node_id: str, css: str) -> bool:
    classes = page.locator(f'.react-flow__node[data-id="{node_id}"]').get_attribute("class")
    return css in (classes or "").split()


def open_workflow(page: Page, name: str) -> None:
    page.locator(".af-nav-workflows button").click()
    row = page.locator(".af-workflows-table .tabulator-row", has_text=name).first
    row.locator(".tabulator-cell", has_text="Open").click()
    page.locator(".react-flow__node").first.wait_for(timeout=15_000)


def set_text(page: Page, selector: str, text: str) -> None:
    box = page.locator(selector).first
    box.fill(text)
    box.press("Tab")  # the value is committed on blur


def problems(page: Page) -> str:
    return page.locator(".af-problems").inner_text()


def connect(page: Page, source: str, handle: str, target: str) -> None:
    """Drag with the mouse from an output handle to a node's input handle.

    A redraw sent by the server (after a config edit) can land mid-drag on a loaded
    machine and swallow it, so the drag is repeated until the new edge is drawn.
    """
    edges = page.locator(".react-flow__edge")
    before = edges.count()
    for _ in range(4):
        start = page.locator(
            f'.react-flow__node[data-id="{source}"] .react-flow__handle[data-handleid="{handle}"]'
        ).bounding_box()
        end = page.locator(
            f'.react-flow__node[data-id="{target}"] .react-flow__handle.target'
        ).bounding_box()
        assert start is not None and end is not None
        page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
        page.mouse.down()
        page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=8)
        page.mouse.up()
        try:
            edges.nth(before).wait_for(timeout=20_000)
            return
        except PlaywrightTimeoutError:
            continue
    raise AssertionError(f"could not connect {source}:{handle} -> {target}")


def shoot(page: Page, name: str) -> None:
    """A screenshot without the passing toasts over the page."""
    page.evaluate("() => document.querySelectorAll('.notyf__toast').forEach((t) => t.remove())")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


_DEEP_FIND = """
(selector) => {
  const seen = [document];
  while (seen.length) {
    const root = seen.pop();
    const hit = root.querySelector(selector);
    if (hit) return hit;
    for (const el of root.querySelectorAll("*")) if (el.shadowRoot) seen.push(el.shadowRoot);
  }
  return null;
}
"""


def run_and_time(page: Page, first_node: str) -> float:
    """Click Run; ms (measured in the page) until ``first_node`` is drawn green."""
    run_button = page.locator(".af-run-button button")
    run_button.wait_for()
    page.evaluate(
        "() => document.addEventListener('click', () => { window.afClickAt = performance.now(); },"
        " {capture: true, once: true})"
    )
    run_button.click()
    selector = f'.react-flow__node[data-id="{first_node}"].af-run-succeeded'
    handle = page.wait_for_function(
        f"() => {{ const find = {_DEEP_FIND}; const hit = find({selector!r});"
        " return hit && window.afClickAt ? performance.now() - window.afClickAt : null; }",
        polling="raf",
        timeout=30_000,
    )
    return float(handle.json_value())


# -- tests --------------------------------------------------------------------------------
def test_command_prints_address_loads_examples_and_serves_offline(
    studio: Studio, page: Page
) -> None:
    assert any(
        f"AgentFlow studio at {studio.url}" in line and str(studio.db) in line
        for line in studio.stdout
    ), studio.stdout
    loaded = f"loaded {len(EXAMPLE_NAMES)} example workflows"
    assert any(loaded in line for line in studio.stderr), studio.stderr
    rows = page.locator(".af-workflows-table .tabulator-row")
    assert rows.count() == len(EXAMPLE_NAMES) >= 2
    names = " ".join(rows.all_inner_texts())
    assert all(name in names for name in EXAMPLE_NAMES), names
    assert studio.blocked == [], f"the page asked for something off the machine: {studio.blocked}"


def test_bad_import_shows_the_error_and_stores_nothing(page: Page) -> None:
    shoot(page, "workflows.png")
    text = page.locator(".af-import-text textarea")
    for bad, expected in (
        ('{"nodes": [', "invalid JSON"),
        ('{"nodes": 5}', "not a workflow definition"),
        ("[1, 2]", "must be a JSON object"),
    ):
        text.fill(bad)
        text.press("Tab")
        page.locator(".af-import button").click()
        page.locator(".af-msg-error", has_text=expected).wait_for(timeout=20_000)
        assert text.input_value() == bad  # the text is kept to be fixed, not lost
        rows = page.locator(".af-workflows-table .tabulator-row")
        assert rows.count() == len(EXAMPLE_NAMES)
    text.fill("")
    text.press("Tab")


def test_export_downloads_the_canonical_json(studio: Studio, page: Page) -> None:
    name = NAMES["word_stats"]
    page.locator(".af-workflows-table .tabulator-row", has_text=name).first.locator(
        '.tabulator-cell[tabulator-field="Name"]'
    ).click()
    with page.expect_download(timeout=30_000) as download:
        page.locator(".af-export button, .af-export a").first.click()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()
    assert download.value.suggested_filename == f"{slug}.json"
    exported = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    expected = load_definition(EXAMPLES / "word_stats.json").to_dict()
    assert exported == expected


def test_edit_save_and_run_the_condition_workflow(studio: Studio, page: Page) -> None:
    open_workflow(page, NAMES["triage"])
    assert page.locator(".react-flow__node").count() == 6
    assert page.locator(".react-flow__edge").count() == 6
    assert "No problems" in problems(page)

    # drag a Template node from the palette onto the canvas, wire it after 'reply'
    page.locator('.af-pal-item[data-type="template"]').drag_to(
        page.locator(".react-flow__pane"), target_position={"x": 620, "y": 470}
    )
    node(page, "template").wait_for(timeout=20_000)  # type: ignore[attr-defined]
    connect(page, "reply", "out", "template")
    page.locator(".react-flow__edge").nth(6).wait_for(timeout=20_000)
    set_text(page, ".af-field-template textarea", "Summary: {{ reply.value }}")
    set_text(page, ".af-field-label input", "Summary")
    page.locator(".af-problems", has_text="No problems").wait_for(timeout=20_000)
    page.locator('.react-flow__node[data-id="template"]', has_text="Summary").wait_for(
        timeout=20_000
    )

    # a bad value: unparsable JSON is not applied; a schema violation marks the node
    node(page, "route").click()  # type: ignore[attr-defined]
    cases = ".af-field-cases textarea"
    page.locator(cases).wait_for()
    original = page.locator(cases).input_value()
    set_text(page, cases, "[{")
    page.locator(".af-msg-cases", has_text="invalid JSON").wait_for(timeout=20_000)
    assert not has_class(page, "route", "af-invalid")
    set_text(page, cases, "[]")
    wait_class(page, "route", "af-invalid")
    page.locator(".af-msg-cases", has_text="at least 1 item").wait_for(timeout=20_000)
    expect(page.locator(".af-problems")).to_contain_text("2 problem(s)")
    expect(page.locator(".af-problems")).to_contain_text("no output handle 'payment'")
    page.locator(".af-undo button").click()
    page.locator(".af-problems", has_text="No problems").wait_for(timeout=20_000)
    assert not has_class(page, "route", "af-invalid")
    expect(page.locator(cases)).to_have_value(original)

    page.locator(".af-save-note input").fill("summary node")
    page.locator(".af-save button").click()
    page.locator(".af-badge", has_text="v2").wait_for(timeout=20_000)
    assert "saved" in page.locator(".af-badge").inner_text()
    shoot(page, "editor.png")

    page.locator(".bk-tab", has_text="Run").click()
    page.locator(".af-input-ticket input").fill("My card payment failed at checkout")
    studio.measured["run_to_first_green_ms"] = run_and_time(page, "start")
    for node_id in ("route", "urgent", "reply", "template", "end"):
        wait_class(page, node_id, "af-run-succeeded")
    wait_class(page, "normal", "af-run-skipped")
    page.locator(".af-run-status", has_text="Succeeded").wait_for(timeout=30_000)
    assert "payment" in page.locator(".af-outputs").inner_text()
    assert "template: succeeded" in page.locator(".af-log").inner_text()
    shoot(page, "run.png")
    assert studio.measured["run_to_first_green_ms"] < LATENCY_BUDGET_MS, studio.measured


def test_new_workflow_with_an_llm_node_streams_tokens(
    studio: Studio, page: Page, provider: FakeProvider
) -> None:
    page.locator(".af-nav-workflows button").click()
    page.locator(".af-new-name input").fill("Ask the model")
    page.locator(".af-create button").click()
    node(page, "end").wait_for(timeout=30_000)  # type: ignore[attr-defined]
    assert page.locator(".af-name input").input_value() == "Ask the model"

    node(page, "start").click()  # type: ignore[attr-defined]
    page.locator('.af-pal-item[data-type="llm"]').click()  # click-to-add: right of 'start'
    node(page, "llm").wait_for(timeout=20_000)  # type: ignore[attr-defined]
    page.locator(".react-flow__pane").click(position={"x": 40, "y": 40})
    page.keyboard.press("Control+z")  # the editor's shortcuts
    node(page, "llm").wait_for(state="detached", timeout=20_000)  # type: ignore[attr-defined]
    page.keyboard.press("Control+Shift+z")
    node(page, "llm").wait_for(timeout=20_000)  # type: ignore[attr-defined]
    node(page, "llm").click()  # type: ignore[attr-defined]
    wait_class(page, "llm", "af-invalid")  # no prompt yet
    page.locator(".af-msg-userPrompt", has_text="at least 1 character").wait_for()
    set_text(page, ".af-field-model input", "openai/fake")
    set_text(page, ".af-field-userPrompt textarea", "{{start.text}}")
    set_text(page, ".af-field-baseUrl input", provider.openai_base)
    set_text(page, ".af-field-temperature input", "7")  # out of range: shown, not lost
    page.locator(".af-msg-temperature", has_text="less than or equal to 2").wait_for()
    assert page.locator(".af-field-temperature input").input_value() == "7"
    set_text(page, ".af-field-temperature input", "0")
    connect(page, "start", "out", "llm")
    connect(page, "llm", "out", "end")
    page.locator(".react-flow__edge").nth(2).wait_for(timeout=20_000)
    node(page, "end").click()  # type: ignore[attr-defined]
    set_text(page, ".af-field-outputs textarea", '{"answer": "{{llm.text}}"}')
    page.locator(".af-problems", has_text="No problems").wait_for(timeout=20_000)
    assert not has_class(page, "llm", "af-invalid")

    page.locator(".bk-tab", has_text="Run").click()
    page.locator(".af-input-text input").fill("tidal pools")
    studio.measured["llm_run_to_first_green_ms"] = run_and_time(page, "start")
    wait_class(page, "llm", "af-run-succeeded", timeout=30_000)
    wait_class(page, "end", "af-run-succeeded")
    page.locator(".af-stream", has_text="echo: tidal pools").wait_for(timeout=20_000)
    assert "echo: tidal pools" in page.locator(".af-outputs").inner_text()
    shoot(page, "llm-run.png")
    page.locator(".af-save button").click()
    page.locator(".af-badge", has_text="v2").wait_for(timeout=20_000)

    run_id = page.locator(".af-run-id").inner_text()
    time.sleep(1.0)  # the recorder writes in batches from its own thread
    page.locator(".af-history button").click()
    page.locator(".af-nav-runs button.bk-btn-primary").wait_for(timeout=20_000)
    page.get_by_text(f"Run {run_id}").wait_for(timeout=20_000)  # the run's detail


def test_ctrl_c_stops_cleanly_and_the_store_has_everything(studio: Studio) -> None:
    studio.process.send_signal(signal.SIGINT)
    assert studio.process.wait(20) == 0, studio.stderr
    assert not any("Traceback" in line for line in studio.stderr), studio.stderr
    with Store(studio.db) as store:
        workflows = {w.name: w for w in store.workflows.list()}
        assert set(workflows) == {*EXAMPLE_NAMES, "Ask the model"}
        triage = workflows[NAMES["triage"]]
        assert [v.version for v in store.workflows.versions(triage.id)] == [1, 2]
        saved = store.workflows.get(triage.id).definition
        assert saved.node("template").data.label == "Summary"
        assert {(e.source, e.target) for e in saved.edges} >= {("reply", "template")}
        runs = store.executions.list(workflow_id=triage.id)
        assert [r.status for r in runs] == ["succeeded"]
        assert runs[0].workflow_version == 2
        asked = store.executions.list(workflow_id=workflows["Ask the model"].id)
        assert [r.status for r in asked] == ["succeeded"]
    print(f"\nmeasured: {studio.measured}")
