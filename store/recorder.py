"""Recording runs from the engine's event stream, in batches, by one writer thread.

The engine's listener only appends the event to a queue (well under a microsecond); a
single writer thread turns events into rows and writes them in one transaction per
batch (every ``flush_interval`` seconds, or at once when a run finishes). Node runs go
in as one JSON array per row unpacked by DuckDB: ~10^5 rows/s, where one INSERT per row
manages ~10^3. :meth:`Recorder.flush` returns once everything queued is committed.

Events are read by attribute (``event.type``, ``event.node_id``...), so the store does not
depend on the engine's event classes.
"""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from store.db import Database

__all__ = ["Recorder", "RunMeta"]


def _encode(value: Any) -> str:
    # orjson: ~5x the standard library here, which decides the recorder's throughput.
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


# Each node run arrives as one JSON object, parsed once into a typed struct by DuckDB.
_ROW_KEYS = ("e", "n", "t", "s", "a", "t0", "t1", "d", "i", "o", "x", "k", "c", "m")
_ROW_TYPES = json.dumps(
    dict(
        zip(
            _ROW_KEYS,
            (
                "VARCHAR",
                "VARCHAR",
                "VARCHAR",
                "VARCHAR",
                "INTEGER",
                "DOUBLE",
                "DOUBLE",
                "DOUBLE",
                "JSON",
                "JSON",
                "JSON",
                "INTEGER",
                "DOUBLE",
                "JSON",
            ),
            strict=True,
        )
    )
)
_INSERT_NODE_RUNS = (
    "INSERT INTO node_runs SELECT r.e, r.n, r.t, r.s, r.a, to_timestamp(r.t0),"
    " to_timestamp(r.t1), r.d, r.i, r.o, r.x, r.k, r.c, r.m"
    f" FROM (SELECT json_transform(unnest($1)::JSON, '{_ROW_TYPES}') AS r)"
)
# One statement per run start and end: DuckDB's fixed cost per statement (~1-2 ms with
# the seed's indexes) is what a short run pays, so nothing here is more than needed.
_INSERT_EXECUTION = (
    "INSERT INTO executions (id, workflow_id, user_id, status, workflow_version, trigger_type,"
    " inputs, started_at, owner_pid)"
    " VALUES ($id, $w, 'local', 'running', $v, $t, $i, to_timestamp($ts), $pid)"
)
# A resumed run keeps its row: it is running again, under this process.
_RESTART_EXECUTION = (
    "UPDATE executions SET status = 'running', owner_pid = $pid, completed_at = NULL,"
    " error_message = NULL, error_node_id = NULL WHERE id = $id"
)
_COUNT_RUN = "UPDATE workflows SET run_count = run_count + 1 WHERE id = ?"
_FINISH_EXECUTION = (
    "UPDATE executions SET status = $s, outputs = $o, node_states = $n, error_message = $em,"
    " error_node_id = $en, completed_at = to_timestamp($ts), duration_ms = $d,"
    " token_usage = $u, cost_usd = $c WHERE id = $id"
)
#: Pending events that wake the writer early, so that long runs are written as they go.
_EARLY_BATCH = 512


@dataclass(slots=True)
class RunMeta:
    """What the store knows about a run that the engine's events do not say."""

    workflow_id: str
    workflow_version: int | None = None
    trigger_type: str = "manual"
    #: The execution row exists already (``agentflow runs resume``).
    resumed: bool = False


@dataclass(slots=True)
class _RunTrack:
    meta: RunMeta
    started: dict[str, float] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    cost: float = 0.0


