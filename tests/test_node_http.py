"""The ``http`` node through the real engine, against a real server on 127.0.0.1."""

from __future__ import annotations

import socket
import time
from email.utils import formatdate
from typing import Any

import pytest

from engine import Executor, RunResult, WorkflowValidationError, load_definition
from engine._private.netguard import ENV_ALLOW
from engine.events import Event, NodeRetrying
from engine.graph import validate_definition
from engine.nodes.http import parse_retry_after
from tests.servers import CutStream, LocalServer, Recorded, Reply, local_server_fixture

server = local_server_fixture()


@pytest.fixture(autouse=True)
def _guard_on_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # An ambient opt-out would let the SSRF tests pass for the wrong reason.
    monkeypatch.delenv(ENV_ALLOW, raising=False)


def definition(config: dict[str, Any], *, retries: int = 0, **settings: Any) -> Any:
    return load_definition(
        {
            "version": "1.0.0",
            "nodes": [
                {
                    "id": "start",
                    "type": "start",
                    "position": {"x": 0, "y": 0},
                    "data": {
                        "label": "Start",
                        "config": {"inputs": [{"name": "base", "type": "string"}]},
                    },
                },
                {
                    "id": "fetch",
                    "type": "http",
                    "position": {"x": 200, "y": 0},
                    "data": {"label": "Fetch", "config": config},
                },
            ],
            "edges": [
                {
                    "id": "e1",
                    "source": "start",
                    "sourceHandle": "out",
                    "target": "fetch",
                    "targetHandle": "in",
                }
            ],
            "settings": {
                "timeout": 30,
                "retryPolicy": {"maxRetries": retries, "backoffMs": 10},
                "errorHandling": "stop",
                **settings,
            },
        }
    )


async def run(
    config: dict[str, Any],
    *,
    retries: int = 0,
    private: bool = True,
    inputs: dict[str, Any] | None = None,
    events: list[Event] | None = None,
) -> RunResult:
    """Run start -> fetch. ``private=True`` lets the node reach the loopback test server."""
    doc = definition(config, retries=retries, allowPrivateNetwork=private)
    listeners = [events.append] if events is not None else []
    return await Executor().run(doc, inputs or {}, listeners=listeners)


def outputs(result: RunResult) -> dict[str, Any]:
    state = result.nodes["fetch"]
    assert state.status == "succeeded", state.error
    assert isinstance(state.outputs, dict)
    return state.outputs


# -- requests and responses ---------------------------------------------------------------
async def test_get_json_is_parsed(server: LocalServer) -> None:
    result = await run({"url": server.url("/json")})
    out = outputs(result)
    assert result.status == "succeeded"
    assert out["status"] == 200
    assert out["headers"]["content-type"] == "application/json"
    assert out["body"]["method"] == "GET"
    assert out["body"]["path"] == "/json"
    assert server.count("/json") == 1


async def test_get_text_stays_text(server: LocalServer) -> None:
    out = outputs(await run({"url": server.url("/text?text=plain%20words")}))
    assert out["body"] == "plain words"
    assert out["headers"]["content-type"].startswith("text/plain")


async def test_post_sends_json_body_query_and_headers(server: LocalServer) -> None:
    config = {
        "method": "post",  # case does not matter
        "url": server.url("/json?fixed=1"),
        "headers": {"X-Token": "abc", "X-Count": 5, "X-Flag": True},
        "query": {"q": "two words", "n": 3, "on": True, "many": ["a", "b"]},
        "body": {"name": "Ada", "tags": [1, 2], "nested": {"ok": None}},
    }
    out = outputs(await run(config))
    assert out["status"] == 200
    (seen,) = server.requests("/json")
    assert seen.method == "POST"
    assert seen.json() == {"name": "Ada", "tags": [1, 2], "nested": {"ok": None}}
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["x-token"] == "abc"
    assert seen.headers["x-count"] == "5"
    assert seen.headers["x-flag"] == "true"
    assert seen.query == {
        "fixed": ["1"],
        "q": ["two words"],
        "n": ["3"],
        "on": ["true"],
        "many": ["a", "b"],
    }


