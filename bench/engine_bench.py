"""Engine benchmark: scheduling overhead, fan-out, long chains, start latency, CLI cold start.

Run with ``make bench`` (its own venv, so LangGraph never becomes a project dependency).
Prints one table with ratios and writes ``bench/results/engine.json``. Timings are
reported, never asserted: the verdict column only compares medians with the design
targets. ``--profile`` instead runs the 1,000-node chain under cProfile.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from engine import (
    BaseNodeConfig,
    CompiledWorkflow,
    Event,
    Executor,
    NodeContext,
    NodeRegistry,
    NodeStarted,
    NodeType,
    compile_workflow,
    load_definition,
)

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "results" / "engine.json"
THREE_NODES = BENCH_DIR / "workflows" / "three_nodes.json"

CHAIN = 1_000
BIG_CHAIN = 10_000
FAN = 1_000
SLEEP_S = 0.05

# Design targets (bench/README.md); only used for the verdict column.
TARGET_LANGGRAPH_FACTOR = 20.0
TARGET_FAN_FACTOR = 1.5
TARGET_LINEARITY = 1.5
TARGET_START_MS = 5.0
TARGET_COLD_MS = 400.0


# -- node types and definitions ------------------------------------------------------------
class NoopNode(NodeType[BaseNodeConfig]):
    type = "bench_noop"
    description = "Does nothing (measures the engine's own per-node cost)."

    async def run(self, ctx: NodeContext, config: BaseNodeConfig) -> dict[str, Any]:
        return {}


class SleepNode(NodeType[BaseNodeConfig]):
    type = "bench_sleep"
    description = "Waits SLEEP_S seconds (measures the concurrency of a fan-out)."

    async def run(self, ctx: NodeContext, config: BaseNodeConfig) -> dict[str, Any]:
        await asyncio.sleep(SLEEP_S)
        return {}


def bench_registry() -> NodeRegistry:
    registry = NodeRegistry(plugins=False)
    registry.register(NoopNode)
    registry.register(SleepNode)
    return registry


def _node(node_id: str, node_type: str, x: int = 0) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": node_type,
        "position": {"x": x, "y": 0},
        "data": {"label": node_id, "config": {}},
    }


def _edge(source: str, target: str) -> dict[str, Any]:
    return {
        "id": f"{source}->{target}",
        "source": source,
        "sourceHandle": "out",
        "target": target,
        "targetHandle": "in",
    }


def chain_document(length: int) -> dict[str, Any]:
    """start -> n1 -> ... -> n<length> (no-op nodes)."""
    nodes = [_node("start", "start")]
    edges = []
    previous = "start"
    for index in range(1, length + 1):
        node_id = f"n{index}"
        nodes.append(_node(node_id, NoopNode.type, index))
        edges.append(_edge(previous, node_id))
        previous = node_id
    return {"version": "1.0.0", "nodes": nodes, "edges": edges, "settings": {}}


def fanout_document(width: int) -> dict[str, Any]:
    """start -> ``width`` sleeping nodes, all allowed to run at once."""
    nodes = [_node("start", "start")]
    nodes += [_node(f"s{index}", SleepNode.type, index) for index in range(width)]
    edges = [_edge("start", f"s{index}") for index in range(width)]
    settings = {"maxConcurrency": width, "timeout": 60}
    return {"version": "1.0.0", "nodes": nodes, "edges": edges, "settings": settings}


# -- timing helpers ------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    """Seconds over repetitions: the median is the result; the best shows the noise floor."""

    median: float
    best: float

    @classmethod
    def of(cls, times: list[float]) -> Sample:
        return cls(statistics.median(times), min(times))

    def __mul__(self, factor: float) -> Sample:
        return Sample(self.median * factor, self.best * factor)

    def __truediv__(self, divisor: float) -> Sample:
        return Sample(self.median / divisor, self.best / divisor)


def _time_sync(fn: Callable[[], Any], reps: int, warmup: int = 1) -> Sample:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return Sample.of(times)


async def _time_async(fn: Callable[[], Awaitable[float]], reps: int, warmup: int = 1) -> Sample:
    """``fn`` times itself, so the setup it does before its clock starts is excluded."""
    for _ in range(warmup):
        await fn()
    times = []
    for _ in range(reps):
        gc.collect()
        times.append(await fn())
    return Sample.of(times)


def _expected_events(node_count: int) -> int:
    # run_started + (node_started, node_succeeded) per node + run_finished
    return 2 + 2 * node_count


def _check_run(status: str, error: Any, events: int, node_count: int) -> None:
    if status != "succeeded":
        raise RuntimeError(f"engine run {status}: {error}")
    if events != _expected_events(node_count):
        raise RuntimeError(f"expected {_expected_events(node_count)} events, got {events}")


async def engine_run_streamed(executor: Executor, compiled: CompiledWorkflow) -> float:
    """One run consumed by ``async for`` over its events; wall seconds."""
    t0 = time.perf_counter()
    run = executor.start(compiled)
    count = 0
    async for _event in run.events():
        count += 1
    result = await run
    elapsed = time.perf_counter() - t0
    _check_run(result.status, result.error, count, len(compiled.nodes))
    return elapsed


async def engine_run_listener(executor: Executor, compiled: CompiledWorkflow) -> float:
    """One run with a synchronous listener counting every event; wall seconds."""
    seen = [0]

    def listener(_event: Event) -> None:
        seen[0] += 1

    t0 = time.perf_counter()
    result = await executor.run(compiled, listeners=[listener])
    elapsed = time.perf_counter() - t0
    _check_run(result.status, result.error, seen[0], len(compiled.nodes))
    return elapsed


# -- baselines -----------------------------------------------------------------------------
def _make_noop() -> Callable[[dict[str, Any]], dict[str, Any]]:
    def noop(state: dict[str, Any]) -> dict[str, Any]:
        return {}

    return noop


def _make_async_noop() -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
    async def noop(state: dict[str, Any]) -> dict[str, Any]:
        return {}

    return noop


def plain_chain(length: int, reps: int) -> Sample:
    """Seconds per pass of a loop calling ``length`` distinct no-ops, merging each result."""
    funcs = [_make_noop() for _ in range(length)]
    passes = 200

    def many_passes() -> None:
        for _ in range(passes):
            state: dict[str, Any] = {}
            for fn in funcs:
                state.update(fn(state))

    return _time_sync(many_passes, reps) / passes


async def plain_async_chain(length: int, reps: int) -> Sample:
    """The same loop awaiting coroutines: the floor for any async engine."""
    funcs = [_make_async_noop() for _ in range(length)]
    passes = 100

    async def many_passes() -> float:
        t0 = time.perf_counter()
        for _ in range(passes):
            state: dict[str, Any] = {}
            for fn in funcs:
                state.update(await fn(state))
        return time.perf_counter() - t0

    return await _time_async(many_passes, reps) / passes


async def gather_sleeps() -> float:
    t0 = time.perf_counter()
    await asyncio.gather(*(asyncio.sleep(SLEEP_S) for _ in range(FAN)))
    return time.perf_counter() - t0


# -- LangGraph -----------------------------------------------------------------------------
class LgState(TypedDict, total=False):
    x: int


def _lg_noop(state: LgState) -> dict[str, Any]:
    return {}


async def _lg_sleep(state: LgState) -> dict[str, Any]:
    await asyncio.sleep(SLEEP_S)
    return {}


def langgraph_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("langgraph")
    except PackageNotFoundError:
        return None


def langgraph_chain(length: int) -> tuple[Any, float]:
    """(compiled graph, build+compile seconds) of START -> n1 -> ... -> n<length> -> END."""
    from langgraph.graph import END, START, StateGraph

    t0 = time.perf_counter()
    graph = StateGraph(LgState)
    previous = START
    for index in range(1, length + 1):
        name = f"n{index}"
        graph.add_node(name, _lg_noop)
        graph.add_edge(previous, name)
        previous = name
    graph.add_edge(previous, END)
    app = graph.compile()
    return app, time.perf_counter() - t0


def langgraph_fanout(width: int) -> Any:
    from langgraph.graph import END, START, StateGraph

    graph = StateGraph(LgState)
    for index in range(width):
        name = f"s{index}"
        graph.add_node(name, _lg_sleep)
        graph.add_edge(START, name)
        graph.add_edge(name, END)
    return graph.compile()


# -- start latency and cold start ----------------------------------------------------------
async def start_latency(workflow: Any, registry: NodeRegistry, reps: int) -> Sample:
    """Seconds from ``Executor(...).start()`` being called to the first ``node_started``."""
    times = []
    for index in range(reps + 5):
        first: list[float] = []

        def listener(event: Event, first: list[float] = first) -> None:
            if not first and isinstance(event, NodeStarted):
                first.append(time.perf_counter())

        t0 = time.perf_counter()
        result = await Executor(registry).start(workflow, listeners=[listener])
        if result.status != "succeeded" or not first:
            raise RuntimeError(f"start-latency run {result.status}: {result.error}")
        if index >= 5:  # the first runs warm caches
            times.append(first[0] - t0)
    return Sample.of(times)


def _timed_process(argv: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    return time.perf_counter() - t0, done


def process_time(argv: list[str], reps: int) -> Sample:
    _timed_process(argv)  # warms the file cache and __pycache__
    times = []
    for _ in range(reps):
        elapsed, done = _timed_process(argv)
        if done.returncode != 0:
            raise RuntimeError(f"{argv} exited {done.returncode}: {done.stderr.strip()[-500:]}")
        times.append(elapsed)
    return Sample.of(times)


def agentflow_command() -> list[str] | None:
    """The console script next to this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "agentflow"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("agentflow")
    return [found] if found else None


