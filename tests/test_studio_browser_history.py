"""The studio in headless Chromium: run history, run detail, compare, resume, agents, keys.

The database is seeded the way a user fills it: the example workflows and a failing
one run through ``agentflow run --db``, and one ``agentflow run`` killed mid-run (the
studio's store marks it interrupted when it opens the file). The studio then serves
that database in this process; the browser may only reach 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from store import Store
from tests.helpers import chain, node, workflow
from tests.servers import LocalServer

ROOT = Path(__file__).resolve().parent.parent
AGENTFLOW = str(Path(sys.executable).with_name("agentflow"))
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CANARY = "sk-canary-browser-5f3a9c1e7b2d4LEAK"
ENV = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def agentflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AGENTFLOW, *args], capture_output=True, text=True, timeout=60, env=ENV)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StudioThread:
    """``studio.server.make_server`` on its own event loop in a background thread."""

    def __init__(self, store: Store, port: int) -> None:
        self.store, self.port = store, port
        self.ready = threading.Event()
        self.failure: BaseException | None = None
        self.server: Any = None
        self.thread = threading.Thread(target=self._serve, name="studio", daemon=True)

    def _serve(self) -> None:
        from studio.server import make_server

        asyncio.set_event_loop(asyncio.new_event_loop())
        try:
            self.server = make_server(self.store, host="127.0.0.1", port=self.port)
            self.server.start()
        except BaseException as exc:
            self.failure = exc
            self.ready.set()
            raise
        self.ready.set()
        self.server.io_loop.start()
        self.server.stop()

    def __enter__(self) -> StudioThread:
        self.thread.start()
        assert self.ready.wait(30) and self.failure is None, self.failure
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.io_loop.add_callback(self.server.io_loop.stop)
        self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


def seed(tmp: Path, http: LocalServer) -> Path:
    db = tmp / "studio.duckdb"
    runs = [
        ("triage.json", ["--input", "ticket=My card payment failed at checkout"]),
        ("triage.json", ["--input", "ticket=Hello, how do I change my avatar?"]),
        ("word_stats.json", ["--input", "text=the cat and the dog and the bird"]),
    ]
    for name, args in runs:
        done = agentflow("run", str(ROOT / "examples" / name), *args, "--json", "--db", str(db))
        assert done.returncode == 0, done.stderr
    broken = tmp / "broken.json"
    broken.write_text(
        json.dumps(
            workflow(
                [
                    node("start", "start", {"inputs": [{"name": "n", "type": "integer"}]}),
                    node(
                        "compute",
                        "code",
                        {
                            "code": "def main(n):\n    raise ValueError(f'cannot use {n}')\n",
                            "inputs": {"n": "{{start.n}}"},
                        },
                    ),
                    node("end", "end", {"outputs": {"v": "{{compute.value}}"}}),
                ],
                chain("start", "compute", "end"),
            )
        )
    )
    failed = agentflow("run", str(broken), "--input", "n=7", "--json", "--db", str(db))
    assert failed.returncode != 0 and json.loads(failed.stdout)["status"] == "failed"

    # A run killed while its slow node waits: the next opening marks it interrupted.
    slow = tmp / "slow.json"
    slow.write_text(
        json.dumps(
            workflow(
                [
                    node("start", "start"),
                    node("first", "http", {"url": http.url("/json")}),
                    node("slow", "http", {"url": http.url("/slow?seconds=3")}),
                    node("last", "http", {"url": http.url("/text?text=done")}),
                    node("end", "end", {"outputs": {"text": "{{last.body}}"}}),
                ],
                chain("start", "first", "slow", "last", "end"),
                allowPrivateNetwork=True,
            )
        )
    )
    process = subprocess.Popen(
        [AGENTFLOW, "run", str(slow), "--json", "--db", str(db)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    deadline = time.monotonic() + 20
    while http.count("/slow") == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert http.count("/slow") == 1
    time.sleep(0.3)  # past the recorder's flush interval: 'first' is durable
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=5)
    return db


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StudioThread, Page, Any]]:
    tmp = tmp_path_factory.mktemp("studio-browser")
    old_key = os.environ.pop("AGENTFLOW_SECRET_KEY", None)
    old_host = os.environ.get("OLLAMA_HOST")
    os.environ["OLLAMA_HOST"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with LocalServer() as http:
        db = seed(tmp, http)
        store = Store(db)
        assert len(store.interrupted) == 1
        ARTIFACTS.mkdir(exist_ok=True)
        try:
            with StudioThread(store, free_port()) as server, sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1250})
                outside: list[str] = []

                def only_local(route: Any) -> None:
                    url = route.request.url
                    if url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
                        route.continue_()
                    else:
                        outside.append(url)
                        route.abort()

                page.route("**/*", only_local)
                page.set_default_timeout(15_000)
                page.goto(server.url)
                page.wait_for_selector(".af-nav-runs button")
                yield server, page, {"store": store, "http": http, "outside": outside}
                browser.close()
        finally:
            store.close()
            if old_key is not None:
                os.environ["AGENTFLOW_SECRET_KEY"] = old_key
            if old_host is None:
                os.environ.pop("OLLAMA_HOST", None)
            else:
                os.environ["OLLAMA_HOST"] = old_host


def rows(page: Page) -> Any:
    return page.locator(".af-runs-table .tabulator-row")


def choose(page: Page, css: str, label: str) -> None:
    page.locator(f"{css} select").select_option(label=label)


def show_history(page: Page, status: str = "Any status", workflow_name: str = "All workflows"):
    page.click(".af-nav-runs button")
    choose(page, ".af-filter-workflow", workflow_name)
    choose(page, ".af-filter-status", status)


def deep_text(page: Page) -> str:
    """The page's HTML including every shadow root, every input's value and Bokeh's models."""
    return page.evaluate(
        """() => {
          const out = [document.documentElement.outerHTML];
          const walk = (root) => {
            for (const el of root.querySelectorAll('*')) {
              if (el.shadowRoot) { out.push(el.shadowRoot.innerHTML); walk(el.shadowRoot); }
              if (typeof el.value === 'string') out.push(el.value);
            }
          };
          walk(document);
          for (const doc of (window.Bokeh ? window.Bokeh.documents : [])) {
            for (const model of doc.all_models) {
              for (const prop of model) {
                try { out.push(JSON.stringify(prop.get_value())); } catch (e) { /* unset */ }
              }
            }
          }
          return out.join('\\n');
        }"""
    )


