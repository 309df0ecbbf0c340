"""Running nodes while the notebook runs: one engine run per node cell.

When a node cell executes, its node runs through the shared engine in a small run made
of the node and what it needs upstream. Upstream nodes that already ran are given as
``reuse_outputs`` (not executed again); branches not taken are settled by the engine as
in a full run, so a node on an untaken branch is skipped. The run has the node cache
on, so re-running an unchanged cell takes its outputs from the cache, and marimo
re-runs only the cells downstream of an edit.

Runs are recorded in the store (``$AGENTFLOW_HOME`` or ``~/.agentflow``). The store is
opened for each run and closed after it, so other processes can use it in between;
when it is held by another process the session says so once and goes on without
recording, with an in-memory cache. The ``store`` package is imported only here, only
when a node runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notebooks._build import build_definition, dependencies, read_roots
from notebooks._context import Builder
from notebooks._handles import AuthoringError, LiveState, NodeHandle, NodeSpec, Ref

if TYPE_CHECKING:
    from engine.definition import WorkflowDefinition
    from engine.events import Event
    from engine.results import RunResult

__all__ = [
    "LiveSession",
    "MemoryCache",
    "NodeRunError",
    "RunView",
    "live_info",
    "live_value",
    "run_workflow",
    "session_workflow",
]

_SYNTHETIC_START = "__notebook_start__"
#: How often streamed tokens redraw the cell output, at most.
_REDRAW_SECONDS = 0.15


class NodeRunError(Exception):
    """A node failed when its cell ran (marimo shows it and stops the dependants)."""


class MemoryCache:
    """A node cache for this process, when the store's cannot be used."""

    def __init__(self) -> None:
        self._values: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._values.get(key)

    def put(self, key: str, node_type: str, outputs: dict[str, Any]) -> None:
        with self._lock:
            self._values[key] = outputs


@dataclass(slots=True)
class _Recording:
    """The store's part in one run: services, a listener, and how to finish."""

    services: Any
    listener: Callable[[Any], None] | None
    close: Callable[[], None]
    workflow_id: str | None = None


@dataclass(slots=True)
class NodeRun:
    """One node executed by the session (for ``history``)."""

    node_id: str
    status: str
    cached: bool
    duration_ms: float | None
    execution_id: str