async def test_string_body_is_sent_as_is(server: LocalServer) -> None:
    text = "{not json, sent verbatim} ü"
    await run({"method": "PUT", "url": server.url("/json"), "body": text})
    (seen,) = server.requests("/json")
    assert seen.method == "PUT"
    assert seen.body == text.encode("utf-8")
    assert seen.headers["content-type"].startswith("text/plain")


async def test_own_content_type_is_kept(server: LocalServer) -> None:
    await run(
        {
            "method": "POST",
            "url": server.url("/json"),
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            "body": "a=1&b=2",
        }
    )
    (seen,) = server.requests("/json")
    assert seen.headers["content-type"] == "application/x-www-form-urlencoded"
    assert seen.body == b"a=1&b=2"


async def test_url_from_a_reference(server: LocalServer) -> None:
    result = await run({"url": "{{inputs.base}}/json"}, inputs={"base": server.base})
    assert outputs(result)["body"]["path"] == "/json"


async def test_head_request_has_empty_body(server: LocalServer) -> None:
    out = outputs(await run({"method": "HEAD", "url": server.url("/json")}))
    assert out["status"] == 200
    assert out["body"] == ""
    assert server.requests("/json")[0].method == "HEAD"


async def test_json_variants_and_mislabelled_json(server: LocalServer) -> None:
    server.route(
        "/problem",
        lambda req: Reply(
            status=400,
            body='{"title": "bad"}',
            headers={"Content-Type": "application/problem+json"},
        ),
    )
    server.route(
        "/liar",
        lambda req: Reply(
            body="<html>not json</html>", headers={"Content-Type": "application/json"}
        ),
    )
    problem = outputs(await run({"url": server.url("/problem")}))
    assert problem["status"] == 400
    assert problem["body"] == {"title": "bad"}
    liar = outputs(await run({"url": server.url("/liar")}))
    assert liar["body"] == "<html>not json</html>"


@pytest.mark.parametrize("status", [400, 401, 404, 409])
async def test_4xx_is_output_not_failure(server: LocalServer, status: int) -> None:
    result = await run({"url": server.url(f"/status/{status}")}, retries=2)
    assert result.status == "succeeded"
    out = outputs(result)
    assert out["status"] == status
    assert out["body"] == {"status": status}
    assert result.nodes["fetch"].attempts == 1
    assert server.count(f"/status/{status}") == 1


# -- retries ----------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [500, 503, 429])
async def test_fails_twice_then_succeeds_with_two_retries(server: LocalServer, status: int) -> None:
    path = f"/flaky/twice-{status}"
    result = await run({"url": server.url(f"{path}?fail=2&status={status}")}, retries=2)
    assert result.status == "succeeded"
    state = result.nodes["fetch"]
    assert state.attempts == 3
    assert outputs(result)["body"] == {"name": f"twice-{status}", "attempt": 3}
    assert server.count(path) == 3


async def test_fails_after_two_requests_with_one_retry(server: LocalServer) -> None:
    result = await run({"url": server.url("/flaky/once-only?fail=2&status=500")}, retries=1)
    assert result.status == "failed"
    state = result.nodes["fetch"]
    assert state.status == "failed"
    assert state.attempts == 2
    assert state.error is not None
    assert state.error["retryable"] is True
    assert "HTTP 500" in state.error["message"]
    assert server.count("/flaky/once-only") == 2