def test_history_filter_detail_and_gantt(studio):
    _, page, ctx = studio
    show_history(page)
    expect(rows(page)).to_have_count(5)
    expect(page.locator(".af-page-label")).to_contain_text("Runs 1\u20135 of 5")
    choose(page, ".af-filter-status", "failed")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("failed")
    rows(page).first.locator("[tabulator-field=Workflow]").click()

    detail = page.locator(".af-run-detail")
    expect(detail).to_be_visible()
    expect(page.locator(".af-run-title")).to_contain_text("failed")
    expect(page.locator(".af-run-error")).to_contain_text("cannot use 7")
    expect(page.locator(".af-run-error")).to_contain_text("compute")
    gantt = page.locator(".af-timing canvas").first
    expect(gantt).to_be_visible()
    box = gantt.bounding_box()
    assert box is not None and box["width"] > 400 and box["height"] > 80
    expect(page.locator(".af-node-runs .tabulator-row")).to_have_count(2)  # end never ran
    expect(page.locator(".af-attempt")).to_contain_text("cannot use 7")
    expect(page.locator(".af-resume button")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "run-detail.png"))
    assert ctx["outside"] == []


def test_compare_two_runs(studio):
    page = studio[1]
    show_history(page, workflow_name="triage")
    expect(rows(page)).to_have_count(2)
    expect(page.locator(".af-compare-button button")).to_be_disabled()
    rows(page).nth(0).locator("input[type=checkbox]").check()
    rows(page).nth(1).locator("input[type=checkbox]").check()
    expect(page.locator(".af-compare-button button")).to_have_text("Compare (2/2)")
    expect(page.locator(".af-run-detail")).to_be_hidden()  # ticking does not open a run
    page.click(".af-compare-button button")
    compare = page.locator(".af-compare")
    expect(compare).to_be_visible()
    queue = compare.locator("tr.af-diff", has_text="output · queue")
    expect(queue).to_contain_text("payment")
    expect(queue).to_contain_text("else")
    expect(compare.locator(".af-compare-timings tr", has_text="urgent")).to_have_count(1)
    expect(compare.locator(".af-compare-summary tr.af-diff", has_text="inputs")).to_have_count(1)


