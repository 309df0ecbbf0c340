"""The async executor: schedules nodes as their incoming edges settle.

Scheduling is a ready queue served by at most ``settings.maxConcurrency`` worker tasks.
A worker that finishes a node goes straight on to the next ready one, so a long chain
runs in one task (no task per node, no recursion) while a wide fan-out spreads over
as many workers as allowed.

Edges settle in one of three states: active (the source ran and took this handle),
skipped (a branch not taken) or dead (the source failed under ``continue``). A node
runs when every incoming edge has settled and at least one is active; it is skipped
when none is, or when one is dead (unless its type runs on any input, as
``aggregate`` does).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping
from functools import partial
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from engine._private.inputs import prepare_inputs
from engine._private.references import Scope
from engine.definition import RetryPolicy, WorkflowDefinition
from engine.errors import (
    AgentFlowError,
    NodeError,
    NodeTimeoutError,
    RunCancelledError,
    RunTimeoutError,
)
from engine.events import (
    Event,
    LogEvent,
    NodeDelta,
    NodeFailed,
    NodeRetrying,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
    RunFinished,
    RunStarted,
)
from engine.graph import (
    ERROR_HANDLE,
    CompiledEdge,
    CompiledNode,
    CompiledWorkflow,
    compile_workflow,
)
from engine.nodes.base import BaseNodeConfig, NodeContext, NodeResult
from engine.nodes.registry import NodeRegistry
from engine.results import NodeState, RunResult
from engine.services import NodeCache, RunServices, cache_key

__all__ = ["Executor", "Run", "run_workflow"]

EventListener = Callable[[Event], None]

_ACTIVE, _SKIPPED, _DEAD = 1, 2, 3
_YIELD_EVERY = 64


class Executor:
    """Runs compiled workflows. One executor can run many workflows at once."""

    def __init__(
        self, registry: NodeRegistry | None = None, services: RunServices | None = None
    ) -> None:
        self.registry = registry
        self.services = services or RunServices()

    def compile(self, definition: WorkflowDefinition | CompiledWorkflow) -> CompiledWorkflow:
        if isinstance(definition, CompiledWorkflow):
            return definition
        return compile_workflow(definition, self.registry)

    def start(
        self,
        workflow: WorkflowDefinition | CompiledWorkflow,
        inputs: Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
        workflow_id: str | None = None,
        listeners: list[EventListener] | None = None,
        reuse_outputs: Mapping[str, Any] | None = None,
    ) -> Run:
        """Begin a run in the current event loop and return its handle at once.

        Raises :class:`~engine.errors.InputValidationError` before anything runs when the
        inputs do not match the start node. ``reuse_outputs`` maps node ids to outputs
        of an earlier attempt of this run: those nodes are not executed again.
        """
        compiled = self.compile(workflow)
        start = compiled.nodes[compiled.start_id]
        specs = getattr(start.static_config, "inputs", None)
        prepared = prepare_inputs(specs, inputs or {}, node_id=start.id)
        run = Run(
            self,
            compiled,
            prepared,
            execution_id=execution_id or str(uuid.uuid4()),
            workflow_id=workflow_id,
            reuse_outputs=dict(reuse_outputs or {}),
        )
        for listener in listeners or ():
            run.subscribe(listener)
        run._launch()
        return run

    async def run(
        self,
        workflow: WorkflowDefinition | CompiledWorkflow,
        inputs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> RunResult:
        """Run to the end and return the result (events go to ``listeners``)."""
        return await self.start(workflow, inputs, **options).wait()


async def run_workflow(
    workflow: WorkflowDefinition | CompiledWorkflow,
    inputs: Mapping[str, Any] | None = None,
    **options: Any,
) -> RunResult:
    """Shortcut for ``await Executor().run(workflow, inputs)``."""
    return await Executor().run(workflow, inputs, **options)


class Run:
    """A run in progress: subscribe to its events, cancel it, await its result."""

    def __init__(
        self,
        executor: Executor,
        compiled: CompiledWorkflow,
        inputs: dict[str, Any],
        *,
        execution_id: str,
        workflow_id: str | None,
        reuse_outputs: dict[str, Any],
    ) -> None:
        self.executor = executor
        self.compiled = compiled
        self.execution_id = execution_id
        self.workflow_id = workflow_id
        self.inputs = inputs
        self.states: dict[str, NodeState] = {
            node_id: NodeState(node_id, cn.node.type) for node_id, cn in compiled.nodes.items()
        }
        self._settings = compiled.definition.settings
        self._services = executor.services
        self._reuse = reuse_outputs
        self._listeners: list[EventListener] = []
        self._queues: list[asyncio.Queue[Event | None]] = []
        self._scope = Scope(
            node_ids=frozenset(compiled.nodes),
            inputs=inputs,
            variables=self._settings.variables,
        )
        self._ready: deque[CompiledNode] = deque()
        self._remaining = {node_id: len(cn.in_edges) for node_id, cn in compiled.nodes.items()}
        self._active: dict[str, int] = dict.fromkeys(compiled.nodes, 0)
        self._dead: dict[str, int] = dict.fromkeys(compiled.nodes, 0)
        self._settled = 0
        self._workers: set[asyncio.Task[None]] = set()
        self._done: asyncio.Future[None] | None = None
        self._stop_error: NodeError | None = None
        self._task: asyncio.Task[RunResult] | None = None
        self._t0 = 0.0

    # -- public -----------------------------------------------------------------
    def subscribe(self, listener: EventListener) -> None:
        """Call ``listener(event)`` for every event of this run (synchronously)."""
        self._listeners.append(listener)

    async def events(self) -> AsyncIterator[Event]:
        """Iterate over the run's events until ``run_finished``.

        Subscribe before the first ``await`` after :meth:`Executor.start` to see them all.
        """
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._queues.append(queue)
        if self._task is not None and self._task.done():
            return
        while True:
            event = await queue.get()
            if event is None:
                return
            yield event

    def cancel(self) -> None:
        """Cancel the run: running nodes are cancelled, the result says ``cancelled``."""
        if self._task is not None:
            self._task.cancel()

    async def wait(self) -> RunResult:
        """The result. Cancelling the caller cancels the run (cleanly) and re-raises."""
        assert self._task is not None
        try:
            return await asyncio.shield(self._task)
        except asyncio.CancelledError:
            if not self._task.done():
                self._task.cancel()
                await asyncio.wait([self._task])
            raise

    def __await__(self) -> Generator[Any, None, RunResult]:
        return self.wait().__await__()

    # -- engine -----------------------------------------------------------------
    def _launch(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._main())

    def _emit(self, event: Event) -> None:
        for listener in self._listeners:
            listener(event)
        for queue in self._queues:
            queue.put_nowait(event)

    async def _main(self) -> RunResult:
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        started_at = time.time()
        self._t0 = time.perf_counter()
        self._emit(
            RunStarted(
                execution_id=self.execution_id,
                workflow_id=self.workflow_id,
                inputs=self.inputs,
                node_ids=list(self.compiled.nodes),
                node_types={node_id: cn.node.type for node_id, cn in self.compiled.nodes.items()},
            )
        )
        run_error: AgentFlowError | None = None
        status = "running"
        try:
            async with asyncio.timeout(self._settings.timeout):
                for node_id in self.compiled.order:
                    if self._remaining[node_id] == 0:
                        self._ready.append(self.compiled.nodes[node_id])
                self._spawn_workers()
                if self._settled < len(self.compiled.nodes):
                    await self._done
        except TimeoutError:
            status = "failed"
            run_error = RunTimeoutError(
                f"the run exceeded its timeout of {self._settings.timeout} s"
            )
        except asyncio.CancelledError:
            status = "cancelled"
            run_error = RunCancelledError("the run was cancelled")
        finally:
            await self._stop_workers()
        if self._stop_error is not None:
            status, run_error = "failed", self._stop_error
        if status == "running":
            status, run_error = self._final_status()
        outputs = self._collect_outputs()
        ended_at = time.time()
        duration_ms = (time.perf_counter() - self._t0) * 1000
        token_usage = self._token_usage()
        error = _error_dict(run_error) if run_error else None
        result = RunResult(
            execution_id=self.execution_id,
            workflow_id=self.workflow_id,
            status=status,
            inputs=self.inputs,
            outputs=outputs,
            error=error,
            nodes=self.states,
            token_usage=token_usage,
            started_at=started_at,
            ended_at=ended_at,
            duration_ms=duration_ms,
        )
        self._emit(
            RunFinished(
                execution_id=self.execution_id,
                status=status,
                outputs=outputs,
                error=error,
                duration_ms=duration_ms,
                token_usage=token_usage,
            )
        )
        for queue in self._queues:
            queue.put_nowait(None)
        return result

    def _final_status(self) -> tuple[str, AgentFlowError | None]:
        failures = [
            state
            for state in self.states.values()
            if state.status == "failed" and state.error and not state.error.get("handled")
        ]
        if not failures:
            return "succeeded", None
        ends = self.compiled.end_ids
        if ends and any(self.states[end].status == "succeeded" for end in ends):
            return "succeeded", None
        first = failures[0]
        assert first.error is not None
        return "failed", NodeError(
            f"node '{first.node_id}' failed: {first.error.get('message')}", node_id=first.node_id
        )

    def _collect_outputs(self) -> dict[str, Any]:
        outputs: dict[str, Any] = {}
        for end_id in self.compiled.end_ids:
            state = self.states[end_id]
            if state.status == "succeeded" and isinstance(state.outputs, dict):
                outputs.update(state.outputs)
        return outputs

    def _token_usage(self) -> dict[str, int]:
        prompt = completion = total = 0
        for state in self.states.values():
            total += state.tokens
            prompt += int(state.metadata.get("promptTokens") or 0)
            completion += int(state.metadata.get("completionTokens") or 0)
        return {"prompt": prompt, "completion": completion, "total": total}

    def _spawn_workers(self) -> None:
        limit = self._settings.max_concurrency
        wanted = len(self._ready) - 1 if self._workers else len(self._ready)
        loop = asyncio.get_running_loop()
        while wanted > 0 and len(self._workers) < limit:
            task = loop.create_task(self._worker())
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)
            wanted -= 1

    async def _worker(self) -> None:
        try:
            since_yield = 0
            while self._ready and self._stop_error is None:
                compiled_node = self._ready.popleft()
                await self._execute(compiled_node)
                if len(self._ready) > 1:
                    self._spawn_workers()
                since_yield += 1
                if since_yield == _YIELD_EVERY:
                    # A chain of pure-compute nodes never awaits I/O; let event
                    # consumers and other tasks run now and then.
                    since_yield = 0
                    await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug in the engine itself: fail loudly, not hang
            if self._done is not None and not self._done.done():
                self._done.set_exception(exc)
            raise

    async def _stop_workers(self) -> None:
        current = asyncio.current_task()
        pending = [task for task in self._workers if task is not current]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        now = time.time()
        for state in self.states.values():
            if state.status == "running":
                state.status = "cancelled"
                state.ended_at = now
                if state.started_at is not None:
                    state.duration_ms = (now - state.started_at) * 1000
                self._emit(
                    NodeFailed(
                        execution_id=self.execution_id,
                        node_id=state.node_id,
                        error={"type": "Cancelled", "message": "cancelled"},
                        attempts=state.attempts,
                        duration_ms=state.duration_ms or 0.0,
                        status="cancelled",
                    )
                )
            elif state.status == "pending":
                state.status = "cancelled"

    def _finish_one(self) -> None:
        self._settled += 1
        if self._settled == len(self.compiled.nodes) and self._done and not self._done.done():
            self._done.set_result(None)

    # -- one node ---------------------------------------------------------------
    async def _execute(self, cn: CompiledNode) -> None:
        state = self.states[cn.id]
        if cn.id in self._reuse:
            state.status = "succeeded"
            state.reused = True
            self._succeed(cn, state, NodeResult(self._reuse[cn.id]), 0.0)
            return
        policy = cn.policy
        retry_policy = self._settings.retry_policy
        max_retries = retry_policy.max_retries if policy.max_retries is None else policy.max_retries
        timeout_s = policy.timeout_ms / 1000 if policy.timeout_ms else None
        t0 = time.perf_counter()
        state.started_at = time.time()
        state.status = "running"
        state.attempts = 1
        self._emit_started(cn, 1)
        try:
            config = self._resolve(cn, state)
        except NodeError as unresolved:
            self._fail(cn, state, unresolved, t0)
            return
        cache = self._services.cache
        key = None
        wanted = policy.cache or (policy.cache is None and self._settings.cache)
        if cache is not None and wanted and cn.node_type.cacheable:
            key = self._cache_key(cn, state.inputs)
            hit = cache.get(key)
            if hit is not None:
                state.cached = True
                self._succeed(cn, state, NodeResult(hit, {"cached": True, "cacheKey": key}), t0)
                return
        attempt = 1
        while True:
            try:
                result = await self._attempt(cn, config, attempt, timeout_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = _as_node_error(exc, cn.id, timeout_s)
                if error.retryable and attempt <= max_retries:
                    delay = _backoff_delay(attempt, retry_policy, error.retry_after)
                    self._emit(
                        NodeRetrying(
                            execution_id=self.execution_id,
                            node_id=cn.id,
                            attempt=attempt,
                            delay_ms=round(delay * 1000, 1),
                            error=_error_dict(error),
                            inputs=state.inputs,
                        )
                    )
                    await asyncio.sleep(delay)
                    attempt += 1
                    state.attempts = attempt
                    self._emit_started(cn, attempt)
                    continue
                self._fail(cn, state, error, t0)
                return
            if key is not None and cache is not None:
                self._store_in_cache(cache, key, cn, result)
            self._succeed(cn, state, result, t0)
            return

    def _emit_started(self, cn: CompiledNode, attempt: int) -> None:
        self._emit(
            NodeStarted(
                execution_id=self.execution_id,
                node_id=cn.id,
                node_type=cn.node.type,
                attempt=attempt,
            )
        )

    def _resolve(self, cn: CompiledNode, state: NodeState) -> BaseNodeConfig:
        """The node's config with references resolved and validated, once per node run."""
        if cn.static_config is not None:
            state.inputs = cn.node.data.config
            return cn.static_config
        assert cn.resolver is not None
        raw = cn.resolver(self._scope, cn.id, cn.node_type.lenient_references)
        state.inputs = raw
        return _validate_config(cn, raw)

    def _cache_key(self, cn: CompiledNode, resolved: Any) -> str:
        # A node that reads upstream outputs outside its config (a template) keys on them too.
        read: Any = None
        if cn.node_type.reads_upstream:
            read = {"nodes": dict(self._upstream_outputs(cn.id)), "inputs": self.inputs}
        return cache_key(cn.node.type, cn.node_type.version, resolved, read)

    def _store_in_cache(
        self, cache: NodeCache, key: str, cn: CompiledNode, result: NodeResult
    ) -> None:
        try:
            cache.put(key, cn.node.type, result.outputs)
        except Exception as exc:  # a cache that cannot keep a value must not fail the node
            self._log(cn.id, "warning", f"outputs not cached: {type(exc).__name__}: {exc}")

    async def _attempt(
        self, cn: CompiledNode, config: BaseNodeConfig, attempt: int, timeout_s: float | None
    ) -> NodeResult:
        ctx = NodeContext(
            node=cn.node,
            execution_id=self.execution_id,
            attempt=attempt,
            settings=self._settings,
            run_inputs=self.inputs,
            upstream=self._upstream_outputs(cn.id),
            emit_delta=partial(self._emit_delta, cn.id),
            log=partial(self._log, cn.id),
            registry=self.executor.registry,
            services=self._services,
        )
        if timeout_s is None or cn.node_type.handles_timeout:
            produced = await cn.node_type.run(ctx, config)
        else:
            async with asyncio.timeout(timeout_s):
                produced = await cn.node_type.run(ctx, config)
        if isinstance(produced, NodeResult):
            return produced
        if not isinstance(produced, dict):
            raise NodeError(
                f"node type '{cn.node.type}' returned {type(produced).__name__}, not a dict",
                node_id=cn.id,
            )
        return NodeResult(produced)

    def _succeed(self, cn: CompiledNode, state: NodeState, result: NodeResult, t0: float) -> None:
        now = time.time()
        state.status = "succeeded"
        state.outputs = result.outputs
        state.metadata = result.metadata
        state.tokens = result.tokens
        state.ended_at = now
        state.duration_ms = (time.perf_counter() - t0) * 1000 if t0 else 0.0
        self._scope.outputs[cn.id] = result.outputs
        self._emit(
            NodeSucceeded(
                execution_id=self.execution_id,
                node_id=cn.id,
                outputs=result.outputs,
                attempts=state.attempts,
                duration_ms=state.duration_ms,
                metadata=result.metadata,
                cached=state.cached,
                reused=state.reused,
                inputs=state.inputs,
            )
        )
        taken = cn.node_type.taken_handles(result.outputs)
        self._release(
            [
                (
                    edge,
                    _SKIPPED
                    if edge.handle == ERROR_HANDLE
                    or (taken is not None and edge.handle not in taken)
                    else _ACTIVE,
                )
                for edge in cn.out_edges
            ]
        )
        self._finish_one()

    def _fail(self, cn: CompiledNode, state: NodeState, error: NodeError, t0: float) -> None:
        state.status = "failed"
        state.ended_at = time.time()
        state.duration_ms = (time.perf_counter() - t0) * 1000
        state.error = _error_dict(error)
        mode = cn.policy.error_handling or self._settings.error_handling
        error_edges = [edge for edge in cn.out_edges if edge.handle == ERROR_HANDLE]
        handled = mode == "fallback" and (bool(error_edges) or cn.policy.fallback is not None)
        state.error["handled"] = handled
        self._emit(
            NodeFailed(
                execution_id=self.execution_id,
                node_id=cn.id,
                error=state.error,
                attempts=state.attempts,
                duration_ms=state.duration_ms,
                handled=handled,
                inputs=state.inputs,
            )
        )
        if handled and error_edges:
            state.outputs = {"error": state.error}
            self._scope.outputs[cn.id] = state.outputs
            self._release(
                [
                    (edge, _ACTIVE if edge.handle == ERROR_HANDLE else _SKIPPED)
                    for edge in cn.out_edges
                ]
            )
        elif handled:
            state.outputs = dict(cn.policy.fallback or {})
            state.used_fallback = True
            self._scope.outputs[cn.id] = state.outputs
            self._release(
                [(edge, _ACTIVE) for edge in cn.out_edges if edge.handle != ERROR_HANDLE]
                + [(edge, _SKIPPED) for edge in error_edges]
            )
        elif mode == "continue":
            self._release([(edge, _DEAD) for edge in cn.out_edges])
        else:
            self._stop_error = error
            if self._done is not None and not self._done.done():
                self._done.set_result(None)
            return
        self._finish_one()

    def _release(self, settled: list[tuple[CompiledEdge, int]]) -> None:
        """Settle edges; nodes whose inputs are all settled become ready or are skipped."""
        stack = settled
        while stack:
            edge, edge_state = stack.pop()
            target = edge.target
            target_id = target.id
            if edge_state == _ACTIVE:
                self._active[target_id] += 1
            elif edge_state == _DEAD:
                self._dead[target_id] += 1
            self._remaining[target_id] -= 1
            if self._remaining[target_id]:
                continue
            active, dead = self._active[target_id], self._dead[target_id]
            if active and (not dead or target.node_type.runs_on_any_input):
                self._ready.append(target)
                continue
            state = self.states[target_id]
            state.status = "skipped"
            state.skip_reason = "an upstream node failed" if dead else "branch not taken"
            self._emit(
                NodeSkipped(
                    execution_id=self.execution_id, node_id=target_id, reason=state.skip_reason
                )
            )
            follow = _DEAD if dead else _SKIPPED
            stack.extend((out, follow) for out in target.out_edges)
            self._finish_one()

    # -- context callbacks ------------------------------------------------------
    def _upstream_outputs(self, node_id: str) -> UpstreamOutputs:
        return UpstreamOutputs(self._scope.outputs, self.compiled.ancestry, node_id)

    def _emit_delta(self, node_id: str, text: str) -> None:
        self._emit(NodeDelta(execution_id=self.execution_id, node_id=node_id, delta=text))

    def _log(self, node_id: str, level: str, message: str) -> None:
        self._emit(
            LogEvent(execution_id=self.execution_id, node_id=node_id, level=level, message=message)
        )


