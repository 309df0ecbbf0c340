"""Store benchmarks: recording throughput, engine slowdown when recording, history queries.

Run: ``make bench`` (or ``.venv/bin/python bench/store_bench.py``). Every figure is measured
in this run against a baseline measured in the same run; nothing is asserted.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from engine import BaseNodeConfig, Executor, NodeContext, NodeRegistry, NodeType, load_definition
from store import Store
from store.recorder import RunMeta


class NoopNode(NodeType[BaseNodeConfig]):
    type = "noop"

    async def run(self, ctx: NodeContext, config: BaseNodeConfig) -> dict[str, Any]:
        return {}


def chain_definition(count: int) -> dict[str, Any]:
    nodes = [{"id": "start", "type": "start", "data": {"config": {}}}]
    nodes += [{"id": f"n{i}", "type": "noop", "data": {"config": {}}} for i in range(count)]
    ids = [node["id"] for node in nodes]
    pairs = enumerate(itertools.pairwise(ids))
    edges = [{"id": f"e{i}", "source": a, "target": b} for i, (a, b) in pairs]
    return {"nodes": nodes, "edges": edges}


def node_events(execution_id: str, count: int) -> list[Any]:
    """Events shaped like the engine's, for the writer alone (no engine in the loop)."""
    now = time.time()
    events: list[Any] = [
        (
            SimpleNamespace(
                type="run_started",
                execution_id=execution_id,
                inputs={"q": 1},
                ts=now,
                node_types={},
            ),
            RunMeta("bench", 1),
        )
    ]
    for i in range(count):
        node_id = f"n{i}"
        events.append(
            SimpleNamespace(
                type="node_started",
                execution_id=execution_id,
                node_id=node_id,
                node_type="template",
                ts=now,
                attempt=1,
            )
        )
        events.append(
            SimpleNamespace(
                type="node_succeeded",
                execution_id=execution_id,
                node_id=node_id,
                ts=now + 0.001,
                outputs={"text": f"hello {i}"},
                attempts=1,
                duration_ms=1.0,
                metadata={},
                cached=False,
                reused=False,
                inputs={"template": "hello {{ x }}"},
            )
        )
    events.append(
        SimpleNamespace(
            type="run_finished",
            execution_id=execution_id,
            status="succeeded",
            outputs={},
            error=None,
            ts=now + 1,
            duration_ms=1000.0,
            token_usage={"total": 0},
        )
    )
    return events


