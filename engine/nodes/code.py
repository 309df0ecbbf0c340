"""``code``: runs the user's Python ``main(**inputs) -> dict`` in a separate process.

The process is ``python -I engine/_private/code_runner.py`` in a fresh temporary
directory, with an environment of only ``PATH``, ``LANG``/``LC_ALL`` and
``PYTHONIOENCODING`` (no API keys, no ``AGENTFLOW_SECRET_KEY``), and with memory,
CPU-time, open-file and file-size limits set on itself before the code runs. This node
enforces the wall-clock limit (``timeoutMs``, 30 s by default) by killing the process
group, also when the run is cancelled. What the code prints arrives as log events.

This is process isolation with resource limits, not a jail: the code can still read
files the user can read and open network connections.
"""

from __future__ import annotations

import ast
import asyncio
import json
import math
import os
import signal
import sys
import tempfile
from collections import deque
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from engine.definition import Node
from engine.errors import CodeExecutionError, ValidationIssue
from engine.nodes.base import BaseNodeConfig, NodeContext, NodeType

if TYPE_CHECKING:
    from engine.nodes.registry import NodeRegistry

RUNNER = Path(__file__).resolve().parent.parent / "_private" / "code_runner.py"
DEFAULT_TIMEOUT_MS = 30_000
DEFAULT_MEMORY_MB = 256
OPEN_FILES = 64
FILE_SIZE_MB = 64
MAX_RESULT_BYTES = 64 * 1024 * 1024
MAX_LOG_LINES = 1000
MAX_LOG_LINE_CHARS = 8000
#: After the process ends, how long its pipes may stay open (a grandchild that left
#: the process group) before the node stops reading them.
DRAIN_SECONDS = 2.0


class CodeConfig(BaseNodeConfig):
    code: str = Field(min_length=1, description="Python source defining main(**inputs) -> dict.")
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments of main(); values may be references."
    )
    memory_mb: int = Field(
        default=DEFAULT_MEMORY_MB, ge=64, le=1024 * 1024, description="Address-space limit."
    )


def child_environment() -> dict[str, str]:
    """The child's whole environment: nothing secret can leak through it."""
    return {
        "PATH": os.environ.get("PATH") or os.defpath,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
    }


def _binds_main(tree: ast.AST) -> bool:
    for item in ast.walk(tree):
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if item.name == "main":
                return True
        elif isinstance(item, ast.Name) and isinstance(item.ctx, ast.Store):
            if item.id == "main":
                return True
        elif isinstance(item, ast.alias) and (item.asname or item.name) == "main":
            return True
    return False


