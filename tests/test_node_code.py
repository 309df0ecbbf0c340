"""The ``code`` node: real child processes, real limits, through the real engine."""

from __future__ import annotations

import asyncio
import os
import signal
import textwrap
import time
from typing import Any

import pytest

from engine import (
    CodeExecutionError,
    Executor,
    LogEvent,
    load_definition,
    validate_definition,
)
from engine.nodes.code import CodeConfig, CodeNode, child_environment
from tests.helpers import edge as _edge
from tests.helpers import node as _node

CANARY = "sk-canary-3f9a1c0e-do-not-leak"


def workflow(code: str, inputs: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """start(x, name) -> py (the code node) -> end (outputs everything py returned)."""
    config = {"code": textwrap.dedent(code), "inputs": inputs or {}, **extra}
    return {
        "version": "1.0.0",
        "nodes": [
            _node(
                "start",
                "start",
                {
                    "inputs": [
                        {"name": "x", "type": "number", "required": False},
                        {"name": "name", "type": "string", "required": False},
                    ]
                },
            ),
            _node("py", "code", config),
            _node("end", "end", {"outputs": {"result": "{{py}}"}}),
        ],
        "edges": [_edge("start", "py"), _edge("py", "end")],
        "settings": {
            "timeout": 30,
            "retryPolicy": {"maxRetries": 2, "backoffMs": 10},
            "errorHandling": "stop",
        },
    }


async def run_code(
    code: str, inputs: dict[str, Any] | None = None, run_inputs: Any = None, **extra: Any
) -> tuple[Any, list[LogEvent]]:
    logs: list[LogEvent] = []

    def listen(event: Any) -> None:
        if isinstance(event, LogEvent):
            logs.append(event)

    definition = load_definition(workflow(code, inputs, **extra))
    result = await Executor().run(definition, run_inputs or {}, listeners=[listen])
    return result, logs


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def failure(result: Any) -> dict[str, Any]:
    assert result.status == "failed"
    node = result.nodes["py"]
    assert node.status == "failed"
    assert node.error["type"] == "CodeExecutionError"
    assert node.error["nodeId"] == "py"
    assert node.error["retryable"] is False
    assert node.attempts == 1  # code errors are not retried, even with maxRetries 2
    return node.error


async def test_happy_path_with_reference_inputs_and_logs() -> None:
    result, logs = await run_code(
        """
        import json

        def main(x, name, fixed):
            print("computing", x)
            print(f"hello {name}")
            return {"double": x * 2, "greeting": f"hi {name}", "fixed": fixed,
                    "nested": json.loads('{"a": [1, 2]}'), "braces": "{{not a ref}}"}
        """,
        {"x": "{{start.x}}", "name": "{{inputs.name}}", "fixed": [1, {"k": None}]},
        run_inputs={"x": 21, "name": "Zoë"},
    )
    assert result.status == "succeeded", result.error
    assert result.outputs["result"] == {
        "double": 42,
        "greeting": "hi Zoë",
        "fixed": [1, {"k": None}],
        "nested": {"a": [1, 2]},
        "braces": "{{not a ref}}",
    }
    assert result.nodes["py"].outputs["double"] == 42
    assert [(event.node_id, event.message) for event in logs] == [
        ("py", "computing 21"),
        ("py", "hello Zoë"),
    ]


async def test_logs_stream_while_the_code_runs() -> None:
    code = """
    import time

    def main():
        print("first", flush=True)
        time.sleep(0.6)
        print("second")
        return {}
    """
    seen: list[tuple[float, str]] = []
    run = Executor().start(load_definition(workflow(code)), {})
    t0 = time.perf_counter()
    run.subscribe(
        lambda event: (
            seen.append((time.perf_counter() - t0, event.message))
            if isinstance(event, LogEvent)
            else None
        )
    )
    result = await run.wait()
    assert result.status == "succeeded"
    assert [message for _, message in seen] == ["first", "second"]
    assert seen[1][0] - seen[0][0] > 0.4  # the first line arrived before the sleep ended


async def test_async_main_and_non_identifier_keys() -> None:
    result, _ = await run_code(
        """
        import asyncio

        async def main(**kw):
            await asyncio.sleep(0)
            return {"keys": sorted(kw)}
        """,
        {"a-b": 1, "c": 2},
    )
    assert result.status == "succeeded", result.error
    assert result.outputs["result"] == {"keys": ["a-b", "c"]}


async def test_secrets_are_not_in_the_child_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    monkeypatch.setenv("AGENTFLOW_SECRET_KEY", CANARY)
    result, _ = await run_code(
        """
        import os

        def main():
            return {"env": dict(os.environ), "cwd": os.getcwd(), "files": os.listdir(".")}
        """
    )
    assert result.status == "succeeded", result.error
    out = result.outputs["result"]
    assert os.environ["OPENAI_API_KEY"] == CANARY  # the parent does have it
    assert CANARY not in repr(out["env"])
    assert set(out["env"]) <= {"PATH", "LANG", "LC_ALL", "PYTHONIOENCODING"}
    assert out["env"]["PYTHONIOENCODING"] == "utf-8"
    assert set(child_environment()) == {"PATH", "LANG", "LC_ALL", "PYTHONIOENCODING"}
    # a fresh, empty, private working directory, removed afterwards
    assert out["files"] == []
    assert os.path.basename(out["cwd"]).startswith("agentflow-code-")
    assert not os.path.exists(out["cwd"])


async def test_limits_are_set_in_the_child() -> None:
    result, _ = await run_code(
        """
        import resource

        def main():
            return {name: list(resource.getrlimit(getattr(resource, name)))
                    for name in ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NOFILE", "RLIMIT_FSIZE")}
        """,
        timeoutMs=2500,
        memoryMb=96,
    )
    assert result.status == "succeeded", result.error
    limits = result.outputs["result"]
    assert limits["RLIMIT_AS"] == [96 << 20, 96 << 20]
    assert limits["RLIMIT_CPU"] == [4, 5]  # ceil(2.5 s) + 1, hard one second later
    assert limits["RLIMIT_NOFILE"][1] <= 64
    assert 0 < limits["RLIMIT_FSIZE"][1] <= 64 << 20


async def test_infinite_loop_hits_the_time_limit_and_the_process_is_gone() -> None:
    t0 = time.perf_counter()
    result, logs = await run_code(
        """
        import os

        def main():
            print(os.getpid(), flush=True)
            while True:
                pass
        """,
        timeoutMs=500,
    )
    elapsed = time.perf_counter() - t0
    error = failure(result)
    assert "time limit of 0.5 s" in error["message"]
    assert elapsed < 3
    pid = int(logs[0].message)
    assert not alive(pid)


async def test_time_limit_error_carries_limit_attribute() -> None:
    node = CodeNode()
    config = CodeConfig.model_validate(
        {"code": "def main():\n    while True: pass\n", "timeoutMs": 300}
    )
    ctx = _context()
    with pytest.raises(CodeExecutionError) as caught:
        await node.run(ctx, config)
    assert caught.value.limit == "time"
    assert caught.value.node_id == "py"
    assert caught.value.retryable is False


async def test_memory_bomb_fails_with_memory_limit() -> None:
    node = CodeNode()
    config = CodeConfig.model_validate(
        {
            "code": "def main():\n    blob = bytearray(1024 ** 3)\n    return {'n': len(blob)}\n",
            "memoryMb": 128,
        }
    )
    with pytest.raises(CodeExecutionError) as caught:
        await node.run(_context(), config)
    assert caught.value.limit == "memory"
    assert "memory limit of 128 MB" in caught.value.message
    assert "(line 2)" in caught.value.message
    assert "bytearray(1024 ** 3)" in (caught.value.traceback or "")


async def test_memory_bomb_through_the_engine() -> None:
    result, _ = await run_code(
        """
        def main():
            chunks = []
            while True:
                chunks.append(bytearray(16 * 1024 * 1024))
        """,
        memoryMb=128,
    )
    error = failure(result)
    assert error["message"].startswith("MemoryError")


async def test_user_exception_names_type_message_and_line() -> None:
    code = (
        "def helper(v):\n    raise ValueError(f'bad value {v}')\n\n"
        "def main(v):\n    return helper(v)\n"
    )
    config = CodeConfig.model_validate({"code": code, "inputs": {"v": 7}})
    with pytest.raises(CodeExecutionError) as caught:
        await CodeNode().run(_context(), config)
    error = caught.value
    assert error.message == "ValueError: bad value 7 (line 2)"
    assert error.limit is None
    assert error.field == "code"
    trace = error.traceback or ""
    assert "return helper(v)" in trace and "raise ValueError" in trace
    assert 'File "<code>", line 5, in main' in trace
    assert "code_runner" not in trace  # the runner's own frames are not the user's business


async def test_user_exception_through_the_engine() -> None:
    result, _ = await run_code(
        """
        def main(x):
            if x > 1:
                raise KeyError("missing")
            return {}
        """,
        {"x": "{{start.x}}"},
        run_inputs={"x": 5},
    )
    error = failure(result)
    assert error["message"] == "KeyError: 'missing' (line 4)"
    assert error["field"] == "code"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("def main():\n    return [1, 2]\n", "main() must return a dict, not list"),
        ("def main():\n    return None\n", "main() must return a dict, not NoneType"),
        ("def main():\n    return {'when': object()}\n", "not JSON-serialisable"),
        ("def main():\n    return {'x': float('nan')}\n", "not JSON-serialisable"),
        ("def main():\n    return {(1, 2): 'x'}\n", "non-string key"),
        ("def main(a):\n    return {}\n", "TypeError: main() missing 1 required positional"),
        ("import sys\ndef main():\n    sys.exit(3)\n", "SystemExit: 3 (line 3)"),
        ("main = 42\n", "no main() function"),
        ("def main():\n    import os\n    os._exit(0)\n", "exited with status 0"),
        (
            "def main():\n    import os, signal\n    os.kill(os.getpid(), signal.SIGSEGV)\n",
            "killed by SIGSEGV",
        ),
    ],
)
async def test_bad_results_and_exits(code: str, expected: str) -> None:
    config = CodeConfig.model_validate({"code": code})
    with pytest.raises(CodeExecutionError) as caught:
        await CodeNode().run(_context(), config)
    assert expected in caught.value.message
    assert caught.value.limit is None


