"""Studio benchmark in headless Chromium (seed §10.1: first paint < 2 s, editor < 100 ms).

Run: ``.venv/bin/python bench/studio_bench.py [--repeat N]``. A temporary database gets the
example workflows, one real run of each and 100,000 recorded executions; the studio is
served in this process and Chromium may only reach 127.0.0.1. Printed figures:

1. page load: navigation start -> first contentful paint, and -> the workflows table's
   rows visible (the first session of the server process, then warm sessions);
2. run history with 100k executions: nav click -> rows visible, next page, run detail;
3. canvas (editor): click a node -> its config shows; drag a node -> the new position is
   in the session's Python state;
4. live events: click Run -> the first node status class on the canvas.

Timings taken from Python include Playwright's round trips (a few ms each). Nothing is
asserted; targets are shown next to the medians. Results also go to
``bench/results/studio.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "studio.json"
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
HISTORY_ROWS = 100_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare(db: Path) -> Any:
    """A store with the examples, a real run of each and 100k recorded executions."""
    from store import Store
    from studio.runner import RunManager
    from studio.server import load_examples

    store = Store(db)
    load_examples(store)
    # The examples that need no model (the LLM one would wait for Ollama).
    inputs = {
        "Ticket triage": {"ticket": "My card payment failed"},
        "Word statistics": {"text": "a b a"},
    }

    async def run_examples() -> None:
        runner = RunManager(store)
        for record in store.workflows.list():
            if record.name in inputs:
                run = runner.start(record.id, inputs[record.name])
                await run.wait()

    asyncio.run(run_examples())
    store.recorder.flush()
    workflow_id = store.workflows.list()[0].id
    store.db.execute(
        "INSERT INTO executions (id, workflow_id, user_id, status, inputs, started_at,"
        " created_at, duration_ms) SELECT 'bench-' || i::VARCHAR, ?, 'local',"
        " CASE WHEN i % 7 = 0 THEN 'failed' ELSE 'succeeded' END, '{}',"
        " now() - to_minutes(i + 60), now() - to_minutes(i + 60), i % 900 FROM range(?) t(i)",
        [workflow_id, HISTORY_ROWS],
    )
    return store


class Studio:
    """The studio's server (as ``studio.server.make_server`` builds it) in a thread.

    The session factory also keeps each session's app, so that the benchmark can see
    when the browser's edits have reached Python.
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self.port = free_port()
        self.apps: list[Any] = []
        self.ready = threading.Event()
        self.server: Any = None
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        import panel as pn

        from studio.app import StudioApp
        from studio.runner import RunManager

        asyncio.set_event_loop(asyncio.new_event_loop())
        runner = RunManager(self.store)

        def session() -> Any:
            app = StudioApp(self.store, runner)
            self.apps.append(app)
            return app.view()

        self.server = pn.serve(
            {"/": session},
            port=self.port,
            address="127.0.0.1",
            show=False,
            start=False,
            title="AgentFlow Studio",
            websocket_origin=[f"127.0.0.1:{self.port}"],
            threaded=False,
        )
        self.server.start()
        self.ready.set()
        self.server.io_loop.start()
        self.server.stop()

    def __enter__(self) -> Studio:
        self.thread.start()
        self.ready.wait(60)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.io_loop.add_callback(self.server.io_loop.stop)
        self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def new_page(browser: Any, outside: list[str]) -> Any:
    page = browser.new_page(viewport={"width": 1400, "height": 900})

    def only_local(route: Any) -> None:
        if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.set_default_timeout(20_000)
    return page


def page_load(browser: Any, studio: Studio, outside: list[str]) -> dict[str, float]:
    page = new_page(browser, outside)
    page.goto(studio.url, wait_until="commit")
    page.wait_for_selector(".af-workflows-table .tabulator-row", state="visible")
    figures = page.evaluate(
        """() => {
          const paint = performance.getEntriesByName('first-contentful-paint')[0];
          return {fcp: paint ? paint.startTime : null, table: performance.now()};
        }"""
    )
    page.close()
    return {"fcp_ms": figures["fcp"], "table_ms": figures["table"]}


