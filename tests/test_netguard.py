"""The private-network guard: address rules without connecting, and the per-hop check.

Only the last group connects, and only to the loopback test server: the guard there
exempts 127.0.0.1 alone, and every refused target is itself a loopback address, so a
guard that failed to refuse could still not send anything off this machine.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine._private.netguard import (
    ENV_ALLOW,
    Guard,
    Resolver,
    blocked_reason,
    parse_numeric_host,
    private_network_allowed,
)
from engine.errors import NetworkPolicyError, NodeError
from engine.nodes.http import HttpConfig, fetch
from tests.servers import LocalServer, Reply, local_server_fixture

server = local_server_fixture()

# -- the address rules (no connection, no DNS) -----------------------------------------------
BLOCKED = [
    ("10.0.0.1", "private"),
    ("10.255.255.255", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.0.1", "private"),
    ("192.168.255.254", "private"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("::1", "loopback"),
    ("169.254.0.1", "link-local"),
    ("169.254.255.254", "link-local"),
    ("fe80::1", "link-local"),
    ("febf:ffff::1", "link-local"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.170.2", "cloud metadata"),
    ("fd00:ec2::254", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("168.63.129.16", "cloud metadata"),
    ("192.0.0.192", "cloud metadata"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("0.1.2.3", "private"),
    ("100.64.0.1", "CGNAT"),
    ("100.127.255.254", "CGNAT"),
    ("fc00::1", "unique local"),
    ("fd12:3456:789a::1", "unique local"),
    ("fec0::1", "site-local"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.0.8", "IETF"),
    ("198.18.0.1", "private"),
    ("192.0.2.1", "private"),
    ("2001:db8::1", "private"),
    # IPv6 spellings of IPv4 addresses are judged by the IPv4 address
    ("::ffff:127.0.0.1", "loopback, IPv4-mapped"),
    ("::ffff:10.1.2.3", "private, IPv4-mapped"),
    ("::ffff:169.254.169.254", "cloud metadata, IPv4-mapped"),
    ("::ffff:0.0.0.0", "unspecified, IPv4-mapped"),
    ("::ffff:100.64.0.1", "CGNAT"),
    ("::127.0.0.1", "IPv4-compatible"),
    ("::8.8.8.8", "IPv4-compatible"),
    ("::ffff:0:7f00:1", "translated"),
    ("64:ff9b::7f00:1", "loopback, via NAT64"),
    ("64:ff9b::a9fe:a9fe", "cloud metadata, via NAT64"),
    ("2002:7f00:1::1", "loopback, via 6to4"),
    ("2002:c0a8:101::1", "private, via 6to4"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "private"),  # Teredo
    ("fe80::1%eth0", "link-local"),
]

ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "11.0.0.1",  # just past 10/8
    "172.15.255.255",  # just below 172.16/12
    "172.32.0.1",  # just past it
    "192.167.255.255",
    "192.169.0.1",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.1",  # just past it
    "169.253.255.255",
    "169.255.0.1",
    "223.255.255.254",  # last unicast before multicast
    "2606:4700:4700::1111",
    "2a00:1450:4001::1",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of a public address
    "2002:808:808::1",  # 6to4 of a public address
]


@pytest.mark.parametrize(("text", "reason"), BLOCKED)
def test_blocked_addresses(text: str, reason: str) -> None:
    found = blocked_reason(ip_address(text))
    assert found is not None, f"{text} should be refused"
    assert reason in found


@pytest.mark.parametrize("text", ALLOWED)
def test_public_addresses_pass(text: str) -> None:
    assert blocked_reason(ip_address(text)) is None


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("0", "0.0.0.0"),
        ("3232235777", "192.168.1.1"),
        ("0251.0376.0251.0376", "169.254.169.254"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("8.8.8.8", "8.8.8.8"),
    ],
)
def test_numeric_host_forms(host: str, expected: str) -> None:
    assert parse_numeric_host(host) == ip_address(expected)


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "localhost",
        "",
        "1.2.3.4.5",
        "08.0.0.1",
        "4294967296",
        "256.1.1.1",
        "1.2.3.256",
        "1.2.65536",
        "0xg1",
        "127.0.0.1.",
        "1e3",
    ],
)
def test_names_and_bad_numbers_are_not_numeric(host: str) -> None:
    assert parse_numeric_host(host) is None


def test_environment_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    off = SimpleNamespace(allow_private_network=False)
    monkeypatch.delenv(ENV_ALLOW, raising=False)
    assert not private_network_allowed(off)
    for value in ("0", "", "no", "false"):
        monkeypatch.setenv(ENV_ALLOW, value)
        assert not private_network_allowed(off)
    for value in ("1", "true", "YES"):
        monkeypatch.setenv(ENV_ALLOW, value)
        assert private_network_allowed(off)
    assert private_network_allowed(SimpleNamespace(allow_private_network=True))


# -- the check on one host, with a table instead of DNS --------------------------------------
def table(mapping: dict[str, list[str]], asked: list[str] | None = None) -> Resolver:
    """A resolver answering from a dict (like a hosts file): no DNS traffic in tests."""

    async def resolve(host: str, port: int) -> list[str]:
        if asked is not None:
            asked.append(host)
        if host == "busy.test":
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        if host not in mapping:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return mapping[host]

    return resolve


NAMES = {
    "public.test": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
    "mixed.test": ["93.184.216.34", "10.0.0.7"],  # one bad answer is enough to refuse
    "v6private.test": ["2606:4700::1", "fd00::5"],
    "metadata.test": ["169.254.169.254"],
    "mapped.test": ["::ffff:192.168.1.10"],
    "empty.test": [],
}


async def test_every_resolved_address_is_checked() -> None:
    guard = Guard(node_id="fetch", resolve=table(NAMES))
    assert await guard.check("public.test", 443) == [ip_address(a) for a in NAMES["public.test"]]
    for host, bad in [
        ("mixed.test", "10.0.0.7"),
        ("v6private.test", "fd00::5"),
        ("metadata.test", "169.254.169.254"),
        ("mapped.test", "::ffff:192.168.1.10"),
    ]:
        with pytest.raises(NetworkPolicyError) as caught:
            await guard.check(host, 80)
        err = caught.value
        assert (err.node_id, err.host, err.address, err.field) == ("fetch", host, bad, "url")
        assert err.retryable is False
        assert host in str(err) and bad in str(err) and "'fetch'" in str(err)


async def test_numeric_hosts_never_reach_the_resolver() -> None:
    asked: list[str] = []
    guard = Guard(node_id="fetch", resolve=table(NAMES, asked))
    for host in ("2130706433", "0x7f000001", "127.1", "0177.0.0.1", "::ffff:127.0.0.1"):
        with pytest.raises(NetworkPolicyError) as caught:
            await guard.check(host, 80)
        assert caught.value.address in ("127.0.0.1", "::ffff:127.0.0.1")
    assert asked == []


async def test_resolution_failures() -> None:
    guard = Guard(node_id="fetch", resolve=table(NAMES))
    with pytest.raises(NodeError) as missing:
        await guard.check("nowhere.test", 80)
    assert missing.value.retryable is False
    assert "nowhere.test" in missing.value.message
    with pytest.raises(NodeError) as busy:
        await guard.check("busy.test", 80)
    assert busy.value.retryable is True
    with pytest.raises(NodeError) as empty:
        await guard.check("empty.test", 80)
    assert not isinstance(empty.value, NetworkPolicyError)
    with pytest.raises(NodeError):
        await guard.check("", 80)


async def test_redirect_chain_is_checked_hop_by_hop() -> None:
    # The check the node makes before each hop, over a chain a server might send.
    guard = Guard(node_id="fetch", resolve=table(NAMES))
    chain = ["public.test", "public.test", "2130706433", "public.test"]
    passed = []
    with pytest.raises(NetworkPolicyError) as caught:
        for host in chain:
            await guard.check(host, 80)
            passed.append(host)
    assert passed == ["public.test", "public.test"]
    assert caught.value.host == "2130706433"


def test_exempt_networks() -> None:
    guard = Guard(exempt=["127.0.0.1/32", "fd00::/8"])
    assert guard.verdict(ip_address("127.0.0.1")) is None
    assert guard.verdict(ip_address("fd00::5")) is None
    assert guard.verdict(ip_address("127.0.0.2")) == "loopback"
    assert guard.verdict(ip_address("::1")) == "loopback"


# -- the node's redirect loop, end to end on loopback --------------------------------------------
def loopback_guard() -> Guard:
    """Treats 127.0.0.1 as if it were public so the first hop can reach the test server.

    Every other name maps to loopback addresses: nothing can leave the machine even if
    a refusal were missed.
    """
    names = {
        "app.test": ["127.0.0.1"],
        "other.test": ["127.0.0.1"],
        "sneaky.test": ["127.0.0.1", "::1"],  # the second answer is not exempt
    }
    return Guard(node_id="fetch", resolve=table(names), exempt=["127.0.0.1/32"])


def config(url: str, **fields: object) -> HttpConfig:
    return HttpConfig.model_validate({"url": url, **fields})


async def test_pinned_connection_keeps_the_host_name(server: LocalServer) -> None:
    result = await fetch(
        config(f"http://app.test:{server.port}/json"), node_id="fetch", guard=loopback_guard()
    )
    assert result.outputs["status"] == 200
    assert result.outputs["body"]["headers"]["host"] == f"app.test:{server.port}"
    assert result.metadata["url"] == f"http://app.test:{server.port}/json"


@pytest.mark.parametrize(
    ("target", "host", "address"),
    [
        ("http://127.0.0.2:{port}/json", "127.0.0.2", "127.0.0.2"),
        ("http://0.0.0.0:{port}/json", "0.0.0.0", "0.0.0.0"),
        ("http://[::ffff:127.0.0.2]:{port}/json", "::ffff:127.0.0.2", "::ffff:127.0.0.2"),
        ("http://2130706434:{port}/json", "2130706434", "127.0.0.2"),
        ("http://sneaky.test:{port}/json", "sneaky.test", "::1"),
    ],
)
async def test_redirect_hop_is_refused(
    server: LocalServer, target: str, host: str, address: str
) -> None:
    to = target.format(port=server.port)
    first = server.url(f"/redirect?to={to}")
    with pytest.raises(NetworkPolicyError) as caught:
        await fetch(config(first), node_id="fetch", guard=loopback_guard())
    assert (caught.value.host, caught.value.address) == (host, address)
    assert server.count("/redirect") == 1
    assert server.count("/json") == 0


async def test_refusal_on_a_later_hop(server: LocalServer) -> None:
    # 127.0.0.1 -> app.test (allowed) -> app.test (allowed) -> sneaky.test (refused)
    last = f"http://sneaky.test:{server.port}/json"
    second = f"http://app.test:{server.port}/redirect?to={last}"
    server.route("/hop", lambda req: Reply(status=307, headers={"Location": second}))
    first = f"http://app.test:{server.port}/hop"
    with pytest.raises(NetworkPolicyError) as caught:
        await fetch(
            config(server.url(f"/redirect?to={first}")), node_id="fetch", guard=loopback_guard()
        )
    assert caught.value.host == "sneaky.test"
    assert server.count("/redirect") == 2
    assert server.count("/hop") == 1
    assert server.count("/json") == 0


async def test_allowed_hops_are_followed_and_credentials_stay_home(server: LocalServer) -> None:
    to = f"http://other.test:{server.port}/json"
    result = await fetch(
        config(
            server.url(f"/redirect?to={to}"),
            headers={"Authorization": "Bearer secret", "Cookie": "a=1", "X-Keep": "yes"},
        ),
        node_id="fetch",
        guard=loopback_guard(),
    )
    echoed = result.outputs["body"]["headers"]
    assert result.outputs["status"] == 200
    assert result.metadata["redirects"] == 1
    assert echoed["host"] == f"other.test:{server.port}"
    assert echoed["x-keep"] == "yes"
    assert "authorization" not in echoed and "cookie" not in echoed
    (first,) = server.requests("/redirect")
    assert first.headers["authorization"] == "Bearer secret"


async def test_same_origin_redirect_keeps_credentials(server: LocalServer) -> None:
    result = await fetch(
        config(server.url("/redirect?to=/json"), headers={"Authorization": "Bearer secret"}),
        node_id="fetch",
        guard=loopback_guard(),
    )
    assert result.outputs["body"]["headers"]["authorization"] == "Bearer secret"


@pytest.fixture
def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalServer]:
    """An HTTPS test server whose certificate names app.test, trusted via SSL_CERT_FILE."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=app.test",
            "-addext",
            "subjectAltName=DNS:app.test",
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with LocalServer(tls=context) as tls:
        yield tls


async def test_pinned_https_still_verifies_the_host_name(tls_server: LocalServer) -> None:
    # Connected to the pinned address, TLS must still present and check the URL's name.
    port = tls_server.port
    good = await fetch(
        config(f"https://app.test:{port}/json"), node_id="fetch", guard=loopback_guard()
    )
    assert good.outputs["status"] == 200
    assert good.outputs["body"]["headers"]["host"] == f"app.test:{port}"
    with pytest.raises(NodeError) as caught:
        await fetch(
            config(f"https://other.test:{port}/json"), node_id="fetch", guard=loopback_guard()
        )
    assert caught.value.retryable is False  # a bad certificate stays bad
    assert "certificate" in caught.value.message.lower()
    assert tls_server.count() == 1