def cli_cold_start(reps: int, *extra: str) -> tuple[Sample | None, str | None]:
    """Wall seconds of ``agentflow run three_nodes.json --json``, or why it cannot run.

    The run is recorded in a throw-away store (``AGENTFLOW_HOME`` below a temp dir)
    unless ``extra`` holds ``--no-store``.
    """
    command = agentflow_command()
    if command is None:
        return None, "agentflow console script not installed"
    home = tempfile.mkdtemp(prefix="agentflow-bench-")
    os.environ["AGENTFLOW_HOME"] = home
    argv = [*command, "run", str(THREE_NODES), "--json", "--input", "name=bench", *extra]
    _, done = _timed_process(argv)
    if done.returncode != 0:
        return None, f"exit {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}"
    try:
        document = json.loads(done.stdout)
    except json.JSONDecodeError:
        return None, f"--json printed no JSON: {done.stdout[:200]!r}"
    status = document.get("status") if isinstance(document, dict) else None
    if status != "succeeded":
        return None, f"run status {status!r}"
    return process_time(argv, reps), None


# -- report --------------------------------------------------------------------------------
@dataclass
class Row:
    section: str
    name: str
    value: float | Sample | None
    unit: str
    target: str = ""
    ok: bool | None = None
    note: str = ""
    #: Name of the design target this row decides, for the JSON summary.
    key: str | None = None
    best: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if isinstance(self.value, Sample):
            self.value, self.best = self.value.median, self.value.best


