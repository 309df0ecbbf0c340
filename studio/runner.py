"""Runs started from the studio: executed in the server's event loop, recorded in the store.

One :class:`RunManager` per server process, shared by every browser session, so a run
keeps going when its page is closed and any session can watch or cancel it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine import Event, Run, WorkflowDefinition
    from store import Store

__all__ = ["RunManager"]

Listener = Callable[["Event"], None]


class RunManager:
    def __init__(self, store: Store) -> None:
        from engine import Executor, RunServices

        self.store = store
        self.executor = Executor(
            services=RunServices(
                cache=store.cache, workflows=store.workflows, secrets=store.secret_source
            )
        )
        self.active: dict[str, Run] = {}
        self._watchers: dict[str, list[Listener]] = {}

    def start(
        self,
        workflow_id: str,
        inputs: dict[str, Any],
        *,
        definition: WorkflowDefinition | None = None,
        version: int | None = None,
        listeners: list[Listener] | None = None,
    ) -> Run:
        """Start a stored workflow (its latest version, or ``definition`` as given).

        Raises the engine's validation/input errors before anything runs.
        """
        from store.recorder import RunMeta

        record = self.store.workflows.get(workflow_id)
        if definition is None:
            definition = record.definition
            version = record.version
        meta = RunMeta(workflow_id=workflow_id, workflow_version=version)
        return self._launch(definition, inputs, meta, listeners, execution_id=None, reuse=None)

    def resume(self, execution_id: str, *, listeners: list[Listener] | None = None) -> Run:
        """Continue an interrupted or failed run under its own id."""
        from store import ConflictError
        from store.recorder import RunMeta

        record = self.store.executions.get(execution_id, with_node_runs=False)
        if record.status in ("succeeded", "running", "pending"):
            raise ConflictError(f"run '{execution_id}' is {record.status}; nothing to resume")
        if record.workflow_version is not None:
            definition = self.store.workflows.get_version(
                record.workflow_id, record.workflow_version
            ).definition
        else:
            definition = self.store.workflows.get(record.workflow_id).definition
        meta = RunMeta(record.workflow_id, record.workflow_version, resumed=True)
        inputs = record.inputs if isinstance(record.inputs, dict) else {}
        reuse = self.store.executions.completed_outputs(execution_id)
        return self._launch(definition, inputs, meta, listeners, execution_id, reuse)

    def cancel(self, execution_id: str) -> bool:
        run = self.active.get(execution_id)
        if run is None:
            return False
        run.cancel()
        return True

    def watch(self, execution_id: str, listener: Listener) -> None:
        """Also send this run's further events to ``listener`` (another session)."""
        self._watchers.setdefault(execution_id, []).append(listener)

    def _launch(
        self,
        definition: WorkflowDefinition,
        inputs: dict[str, Any],
        meta: Any,
        listeners: list[Listener] | None,
        execution_id: str | None,
        reuse: dict[str, Any] | None,
    ) -> Run:
        recorder = self.store.recorder.listener(meta)
        run = self.executor.start(
            definition,
            inputs,
            workflow_id=meta.workflow_id,
            execution_id=execution_id,
            reuse_outputs=reuse,
            listeners=[recorder, *(listeners or [])],
        )
        run_id = run.execution_id
        self.active[run_id] = run

        def fan_out(event: Event) -> None:
            for watcher in list(self._watchers.get(run_id, ())):
                try:
                    watcher(event)
                except Exception:  # a closed browser session must not stop the run
                    self._watchers[run_id].remove(watcher)
            if event.type == "run_finished":
                self.active.pop(run_id, None)
                self._watchers.pop(run_id, None)

        run.subscribe(fan_out)
        return run