class LiveSession(Builder):
    """A notebook session: its nodes by id, their live results, and run plumbing."""

    kind = "live"

    def __init__(self) -> None:
        super().__init__()
        self.live = True
        self.memory_cache = MemoryCache()
        self.history: list[NodeRun] = []
        self._notice: str | None = None
        self._notice_shown = False
        self._workflows: dict[str, tuple[str, int | None]] = {}

    def describe(self) -> str:
        return "the notebook"

    def add(self, spec: NodeSpec) -> NodeHandle:
        # Re-running a cell redefines its node: the newest definition wins.
        handle = NodeHandle(spec, self)
        self.nodes.pop(spec.id, None)
        self.nodes[spec.id] = handle
        if self.live:
            self.run_node(handle)
        return handle

    # -- one node ---------------------------------------------------------------------
    def run_node(self, handle: NodeHandle) -> None:
        from engine.definition import load_definition

        spec = handle._spec
        needed = self._upstream(spec)
        reuse: dict[str, Any] = {}
        for node_id in needed:
            state = self.nodes[node_id]._live
            if state is None or state.status not in ("succeeded", "skipped"):
                status = "has not run" if state is None else f"ended {state.status}"
                raise NodeRunError(
                    f"node '{spec.id}' needs node '{node_id}', which {status} in this session; "
                    "run its cell first"
                )
            if state.status == "succeeded":
                reuse[node_id] = state.outputs
        specs = [self.nodes[node_id]._spec for node_id in self.nodes if node_id in needed]
        begin = self._start_of(spec, needed)
        if begin is not None and begin.id not in needed and begin.id != spec.id:
            # Not upstream, but its inputs are the run's ({{inputs.x}}).
            specs.insert(0, begin)
            state = self.nodes[begin.id]._live
            assert state is not None
            reuse[begin.id] = state.outputs
        if begin is None:
            specs.insert(0, NodeSpec(id=_SYNTHETIC_START, type="start", config={}))
        specs.append(spec)
        document, issues = build_definition(
            specs, settings=self._run_settings(), version=self.version
        )
        if issues:
            raise AuthoringError("; ".join(message for _, message in issues))
        inputs = self._inputs(begin, reuse)
        definition = load_definition(document)
        t0 = time.perf_counter()
        streamed: list[bool] = []
        result = execute(
            self,
            definition,
            inputs,
            reuse,
            stream=spec.id,
            path=spec.notebook_file,
            streamed=streamed,
        )
        node_state = result.nodes[spec.id]
        handle._live = state = LiveState(
            status=node_state.status,
            outputs=node_state.outputs,
            error=node_state.error,
            duration_ms=node_state.duration_ms
            if node_state.duration_ms is not None
            else (time.perf_counter() - t0) * 1000,
            cached=node_state.cached,
            metadata=dict(node_state.metadata),
            tokens=node_state.tokens,
            execution_id=result.execution_id,
            skip_reason=node_state.skip_reason,
            notice=self.take_notice(),
        )
        self.history.append(
            NodeRun(spec.id, state.status, state.cached, state.duration_ms, result.execution_id)
        )
        if streamed:
            _show(handle)  # the streamed text gives way to the finished node
        if state.status == "failed":
            message = (state.error or {}).get("message") or "failed"
            raise NodeRunError(f"node '{spec.id}' failed: {message}")
        if state.status not in ("succeeded", "skipped"):
            error = (result.error or {}).get("message") or state.status
            raise NodeRunError(f"node '{spec.id}' did not run: {error}")

    def _upstream(self, spec: NodeSpec) -> set[str]:
        """Every node the spec needs upstream (transitively), all defined in the session."""
        known = set(self.nodes)
        variables = (self.settings or {}).get("variables") or {}
        for root in read_roots(spec):
            if root not in known and root != "inputs" and root not in variables:
                raise NodeRunError(
                    f"node '{spec.id}' reads '{root}', which is no node of this session yet: "
                    f"run its cell first (referencing it as a Python variable, {root}.field, "
                    "lets marimo order the cells)"
                )
        needed: set[str] = set()
        pending = [d for d in dependencies(spec, known) if d != spec.id]
        while pending:
            node_id = pending.pop()
            if node_id in needed:
                continue
            needed.add(node_id)
            pending.extend(dependencies(self.nodes[node_id]._spec, known))
        return needed

    def _start_of(self, spec: NodeSpec, needed: set[str]) -> NodeSpec | None:
        if spec.type == "start":
            return spec
        starts = [self.nodes[n]._spec for n in needed if self.nodes[n]._spec.type == "start"]
        if starts:
            return starts[0]
        ran = [
            handle._spec
            for handle in self.nodes.values()
            if handle._spec.type == "start"
            and handle._live is not None
            and handle._live.status == "succeeded"
        ]
        return ran[-1] if ran else None

    def _inputs(self, begin: NodeSpec | None, reuse: dict[str, Any]) -> dict[str, Any]:
        if begin is None:
            return {}
        if begin.id in reuse and isinstance(reuse[begin.id], dict):
            return dict(reuse[begin.id])
        values = dict(begin.live_inputs or {})
        for declaration in begin.config.get("inputs") or ():
            name = declaration.get("name") if isinstance(declaration, dict) else None
            if (
                name
                and name not in values
                and declaration.get("required")
                and declaration.get("default") is None
            ):
                raise NodeRunError(
                    f"input '{name}' of '{begin.id}' is required and has no value for notebook "
                    f"runs: declare it as af.input(..., example=...) or give it a default"
                )
        return values

    def _run_settings(self) -> dict[str, Any]:
        settings = dict(self.settings or {})
        settings["cache"] = True
        return settings

    # -- notices ----------------------------------------------------------------------
    def notice(self, message: str) -> None:
        if not self._notice_shown:
            self._notice = message

    def take_notice(self) -> str | None:
        message, self._notice = self._notice, None
        if message is not None:
            self._notice_shown = True
        return message

    def workflow_row(self, store: Any, path: str | None, definition: Any) -> tuple[str, int | None]:
        """The store's workflow standing for this notebook (looked up once per session).

        It is the one ``agentflow run NOTEBOOK.py`` records under: the notebook file
        compiled (when it compiles; else the definition of this first run).
        """
        key = f"{store.path}|{path}"
        if key not in self._workflows:
            if path and Path(path).is_file():
                from notebooks._compile import NotebookCompileError, compile_notebook

                # A notebook being written may not compile: its runs still belong to the file.
                with contextlib.suppress(NotebookCompileError):
                    definition = compile_notebook(path)
                record = store.workflows.upsert_file(Path(path), definition)
            else:
                record = store.workflows.create(definition, name="notebook session")
            self._workflows[key] = (record.id, record.version)
        return self._workflows[key]