def _fmt(value: float | Sample | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, Sample):
        value = value.median
    if unit == "x":
        return f"{value:.2f}x"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}"
    if abs(value) >= 10:
        return f"{value:.1f} {unit}"
    return f"{value:.2f} {unit}"


def print_table(rows: list[Row]) -> None:
    width = max(len(row.name) for row in rows) + 2
    header = f"{'measurement':<{width}}{'median':>14}{'best':>14}   {'target':<16}verdict"
    print()
    print(header)
    print("-" * (len(header) + 4))
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            print(f"[{section}]")
        verdict = "" if row.ok is None else ("ok" if row.ok else "MISS")
        best = "" if row.best is None else _fmt(row.best, row.unit)
        line = (
            f"{row.name:<{width}}{_fmt(row.value, row.unit):>14}{best:>14}   "
            f"{row.target:<16}{verdict}"
        )
        if row.note:
            line += f"  ({row.note})"
        print(line.rstrip())


def _ms(sample: Sample | None) -> float | None:
    return None if sample is None else sample.median * 1e3


# -- the benchmark -------------------------------------------------------------------------
# One function per section, so that a section's objects (LangGraph graphs, 10k-node
# workflows) are freed before the next one: a big live heap slows every GC pass.


async def section_chain(
    registry: NodeRegistry, with_langgraph: bool
) -> tuple[list[Row], dict[str, Any]]:
    executor = Executor(registry)
    chain_doc = chain_document(CHAIN)
    load_s = _time_sync(lambda: load_definition(chain_doc), reps=5)
    chain_def = load_definition(chain_doc)
    compile_s = _time_sync(lambda: compile_workflow(chain_def, registry), reps=5)
    compiled = compile_workflow(chain_def, registry)
    nodes = len(compiled.nodes)  # the start node plus CHAIN no-ops

    engine = await _time_async(lambda: engine_run_streamed(executor, compiled), 15) / nodes * 1e6
    listener = await _time_async(lambda: engine_run_listener(executor, compiled), 15) / nodes * 1e6
    plain = plain_chain(CHAIN, reps=7) / CHAIN * 1e6
    plain_async = await plain_async_chain(CHAIN, reps=7) / CHAIN * 1e6

    lg = lg_async = lg_compile_s = None
    if with_langgraph:
        lg_app, lg_compile_s = langgraph_chain(CHAIN)
        lg_config = {"recursion_limit": CHAIN + 10}
        lg = _time_sync(lambda: lg_app.invoke({"x": 0}, lg_config), reps=5) / CHAIN * 1e6

        async def lg_async_once() -> float:
            t0 = time.perf_counter()
            await lg_app.ainvoke({"x": 0}, lg_config)
            return time.perf_counter() - t0

        lg_async = await _time_async(lg_async_once, reps=3) / CHAIN * 1e6

    lg_ratio = None if lg is None else lg.median / engine.median
    lg_ok = None if lg_ratio is None else lg_ratio >= TARGET_LANGGRAPH_FACTOR
    section = f"1. chain of {CHAIN:,} no-op nodes (per node)"
    rows = [
        Row(section, "engine, async for over run.events()", engine, "µs/node",
            f"<= LangGraph/{TARGET_LANGGRAPH_FACTOR:g}", lg_ok),
        Row(section, "engine, listener", listener, "µs/node"),
        Row(section, "plain Python loop (sync calls)", plain, "µs/node"),
        Row(section, "plain Python loop (awaited coroutines)", plain_async, "µs/node"),
        Row(section, "LangGraph StateGraph.invoke", lg, "µs/node",
            note="" if with_langgraph else "LangGraph not installed"),
        Row(section, "LangGraph StateGraph.ainvoke", lg_async, "µs/node"),
        Row(section, "ratio engine / plain loop", engine.median / plain.median, "x"),
        Row(section, "ratio engine / plain awaited loop", engine.median / plain_async.median, "x"),
        Row(section, "ratio LangGraph / engine", lg_ratio, "x",
            f">= {TARGET_LANGGRAPH_FACTOR:g}x", lg_ok, key="chain_vs_langgraph"),
        Row(section, f"engine load_definition ({CHAIN:,} nodes)", load_s * 1e3, "ms"),
        Row(section, f"engine compile_workflow ({CHAIN:,} nodes)", compile_s * 1e3, "ms"),
        Row(section, f"LangGraph build+compile ({CHAIN:,} nodes)",
            None if lg_compile_s is None else lg_compile_s * 1e3, "ms"),
    ]  # fmt: skip
    data = {
        "nodes": CHAIN,
        "engine_us_per_node": engine.median,
        "engine_us_per_node_best": engine.best,
        "engine_listener_us_per_node": listener.median,
        "plain_us_per_node": plain.median,
        "plain_async_us_per_node": plain_async.median,
        "langgraph_us_per_node": None if lg is None else lg.median,
        "langgraph_async_us_per_node": None if lg_async is None else lg_async.median,
        "ratio_engine_plain": engine.median / plain.median,
        "ratio_engine_plain_async": engine.median / plain_async.median,
        "ratio_langgraph_engine": lg_ratio,
        "engine_load_ms": load_s.median * 1e3,
        "engine_compile_ms": compile_s.median * 1e3,
        "langgraph_compile_ms": None if lg_compile_s is None else lg_compile_s * 1e3,
    }
    return rows, data