def test_resume_an_interrupted_run(studio):
    _, page, ctx = studio
    store, http = ctx["store"], ctx["http"]
    show_history(page, status="interrupted")
    expect(rows(page)).to_have_count(1)
    rows(page).first.locator("[tabulator-field=Workflow]").click()
    expect(page.locator(".af-run-title")).to_contain_text("interrupted")
    expect(page.locator(".af-run-error")).to_contain_text("stopped before it finished")
    page.click(".af-resume button")
    expect(page.locator(".af-run-title .af-status-succeeded")).to_be_visible(timeout=20_000)
    resumed = [r for r in store.executions.list(limit=10) if r.outputs == {"text": "done"}]
    assert len(resumed) == 1 and resumed[0].status == "succeeded"
    # 'first' was done before the kill: resuming did not call it again.
    assert (http.count("/json"), http.count("/slow"), http.count("/text")) == (1, 2, 1)
    expect(page.locator(".af-node-runs .tabulator-row", has_text="last")).to_have_count(1)


def test_publish_agents_and_run_one(studio):
    _, page, ctx = studio
    store = ctx["store"]
    page.click(".af-nav-agents button")
    expect(page.locator(".af-gallery")).to_be_attached()
    choose(page, ".af-pub-workflow", "triage")
    page.locator(".af-pub-name input").fill("Ticket triage")
    expect(page.locator(".af-pub-slug input")).to_have_value("ticket-triage")
    page.locator(".af-pub-slug input").fill("triage-bot")
    page.locator(".af-pub-description textarea").fill("Routes support tickets to the right queue")
    page.locator(".af-pub-category input").fill("support")
    page.locator(".af-pub-tags input").fill("email, routing")
    page.click(".af-publish button")
    expect(page.locator(".af-agent-triage-bot")).to_be_visible()
    expect(page.locator(".af-publish-message")).to_contain_text("Published")

    choose(page, ".af-pub-workflow", "word_stats")
    page.locator(".af-pub-name input").fill("Word counter")
    expect(page.locator(".af-pub-slug input")).to_have_value("word-counter")  # suggested
    page.locator(".af-pub-category input").fill("text")
    page.click(".af-publish button")
    expect(page.locator(".af-agent-word-counter")).to_be_visible()

    # Another listing for word_stats under a slug that is taken: refused, nothing lost.
    page.locator(".af-pub-name input").fill("Word stats copy")
    expect(page.locator(".af-pub-slug input")).to_have_value("word-stats-copy")
    page.locator(".af-pub-slug input").fill("triage-bot")
    page.locator(".af-pub-description textarea").fill("Counts the words of a text")
    page.click(".af-publish button")
    expect(page.locator(".af-publish-message")).to_contain_text("slug 'triage-bot' is taken")
    expect(page.locator(".af-pub-name input")).to_have_value("Word stats copy")
    expect(page.locator(".af-pub-slug input")).to_have_value("triage-bot")
    expect(page.locator(".af-pub-description textarea")).to_have_value("Counts the words of a text")
    assert sorted(a.slug for a in store.agents.list()) == ["triage-bot", "word-counter"]
    expect(page.locator(".af-categories button")).to_have_count(3)  # All, support, text
    page.screenshot(path=str(ARTIFACTS / "agents.png"))

    page.click(".af-open-agent-triage-bot button")
    page.locator(".af-input-ticket textarea").fill("I was charged twice, please refund my card")
    page.click(".af-run-agent button")
    expect(page.locator(".af-agent-status .af-status-succeeded")).to_be_visible()
    expect(page.locator(".af-agent-result")).to_contain_text("payments engineer")
    expect(page.locator(".af-use-count")).to_have_text("1")
    assert store.agents.get_by_slug("triage-bot").use_count == 1
    page.screenshot(path=str(ARTIFACTS / "agent-run.png"))
    assert ctx["outside"] == []


def test_settings_key_is_masked_and_never_in_the_page(studio):
    _, page, ctx = studio
    store = ctx["store"]
    page.click(".af-nav-settings button")
    expect(page.locator(".af-ollama-down")).to_contain_text("not running")
    choose(page, ".af-key-name", "openai \u2014 OPENAI_API_KEY")
    page.locator(".af-key-value input").fill(CANARY)
    assert CANARY in deep_text(page)  # the check below sees a typed value when there is one
    page.click(".af-save-key button")
    expect(page.locator(".af-key-message")).to_contain_text("Saved OPENAI_API_KEY")
    expect(page.locator(".af-masked")).to_have_text("sk-…LEAK")
    expect(page.locator(".af-key-value input")).to_have_value("")
    assert store.secrets.get("OPENAI_API_KEY") == CANARY
    time.sleep(0.3)  # any late model sync would have arrived by now
    text = deep_text(page)
    assert "sk-…LEAK" in text and CANARY not in text
    page.screenshot(path=str(ARTIFACTS / "settings.png"))
    assert ctx["outside"] == []
