"""``http``: one HTTP request over httpx, with redirects followed under the network guard.

429 and 5xx answers, connection errors and timeouts are retryable failures (the
executor retries them per ``retryPolicy``, waiting at least ``Retry-After``); every
other status, 4xx included, is the node's output for downstream nodes to judge.
"""

from __future__ import annotations

import json
import math
import os
import time
from email.utils import parsedate_to_datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from engine._private.netguard import Guard, private_network_allowed
from engine.errors import NodeError, NodeTimeoutError
from engine.nodes.base import BaseNodeConfig, NodeContext, NodeResult, NodeType

if TYPE_CHECKING:
    import ssl

    import httpx

__all__ = ["HttpConfig", "HttpNode", "fetch", "parse_retry_after"]

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
QueryScalar = str | int | float | bool | None

MAX_REDIRECTS = 10
#: Per-phase httpx limit when the node sets no ``timeoutMs`` (the run timeout still applies).
DEFAULT_TIMEOUT_S = 30.0
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Sent to the first origin only: a redirect must not carry credentials elsewhere.
_ORIGIN_BOUND_HEADERS = ("authorization", "cookie", "proxy-authorization", "host")


class HttpConfig(BaseNodeConfig):
    method: Method = "GET"
    url: str = Field(description="http:// or https:// URL.")
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, QueryScalar | list[QueryScalar]] = Field(
        default_factory=dict, description="Added to the URL's query string."
    )
    body: Any = Field(default=None, description="An object or array is sent as JSON, text as is.")

    @field_validator("method", mode="before")
    @classmethod
    def _upper_method(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            parts = urlsplit(value.strip())
        except ValueError as exc:
            raise ValueError(f"not a valid URL: {exc}") from None
        if parts.scheme.lower() not in ("http", "https"):
            shown = parts.scheme or "none"
            raise ValueError(f"URL scheme must be http or https, not '{shown}'")
        if not parts.hostname:
            raise ValueError("URL has no host")
        return value.strip()

    @field_validator("headers", mode="before")
    @classmethod
    def _header_text(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {
            key: json.dumps(item)
            if isinstance(item, bool)
            else str(item)
            if isinstance(item, int | float)
            else item
            for key, item in value.items()
        }


class HttpNode(NodeType[HttpConfig]):
    type = "http"
    description = "Send an HTTP request; 429/5xx and network faults are retried."
    Config = HttpConfig
    outputs = {
        "status": "the response status code",
        "headers": "response headers (lower-case names)",
        "body": "the response body: parsed when it is JSON, else text",
    }

    async def run(self, ctx: NodeContext, config: HttpConfig) -> NodeResult:
        guard = None if private_network_allowed(ctx.settings) else Guard(node_id=ctx.node_id)
        return await fetch(config, node_id=ctx.node_id, guard=guard)


async def fetch(config: HttpConfig, *, node_id: str, guard: Guard | None) -> NodeResult:
    """Send the request, following redirects; ``guard=None`` allows private targets."""
    import httpx

    timeout_s = config.timeout_ms / 1000 if config.timeout_ms else DEFAULT_TIMEOUT_S
    try:
        headers = httpx.Headers(config.headers)
        content = _encode_body(config.body, headers, node_id)
        url = httpx.URL(config.url).copy_merge_params(config.query)
        response, url, hops = await _follow(
            config.method, url, headers, content, guard=guard, node_id=node_id, timeout_s=timeout_s
        )
    except NodeError:
        raise
    except httpx.TimeoutException as exc:
        raise NodeTimeoutError(
            f"HTTP request timed out after {timeout_s:g} s ({type(exc).__name__})",
            node_id=node_id,
            timeout_s=timeout_s,
        ) from None
    except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as exc:
        # A certificate that does not verify will not verify on the next attempt either.
        raise NodeError(
            f"HTTP connection failed: {type(exc).__name__}: {exc}",
            node_id=node_id,
            retryable=not _certificate_failure(exc),
        ) from None
    except httpx.InvalidURL as exc:
        raise NodeError(f"invalid URL: {exc}", node_id=node_id, field="url") from None
    except (httpx.HTTPError, UnicodeEncodeError) as exc:
        # Our own request is at fault (bad header text, unsupported protocol): retrying
        # would send the same thing again.
        raise NodeError(
            f"HTTP request failed: {type(exc).__name__}: {exc}", node_id=node_id
        ) from None

    status = response.status_code
    if status == 429 or status >= 500:
        raise NodeError(
            f"HTTP {status} {response.reason_phrase} from {url.host}: {_snippet(response.text)}",
            node_id=node_id,
            retryable=True,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    outputs = {
        "status": status,
        "headers": dict(response.headers.items()),
        "body": _decode_body(response),
    }
    return NodeResult(outputs, metadata={"url": str(url), "redirects": hops})


async def _follow(
    method: str,
    url: httpx.URL,
    headers: httpx.Headers,
    content: bytes | None,
    *,
    guard: Guard | None,
    node_id: str,
    timeout_s: float,
) -> tuple[httpx.Response, httpx.URL, int]:
    """Redirects are followed here, not by httpx, so that every hop meets the guard."""
    hops = 0
    while True:
        response = await _send(method, url, headers, content, guard=guard, timeout_s=timeout_s)
        location = response.headers.get("location")
        if response.status_code not in _REDIRECTS or not location:
            return response, url, hops
        if hops == MAX_REDIRECTS:
            raise NodeError(f"more than {MAX_REDIRECTS} redirects", node_id=node_id, field="url")
        hops += 1
        target = url.join(location)
        if target.scheme not in ("http", "https"):
            raise NodeError(
                f"redirect to a non-HTTP URL refused: {target}", node_id=node_id, field="url"
            )
        if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
            # What browsers (and httpx) do: the next hop is a GET without the body.
            method = "GET" if method != "HEAD" else method
            content = None
            headers = headers.copy()
            for name in ("content-type", "content-length", "transfer-encoding"):
                headers.pop(name, None)
        if (target.scheme, target.host, target.port) != (url.scheme, url.host, url.port):
            headers = headers.copy()
            for name in _ORIGIN_BOUND_HEADERS:
                headers.pop(name, None)
        url = target


async def _send(
    method: str,
    url: httpx.URL,
    headers: httpx.Headers,
    content: bytes | None,
    *,
    guard: Guard | None,
    timeout_s: float,
) -> httpx.Response:
    import httpx

    # A client per hop: connections are pooled by (scheme, address, port), so a pinned
    # TLS connection made for one host name must not carry a request for another.
    async with httpx.AsyncClient(
        follow_redirects=False,
        timeout=timeout_s,
        verify=_ssl_context(os.environ.get("SSL_CERT_FILE") or None),
        trust_env=False,  # no proxy variables or ~/.netrc credentials for workflow URLs
    ) as client:
        if guard is None:
            request = client.build_request(method, url, headers=headers, content=content)
            return await client.send(request)
        host = url.host
        addresses = await guard.check(host, url.port or (443 if url.scheme == "https" else 80))
        pinned_headers = headers.copy()
        pinned_headers.setdefault("Host", url.netloc.decode("ascii"))
        extensions = {"sni_hostname": host} if url.scheme == "https" else {}
        failure: httpx.ConnectError | None = None
        for address in addresses:
            # Connect to the address the guard approved, not to whatever a second DNS
            # lookup would return: no window for DNS rebinding between check and connect.
            request = client.build_request(
                method,
                url.copy_with(host=str(address)),
                headers=pinned_headers,
                content=content,
                extensions=extensions,
            )
            try:
                return await client.send(request)
            except httpx.ConnectError as exc:
                failure = exc
        assert failure is not None
        raise failure


@cache
def _ssl_context(cafile: str | None) -> ssl.SSLContext:
    """Verification against ``SSL_CERT_FILE`` when set (a company CA), else certifi's CAs."""
    # Building a context loads the CA bundle (milliseconds): once per bundle, not per hop.
    import ssl

    import certifi

    return ssl.create_default_context(cafile=cafile or certifi.where())


def _certificate_failure(exc: BaseException) -> bool:
    import ssl

    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _encode_body(body: Any, headers: httpx.Headers, node_id: str) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, str):
        headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        return body.encode("utf-8")
    try:
        encoded = json.dumps(body, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise NodeError(
            f"body cannot be sent as JSON: {exc}", node_id=node_id, field="body"
        ) from None
    headers.setdefault("Content-Type", "application/json")
    return encoded.encode("utf-8")


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ("application/json", "text/json") or media.endswith("+json")


def _decode_body(response: httpx.Response) -> Any:
    if response.content and _is_json(response.headers.get("content-type", "")):
        try:
            return json.loads(response.content)
        except ValueError:
            pass  # labelled JSON but is not: the text is still worth having
    return response.text


def _snippet(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)