async def section_fanout(
    registry: NodeRegistry, with_langgraph: bool
) -> tuple[list[Row], dict[str, Any]]:
    executor = Executor(registry)
    compiled = compile_workflow(load_definition(fanout_document(FAN)), registry)
    engine = await _time_async(lambda: engine_run_streamed(executor, compiled), reps=7)
    gather = await _time_async(gather_sleeps, reps=7)
    lg = None
    if with_langgraph:
        lg_fan = langgraph_fanout(FAN)

        async def lg_fan_once() -> float:
            t0 = time.perf_counter()
            await lg_fan.ainvoke({"x": 0})
            return time.perf_counter() - t0

        lg = await _time_async(lg_fan_once, reps=5)
    ok = engine.median <= SLEEP_S * TARGET_FAN_FACTOR
    section = f"2. fan-out of {FAN:,} x asyncio.sleep({SLEEP_S:g}) (wall time)"
    rows = [
        Row(section, f"engine (maxConcurrency={FAN}, events consumed)", engine * 1e3, "ms",
            f"<= {SLEEP_S * TARGET_FAN_FACTOR * 1e3:g} ms", ok),
        Row(section, "asyncio.gather", gather * 1e3, "ms"),
        Row(section, "LangGraph ainvoke", None if lg is None else lg * 1e3, "ms"),
        Row(section, f"engine / ideal {SLEEP_S * 1e3:g} ms", engine / SLEEP_S, "x",
            f"<= {TARGET_FAN_FACTOR:g}x", ok, key="fanout_vs_ideal"),
        Row(section, "asyncio.gather / ideal", gather / SLEEP_S, "x"),
        Row(section, "LangGraph / ideal", None if lg is None else lg / SLEEP_S, "x"),
    ]  # fmt: skip
    data = {
        "width": FAN,
        "sleep_ms": SLEEP_S * 1e3,
        "engine_ms": _ms(engine),
        "engine_ms_best": engine.best * 1e3,
        "gather_ms": _ms(gather),
        "langgraph_ms": _ms(lg),
        "engine_vs_ideal": engine.median / SLEEP_S,
        "gather_vs_ideal": gather.median / SLEEP_S,
        "langgraph_vs_ideal": None if lg is None else lg.median / SLEEP_S,
    }
    return rows, data


