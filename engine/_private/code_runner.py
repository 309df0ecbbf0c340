"""Runs one ``code`` node's ``main`` inside this separate, resource-limited process.

The parent starts ``python -I code_runner.py`` and speaks a one-shot protocol:

- stdin: one JSON request ``{"code": str, "inputs": {...}, "limits": {"memoryMb": int,
  "cpuSeconds": int, "openFiles": int, "fileSizeMb": int}}``;
- stdout: one JSON reply, ``{"ok": true, "outputs": {...}}`` or
  ``{"ok": false, "error": {"kind", "type", "message", "line", "traceback"}}``;
- stderr: whatever the user's code prints (``print`` is redirected there), which the
  parent forwards line by line as log events.

Only the standard library is imported, and nothing from the engine: this file runs in
an interpreter that must not see the parent's state. The limits are set on this process
before the user's code is compiled, so they cover everything it does.
"""

from __future__ import annotations

import builtins
import inspect
import json
import linecache
import os
import sys
import traceback
from typing import Any

FILENAME = "<code>"
_RUNNER_FILE = os.path.abspath(__file__)
_MB = 1024 * 1024


def set_limits(limits: dict[str, Any]) -> None:
    """Lower this process's rlimits; hard limits too, so the code cannot raise them back."""
    import resource

    cpu = int(limits["cpuSeconds"])
    wanted = [
        (resource.RLIMIT_AS, int(limits["memoryMb"]) * _MB, int(limits["memoryMb"]) * _MB),
        # SIGXCPU at the soft limit ends the process; SIGKILL at the hard one in case the
        # code ignores SIGXCPU.
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_NOFILE, int(limits["openFiles"]), int(limits["openFiles"])),
        (resource.RLIMIT_FSIZE, int(limits["fileSizeMb"]) * _MB, int(limits["fileSizeMb"]) * _MB),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    for kind, soft, hard in wanted:
        _, current_hard = resource.getrlimit(kind)
        if current_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, current_hard), min(hard, current_hard)
        resource.setrlimit(kind, (soft, hard))


def _failure(
    kind: str, type_name: str, message: str, line: int | None, trace: str | None
) -> dict[str, Any]:
    return {
        "ok": False,
        "error": {
            "kind": kind,
            "type": type_name,
            "message": message,
            "line": line,
            "traceback": trace,
        },
    }


def _exception_failure(exc: BaseException) -> dict[str, Any]:
    """Describe an exception from the user's code, without this runner's own frames."""
    te = traceback.TracebackException.from_exception(exc)
    te.stack = traceback.StackSummary.from_list(
        [frame for frame in te.stack if frame.filename != _RUNNER_FILE]
    )
    user_lines = [frame.lineno for frame in te.stack if frame.filename == FILENAME]
    line = user_lines[-1] if user_lines else None
    kind = "memory" if isinstance(exc, MemoryError) else "exception"
    return _failure(kind, type(exc).__name__, str(exc), line, "".join(te.format()))


def run_code(code: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Compile and execute ``code``, call its ``main(**inputs)``; return the reply."""
    # Lets tracebacks quote the user's source lines.
    linecache.cache[FILENAME] = (len(code), None, code.splitlines(keepends=True), FILENAME)
    try:
        compiled = compile(code, FILENAME, "exec", dont_inherit=True)
    except SyntaxError as exc:
        trace = "".join(traceback.format_exception_only(exc))
        return _failure("syntax", type(exc).__name__, exc.msg, exc.lineno, trace)
    except ValueError as exc:  # e.g. a NUL byte in the source
        return _failure("syntax", "SyntaxError", str(exc), None, None)
    namespace: dict[str, Any] = {"__name__": "__agentflow_code__", "__builtins__": builtins}
    try:
        exec(compiled, namespace)  # noqa: S102 - running user code is this process's job
        entry = namespace.get("main")
        if not callable(entry):
            return _failure(
                "no_main", "NameError", "the code defines no main() function", None, None
            )
        result = entry(**inputs)
        if inspect.iscoroutine(result):
            import asyncio

            result = asyncio.run(result)
    except BaseException as exc:  # whatever the user's code raises is reported, even SystemExit
        return _exception_failure(exc)
    if not isinstance(result, dict):
        return _failure(
            "result",
            "TypeError",
            f"main() must return a dict, not {type(result).__name__}",
            None,
            None,
        )
    bad_keys = [key for key in result if not isinstance(key, str)]
    if bad_keys:
        return _failure(
            "result",
            "TypeError",
            f"main() returned a dict with a non-string key: {bad_keys[0]!r}",
            None,
            None,
        )
    return {"ok": True, "outputs": result}


def encode_reply(reply: dict[str, Any]) -> bytes:
    try:
        text = json.dumps(reply, allow_nan=False)
    except MemoryError:
        reply = _failure("memory", "MemoryError", "", None, None)
        text = json.dumps(reply)
    except (TypeError, ValueError, RecursionError) as exc:
        reply = _failure(
            "result",
            type(exc).__name__,
            f"main() returned a value that is not JSON-serialisable: {exc}",
            None,
            None,
        )
        text = json.dumps(reply)
    return text.encode("ascii")


def main() -> None:
    request = json.loads(sys.stdin.buffer.read())
    # fd 1 becomes stderr for everyone (print, C extensions, subprocesses); the reply
    # goes to a private copy of the original stdout.
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stderr.reconfigure(encoding="utf-8", errors="backslashreplace", line_buffering=True)  # type: ignore[union-attr]
    sys.stdout = sys.stderr
    set_limits(request["limits"])
    data = encode_reply(run_code(request["code"], request["inputs"]))
    with os.fdopen(reply_fd, "wb") as out:
        out.write(data)
    sys.stderr.flush()
    # Threads the code left running must not keep the process (and the node) alive.
    os._exit(0)


if __name__ == "__main__":
    main()