# -- running --------------------------------------------------------------------------
def _open_recording(
    session: LiveSession, definition: WorkflowDefinition, path: str | None
) -> _Recording:
    from engine.services import RunServices

    fallback = _Recording(RunServices(cache=session.memory_cache), None, lambda: None)
    try:
        from store.errors import StoreError, StoreLockedError
        from store.recorder import RunMeta
        from store.store import Store
    except ImportError:
        return fallback
    try:
        store = Store()
    except StoreLockedError as exc:
        session.notice(f"runs of this session are not recorded: {exc.message}")
        return fallback
    except StoreError as exc:
        session.notice(f"runs of this session are not recorded: {exc.message}")
        return fallback
    try:
        workflow_id, version = session.workflow_row(store, path, definition)
        listener = store.recorder.listener(
            RunMeta(workflow_id=workflow_id, workflow_version=version, trigger_type="notebook")
        )
    except Exception as exc:
        store.close()
        session.notice(f"runs of this session are not recorded: {exc}")
        return fallback

    def close() -> None:
        try:
            store.recorder.flush()
        finally:
            store.close()

    services = RunServices(
        cache=store.cache, workflows=store.workflows, secrets=store.secret_source
    )
    return _Recording(services, listener, close, workflow_id)


def execute(
    session: LiveSession,
    definition: WorkflowDefinition,
    inputs: dict[str, Any],
    reuse: dict[str, Any],
    *,
    stream: str | None,
    path: str | None,
    streamed: list[bool] | None = None,
) -> RunResult:
    """Run in a worker thread (the cell's thread may have a loop running) and wait.

    Tokens of ``stream`` redraw the cell's output as they arrive, in a marimo notebook.
    """
    from engine.executor import Executor

    recording = _open_recording(session, definition, path)
    events: queue.SimpleQueue[Event] = queue.SimpleQueue()
    listeners: list[Callable[[Any], None]] = [events.put]
    if recording.listener is not None:
        listeners.append(recording.listener)

    async def main() -> RunResult:
        run = Executor(services=recording.services).start(
            definition,
            inputs,
            reuse_outputs=reuse,
            workflow_id=recording.workflow_id,
            listeners=listeners,
        )
        return await run.wait()

    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = asyncio.run(main())
        except BaseException as exc:  # handed to the cell's thread
            outcome["error"] = exc

    worker = threading.Thread(target=work, name="agentflow-notebook-run", daemon=True)
    try:
        worker.start()
        if _follow(worker, events, stream) and streamed is not None:
            streamed.append(True)
        worker.join()
    finally:
        recording.close()
    if "error" in outcome:
        raise outcome["error"]
    result: RunResult = outcome["result"]
    return result


def _follow(worker: threading.Thread, events: queue.SimpleQueue[Event], stream: str | None) -> bool:
    """Wait for the run; redraw streamed tokens of ``stream`` in the cell meanwhile.

    Returns whether the cell's output was redrawn.
    """
    redrawn = False
    redraw = _redrawer(stream) if stream is not None else None
    text: list[str] = []
    last = 0.0
    while worker.is_alive() or not events.empty():
        try:
            event = events.get(timeout=0.05)
        except queue.Empty:
            continue
        if redraw is None:
            continue
        kind = event.type
        if kind == "node_started" and getattr(event, "node_id", None) == stream:
            text.clear()  # a retry starts over
        elif kind == "node_delta" and getattr(event, "node_id", None) == stream:
            text.append(getattr(event, "delta", ""))
            now = time.monotonic()
            if now - last >= _REDRAW_SECONDS:
                last = now
                redraw("".join(text))
                redrawn = True
    return redrawn


def _show(handle: NodeHandle) -> None:
    import marimo as mo

    mo.output.replace(handle)


def _redrawer(node_id: str) -> Callable[[str], None] | None:
    try:
        import marimo as mo
    except ImportError:
        return None
    if not mo.running_in_notebook():
        return None

    from notebooks._display import safe_markdown

    def redraw(text: str) -> None:
        mo.output.replace(mo.md(f"**{node_id}** · streaming…\n\n{safe_markdown(text)}"))

    return redraw