async def test_killed_by_sigkill_reports_memory_and_cpu_signal_reports_cpu() -> None:
    kill = "def main():\n    import os, signal\n    os.kill(os.getpid(), signal.%s)\n"
    with pytest.raises(CodeExecutionError) as caught:
        await CodeNode().run(_context(), CodeConfig(code=kill % "SIGKILL"))
    assert caught.value.limit == "memory"
    with pytest.raises(CodeExecutionError) as caught:
        await CodeNode().run(_context(), CodeConfig(code=kill % "SIGXCPU"))
    assert caught.value.limit == "cpu"


async def test_cpu_rlimit_ends_the_code_with_a_cpu_error() -> None:
    # One Python thread cannot use more CPU than wall time, so the node's own CPU limit
    # is never reached first; the code lowers its soft limit to 1 s (under a 10 s wall
    # limit) so that only the rlimit can end it, as it would for a multi-threaded burner.
    code = """
    import resource

    def main():
        resource.setrlimit(resource.RLIMIT_CPU, (1, 2))
        while True:
            pass
    """
    result, _ = await run_code(code, timeoutMs=10_000)
    error = failure(result)
    assert "CPU time limit" in error["message"]


async def test_hard_limits_cannot_be_raised_by_the_code() -> None:
    result, _ = await run_code(
        """
        import resource

        def main():
            resource.setrlimit(resource.RLIMIT_AS, (1 << 40, 1 << 40))
            return {}
        """,
        memoryMb=128,
    )
    error = failure(result)
    assert error["message"].startswith("ValueError")


