"""LLM node benchmark: what the engine adds around a model call, alone and 200 at once.

Run with ``.venv/bin/python bench/llm_bench.py`` (``make bench`` runs it too). Every
request goes to the fake provider (``tests/fake_provider.py``) started as a subprocess
on 127.0.0.1, so the provider's work does not share this process's CPU and GIL.

1. Time to first token (TTFT), one call at a time, for both client paths (litellm for
   ``openai/…``, the ollama client for ``ollama/…``):
   raw httpx stream (the provider's own TTFT) < the client library called directly
   < an engine run (start -> llm -> end) whose first ``node_delta`` is seen by an
   ``async for`` over ``run.events()``. Engine overhead = engine TTFT - raw TTFT.
2. Fan-out: 200 llm nodes from ``start`` (``maxConcurrency`` 1000) against a provider
   answering after 100 ms, wall time, next to 200 raw concurrent httpx streams and 200
   concurrent direct client-library calls.

Timings are reported, never asserted; the verdict column compares medians with targets.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_FILE = ROOT / "bench" / "results" / "llm.json"
sys.path.insert(0, str(ROOT))  # tests.fake_provider, when run from anywhere

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
# The fake ignores keys; a real one from the shell must never be sent anywhere.
os.environ["OPENAI_API_KEY"] = "sk-bench-not-a-real-key"

from engine import CompiledWorkflow, Executor, NodeDelta, compile_workflow, load_definition  # noqa: E402

TTFT_REPS = 40
TTFT_WARMUP = 10
FAN = 200
FAN_REPS = 5
LATENCY_MS = 100
PROMPT = "Tell me about tidal pools"
TARGET_OVERHEAD_MS = 5.0
TARGET_FAN_S = 0.5
PATHS = ("openai", "ollama")


# -- the fake provider -----------------------------------------------------------------------
@contextmanager
def fake_provider(latency_ms: float) -> Iterator[str]:
    """A fake provider subprocess; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_provider", "--latency-ms", str(latency_ms)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+", line)
        if found is None:
            raise RuntimeError(f"the fake provider did not start: {line!r}")
        yield found.group(0)
    finally:
        process.terminate()
        process.wait(timeout=10)


# -- raw httpx -------------------------------------------------------------------------------
def _raw_request(path: str, base: str) -> tuple[str, dict[str, Any]]:
    messages = [{"role": "user", "content": PROMPT}]
    if path == "openai":
        body = {"model": "gpt-4o-mini", "messages": messages, "stream": True, "max_tokens": 2048}
        return f"{base}/v1/chat/completions", body
    return f"{base}/api/chat", {"model": "fake", "messages": messages, "stream": True}


def _content(path: str, line: str) -> str:
    if path == "openai":
        if not line.startswith("data: {"):
            return ""
        choices = json.loads(line[6:]).get("choices") or [{}]
        return str(choices[0].get("delta", {}).get("content") or "")
    return str(json.loads(line).get("message", {}).get("content") or "") if line else ""


async def raw_stream(client: Any, path: str, base: str) -> float:
    """Seconds to the first non-empty content of a streamed reply; reads it all."""
    url, body = _raw_request(path, base)
    t0 = time.perf_counter()
    first = None
    async with client.stream("POST", url, json=body) as response:
        async for line in response.aiter_lines():
            if first is None and _content(path, line):
                first = time.perf_counter() - t0
    if first is None:
        raise RuntimeError(f"raw {path} stream without content")
    return first


# -- the client libraries, called directly ---------------------------------------------------
async def library_stream(path: str, base: str) -> float:
    messages = [{"role": "user", "content": PROMPT}]
    first = None
    if path == "openai":
        from engine.llm._loader import load_litellm

        litellm = load_litellm()
        t0 = time.perf_counter()
        response = await litellm.acompletion(
            model="openai/gpt-4o-mini",
            messages=messages,
            stream=True,
            api_base=f"{base}/v1",
            max_retries=0,
            stream_options={"include_usage": True},
        )
        async for chunk in response:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter() - t0
    else:
        from ollama import AsyncClient

        from engine.llm._loader import ssl_context

        verify = ssl_context()
        t0 = time.perf_counter()
        async with AsyncClient(host=base, verify=verify) as client:
            async for part in await client.chat(model="fake", messages=messages, stream=True):
                if first is None and part.message.content:
                    first = time.perf_counter() - t0
    if first is None:
        raise RuntimeError(f"{path} library stream without content")
    return first