# -- workflows of a session -----------------------------------------------------------
def _collect(builder: Builder, targets: tuple[NodeHandle, ...]) -> list[NodeSpec]:
    if not targets:
        return builder.specs()
    known = set(builder.nodes)
    wanted: set[str] = set()
    pending = []
    for target in targets:
        if not isinstance(target, NodeHandle):
            raise AuthoringError("af.workflow()/af.run() take node handles (e.g. the end node)")
        pending.append(target._spec.id)
    while pending:
        node_id = pending.pop()
        if node_id in wanted:
            continue
        if node_id not in known:
            raise AuthoringError(f"node '{node_id}' is not defined in this session")
        wanted.add(node_id)
        pending.extend(dependencies(builder.nodes[node_id]._spec, known))
    return [spec for spec in builder.specs() if spec.id in wanted]


def session_workflow(builder: Builder, targets: tuple[NodeHandle, ...]) -> WorkflowDefinition:
    from engine.definition import load_definition
    from engine.errors import WorkflowValidationError
    from engine.graph import compile_workflow

    document, issues = build_definition(
        _collect(builder, targets), settings=builder.settings, version=builder.version
    )
    if issues:
        raise AuthoringError("; ".join(f"node '{n}': {m}" for n, m in issues))
    definition = load_definition(document)
    try:
        compile_workflow(definition)
    except WorkflowValidationError as exc:
        raise AuthoringError("; ".join(str(issue) for issue in exc.issues)) from None
    return definition


@dataclass(slots=True)
class RunView:
    """A whole workflow's run in a notebook; marimo shows it as a table and the outputs."""

    result: RunResult
    definition: WorkflowDefinition
    notice: str | None = None
    node_types: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.result.status

    @property
    def outputs(self) -> dict[str, Any]:
        return self.result.outputs

    def _display_(self) -> Any:
        from notebooks._display import run_view

        return run_view(self)


def run_workflow(
    builder: Builder, targets: tuple[NodeHandle, ...], inputs: dict[str, Any]
) -> RunView:
    if not isinstance(builder, LiveSession):
        raise AuthoringError(
            "af.run() runs a workflow in a notebook session; a cell that nodes depend on "
            "cannot use it"
        )
    definition = session_workflow(builder, targets)
    path = next((s.notebook_file for s in builder.specs() if s.notebook_file), None)
    result = execute(builder, definition, inputs, {}, stream=None, path=path)
    return RunView(
        result,
        definition,
        notice=builder.take_notice(),
        node_types={node.id: node.type for node in definition.nodes},
    )


def live_info(target: NodeHandle) -> dict[str, Any]:
    if not isinstance(target, NodeHandle):
        raise AuthoringError("af.run_info() takes a node (af.run_info(outline))")
    state = target._live
    if state is None:
        return {"node": target._spec.id, "type": target._spec.type, "status": "not run"}
    return {
        "node": target._spec.id,
        "type": target._spec.type,
        "status": state.status,
        "durationMs": state.duration_ms,
        "cached": state.cached,
        "tokens": state.tokens,
        "model": state.metadata.get("model"),
        "executionId": state.execution_id,
        "error": (state.error or {}).get("message"),
    }


def live_value(target: NodeHandle | Ref) -> Any:
    """What a node (or a field of it) produced in this session."""
    path: tuple[str, ...]
    if isinstance(target, NodeHandle):
        node, path = target, ()
    elif isinstance(target, Ref):
        node, path = target._node, target._path
    else:
        raise AuthoringError("af.value() takes a node or a reference (af.value(x.text))")
    if node._owner.kind != "live":
        raise AuthoringError(
            f"af.value({target!s}) is only known when the notebook runs: a node's config "
            "cannot depend on it (compute in a code node, or keep this in a plain cell)"
        )
    state = node._live
    if state is None:
        raise AuthoringError(
            f"node '{node._spec.id}' has not run (notebook runs are off: af.set_live(False))"
        )
    if state.status == "skipped":
        return None
    current: Any = state.outputs
    if path and path[0] == "output" and not (isinstance(current, Mapping) and "output" in current):
        path = path[1:]
    for part in path:
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.lstrip("-").isdigit():
            try:
                current = current[int(part)]
            except IndexError:
                raise AuthoringError(f"{target!s}: no item {part}") from None
        else:
            raise AuthoringError(f"{target!s}: node '{node._spec.id}' has no value at '{part}'")
    return current
