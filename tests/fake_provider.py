"""A fake LLM provider on 127.0.0.1 that speaks the OpenAI and Ollama HTTP protocols.

Replies are deterministic: ``echo: <last user message>``, streamed one word per chunk.
Token counts are word counts (prompt: every message's words; completion: chunks sent),
``max_tokens`` / ``num_predict`` cut the reply with finish reason ``length``, and stop
sequences (``stop`` / ``options.stop``) end it where the first one starts.

Faults and canned replies can be asked for in two ways:

- in the model name, as ``+``-separated directives: ``fake+status=500``,
  ``fake+status=429+retry_after=2``, ``fake+slow=0.5`` (seconds before the first
  token), ``fake+cut`` (connection dropped mid-stream), ``fake+truncate`` (the body
  ends cleanly but before the finish chunk / ``done``), ``fake+malformed``,
  ``fake+reply=%7B%22a%22%3A1%7D`` (reply with this URL-encoded text instead of the echo);
- queued for the next requests, from Python (:meth:`FakeProvider.inject`, e.g.
  ``inject("reply", content='{"a": 1}')``) or over HTTP (``POST /_fake/faults`` with
  ``{"kind": "status", "status": 500, "times": 1}`` or ``{"kind": "reply", "content": ...}``).

``latency`` (seconds, ``--latency-ms`` by hand) delays the first token of every reply.
The server counts requests per path and records every request (``GET /_fake/stats``,
``POST /_fake/reset``). Run by hand: ``python -m tests.fake_provider --port 11500``.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

__all__ = ["FakeProvider", "Fault", "RecordedRequest", "loopback_only"]

OLLAMA_VERSION = "0.6.3"
_MODELS = ("fake", "fake-large")


@dataclass(slots=True)
class Fault:
    """One injected misbehaviour. ``kind``: status, slow, cut, truncate, malformed or reply."""

    kind: str
    status: int = 500
    retry_after: float | None = None
    delay: float = 0.0
    #: How many chunks a ``cut`` stream sends before the connection drops.
    after_chunks: int = 2
    #: The reply's text for ``kind="reply"``.
    content: str = ""


@dataclass(slots=True)
class RecordedRequest:
    """One request as received; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass(slots=True)
class _Plan:
    """What to do for one chat request: faults from the model name plus queued ones."""

    status: int | None = None
    retry_after: float | None = None
    delay: float = 0.0
    cut: bool = False
    truncate: bool = False
    cut_after: int = 2
    malformed: bool = False
    reply: str | None = None

    def apply(self, fault: Fault) -> None:
        if fault.kind == "status":
            self.status, self.retry_after = fault.status, fault.retry_after
        elif fault.kind == "slow":
            self.delay = fault.delay
        elif fault.kind == "cut":
            self.cut, self.cut_after = True, fault.after_chunks
        elif fault.kind == "truncate":
            self.truncate, self.cut_after = True, fault.after_chunks
        elif fault.kind == "malformed":
            self.malformed = True
        elif fault.kind == "reply":
            self.reply = fault.content
        else:
            raise ValueError(f"unknown fault kind {fault.kind!r}")


def _plan_from_model(model: str) -> _Plan:
    plan = _Plan()
    for directive in model.split("+")[1:]:
        key, _, value = directive.partition("=")
        if key == "status":
            plan.status = int(value)
        elif key == "retry_after":
            plan.retry_after = float(value)
        elif key == "slow":
            plan.delay = float(value)
        elif key in ("cut", "truncate"):
            setattr(plan, key, True)
            if value:
                plan.cut_after = int(value)
        elif key == "malformed":
            plan.malformed = True
        elif key == "reply":
            plan.reply = unquote(value)
    return plan


def _reply_words(messages: list[dict[str, Any]], plan: _Plan, stop: Any = None) -> list[str]:
    """The reply in chunks (whitespace kept), cut before the first stop sequence."""
    if plan.reply is not None:
        text = plan.reply
    else:
        last_user = next(
            (m.get("content") for m in reversed(messages) if m.get("role") == "user"), ""
        )
        said = last_user if isinstance(last_user, str) else json.dumps(last_user)
        text = " ".join(["echo:", *said.split()])
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    cuts = [text.find(s) for s in stops if isinstance(s, str) and s and s in text]
    if cuts:
        text = text[: min(cuts)]
    return re.findall(r"\s*\S+|\s+$", text)