# -- the engine ------------------------------------------------------------------------------
def _llm_node(node_id: str, path: str, base: str) -> dict[str, Any]:
    config = (
        {"model": "openai/gpt-4o-mini", "baseUrl": f"{base}/v1"}
        if path == "openai"
        else {"model": "ollama/fake", "baseUrl": base}
    )
    return {
        "id": node_id,
        "type": "llm",
        "data": {"label": node_id, "config": {"userPrompt": PROMPT, **config}},
    }


def single_workflow(path: str, base: str) -> CompiledWorkflow:
    return compile_workflow(
        load_definition(
            {
                "nodes": [
                    {"id": "start", "type": "start", "data": {"config": {"inputs": []}}},
                    _llm_node("ask", path, base),
                    {
                        "id": "end",
                        "type": "end",
                        "data": {"config": {"outputs": {"a": "{{ask.text}}"}}},
                    },
                ],
                "edges": [
                    {"id": "e1", "source": "start", "target": "ask"},
                    {"id": "e2", "source": "ask", "target": "end"},
                ],
            }
        )
    )


def fanout_workflow(path: str, base: str, width: int) -> CompiledWorkflow:
    nodes = [{"id": "start", "type": "start", "data": {"config": {"inputs": []}}}]
    nodes += [_llm_node(f"ask{index}", path, base) for index in range(width)]
    edges = [
        {"id": f"e{index}", "source": "start", "target": f"ask{index}"} for index in range(width)
    ]
    settings = {"maxConcurrency": 1000, "timeout": 120}
    return compile_workflow(load_definition({"nodes": nodes, "edges": edges, "settings": settings}))


async def engine_ttft(compiled: CompiledWorkflow) -> float:
    """Seconds from ``start()`` to the first ``node_delta`` seen by an event consumer."""
    t0 = time.perf_counter()
    run = Executor().start(compiled, {})
    first = None
    async for event in run.events():
        if first is None and isinstance(event, NodeDelta):
            first = time.perf_counter() - t0
    result = await run
    if result.status != "succeeded" or first is None:
        raise RuntimeError(f"engine run {result.status}: {result.error}")
    return first


async def engine_fanout(compiled: CompiledWorkflow) -> float:
    t0 = time.perf_counter()
    result = await Executor().run(compiled, {})
    elapsed = time.perf_counter() - t0
    if result.status != "succeeded":
        raise RuntimeError(f"fan-out run {result.status}: {result.error}")
    return elapsed


# -- measurements ----------------------------------------------------------------------------
def _ms(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values) * 1000,
        "best": min(values) * 1000,
        "p90": sorted(values)[int(len(values) * 0.9) - 1] * 1000,
    }


async def measure_ttft(path: str, base: str) -> dict[str, dict[str, float]]:
    import httpx

    compiled = single_workflow(path, base)
    times: dict[str, list[float]] = {"raw": [], "library": [], "engine": []}
    async with httpx.AsyncClient(timeout=30) as client:
        steps: dict[str, Callable[[], Awaitable[float]]] = {
            "raw": lambda: raw_stream(client, path, base),
            "library": lambda: library_stream(path, base),
            "engine": lambda: engine_ttft(compiled),
        }
        for index in range(TTFT_WARMUP + TTFT_REPS):
            for name, step in steps.items():  # interleaved, so drift hits all three alike
                await _settle()
                value = await step()
                if index >= TTFT_WARMUP:
                    times[name].append(value)
    return {name: _ms(values) for name, values in times.items()}


async def _settle() -> None:
    """A quiet start: litellm finishes its after-call logging tasks in the background."""
    await asyncio.sleep(0.03)
    gc.collect()


async def _gather(make: Callable[[], Awaitable[Any]], width: int) -> float:
    t0 = time.perf_counter()
    await asyncio.gather(*(make() for _ in range(width)))
    return time.perf_counter() - t0