async def test_retry_after_is_honoured(server: LocalServer) -> None:
    events: list[Event] = []
    path = "/flaky/slow-down"
    result = await run(
        {"url": server.url(f"{path}?fail=1&status=429&retry_after=1")}, retries=1, events=events
    )
    assert result.status == "succeeded"
    first, second = server.requests(path)
    assert second.at - first.at >= 1.0  # backoffMs is 10 ms: only Retry-After explains this
    (retrying,) = [e for e in events if isinstance(e, NodeRetrying)]
    assert retrying.delay_ms >= 1000


def test_parse_retry_after() -> None:
    now = time.time()
    assert parse_retry_after("1") == 1.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("-3") == 0.0
    in_five = parse_retry_after(formatdate(now + 5, usegmt=True), now=now)
    assert in_five is not None and 4.0 <= in_five <= 5.0
    assert parse_retry_after(formatdate(now - 60, usegmt=True), now=now) == 0.0
    for junk in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(junk) is None


async def test_connection_refused_is_retried() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = await run({"url": f"http://127.0.0.1:{port}/"}, retries=1)
    state = result.nodes["fetch"]
    assert state.status == "failed"
    assert state.attempts == 2
    assert state.error is not None and state.error["retryable"] is True


async def test_body_cut_mid_stream_is_retryable(server: LocalServer) -> None:
    def cut(req: Recorded) -> Reply:
        def chunks() -> Any:
            yield b'{"partial": '
            raise CutStream

        return Reply(headers={"Content-Type": "application/json"}, stream=chunks())

    server.route("/cut", cut)
    result = await run({"url": server.url("/cut")}, retries=1)
    state = result.nodes["fetch"]
    assert state.status == "failed"
    assert state.attempts == 2
    assert state.error is not None and state.error["retryable"] is True
    assert server.count("/cut") == 2


async def test_timeout_ms_against_slow_endpoint(server: LocalServer) -> None:
    started = time.perf_counter()
    result = await run({"url": server.url("/slow?seconds=3"), "timeoutMs": 300})
    elapsed = time.perf_counter() - started
    state = result.nodes["fetch"]
    assert state.status == "failed"
    assert state.error is not None
    assert state.error["type"] == "NodeTimeoutError"
    assert state.error["retryable"] is True
    assert 0.3 <= elapsed < 2.0


# -- redirects (guard off: the server is loopback; the per-hop guard is in test_netguard) -----
async def test_redirect_is_followed(server: LocalServer) -> None:
    result = await run({"url": server.url("/redirect?to=/json%3Fafter%3D1")})
    out = outputs(result)
    assert out["body"]["path"] == "/json"
    assert out["body"]["query"] == {"after": ["1"]}
    assert result.nodes["fetch"].metadata["redirects"] == 1
    assert server.count("/redirect") == 1


@pytest.mark.parametrize(
    ("status", "method", "body"), [(303, "GET", ""), (307, "POST", '{"x": 1}')]
)
async def test_redirect_method_rules(
    server: LocalServer, status: int, method: str, body: str
) -> None:
    url = server.url(f"/redirect?to=/json&status={status}")
    out = outputs(await run({"method": "POST", "url": url, "body": {"x": 1}}))
    assert out["body"]["method"] == method
    assert out["body"]["body"] == body


async def test_redirect_loop_stops_after_ten_hops(server: LocalServer) -> None:
    server.route("/loop", lambda req: Reply(status=302, headers={"Location": "/loop"}))
    result = await run({"url": server.url("/loop")}, retries=2)
    state = result.nodes["fetch"]
    assert state.status == "failed"
    assert state.error is not None
    assert "redirects" in state.error["message"]
    assert state.error["retryable"] is False
    assert server.count("/loop") == 11  # the first request and ten redirects


async def test_redirect_to_other_scheme_is_refused(server: LocalServer) -> None:
    target = "file:///etc/passwd"
    result = await run({"url": server.url(f"/redirect?to={target}")})
    state = result.nodes["fetch"]
    assert state.status == "failed"
    assert state.error is not None
    assert state.error["field"] == "url"
    assert "file:" in state.error["message"]


