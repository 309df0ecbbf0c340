"""The private-network guard of the ``http`` node (SSRF protection).

A workflow's URLs come from its author, its inputs and upstream outputs (an LLM, a web
page), so a request could be steered at the machine itself, the office network or a
cloud metadata endpoint. The guard resolves a target host and refuses it unless EVERY
address it resolves to is public; the node then connects to one of those checked
addresses (it pins them), so a DNS answer that changes between the check and the
connection (DNS rebinding) cannot slip a private address in. The node calls the guard
again on every redirect hop.

Numeric host spellings that ``inet_aton`` accepts (``2130706433``, ``0x7f000001``,
``127.1``, ``0177.0.0.1``) are decoded here rather than trusted to whatever the
resolver makes of them, and IPv6 forms that carry an IPv4 address (``::ffff:127.0.0.1``,
NAT64, 6to4) are judged by the address they carry.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any

from engine.errors import NetworkPolicyError, NodeError

__all__ = [
    "ENV_ALLOW",
    "Guard",
    "IPAddress",
    "Resolver",
    "blocked_reason",
    "parse_numeric_host",
    "private_network_allowed",
    "show_address",
    "system_resolve",
]

IPAddress = IPv4Address | IPv6Address
#: ``(host, port) -> addresses``; the guard never needs more from DNS than this.
Resolver = Callable[[str, int], Awaitable[list[str]]]

ENV_ALLOW = "AGENTFLOW_ALLOW_PRIVATE_NETWORK"
_TRUE = frozenset({"1", "true", "yes", "on"})

# Instance metadata services hand out cloud credentials: named in refusals because the
# reason matters to whoever reads the error. Some live in ranges refused anyway; Azure's
# WireServer and Oracle's endpoint do not.
_METADATA = frozenset(
    ip_address(text)
    for text in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.123",  # AWS time sync
        "fd00:ec2::254",  # AWS over IPv6
        "fd00:ec2::23",  # AWS DNS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure WireServer
        "192.0.0.192",  # Oracle Cloud
    )
)

# Ranges that ``ipaddress`` reports as global but no public service lives in.
_EXTRA_BLOCKED: tuple[tuple[IPv4Network | IPv6Network, str], ...] = (
    (ip_network("100.64.0.0/10"), "shared address space (CGNAT)"),
    (ip_network("192.0.0.0/24"), "IETF protocol assignment"),
    (ip_network("fec0::/10"), "site-local"),
    (ip_network("fc00::/7"), "unique local (private)"),
)

_MAPPED_COMPAT = ip_network("::/96")
_TRANSLATED = ip_network("::ffff:0:0:0/96")
_NAT64 = ip_network("64:ff9b::/96")


def private_network_allowed(settings: Any) -> bool:
    """True when the workflow (``allowPrivateNetwork``) or the environment turns the guard off."""
    if getattr(settings, "allow_private_network", False) is True:
        return True
    return os.environ.get(ENV_ALLOW, "").strip().lower() in _TRUE


def blocked_reason(address: IPAddress) -> str | None:
    """Why a request must not go to ``address``, or ``None`` when it is a public address."""
    if isinstance(address, IPv6Address):
        if address.scope_id:
            return "scoped (link-local)"
        mapped = address.ipv4_mapped
        if mapped is not None:
            # The kernel sends these to the IPv4 address: that is the one to judge.
            inner = blocked_reason(mapped)
            return f"{inner}, IPv4-mapped" if inner else None
        if address in _NAT64:
            inner = blocked_reason(IPv4Address(int(address) & 0xFFFFFFFF))
            return f"{inner}, via NAT64" if inner else None
        if (address in _MAPPED_COMPAT or address in _TRANSLATED) and int(address) > 1:
            return "IPv4-compatible/translated IPv6"
        if address.sixtofour is not None:
            inner = blocked_reason(address.sixtofour)
            if inner:
                return f"{inner}, via 6to4"
    return _own_reason(address)


def _own_reason(address: IPAddress) -> str | None:
    if address in _METADATA:
        return "cloud metadata"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    for network, reason in _EXTRA_BLOCKED:
        if address.version == network.version and address in network:
            return reason
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "not globally routable"
    return None


def show_address(address: IPAddress) -> str:
    """The address as people write it (``::ffff:127.0.0.1``, not ``::ffff:7f00:1``)."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def parse_numeric_host(host: str) -> IPAddress | None:
    """The address a numeric host stands for (IPv6 literal, dotted quad or an
    ``inet_aton`` spelling such as ``2130706433``, ``0x7f.1`` or ``0177.0.0.1``)."""
    text = host.strip().strip("[]")
    try:
        return ip_address(text)
    except ValueError:
        pass
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        value = _inet_aton_part(part)
        if value is None:
            return None
        values.append(value)
    # The last part fills every byte the earlier ones left: 127.1 is 127.0.0.1.
    *head, last = values
    if any(value > 0xFF for value in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    number = last
    for index, value in enumerate(head):
        number |= value << (8 * (3 - index))
    return IPv4Address(number)


def _inet_aton_part(part: str) -> int | None:
    try:
        if part[:2].lower() == "0x":
            return int(part[2:], 16) if part[2:] else 0
        if len(part) > 1 and part.startswith("0"):
            return int(part[1:], 8)
        return int(part, 10) if part.isdigit() else None
    except ValueError:
        return None


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host`` (A and AAAA)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]