def recording_throughput(workdir: Path, rows: int) -> dict[str, float]:
    with Store(workdir / "throughput.duckdb") as store:
        store.db.execute(
            "INSERT INTO workflows (id, user_id, name, definition) VALUES"
            " ('bench', 'local', 'bench', '{}')"
        )
        recorder = store.recorder
        per_run = 1000
        batches = [node_events(str(uuid.uuid4()), per_run) for _ in range(rows // per_run)]
        start = time.perf_counter()
        for events in batches:
            feed = recorder._pending.append  # what the engine's listener does per event
            for event in events:
                feed(event)
        recorder.flush(timeout=300)
        batched = time.perf_counter() - start
        written = store.db.execute("SELECT count(*) FROM node_runs")[0][0]

        # Baseline: one INSERT statement per node-run row, as a naive recorder would.
        sample = 2000
        values = [
            [
                str(uuid.uuid4()),
                f"n{i}",
                "template",
                "succeeded",
                1,
                time.time(),
                time.time(),
                1.0,
                json.dumps({"template": "x"}),
                json.dumps({"text": "y"}),
                None,
                0,
                0.0,
                "{}",
            ]
            for i in range(sample)
        ]
        start = time.perf_counter()
        for value in values:
            store.db.execute(
                "INSERT INTO node_runs VALUES (?, ?, ?, ?, ?, to_timestamp(?), to_timestamp(?),"
                " ?, ?, ?, ?, ?, ?, ?)",
                value,
            )
        single = time.perf_counter() - start
    return {
        "rows": float(written),
        "batched_rows_per_s": written / batched,
        "single_insert_rows_per_s": sample / single,
    }


async def chain_time(
    definition: Any, registry: NodeRegistry, listener: Any, store: Store | None
) -> tuple[float, float]:
    """(time until the run's result, time until it is also committed to the store)."""
    executor = Executor(registry)
    start = time.perf_counter()
    result = await executor.run(definition, {}, listeners=[listener] if listener else [])
    ran = time.perf_counter() - start
    if store is not None:
        store.recorder.flush(timeout=120)
    durable = time.perf_counter() - start
    assert result.status == "succeeded"
    return ran, durable


def engine_slowdown(workdir: Path, nodes: int, repeats: int) -> dict[str, float]:
    registry = NodeRegistry(plugins=False)
    registry.register(NoopNode)
    definition = load_definition(chain_definition(nodes))
    off: list[float] = []
    on_run: list[float] = []
    on: list[float] = []
    with Store(workdir / "slowdown.duckdb") as store:
        record = store.workflows.create(definition, name="chain")
        listener = store.recorder.listener(RunMeta(record.id, 1))
        for _ in range(repeats):
            off.append(asyncio.run(chain_time(definition, registry, None, None))[0])
            ran, durable = asyncio.run(chain_time(definition, registry, listener, store))
            on_run.append(ran)
            on.append(durable)
    return {
        "off_ms": statistics.median(off) * 1000,
        "on_run_ms": statistics.median(on_run) * 1000,
        "on_ms": statistics.median(on) * 1000,
        "run_ratio": statistics.median(on_run) / statistics.median(off),
        "ratio": statistics.median(on) / statistics.median(off),
    }


def history_query(workdir: Path, executions: int, nodes_per_run: int) -> dict[str, float]:
    with Store(workdir / "history.duckdb") as store:
        db = store.db
        db.execute(
            "INSERT INTO workflows (id, user_id, name, definition) VALUES"
            " ('w0', 'local', 'w0', '{}'), ('w1', 'local', 'w1', '{}')"
        )
        start = time.perf_counter()
        db.execute(
            "INSERT INTO executions (id, workflow_id, user_id, status, started_at, completed_at,"
            " duration_ms, created_at) SELECT 'e' || i, 'w' || (i % 2), 'local',"
            " CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'succeeded' END,"
            " TIMESTAMPTZ '2026-01-01' + to_seconds(i),"
            " TIMESTAMPTZ '2026-01-01' + to_seconds(i + 1),"
            " 1000, TIMESTAMPTZ '2026-01-01' + to_seconds(i) FROM range(?) t(i)",
            [executions],
        )
        db.execute(
            "INSERT INTO node_runs (execution_id, node_id, node_type, status, attempt, started_at,"
            " ended_at, duration_ms) SELECT 'e' || i, 'n' || j, 'template', 'succeeded', 1,"
            " TIMESTAMPTZ '2026-01-01' + to_seconds(i), TIMESTAMPTZ '2026-01-01' + to_seconds(i),"
            " (i * 7 + j) % 100 FROM range(?) t(i), range(?) u(j)",
            [executions, nodes_per_run],
        )
        fill = time.perf_counter() - start
        query = (
            "SELECT e.id, e.status, e.started_at, e.duration_ms,"
            " list({'node': n.node_id, 'ms': n.duration_ms} ORDER BY n.node_id) AS nodes"
            " FROM (SELECT id, status, started_at, duration_ms, created_at FROM executions"
            "       WHERE workflow_id = ? ORDER BY created_at DESC LIMIT 50) e"
            " JOIN node_runs n ON n.execution_id = e.id"
            " GROUP BY e.id, e.status, e.started_at, e.duration_ms, e.created_at"
            " ORDER BY e.created_at DESC"
        )
        timings = []
        for _ in range(20):
            start = time.perf_counter()
            rows = db.execute(query, ["w1"])
            timings.append(time.perf_counter() - start)
        assert len(rows) == 50 and len(rows[0][4]) == nodes_per_run
        count_start = time.perf_counter()
        db.execute("SELECT status, count(*) FROM executions WHERE workflow_id = 'w1' GROUP BY 1")
        count_ms = (time.perf_counter() - count_start) * 1000
    return {
        "fill_s": fill,
        "median_ms": statistics.median(timings) * 1000,
        "best_ms": min(timings) * 1000,
        "status_counts_ms": count_ms,
    }


def main() -> None:
    print("AgentFlow store bench")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        throughput = recording_throughput(workdir, 100_000)
        print("\n[1. recording throughput: 100,000 node-run rows through the recorder]")
        print(
            f"  batched recorder           {throughput['batched_rows_per_s']:>12,.0f} rows/s"
            "   target >= 100,000"
        )
        print(
            f"  one INSERT per row         {throughput['single_insert_rows_per_s']:>12,.0f} rows/s"
        )
        ratio = throughput["batched_rows_per_s"] / throughput["single_insert_rows_per_s"]
        print(f"  ratio                      {ratio:>12.0f}x")
        slowdown = engine_slowdown(workdir, 1000, 7)
        print("\n[2. 1,000-node chain, recording off vs on (flushed, durable)]")
        print(f"  recording off                     {slowdown['off_ms']:.1f} ms")
        print(
            f"  on, until the run's result        {slowdown['on_run_ms']:.1f} ms   "
            f"ratio {slowdown['run_ratio']:.2f}x   target < 1.5x"
        )
        print(
            f"  on, until committed (durable)     {slowdown['on_ms']:.1f} ms   "
            f"ratio {slowdown['ratio']:.2f}x"
        )
        history = history_query(workdir, 100_000, 10)
        print("\n[3. history: last 50 runs of a workflow with per-node durations]")
        print(f"  100,000 executions x 10 nodes (filled in {history['fill_s']:.1f} s)")
        print(
            f"  median {history['median_ms']:.1f} ms   best {history['best_ms']:.1f} ms"
            "   target < 50 ms"
        )
        print(f"  status counts of one workflow {history['status_counts_ms']:.1f} ms")
        results = {"throughput": throughput, "slowdown": slowdown, "history": history}
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "store.json").write_text(json.dumps(results, indent=2))
    print(f"\nsummary written to {out / 'store.json'}")


if __name__ == "__main__":
    main()