def history(browser: Any, studio: Studio, outside: list[str]) -> dict[str, float]:
    page = new_page(browser, outside)
    page.goto(studio.url)
    page.wait_for_selector(".af-nav-runs button")
    rows = ".af-runs-table .tabulator-row"
    label = page.locator(".af-page-label")

    def open_history() -> None:
        page.click(".af-nav-runs button")
        page.wait_for_selector(rows, state="visible")
        label.filter(has_text=f"of {HISTORY_ROWS + 2:,}").wait_for()

    figures = {"history_ms": timed(open_history)}

    def next_page() -> None:
        page.click(".af-page-next button")
        label.filter(has_text="page 2 of").wait_for()

    figures["next_page_ms"] = timed(next_page)

    def last_page() -> None:
        page.click(".af-page-last button")
        label.filter(has_text="page 4,001 of").wait_for()

    figures["last_page_ms"] = timed(last_page)
    page.click(".af-page-first button")
    label.filter(has_text="page 1 of").wait_for()

    def open_detail() -> None:
        page.locator(rows).first.locator("[tabulator-field=Workflow]").click()
        page.wait_for_selector(".af-timing canvas", state="visible")

    figures["run_detail_ms"] = timed(open_detail)
    page.close()
    return figures


def editor_node_position(app: Any, node_id: str) -> tuple[float, float] | None:
    for rf_node in list(app.pages["editor"].flow.nodes):
        if rf_node.get("id") == node_id:
            position = rf_node.get("position") or {}
            return float(position.get("x", 0)), float(position.get("y", 0))
    return None


def canvas(browser: Any, studio: Studio, outside: list[str], repeat: int) -> dict[str, Any]:
    page = open_editor(browser, studio, outside, "triage")
    app = studio.apps[-1]
    nodes = ["route", "urgent", "normal", "reply", "end"]
    label = page.locator(".af-field-label input")
    select_ms = []
    for i in range(repeat):
        node_id = nodes[i % len(nodes)]
        target = page.locator(f".react-flow__node[data-id='{node_id}']")
        expected = _label_of(app, node_id)

        def select(target: Any = target, expected: str = expected) -> None:
            target.click()
            page.wait_for_function(
                """([css, text]) => {
                  const find = (root) => {
                    for (const el of root.querySelectorAll('*')) {
                      if (el.matches(css) && el.shadowRoot) {
                        const input = el.shadowRoot.querySelector('input');
                        if (input && input.value === text) return true;
                      }
                      if (el.shadowRoot && find(el.shadowRoot)) return true;
                    }
                    return false;
                  };
                  return find(document);
                }""",
                arg=[".af-field-label", expected],
                polling="raf",
            )

        select_ms.append(timed(select))
    label.first.wait_for()
    drag_ms = []
    for i in range(repeat):
        node_id = nodes[i % len(nodes)]
        before = editor_node_position(app, node_id)
        box = page.locator(f".react-flow__node[data-id='{node_id}']").bounding_box()
        if box is None or before is None:
            continue
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + 40, y + 30, steps=4)
        started = time.perf_counter()
        page.mouse.up()
        deadline = started + 5
        while editor_node_position(app, node_id) == before and time.perf_counter() < deadline:
            time.sleep(0.0005)
        if editor_node_position(app, node_id) != before:
            drag_ms.append((time.perf_counter() - started) * 1000)
    page.close()
    return {"select_node_ms": median(select_ms), "drag_sync_ms": median(drag_ms)}


def _label_of(app: Any, node_id: str) -> str:
    editor = app.pages["editor"]
    record = app.store.workflows.get(editor.workflow_id)
    for node in record.definition.nodes:
        if node.id == node_id:
            return str(node.data.label or node_id)
    return node_id


def open_editor(browser: Any, studio: Studio, outside: list[str], name: str) -> Any:
    page = new_page(browser, outside)
    page.goto(studio.url)
    page.wait_for_selector(".af-workflows-table .tabulator-row", state="visible")
    row = page.locator(".af-workflows-table .tabulator-row", has_text=name)
    row.locator(".tabulator-cell", has_text="Open").click()
    page.wait_for_selector(".react-flow__node", state="visible")
    return page


