"""A real HTTP server on 127.0.0.1 for tests (stdlib, one thread per request).

Use it as a context manager, or make a fixture of it in a test module::

    from tests.servers import LocalServer, Reply, local_server_fixture

    server = local_server_fixture()            # then: def test_x(server): ...

    with LocalServer() as server:              # LocalServer(tls=context) serves HTTPS
        url = server.url("/json")              # http://127.0.0.1:<port>/json
        ...
        assert server.count("/json") == 1      # requests seen on a path (query ignored)
        assert server.count() == 1             # requests seen on all paths
        seen = server.requests("/json")[0]     # a Recorded: method, query, headers, body...

Built-in endpoints (configured by query parameters, so a URL says it all):

``/json``
    200 with a JSON echo of the request: method, path, query (name -> list of values),
    headers (lower-case names), body (text) and json (the parsed body, or null).
``/text?text=...``
    200 ``text/plain`` with the given text (default ``hello``).
``/status/<code>?retry_after=S``
    That status with a JSON body ``{"status": code}``; ``Retry-After: S`` when given.
``/flaky/<name>?fail=N&status=500&retry_after=S``
    The first N requests for ``name`` fail with ``status`` (and ``Retry-After``); later
    ones answer 200 ``{"name": name, "attempt": k}``. Names keep separate counts.
``/slow?seconds=S``
    Waits S seconds (default 5; cut short when the server stops), then answers JSON.
``/redirect?to=URL&status=302``
    Redirects to ``to`` (absolute or relative) with the given 3xx status.

Anything else: ``server.route(path, handler)`` where ``handler(recorded) -> Reply``;
a ``Reply`` may stream chunks (``stream=[...]``), and a stream that raises
:class:`CutStream` drops the connection mid-body (for "stream cut" faults).
Unknown paths answer 404.
"""

from __future__ import annotations

import json
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

__all__ = ["CutStream", "LocalServer", "Recorded", "Reply", "local_server_fixture"]


@dataclass(slots=True)
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default


@dataclass(slots=True)
class Reply:
    """What a handler answers. ``body``: dict/list -> JSON, str -> text, bytes as is."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Chunks sent with chunked transfer encoding (then ``body`` is ignored).
    stream: Iterable[bytes] | None = None


class CutStream(Exception):
    """Raise inside a ``Reply.stream`` to drop the connection without ending the body."""


Handler = Callable[[Recorded], Reply]


class LocalServer:
    """A threaded HTTP/1.1 server bound to 127.0.0.1 on a free port."""

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        """``tls``: a server-side context to serve HTTPS instead of HTTP."""
        self._tls = tls
        self._lock = threading.Lock()
        self._requests: list[Recorded] = []
        self._flaky: dict[str, int] = {}
        self._routes: dict[str, Handler] = {}
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> LocalServer:
        httpd = _Server(("127.0.0.1", 0), _RequestHandler)
        httpd.owner = self
        if self._tls is not None:
            httpd.socket = self._tls.wrap_socket(httpd.socket, server_side=True)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes /slow handlers
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests use -------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def base(self) -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base + (path if path.startswith("/") else "/" + path)

    def route(self, path: str, handler: Handler) -> None:
        """Answer requests to ``path`` (any method) with ``handler(recorded)``."""
        self._routes[path] = handler

    def count(self, path: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self._requests if path is None or r.path == path)

    def requests(self, path: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self._requests if path is None or r.path == path]

    # -- request handling (server threads) ---------------------------------------------
    def _record(self, recorded: Recorded) -> None:
        with self._lock:
            self._requests.append(recorded)

    def _answer(self, req: Recorded) -> Reply:
        custom = self._routes.get(req.path)
        if custom is not None:
            return custom(req)
        head, _, rest = req.path.lstrip("/").partition("/")
        if req.path == "/json":
            return Reply(body=_echo(req))
        if req.path == "/text":
            return Reply(body=req.arg("text", "hello"))
        if head == "status" and rest.isdigit():
            return _status_reply(int(rest), req.arg("retry_after"))
        if head == "flaky" and rest:
            with self._lock:
                attempt = self._flaky[rest] = self._flaky.get(rest, 0) + 1
            if attempt <= int(req.arg("fail", "1") or 1):
                return _status_reply(int(req.arg("status", "500") or 500), req.arg("retry_after"))
            return Reply(body={"name": rest, "attempt": attempt})
        if req.path == "/slow":
            seconds = float(req.arg("seconds", "5") or 5)
            self._stopping.wait(seconds)
            return Reply(body={"slept": seconds})
        if req.path == "/redirect":
            target = req.arg("to", "/json") or "/json"
            return Reply(status=int(req.arg("status", "302") or 302), headers={"Location": target})
        return Reply(status=404, body={"error": f"no such path {req.path}"})


def _status_reply(status: int, retry_after: str | None) -> Reply:
    headers = {"Retry-After": retry_after} if retry_after else {}
    return Reply(status=status, body={"status": status}, headers=headers)


def _echo(req: Recorded) -> dict[str, Any]:
    try:
        parsed = req.json()
    except ValueError:
        parsed = None
    return {
        "method": req.method,
        "path": req.path,
        "query": req.query,
        "headers": req.headers,
        "body": req.text,
        "json": parsed,
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: LocalServer

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host name up (getfqdn): no DNS traffic here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up (timeouts under test) are expected, not news


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        recorded = Recorded(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self._read_body(),
            at=time.monotonic(),
        )
        owner = self.server.owner
        owner._record(recorded)
        self._send(owner._answer(recorded))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return b"".join(self._read_chunks())
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _read_chunks(self) -> Iterator[bytes]:
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return
            yield self.rfile.read(size)
            self.rfile.readline()

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.stream is not None:
            self._send_stream(reply)
            return
        body, content_type = _encode(reply.body)
        if content_type and not any(k.lower() == "content-type" for k in reply.headers):
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_stream(self, reply: Reply) -> None:
        assert reply.stream is not None
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for chunk in reply.stream:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
        except CutStream:
            self.close_connection = True
            return
        self.wfile.write(b"0\r\n\r\n")


def _encode(body: Any) -> tuple[bytes, str | None]:
    if body is None:
        return b"", None
    if isinstance(body, bytes):
        return body, "application/octet-stream"
    if isinstance(body, str):
        return body.encode("utf-8"), "text/plain; charset=utf-8"
    return json.dumps(body).encode("utf-8"), "application/json"


def local_server_fixture(name: str = "server") -> Any:
    """A pytest fixture giving a started :class:`LocalServer`, stopped after each test.

    Assign it in a test module under the same name: ``server = local_server_fixture()``.
    """

    @pytest.fixture(name=name)
    def fixture() -> Iterator[LocalServer]:
        with LocalServer() as server:
            yield server

    return fixture