class UpstreamOutputs(Mapping[str, Any]):
    """Outputs of the nodes upstream of one node, checked per lookup (no copy)."""

    __slots__ = ("_ancestry", "_node_id", "_outputs")

    def __init__(self, outputs: dict[str, Any], ancestry: Any, node_id: str) -> None:
        self._outputs = outputs
        self._ancestry = ancestry
        self._node_id = node_id

    def __getitem__(self, key: str) -> Any:
        if key in self._outputs and self._ancestry.is_upstream(key, self._node_id):
            return self._outputs[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (
            key for key in list(self._outputs) if self._ancestry.is_upstream(key, self._node_id)
        )

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _validate_config(cn: CompiledNode, raw: dict[str, Any]) -> BaseNodeConfig:
    try:
        return cn.build_config(raw)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in first["loc"])
        raise NodeError(
            f"config after resolving references is invalid: {first['msg']}"
            + (f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""),
            node_id=cn.id,
            field=loc or None,
        ) from None


def _as_node_error(exc: Exception, node_id: str, timeout_s: float | None) -> NodeError:
    if isinstance(exc, NodeError):
        if exc.node_id is None:
            exc.node_id = node_id
        return exc
    if isinstance(exc, TimeoutError):
        limit = timeout_s or 0.0
        return NodeTimeoutError(
            f"timed out after {limit:g} s (timeoutMs)", node_id=node_id, timeout_s=limit
        )
    if isinstance(exc, AgentFlowError):
        return NodeError(exc.message, node_id=node_id, field=exc.field)
    return NodeError(f"{type(exc).__name__}: {exc}", node_id=node_id)


def _backoff_delay(attempt: int, policy: RetryPolicy, retry_after: float | None) -> float:
    base = policy.backoff_ms / 1000 * (2 ** (attempt - 1))
    base = min(base, policy.max_backoff_ms / 1000)
    delay: float = base / 2 + random.uniform(0, base / 2)  # noqa: S311 - jitter, not crypto
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def _error_dict(error: AgentFlowError) -> dict[str, Any]:
    out = error.to_dict()
    if isinstance(error, NodeError):
        out["retryable"] = error.retryable
    return out