def live_events(browser: Any, studio: Studio, outside: list[str], repeat: int) -> float | None:
    """Click Run -> the first node status class on the canvas (a fresh editor each time:
    statuses of an earlier run stay on the canvas)."""
    times = []
    for _ in range(repeat):
        page = open_editor(browser, studio, outside, "triage")
        page.locator(".bk-tab", has_text="Run").click()
        page.locator(".af-input-ticket textarea, .af-input-ticket input").first.fill(
            "my card payment failed"
        )
        page.locator(".af-run-button button").wait_for()
        started = time.perf_counter()
        page.click(".af-run-button button")
        page.wait_for_selector(".react-flow__node[class*='af-run-']", state="attached")
        times.append((time.perf_counter() - started) * 1000)
        page.close()
    return median(times)


def verdict(value: float | None, target: float) -> str:
    if value is None:
        return "n/a"
    return "ok" if value < target else "SLOW"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from playwright.sync_api import sync_playwright

    results: dict[str, Any] = {"load_avg_before": os.getloadavg()[0]}
    outside: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        store = prepare(Path(tmp) / "bench.duckdb")
        results["setup_s"] = time.perf_counter() - started
        try:
            with Studio(store) as studio, sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                loads = [page_load(browser, studio, outside) for _ in range(args.repeat + 1)]
                results["cold_load"] = loads[0]
                results["warm_fcp_ms"] = median([f["fcp_ms"] for f in loads[1:] if f["fcp_ms"]])
                results["warm_table_ms"] = median([f["table_ms"] for f in loads[1:]])
                results["history"] = history(browser, studio, outside)
                results["canvas"] = {}
                for name, measure in (
                    ("canvas", lambda: canvas(browser, studio, outside, args.repeat)),
                    ("live", lambda: {"live_event_ms": live_events(browser, studio, outside, 3)}),
                ):
                    try:
                        results["canvas"].update(measure())
                    except Exception as exc:  # the editor is another page: report, go on
                        results["canvas"][f"{name}_error"] = f"{type(exc).__name__}: {exc}"[:300]
                browser.close()
        finally:
            store.close()
    results["load_avg_after"] = os.getloadavg()[0]
    results["requests_outside_127.0.0.1"] = outside
    report(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str))


def report(results: dict[str, Any]) -> None:
    def ms(value: float | None) -> str:
        return "—" if value is None else f"{value:8.1f} ms"

    cold, hist, canvas_results = results["cold_load"], results["history"], results["canvas"]
    print(
        f"studio bench  (load average {results['load_avg_before']:.2f} -> "
        f"{results['load_avg_after']:.2f}; setup {results['setup_s']:.1f} s)"
    )
    rows = [
        ("first contentful paint, first session", cold["fcp_ms"], 2000),
        ("workflows table visible, first session", cold["table_ms"], 2000),
        ("first contentful paint, warm (median)", results["warm_fcp_ms"], 2000),
        ("workflows table visible, warm (median)", results["warm_table_ms"], 2000),
        (f"history with {HISTORY_ROWS:,} runs: rows visible", hist["history_ms"], 2000),
        ("history: next page", hist["next_page_ms"], 500),
        ("history: last page", hist["last_page_ms"], 500),
        ("run detail with timing chart", hist["run_detail_ms"], 2000),
        ("canvas: select node -> config shown", canvas_results.get("select_node_ms"), 100),
        ("canvas: drag node -> position in Python", canvas_results.get("drag_sync_ms"), 100),
        ("live: Run click -> first node status", canvas_results.get("live_event_ms"), 500),
    ]
    for name, value, target in rows:
        print(f"  {name:<44} {ms(value)}   target < {target} ms   {verdict(value, target)}")
    for key, value in canvas_results.items():
        if key.endswith("_error"):
            print(f"  {key.removesuffix('_error')} measurements failed: {value}")
    outside = results["requests_outside_127.0.0.1"]
    print(f"  requests outside 127.0.0.1 (blocked): {len(outside)}")


if __name__ == "__main__":
    main()