# -- the private-network guard, end to end (loopback forms only) -------------------------------
LOOPBACK_FORMS = [
    ("127.0.0.1", "127.0.0.1"),
    ("localhost", None),  # 127.0.0.1 or ::1, whichever the resolver lists
    ("0.0.0.0", "0.0.0.0"),
    ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
    ("2130706433", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
]


@pytest.mark.parametrize(("host", "address"), LOOPBACK_FORMS)
async def test_guard_refuses_loopback_forms(
    server: LocalServer, host: str, address: str | None
) -> None:
    url = f"http://{host}:{server.port}/json"
    result = await run({"url": url}, retries=2, private=False)
    assert result.status == "failed"
    state = result.nodes["fetch"]
    assert state.error is not None
    assert state.error["type"] == "NetworkPolicyError"
    assert state.error["nodeId"] == "fetch"
    assert state.error["field"] == "url"
    assert state.error["retryable"] is False
    assert state.attempts == 1
    assert host.strip("[]") in state.error["message"]
    if address is not None:
        assert f"resolves to {address} (" in state.error["message"]
    assert server.count() == 0


@pytest.mark.parametrize(("host", "address"), LOOPBACK_FORMS)
async def test_allow_private_network_lets_them_through(
    server: LocalServer, host: str, address: str | None
) -> None:
    result = await run({"url": f"http://{host}:{server.port}/json"}, private=True)
    assert outputs(result)["status"] == 200
    assert server.count("/json") == 1


async def test_environment_variable_turns_the_guard_off(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = server.url("/json")
    monkeypatch.setenv(ENV_ALLOW, "0")
    refused = await run({"url": url}, private=False)
    assert refused.nodes["fetch"].error is not None
    assert refused.nodes["fetch"].error["type"] == "NetworkPolicyError"
    assert server.count() == 0
    monkeypatch.setenv(ENV_ALLOW, "1")
    allowed = await run({"url": url}, private=False)
    assert outputs(allowed)["status"] == 200
    assert server.count() == 1


async def test_unparsable_octal_host_never_connects(server: LocalServer) -> None:
    for private in (False, True):
        result = await run({"url": f"http://0177.0.0.1:{server.port}/json"}, private=private)
        assert result.nodes["fetch"].status == "failed"
    assert server.count() == 0


# -- configuration ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"method": "FETCH", "url": "https://example.com/"}, "method"),
        ({"method": 7, "url": "https://example.com/"}, "method"),
        ({"url": "ftp://example.com/file.txt"}, "url"),
        ({"url": "file:///etc/passwd"}, "url"),
        ({"url": "example.com/no-scheme"}, "url"),
        ({"url": "http:///no-host"}, "url"),
        ({}, "url"),
        ({"url": "https://example.com/", "headers": {"X": {"nested": 1}}}, "headers.X"),
        ({"url": "https://example.com/", "query": {"q": {"nested": 1}}}, "query.q"),
    ],
)
def test_bad_config_names_node_and_field(config: dict[str, Any], field: str) -> None:
    issues = validate_definition(definition(config))
    assert issues, "expected a validation issue"
    assert any(i.node_id == "fetch" and (i.field or "").startswith(field) for i in issues), issues


async def test_bad_config_stops_the_run_before_anything_is_sent() -> None:
    with pytest.raises(WorkflowValidationError) as caught:
        await run({"method": "BREW", "url": "ftp://127.0.0.1/"})
    fields = {issue.field for issue in caught.value.issues if issue.node_id == "fetch"}
    assert {"method", "url"} <= fields


async def test_scheme_from_a_reference_is_checked_at_run_time(server: LocalServer) -> None:
    result = await run({"url": "{{inputs.base}}/x"}, inputs={"base": "ftp://127.0.0.1"})
    state = result.nodes["fetch"]
    assert state.status == "failed"
    assert state.error is not None and state.error["field"] == "url"
    assert server.count() == 0