async def measure_fanout(path: str, base: str) -> dict[str, dict[str, float]]:
    import httpx

    from engine.llm._loader import ssl_context

    compiled = fanout_workflow(path, base, FAN)
    verify = ssl_context()

    async def raw_own_client() -> float:
        async with httpx.AsyncClient(timeout=30, verify=verify) as client:
            return await raw_stream(client, path, base)

    limits = httpx.Limits(max_connections=FAN * 2, max_keepalive_connections=FAN * 2)
    times: dict[str, list[float]] = {
        "raw_shared_client": [],
        "raw_client_each": [],
        "library": [],
        "engine": [],
    }
    async with httpx.AsyncClient(timeout=30, limits=limits) as shared:
        steps: dict[str, Callable[[], Awaitable[float]]] = {
            "raw_shared_client": lambda: _gather(lambda: raw_stream(shared, path, base), FAN),
            "raw_client_each": lambda: _gather(raw_own_client, FAN),
            "library": lambda: _gather(lambda: library_stream(path, base), FAN),
            "engine": lambda: engine_fanout(compiled),
        }
        for index in range(1 + FAN_REPS):
            for name, step in steps.items():
                await _settle()
                value = await step()
                if index >= 1:
                    times[name].append(value)
    return {name: _ms(values) for name, values in times.items()}


# -- report ----------------------------------------------------------------------------------
def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def report(ttft: dict[str, Any], fan: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    print(f"\nTime to first token, one call at a time ({TTFT_REPS} runs, median / best / p90 ms)")
    print(
        f"{'path':<8}{'raw httpx':>22}{'client library':>22}{'engine':>22}"
        f"{'engine-raw':>12}{'engine-lib':>12}   target"
    )
    for path in PATHS:
        row = ttft[path]
        cells = "".join(
            f"{row[n]['median']:>8.2f} /{row[n]['best']:>5.2f} /{row[n]['p90']:>5.1f}"
            for n in ("raw", "library", "engine")
        )
        over_raw = row["engine"]["median"] - row["raw"]["median"]
        over_lib = row["engine"]["median"] - row["library"]["median"]
        ok = over_raw < TARGET_OVERHEAD_MS
        print(
            f"{path:<8}{cells}{over_raw:>10.2f}ms{over_lib:>10.2f}ms   "
            f"< {TARGET_OVERHEAD_MS:g} ms {_verdict(ok)}"
        )
        summary[f"ttft_overhead_{path}_ms"] = {
            "vs_raw": round(over_raw, 3),
            "vs_library": round(over_lib, 3),
            "ok": ok,
        }
    if not fan:
        return summary
    print(
        f"\n{FAN} concurrent calls, provider latency {LATENCY_MS} ms "
        f"({FAN_REPS} runs, median / best seconds)"
    )
    names = ("raw_shared_client", "raw_client_each", "library", "engine")
    print(f"{'path':<8}" + "".join(f"{n:>20}" for n in names) + f"{'engine/raw':>12}   target")
    for path in PATHS:
        row = fan[path]
        cells = "".join(
            f"{row[n]['median'] / 1000:>12.3f} /{row[n]['best'] / 1000:>5.3f}" for n in names
        )
        raw_best = min(row["raw_shared_client"]["median"], row["raw_client_each"]["median"])
        ratio = row["engine"]["median"] / raw_best
        ok = row["engine"]["median"] / 1000 < TARGET_FAN_S
        print(f"{path:<8}{cells}{ratio:>11.2f}x   < {TARGET_FAN_S:g} s {_verdict(ok)}")
        summary[f"fanout_{path}_s"] = {
            "engine": round(row["engine"]["median"] / 1000, 4),
            "library": round(row["library"]["median"] / 1000, 4),
            "raw": round(raw_best / 1000, 4),
            "engine_over_raw": round(ratio, 3),
            "engine_over_library": round(row["engine"]["median"] / row["library"]["median"], 3),
            "ok": ok,
        }
    return summary


async def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="LLM node benchmark (see the module doc).")
    parser.add_argument("--ttft-only", action="store_true", help="skip the 200-call fan-out")
    args = parser.parse_args()
    print(
        f"llm bench: python {platform.python_version()}, {os.cpu_count()} CPU, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    from engine.llm._loader import load_litellm

    t0 = time.perf_counter()
    load_litellm()  # timed once here, so no measurement below pays for the import
    print(f"litellm import: {time.perf_counter() - t0:.2f} s (off the critical path: warm_up)")
    ttft: dict[str, Any] = {}
    fan: dict[str, Any] = {}
    with fake_provider(0) as base:
        for path in PATHS:
            ttft[path] = await measure_ttft(path, base)
    if not args.ttft_only:
        with fake_provider(LATENCY_MS) as base:
            for path in PATHS:
                fan[path] = await measure_fanout(path, base)
    summary = report(ttft, fan)
    print(f"\nload after: {os.getloadavg()[0]:.2f}")
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(
        json.dumps({"summary": summary, "ttft_ms": ttft, "fanout_ms": fan}, indent=2) + "\n"
    )
    print(f"wrote {RESULTS_FILE.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