def _prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(len(str(m.get("content") or "").split()) for m in messages)


class FakeProvider:
    """The server, its fault queue and its records. Use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, latency: float = 0.0) -> None:
        self._lock = threading.Lock()
        #: Seconds before the first token of every reply (on top of any ``slow`` fault).
        self.latency = latency
        self._faults: list[Fault] = []
        self.counts: Counter[str] = Counter()
        self.requests: list[RecordedRequest] = []
        #: When set, OpenAI requests must carry ``Authorization: Bearer <api_key>``.
        self.api_key: str | None = None
        self._server = _Server((host, port), _make_handler(self))
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> FakeProvider:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-provider",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control --------------------------------------------------------------------
    def inject(self, kind: str, *, times: int = 1, **params: Any) -> None:
        """Queue a fault for each of the next ``times`` chat requests."""
        fault = Fault(kind, **params)
        _Plan().apply(fault)  # reject unknown kinds now, not inside a request
        with self._lock:
            self._faults.extend([fault] * times)

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self.counts.clear()
            self.requests.clear()
            self.api_key = None

    def count(self, path: str) -> int:
        with self._lock:
            return self.counts[path]

    def last_body(self, path: str) -> Any:
        with self._lock:
            for request in reversed(self.requests):
                if request.path == path:
                    return request.body
        raise KeyError(f"no request to {path}")

    def last_request(self, path: str) -> RecordedRequest:
        with self._lock:
            for request in reversed(self.requests):
                if request.path == path:
                    return request
        raise KeyError(f"no request to {path}")

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "counts": dict(self.counts),
                "pendingFaults": len(self._faults),
                "requests": [
                    {"method": r.method, "path": r.path, "body": r.body} for r in self.requests
                ],
            }

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.counts[request.path] += 1
            self.requests.append(request)

    def _plan(self, model: str) -> _Plan:
        plan = _plan_from_model(model)
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None:
            plan.apply(fault)
        plan.delay += self.latency
        return plan


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops connections when hundreds of clients arrive at once.
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hang up on cut and malformed streams; that is the point, not news.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _make_handler(provider: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.provider = provider
    return Handler


class _Handler(BaseHTTPRequestHandler):
    provider: FakeProvider
    protocol_version = "HTTP/1.1"
    # Small chunk writes would otherwise wait for the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server_version = "FakeProvider/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing -------------------------------------------------------------------
    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self._send_raw(status, data, "application/json", headers)

    def _send_raw(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _drop(self) -> None:
        """Close the socket without ending the chunked body: a cut stream."""
        self.wfile.flush()
        self.close_connection = True
        with suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _record(self, body: Any) -> None:
        path = self.path.split("?", 1)[0]
        self.provider._record(
            RecordedRequest(
                self.command, path, {k.lower(): v for k, v in self.headers.items()}, body
            )
        )

    # -- routes ---------------------------------------------------------------------
    def do_GET(self) -> None:
        self._record(None)
        path = self.path.split("?", 1)[0]
        if path == "/v1/models":
            now = int(time.time())
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": name, "object": "model", "created": now, "owned_by": "fake"}
                        for name in _MODELS
                    ],
                },
            )
        elif path == "/api/tags":
            self._send_json(
                200,
                {
                    "models": [
                        {
                            "name": f"{name}:latest",
                            "model": f"{name}:latest",
                            "modified_at": "2025-01-01T00:00:00Z",
                            "size": 1000,
                            "digest": uuid.uuid5(uuid.NAMESPACE_DNS, name).hex,
                            "details": {
                                "format": "gguf",
                                "family": "fake",
                                "parameter_size": "1B",
                                "quantization_level": "Q4_0",
                            },
                        }
                        for name in _MODELS
                    ]
                },
            )
        elif path == "/api/version":
            self._send_json(200, {"version": OLLAMA_VERSION})
        elif path == "/_fake/stats":
            self._send_json(200, self.provider.stats())
        elif path == "/":
            self._send_raw(200, b"Ollama is running", "text/plain")
        else:
            self._send_json(404, {"error": f"no route {path}"})

    def do_POST(self) -> None:
        body = self._read_body()
        self._record(body)
        path = self.path.split("?", 1)[0]
        if path == "/v1/chat/completions":
            self._openai_chat(body if isinstance(body, dict) else {})
        elif path == "/api/chat":
            self._ollama_chat(body if isinstance(body, dict) else {})
        elif path == "/_fake/faults":
            spec = dict(body) if isinstance(body, dict) else {}
            times = int(spec.pop("times", 1))
            params = {
                "kind": spec.get("kind", "status"),
                "status": int(spec.get("status", 500)),
                "retry_after": spec.get("retryAfter"),
                "delay": float(spec.get("delay", 0.0)),
                "after_chunks": int(spec.get("afterChunks", 2)),
                "content": str(spec.get("content", "")),
            }
            try:
                self.provider.inject(times=times, **params)
            except ValueError as exc:
                self._send_json(400, {"error": str(exc)})
                return
            self._send_json(200, {"queued": times})
        elif path == "/_fake/reset":
            self.provider.reset()
            self._send_json(200, {"reset": True})
        else:
            self._send_json(404, {"error": f"no route {path}"})

    # -- OpenAI ---------------------------------------------------------------------
    def _openai_error(self, status: int, message: str, retry_after: float | None = None) -> None:
        kinds = {
            400: "invalid_request_error",
            401: "invalid_request_error",
            404: "invalid_request_error",
            429: "rate_limit_exceeded",
        }
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
        self._send_json(
            status,
            {
                "error": {
                    "message": message,
                    "type": kinds.get(status, "server_error"),
                    "param": None,
                    "code": {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status),
                }
            },
            headers,
        )

    def _openai_chat(self, body: dict[str, Any]) -> None:
        model = str(body.get("model", ""))
        messages = body.get("messages")
        if self.provider.api_key is not None:
            given = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if given != self.provider.api_key:
                self._openai_error(401, f"Incorrect API key provided: {given}.")
                return
        if not isinstance(messages, list) or not messages:
            self._openai_error(400, "'messages' must be a non-empty array")
            return
        plan = self.provider._plan(model)
        if plan.status is not None:
            self._openai_error(plan.status, f"fake fault {plan.status}", plan.retry_after)
            return
        words = _reply_words(messages, plan, body.get("stop"))
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        finish = "stop"
        if isinstance(limit, int) and limit < len(words):
            words, finish = words[:limit], "length"
        usage = {
            "prompt_tokens": _prompt_tokens(messages),
            "completion_tokens": len(words),
            "total_tokens": _prompt_tokens(messages) + len(words),
        }
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        created = int(time.time())
        if not body.get("stream"):
            if plan.delay:
                time.sleep(plan.delay)
            if plan.malformed:
                self._send_raw(200, b'{"id": "broken", "choices": [', "application/json")
                return
            self._send_json(
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "system_fingerprint": None,
                    "choices": [
                        {
                            "index": 0,
                            "logprobs": None,
                            "finish_reason": finish,
                            "message": {"role": "assistant", "content": "".join(words)},
                        }
                    ],
                    "usage": usage,
                },
            )
            return

        def event(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            chunk = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
            }
            return f"data: {json.dumps(chunk)}\n\n".encode()

        self._start_stream("text/event-stream")
        self._chunk(event({"role": "assistant", "content": ""}))
        if plan.delay:
            time.sleep(plan.delay)
        for index, word in enumerate(words):
            if plan.cut and index == plan.cut_after:
                self._drop()
                return
            if plan.truncate and index == plan.cut_after:
                self._end_stream()
                return
            if plan.malformed and index == 1:
                self._chunk(b'data: {"id": "broken", "choices": [\n\n')
            self._chunk(event({"content": word}))
        self._chunk(event({}, finish))
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            final = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            self._chunk(f"data: {json.dumps(final)}\n\n".encode())
        self._chunk(b"data: [DONE]\n\n")
        self._end_stream()

    # -- Ollama ---------------------------------------------------------------------
    def _ollama_chat(self, body: dict[str, Any]) -> None:
        model = str(body.get("model", ""))
        messages = body.get("messages")
        if not model:
            self._send_json(400, {"error": "model is required"})
            return
        if model.split("+")[0].split(":")[0] not in _MODELS:
            self._send_json(404, {"error": f"model '{model}' not found"})
            return
        if not isinstance(messages, list):
            messages = []
        plan = self.provider._plan(model)
        if plan.status is not None:
            headers = {"Retry-After": f"{plan.retry_after:g}"} if plan.retry_after else None
            self._send_json(plan.status, {"error": f"fake fault {plan.status}"}, headers)
            return
        options = body.get("options") if isinstance(body.get("options"), dict) else {}
        words = _reply_words(messages, plan, options.get("stop")) if messages else []
        limit = options.get("num_predict")
        finish = "stop"
        if isinstance(limit, int) and 0 <= limit < len(words):
            words, finish = words[:limit], "length"

        def part(content: str, done: bool) -> dict[str, Any]:
            out: dict[str, Any] = {
                "model": model,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "message": {"role": "assistant", "content": content},
                "done": done,
            }
            if done:
                out.update(
                    {
                        "done_reason": finish,
                        "total_duration": 1000,
                        "load_duration": 10,
                        "prompt_eval_count": _prompt_tokens(messages),
                        "prompt_eval_duration": 100,
                        "eval_count": len(words),
                        "eval_duration": 500,
                    }
                )
            return out

        if body.get("stream") is False:
            if plan.delay:
                time.sleep(plan.delay)
            if plan.malformed:
                self._send_raw(200, b'{"model": "broken", "message": {', "application/json")
                return
            self._send_json(200, part("".join(words), True))
            return
        self._start_stream("application/x-ndjson")
        if plan.delay:
            time.sleep(plan.delay)
        for index, word in enumerate(words):
            if plan.cut and index == plan.cut_after:
                self._drop()
                return
            if plan.truncate and index == plan.cut_after:
                self._end_stream()
                return
            if plan.malformed and index == 1:
                self._chunk(b'{"model": "broken", "message": {\n')
            self._chunk((json.dumps(part(word, False)) + "\n").encode())
        self._chunk((json.dumps(part("", True)) + "\n").encode())
        self._end_stream()


# -- a guard for tests ------------------------------------------------------------------
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "ip6-localhost"}


def _is_loopback(host: Any) -> bool:
    import ipaddress

    if isinstance(host, bytes):
        host = host.decode()
    if host is None or host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@contextmanager
def loopback_only() -> Iterator[list[str]]:
    """Refuse name lookups and connections to anything but loopback, for this process.

    A client that ignores its configured base URL then fails at once instead of
    reaching the real service. Yields the list of refused targets.
    """
    refused: list[str] = []
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_loopback(host):
            refused.append(f"lookup {host}")
            raise socket.gaierror(socket.EAI_NONAME, f"refused by loopback_only: {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    def allowed(sock: socket.socket, address: Any) -> bool:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return True
        return _is_loopback(address[0])

    def connect(sock: socket.socket, address: Any) -> None:
        if not allowed(sock, address):
            refused.append(f"connect {address}")
            raise ConnectionRefusedError(f"refused by loopback_only: {address}")
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        if not allowed(sock, address):
            refused.append(f"connect {address}")
            return 111
        return real_connect_ex(sock, address)

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    try:
        yield refused
    finally:
        socket.getaddrinfo = real_getaddrinfo
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = real_connect_ex  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="delay before the first token of each reply"
    )
    args = parser.parse_args(argv)
    provider = FakeProvider(port=args.port, latency=args.latency_ms / 1000)
    print(f"fake provider on {provider.url} (OpenAI base {provider.openai_base})", flush=True)
    try:
        provider._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        provider._server.server_close()


if __name__ == "__main__":
    main()