async def test_print_flood_is_capped_and_output_survives() -> None:
    result, logs = await run_code(
        """
        def main():
            for i in range(3000):
                print("line", i)
            print("x" * 20000)
            return {"done": True}
        """
    )
    assert result.status == "succeeded", result.error
    assert result.outputs["result"] == {"done": True}
    assert len(logs) == 1001
    assert logs[-1].level == "warning"
    assert logs[0].message == "line 0"


async def test_leftover_threads_and_children_do_not_hold_the_node() -> None:
    t0 = time.perf_counter()
    result, _ = await run_code(
        """
        import subprocess, sys, threading, time

        def main():
            threading.Thread(target=time.sleep, args=(30,)).start()
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
            return {"child": child.pid}
        """,
        timeoutMs=10_000,
    )
    assert result.status == "succeeded", result.error
    assert time.perf_counter() - t0 < 5
    assert not alive(result.outputs["result"]["child"])


async def test_a_grandchild_that_left_the_group_does_not_hold_the_node() -> None:
    # It keeps the output pipes open from its own session; the node waits for them only
    # a bounded time after its child has exited.
    t0 = time.perf_counter()
    result, _ = await run_code(
        """
        import subprocess, sys

        def main():
            child = subprocess.Popen(
                [sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True
            )
            return {"child": child.pid}
        """,
        timeoutMs=10_000,
    )
    try:
        assert result.status == "succeeded", result.error
        assert time.perf_counter() - t0 < 5
    finally:
        child = (result.outputs.get("result") or {}).get("child")
        if child is not None:
            os.kill(child, signal.SIGKILL)