class Guard:
    """Checks one node's targets. ``check`` returns the addresses it is safe to connect to."""

    def __init__(
        self,
        *,
        node_id: str | None = None,
        resolve: Resolver = system_resolve,
        exempt: Iterable[str | IPv4Network | IPv6Network] = (),
    ) -> None:
        self.node_id = node_id
        self._resolve = resolve
        #: Networks let through despite the rules (a known internal service).
        self.exempt = tuple(
            ip_network(net, strict=False) if isinstance(net, str) else net for net in exempt
        )

    def verdict(self, address: IPAddress) -> str | None:
        """The refusal reason for one address, ``None`` when it may be contacted."""
        if any(address.version == net.version and address in net for net in self.exempt):
            return None
        return blocked_reason(address)

    def check_addresses(self, host: str, addresses: Sequence[IPAddress]) -> None:
        """Raise :class:`NetworkPolicyError` unless every address of ``host`` is allowed."""
        for address in addresses:
            reason = self.verdict(address)
            if reason is not None:
                shown = show_address(address)
                raise NetworkPolicyError(
                    f"refused to connect to '{host}': it resolves to {shown} ({reason} "
                    "address); set settings.allowPrivateNetwork to allow private targets",
                    node_id=self.node_id,
                    host=host,
                    address=shown,
                )

    async def check(self, host: str, port: int) -> list[IPAddress]:
        """Resolve ``host`` and check EVERY address; the result is what to connect to."""
        addresses = await self.resolve(host, port)
        self.check_addresses(host, addresses)
        return addresses

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        if not host:
            raise NodeError("the URL has no host", node_id=self.node_id, field="url")
        numeric = parse_numeric_host(host)
        if numeric is not None:
            return [numeric]
        try:
            found = await self._resolve(host, port)
        except socket.gaierror as exc:
            # A name that does not exist will not start existing on a retry; a busy
            # resolver (EAI_AGAIN) may answer the next time.
            raise NodeError(
                f"cannot resolve host '{host}': {exc.strerror or exc}",
                node_id=self.node_id,
                field="url",
                retryable=exc.errno == socket.EAI_AGAIN,
            ) from None
        addresses: list[IPAddress] = []
        for text in found:
            address = ip_address(text)
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise NodeError(
                f"host '{host}' resolved to no address", node_id=self.node_id, field="url"
            )
        return addresses