class _Flush:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class Recorder:
    """Writes the events of any number of runs; one per :class:`~store.Store`."""

    def __init__(
        self,
        db: Database,
        *,
        flush_interval: float = 0.05,
        redact: Callable[[], list[str]] | None = None,
    ) -> None:
        self._db = db
        self._interval = flush_interval
        self._redact = redact
        self._pending: deque[Any] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._runs: dict[str, _RunTrack] = {}
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self.failure: BaseException | None = None

    # -- producer side (engine thread) ---------------------------------------------
    def listener(self, meta: RunMeta) -> Callable[[Any], None]:
        """An event listener for one run, tagged with what the store must know about it."""
        pending, wake = self._pending, self._wake.set
        append = pending.append
        self._ensure_thread()

        def on_event(event: Any) -> None:
            kind = event.type
            if kind == "run_started":
                append((event, meta))
            else:
                append(event)
                # A finished run is written at once; a long one in batches as it goes,
                # while DuckDB (which releases the GIL) works beside the engine.
                if kind == "run_finished" or len(pending) >= _EARLY_BATCH:
                    wake()

        return on_event

    def flush(self, timeout: float | None = 30.0) -> None:
        """Block until every event queued so far is committed (raises a writer failure)."""
        marker = _Flush()
        self._ensure_thread()
        self._pending.append(marker)
        self._wake.set()
        if not marker.done.wait(timeout):
            raise TimeoutError(f"the run recorder did not flush within {timeout} s")
        if self.failure is not None:
            raise self.failure

    def close(self) -> None:
        if self._thread is not None and not self._closed:
            self.flush()
            self._closed = True
            self._stopping = True
            self._wake.set()
            self._thread.join(timeout=10)

    # -- writer thread ----------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._loop, name="agentflow-recorder", daemon=True
                    )
                    self._thread.start()

    def _loop(self) -> None:
        # Sleep between batches instead of waking per event: the engine's thread only
        # appends, and is never made to hand the GIL over for each event.
        pending = self._pending
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            items = []
            while pending:
                items.append(pending.popleft())
            if items:
                self._write_safely(items)
            if self._stopping and not pending:
                return

    def _write_safely(self, items: list[Any]) -> None:
        flushes = [item for item in items if isinstance(item, _Flush)]
        try:
            self._write([item for item in items if not isinstance(item, _Flush)])
        except BaseException as exc:  # kept, and raised to whoever flushes next
            self.failure = exc
        for marker in flushes:
            marker.done.set()

    def _write(self, items: list[Any]) -> None:
        started: list[tuple[dict[str, Any], bool]] = []
        node_rows: list[str] = []
        finished: list[dict[str, Any]] = []
        secrets = self._redact() if self._redact is not None else []
        for item in items:
            if isinstance(item, tuple):
                event, meta = item
                self._runs[event.execution_id] = _RunTrack(meta, types=dict(event.node_types))
                started.append(
                    (
                        {
                            "id": event.execution_id,
                            "w": meta.workflow_id,
                            "v": meta.workflow_version,
                            "t": meta.trigger_type,
                            "i": _redacted(_encode(event.inputs), secrets),
                            "ts": event.ts,
                            "pid": os.getpid(),
                        },
                        meta.resumed,
                    )
                )
                continue
            track = self._runs.get(item.execution_id)
            if track is None:
                continue  # events of a run this recorder did not see start
            kind = item.type
            if kind == "node_started":
                track.started[item.node_id] = item.ts
                track.types[item.node_id] = item.node_type
            elif kind in ("node_succeeded", "node_failed", "node_retrying", "node_skipped"):
                row = self._node_row(track, item, kind)
                if row is not None:
                    node_rows.append(_redacted(_encode(row), secrets))
            elif kind == "run_finished":
                self._runs.pop(item.execution_id, None)
                error = item.error or {}
                finished.append(
                    {
                        "id": item.execution_id,
                        "s": item.status,
                        "o": _redacted(_encode(item.outputs), secrets),
                        "n": _encode(track.states),
                        "em": _redacted(str(error.get("message")), secrets) if error else None,
                        "en": error.get("nodeId") if error else None,
                        "ts": item.ts,
                        "d": round(item.duration_ms),
                        "u": _encode(item.token_usage),
                        "c": track.cost,
                    }
                )
        if not (started or node_rows or finished):
            return
        with self._db.transaction() as connection:
            for values, resumed in started:
                if resumed:
                    connection.execute(
                        _RESTART_EXECUTION, {"id": values["id"], "pid": values["pid"]}
                    )
                else:
                    connection.execute(_INSERT_EXECUTION, values)
                    connection.execute(_COUNT_RUN, [values["w"]])
            if node_rows:
                connection.execute(_INSERT_NODE_RUNS, [node_rows])
            for values in finished:
                connection.execute(_FINISH_EXECUTION, values)

    def _node_row(self, track: _RunTrack, event: Any, kind: str) -> dict[str, Any] | None:
        node_id = event.node_id
        node_type = track.types.get(node_id, "?")
        if kind == "node_skipped":
            track.states[node_id] = {"status": "skipped", "reason": event.reason}
            return _row(event.execution_id, node_id, node_type, "skipped", 0, None, event.ts, 0.0)
        started = track.started.get(node_id, event.ts)
        if kind == "node_retrying":
            return _row(
                event.execution_id,
                node_id,
                node_type,
                "failed",
                event.attempt,
                started,
                event.ts,
                (event.ts - started) * 1000,
                inputs=event.inputs,
                error=event.error,
                metadata={"retrying": True, "delayMs": event.delay_ms},
            )
        if kind == "node_succeeded":
            if event.reused:
                track.states[node_id] = {"status": "succeeded", "reused": True}
                return None
            status = "cached" if event.cached else "succeeded"
            metadata = event.metadata or {}
            cost = float(metadata.get("costUsd") or 0.0)
            track.cost += cost
            track.states[node_id] = {
                "status": status,
                "attempts": event.attempts,
                "durationMs": round(event.duration_ms, 3),
            }
            return _row(
                event.execution_id,
                node_id,
                node_type,
                status,
                event.attempts,
                started,
                event.ts,
                event.duration_ms,
                inputs=event.inputs,
                outputs=event.outputs,
                tokens=int(metadata.get("tokensUsed") or 0),
                cost=cost,
                metadata=metadata,
            )
        track.states[node_id] = {
            "status": event.status,
            "attempts": event.attempts,
            "error": event.error.get("message"),
        }
        return _row(
            event.execution_id,
            node_id,
            node_type,
            event.status,
            event.attempts,
            started,
            event.ts,
            event.duration_ms,
            inputs=event.inputs,
            error=event.error,
        )


def _row(
    execution_id: str,
    node_id: str,
    node_type: str,
    status: str,
    attempt: int,
    started: float | None,
    ended: float,
    duration_ms: float,
    *,
    inputs: Any = None,
    outputs: Any = None,
    error: Any = None,
    tokens: int = 0,
    cost: float = 0.0,
    metadata: Any = None,
) -> dict[str, Any]:
    """One node_runs row, keyed as ``_ROW_TYPES`` says."""
    return {
        "e": execution_id,
        "n": node_id,
        "t": node_type,
        "s": status,
        "a": attempt,
        "t0": started,
        "t1": ended,
        "d": duration_ms,
        "i": inputs,
        "o": outputs,
        "x": error,
        "k": tokens,
        "c": cost,
        "m": metadata,
    }


def _redacted(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, "***")
    return text