def _issues(code: str) -> list[Any]:
    return validate_definition(load_definition(workflow(code)))


def test_syntax_error_is_reported_by_validation() -> None:
    issues = _issues("def main():\n    return {'a': 1\n")
    assert len(issues) == 1
    issue = issues[0]
    assert (issue.kind, issue.node_id, issue.field) == ("config", "py", "code")
    assert "syntax error at line 2" in issue.message


def test_compile_time_errors_beyond_the_parser_are_reported() -> None:
    issues = _issues("return 1\ndef main():\n    return {}\n")
    assert [(i.node_id, i.field) for i in issues] == [("py", "code")]
    assert "'return' outside function" in issues[0].message


def test_missing_main_is_reported_by_validation() -> None:
    issues = _issues("def mian():\n    return {}\n")
    assert [(i.kind, i.node_id, i.field) for i in issues] == [("config", "py", "code")]
    assert "main()" in issues[0].message
    assert _issues("from json import dumps as main\n") == []
    assert _issues("def main(**kw):\n    return {'x': '{{ not a reference }}'}\n") == []


def test_bad_limits_are_reported_by_validation() -> None:
    doc = workflow("def main():\n    return {}\n", memoryMb=8, timeoutMs=0)
    issues = validate_definition(load_definition(doc))
    fields = sorted(issue.field for issue in issues if issue.node_id == "py")
    assert "memoryMb" in fields and "timeoutMs" in fields


async def test_cancelling_the_run_kills_the_child() -> None:
    code = """
    import os, time

    def main():
        print(os.getpid(), flush=True)
        time.sleep(60)
        return {}
    """
    pids: list[int] = []
    started = asyncio.Event()

    def listen(event: Any) -> None:
        if isinstance(event, LogEvent):
            pids.append(int(event.message))
            started.set()

    run = Executor().start(load_definition(workflow(code, timeoutMs=60_000)), {})
    run.subscribe(listen)
    await asyncio.wait_for(started.wait(), 10)
    assert alive(pids[0])
    run.cancel()
    result = await run.wait()
    assert result.status == "cancelled"
    assert result.nodes["py"].status == "cancelled"
    assert not alive(pids[0])


async def test_run_timeout_kills_the_child() -> None:
    code = """
    import os, time

    def main():
        print(os.getpid(), flush=True)
        time.sleep(60)
        return {}
    """
    doc = workflow(code, timeoutMs=60_000)
    doc["settings"]["timeout"] = 1
    logs: list[LogEvent] = []
    result = await Executor().run(
        load_definition(doc),
        {},
        listeners=[lambda e: logs.append(e) if isinstance(e, LogEvent) else None],
    )
    assert result.status == "failed"
    assert result.error["type"] == "RunTimeoutError"
    assert not alive(int(logs[0].message))


def _context() -> Any:
    """A NodeContext for calling the node directly (errors then carry their attributes)."""
    from engine import NodeContext, WorkflowSettings

    doc = workflow("def main():\n    return {}\n")
    definition = load_definition(doc)
    node = next(n for n in definition.nodes if n.id == "py")
    return NodeContext(
        node=node,
        execution_id="test",
        attempt=1,
        settings=WorkflowSettings(),
        run_inputs={},
        upstream=dict,
        emit_delta=lambda text: None,
        log=lambda level, message: None,
    )