async def section_big_chain(
    registry: NodeRegistry, chain: dict[str, Any]
) -> tuple[list[Row], dict[str, Any]]:
    executor = Executor(registry)
    definition = load_definition(chain_document(BIG_CHAIN))
    compile_s = _time_sync(lambda: compile_workflow(definition, registry), reps=3, warmup=0)
    compiled = compile_workflow(definition, registry)
    per_node = await _time_async(lambda: engine_run_streamed(executor, compiled), reps=5)
    per_node = per_node / len(compiled.nodes) * 1e6
    linearity = per_node.median / chain["engine_us_per_node"]
    compile_linearity = (compile_s.median * 1e3 / BIG_CHAIN) / (chain["engine_compile_ms"] / CHAIN)
    section = f"3. chain of {BIG_CHAIN:,} no-op nodes through the engine"
    rows = [
        Row(section, "engine, async for over run.events()", per_node, "µs/node", note="completed"),
        Row(section, f"per-node cost vs {CHAIN:,} chain", linearity, "x",
            f"<= {TARGET_LINEARITY:g}x", linearity <= TARGET_LINEARITY, key="big_chain_linear"),
        Row(section, f"engine compile_workflow ({BIG_CHAIN:,} nodes)", compile_s * 1e3, "ms"),
        Row(section, f"compile cost per node vs {CHAIN:,} nodes", compile_linearity, "x"),
    ]  # fmt: skip
    data = {
        "nodes": BIG_CHAIN,
        "engine_us_per_node": per_node.median,
        "engine_us_per_node_best": per_node.best,
        "ratio_to_1k_chain": linearity,
        "engine_compile_ms": compile_s.median * 1e3,
        "compile_ratio_to_1k": compile_linearity,
    }
    return rows, data


async def section_start_latency(registry: NodeRegistry) -> tuple[list[Row], dict[str, Any]]:
    definition = load_definition(chain_document(1))
    compiled = compile_workflow(definition, registry)
    from_compiled = await start_latency(compiled, registry, reps=300) * 1e3
    from_definition = await start_latency(definition, registry, reps=300) * 1e3
    section = "4. in-process start latency: start() -> first node_started"
    rows = [
        Row(section, "compiled workflow", from_compiled, "ms", f"< {TARGET_START_MS:g} ms",
            from_compiled.median < TARGET_START_MS, key="start_latency"),
        Row(section, "definition (compiled inside start)", from_definition, "ms",
            f"< {TARGET_START_MS:g} ms", from_definition.median < TARGET_START_MS),
    ]  # fmt: skip
    data = {"compiled_ms": from_compiled.median, "definition_ms": from_definition.median}
    return rows, data