class _LogForwarder:
    """Turns the child's stderr into log events, keeping the last lines for crash reports."""

    def __init__(self, ctx: NodeContext) -> None:
        self._ctx = ctx
        self.count = 0
        self.tail: deque[str] = deque(maxlen=20)

    async def pump(self, stream: asyncio.StreamReader) -> None:
        pending = b""
        while chunk := await stream.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self._line(line)
            while len(pending) > MAX_LOG_LINE_CHARS:  # an endless line still streams
                self._line(pending[:MAX_LOG_LINE_CHARS])
                pending = pending[MAX_LOG_LINE_CHARS:]
        if pending:
            self._line(pending)

    def _line(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        self.tail.append(text)
        self.count += 1
        if self.count <= MAX_LOG_LINES:
            self._ctx.log(text)
        elif self.count == MAX_LOG_LINES + 1:
            self._ctx.log(f"further output not shown (more than {MAX_LOG_LINES} lines)", "warning")


async def _read_reply(stream: asyncio.StreamReader) -> bytes | None:
    """The whole of stdout, or ``None`` when it is larger than allowed (still drained)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(65536):
        size += len(chunk)
        if size <= MAX_RESULT_BYTES:
            chunks.append(chunk)
    return b"".join(chunks) if size <= MAX_RESULT_BYTES else None


async def _feed(stdin: asyncio.StreamWriter, data: bytes) -> None:
    try:
        stdin.write(data)
        await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the child died first; its exit status tells why
    finally:
        stdin.close()


class _Protocol(asyncio.subprocess.SubprocessStreamProtocol):
    """Also tells when the process itself has exited.

    ``Process.wait()`` waits for the pipes to close as well, which a grandchild the code
    started can postpone forever; the node must go by the child's own exit.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=2**16, loop=loop)
        self.exited: asyncio.Future[None] = loop.create_future()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


def _kill(proc: asyncio.subprocess.Process) -> None:
    # The group also holds whatever the code spawned; the child leads it (new session).
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode is None:
        with suppress(ProcessLookupError):
            proc.kill()


@dataclass(slots=True)
class _Outcome:
    timed_out: bool
    returncode: int | None
    reply: bytes | None
    reply_too_large: bool


async def _execute(
    request: bytes, workdir: str, wall_s: float, forwarder: _LogForwarder
) -> _Outcome:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.subprocess_exec(
        lambda: _Protocol(loop),
        sys.executable,
        "-I",
        str(RUNNER),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=workdir,
        env=child_environment(),
        start_new_session=True,
    )
    proc = asyncio.subprocess.Process(transport, protocol, loop)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    reply_task = asyncio.ensure_future(_read_reply(proc.stdout))
    log_task = asyncio.ensure_future(forwarder.pump(proc.stderr))
    readers: list[asyncio.Future[Any]] = [reply_task, log_task]
    try:
        timed_out = False
        try:
            async with asyncio.timeout(wall_s):
                await _feed(proc.stdin, request)
                await asyncio.shield(protocol.exited)
        except TimeoutError:
            timed_out = True
        _kill(proc)
        await asyncio.wait(readers, timeout=DRAIN_SECONDS)
        reply = reply_task.result() if reply_task.done() else b""
        return _Outcome(
            timed_out=timed_out,
            returncode=proc.returncode,
            reply=reply,
            reply_too_large=reply is None,
        )
    finally:
        # Also reached on cancellation: no child may outlive the node.
        _kill(proc)
        for task in readers:
            task.cancel()
        try:
            # SIGKILL cannot be ignored, so this is short; it ends once the child is reaped.
            await asyncio.shield(protocol.exited)
        finally:
            transport.close()


def _process_error(
    outcome: _Outcome, forwarder: _LogForwarder, config: CodeConfig, cpu_seconds: int
) -> CodeExecutionError:
    """Why the process ended without a reply."""
    tail = "\n".join(forwarder.tail) or None
    code = outcome.returncode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if -code == signal.SIGXCPU:
            return CodeExecutionError(
                f"the code used more than its CPU time limit of {cpu_seconds} s",
                limit="cpu",
                traceback=tail,
            )
        if -code == signal.SIGKILL:
            return CodeExecutionError(
                "the code process was killed (SIGKILL), most likely for exceeding its "
                f"memory limit of {config.memory_mb} MB",
                limit="memory",
                traceback=tail,
            )
        return CodeExecutionError(f"the code process was killed by {name}", traceback=tail)
    if tail is not None and "MemoryError" in tail:
        return CodeExecutionError(
            f"the code exceeded its memory limit of {config.memory_mb} MB",
            limit="memory",
            traceback=tail,
        )
    return CodeExecutionError(
        f"the code process exited with status {code} without returning a result",
        traceback=tail,
    )


def _reply_error(error: dict[str, Any], config: CodeConfig) -> CodeExecutionError:
    kind = error.get("kind")
    type_name = str(error.get("type") or "Error")
    message = str(error.get("message") or "")
    line = error.get("line")
    trace = error.get("traceback")
    if kind == "memory":
        text = f"MemoryError: the code exceeded its memory limit of {config.memory_mb} MB"
    elif kind in ("exception", "syntax"):
        text = f"{type_name}: {message}" if message else type_name
    else:
        text = message
    if isinstance(line, int):
        text += f" (line {line})"
    return CodeExecutionError(
        text,
        limit="memory" if kind == "memory" else None,
        traceback=trace if isinstance(trace, str) else None,
    )


class CodeNode(NodeType[CodeConfig]):
    type = "code"
    description = "Run Python main(**inputs) -> dict in a separate, resource-limited process."
    Config = CodeConfig
    outputs = {"*": "the keys of the dict main() returns"}
    raw_fields = frozenset({"code"})
    handles_timeout = True

    def check(
        self, node: Node, config: BaseNodeConfig | None, registry: NodeRegistry
    ) -> Iterable[ValidationIssue]:
        code = node.data.config.get("code")
        if not isinstance(code, str) or not code:
            return
        try:
            compile(code, "<code>", "exec", dont_inherit=True)
            tree = ast.parse(code, "<code>")
        except SyntaxError as exc:
            yield ValidationIssue(
                "config",
                f"syntax error at line {exc.lineno}: {exc.msg}",
                node_id=node.id,
                field="code",
            )
            return
        except ValueError as exc:
            yield ValidationIssue("config", f"invalid code: {exc}", node_id=node.id, field="code")
            return
        if not _binds_main(tree):
            yield ValidationIssue(
                "config", "the code defines no main() function", node_id=node.id, field="code"
            )

    async def run(self, ctx: NodeContext, config: CodeConfig) -> dict[str, Any]:
        wall_s = (config.timeout_ms or DEFAULT_TIMEOUT_MS) / 1000
        cpu_seconds = math.ceil(wall_s) + 1
        try:
            # Values that JSON cannot carry (dates, decimals) arrive as their text.
            request = json.dumps(
                {
                    "code": config.code,
                    "inputs": config.inputs,
                    "limits": {
                        "memoryMb": config.memory_mb,
                        "cpuSeconds": cpu_seconds,
                        "openFiles": OPEN_FILES,
                        "fileSizeMb": FILE_SIZE_MB,
                    },
                },
                default=str,
            ).encode("ascii")
        except (TypeError, ValueError) as exc:
            raise CodeExecutionError(
                f"inputs cannot be passed to the code: {exc}", node_id=ctx.node_id, field="inputs"
            ) from None
        forwarder = _LogForwarder(ctx)
        with tempfile.TemporaryDirectory(
            prefix="agentflow-code-", ignore_cleanup_errors=True
        ) as workdir:
            try:
                outcome = await _execute(request, workdir, wall_s, forwarder)
            except OSError as exc:
                error = CodeExecutionError(
                    f"could not start the Python process: {exc}", node_id=ctx.node_id
                )
                error.retryable = True  # e.g. out of processes for a moment
                raise error from None
        if outcome.timed_out:
            raise CodeExecutionError(
                f"the code ran past its time limit of {wall_s:g} s (timeoutMs)",
                node_id=ctx.node_id,
                limit="time",
            )
        if outcome.reply_too_large:
            raise CodeExecutionError(
                f"the result is larger than {MAX_RESULT_BYTES // (1024 * 1024)} MB",
                node_id=ctx.node_id,
            )
        try:
            reply = json.loads(outcome.reply or b"")
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            error = _process_error(outcome, forwarder, config, cpu_seconds)
            error.node_id = ctx.node_id
            raise error
        if reply.get("ok") is True and isinstance(reply.get("outputs"), dict):
            outputs: dict[str, Any] = reply["outputs"]
            return outputs
        error = _reply_error(reply.get("error") or {}, config)
        error.node_id = ctx.node_id
        raise error