async def measure_in_process(with_langgraph: bool) -> tuple[list[Row], dict[str, Any]]:
    registry = bench_registry()
    data: dict[str, Any] = {}
    rows, data["chain"] = await section_chain(registry, with_langgraph)
    gc.collect()
    more, data["fanout"] = await section_fanout(registry, with_langgraph)
    rows += more
    gc.collect()
    more, data["big_chain"] = await section_big_chain(registry, data["chain"])
    rows += more
    gc.collect()
    more, data["start_latency"] = await section_start_latency(registry)
    rows += more
    return rows, data


def measure_cold_start() -> tuple[list[Row], dict[str, Any]]:
    reps = 10
    python = process_time([sys.executable, "-c", "pass"], reps)
    import_engine = process_time([sys.executable, "-c", "import engine"], reps)
    cli, why_not = cli_cold_start(reps, "--no-store")
    recorded, recorded_why_not = cli_cold_start(reps)
    cli_ms = _ms(cli)
    recorded_ms = _ms(recorded)
    section = f"5. cold start: agentflow run {THREE_NODES.name} --json ({reps} runs)"
    rows = [
        Row(section, "agentflow run --no-store (wall time)", None if cli is None else cli * 1e3,
            "ms", f"< {TARGET_COLD_MS:g} ms", None if cli_ms is None else cli_ms < TARGET_COLD_MS,
            note=why_not or "", key="cold_start"),
        Row(section, "agentflow run, recorded in DuckDB",
            None if recorded is None else recorded * 1e3, "ms", "< 500 ms (seed)",
            None if recorded_ms is None else recorded_ms < 500, note=recorded_why_not or ""),
        Row(section, "python -c pass (baseline)", python * 1e3, "ms"),
        Row(section, "python -c 'import engine'", import_engine * 1e3, "ms"),
        Row(section, "agentflow run minus interpreter start",
            None if cli is None else (cli.median - python.median) * 1e3, "ms"),
    ]  # fmt: skip
    data = {
        "agentflow_run_ms": cli_ms,
        "agentflow_run_recorded_ms": recorded_ms,
        "agentflow_run_ms_best": None if cli is None else cli.best * 1e3,
        "agentflow_unavailable": why_not,
        "python_pass_ms": _ms(python),
        "import_engine_ms": _ms(import_engine),
    }
    return rows, data


def profile_chain(runs: int) -> None:
    registry = bench_registry()
    compiled = compile_workflow(load_definition(chain_document(CHAIN)), registry)
    executor = Executor(registry)

    async def many() -> None:
        for _ in range(runs):
            await engine_run_streamed(executor, compiled)

    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(many())
    profiler.disable()
    executions = runs * len(compiled.nodes)
    print(f"cProfile of {runs} runs of the {CHAIN:,}-node chain ({executions:,} node executions);")
    print("tottime / executions = seconds per node (the profiler inflates it about 3x)")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


def main() -> int:
    parser = argparse.ArgumentParser(description="AgentFlow engine benchmark")
    parser.add_argument("--profile", action="store_true", help="cProfile the 1,000-node chain")
    parser.add_argument("--no-langgraph", action="store_true", help="skip the LangGraph rows")
    args = parser.parse_args()
    if args.profile:
        profile_chain(runs=20)
        return 0

    lg_version = None if args.no_langgraph else langgraph_version()
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    rows, data = asyncio.run(measure_in_process(with_langgraph=lg_version is not None))
    cold_rows, data["cold_start"] = measure_cold_start()
    rows += cold_rows
    total_s = time.perf_counter() - began
    load_after = os.getloadavg()[0]

    print(
        f"AgentFlow engine bench - Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, LangGraph {lg_version or 'absent'}"
    )
    # Other work on the machine shows in every figure; the load average says how much.
    print(f"1-min load average {load_before:.2f} before, {load_after:.2f} after")
    print_table(rows)
    print(f"\ntotal bench time {total_s:.1f} s")

    data["targets"] = {
        row.key: {"value": row.value, "unit": row.unit, "target": row.target, "met": row.ok}
        for row in rows
        if row.key
    }
    data["environment"] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "langgraph": lg_version,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "total_seconds": total_s,
        "load_average_before": load_before,
        "load_average_after": load_after,
    }
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"summary written to {RESULTS_FILE.relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
