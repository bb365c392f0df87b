"""Every HTTP connection Kith opens to another server goes through `client()`.

Its transport resolves the host name itself and connects to the address it checked, so a peer's name that
resolves to this machine or its private network (or answers differently between a check and the connect, as a
rebinding DNS server does) never reaches anything there. The operator lets private ranges through with
`[federation] allowed_private_networks`, for instances that federate on a private network or on loopback.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any

import anyio
import httpcore
import httpx

from server.settings import Settings

log = logging.getLogger("kith.outbound")

USER_AGENT = "Kith (+https://kith.dev)"
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

_THIS_NETWORK = ip_network("0.0.0.0/8")
_SHARED = ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598): another customer's machine, not the internet
_UNIQUE_LOCAL = ip_network("fc00::/7")
_NAT64 = ip_network("64:ff9b::/96")


class RefusedAddress(httpcore.ConnectError):
    """The host resolved only to addresses Kith does not connect to. httpx reports it as a ConnectError, so callers
    treat it as an unreachable server."""


def kind_of(address: Address) -> str | None:
    """Why an address is off limits unless the operator allows it, or None for a public one."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return kind_of(embedded)
    if (isinstance(address, IPv4Address) and address in _THIS_NETWORK) or address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address in _SHARED:
        return "shared (CGNAT)"
    if address in _UNIQUE_LOCAL:
        return "unique-local"
    if isinstance(address, IPv6Address) and address.is_site_local:
        return "site-local"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "non-public"
    return None


def _embedded_ipv4(address: Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one stands for, where the network would carry it there (mapped, 6to4, NAT64)."""
    if not isinstance(address, IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: Address, allowed: Iterable[Network]) -> str | None:
    """The kind of a disallowed address, or None when Kith may connect to it."""
    kind = kind_of(address)
    if kind is None:
        return None
    candidates = [address, _embedded_ipv4(address)]
    if any(candidate in network for network in allowed for candidate in candidates if candidate is not None):
        return None
    return kind


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections only to addresses `refusal` lets through; TLS is started later by httpcore with the
    host name, so certificates are still checked against the name, not the address."""

    def __init__(self, allowed: Iterable[Network], inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.allowed = tuple(allowed)
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._resolve(host, port, timeout)
        usable, refused = [], []
        for text in addresses:
            kind = refusal(ip_address(text.split("%", 1)[0]), self.allowed)
            if kind is None:
                usable.append(text)
            else:
                refused.append(f"{text} is a {kind} address")
        if not usable:
            reason = f"refusing to connect to {host}: {'; '.join(refused)} (see [federation] allowed_private_networks)"
            log.warning("%s", reason)
            raise RefusedAddress(reason)
        error: Exception | None = None
        for text in usable:
            try:
                return await self.inner.connect_tcp(
                    text, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def _resolve(self, host: str, port: int, seconds: float | None) -> list[str]:
        try:
            with anyio.fail_after(seconds):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} took too long") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedAddress("Kith connects to other servers over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (its request and error mapping), over a connection pool that uses GuardedBackend."""

    def __init__(self, allowed: Iterable[Network], ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(trust_env=False, limits=LIMITS)
        # httpx offers no way to hand its pool a network backend, so the pool is built again with one; it is the
        # pool httpx would build for these options, without proxies (Kith never uses the environment's).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
            max_connections=LIMITS.max_connections,
            max_keepalive_connections=LIMITS.max_keepalive_connections,
            keepalive_expiry=LIMITS.keepalive_expiry,
            network_backend=GuardedBackend(allowed),
        )


def transport(settings: Settings) -> GuardedTransport:
    return GuardedTransport(ip_network(network) for network in settings.allowed_private_networks)


def client(settings: Settings, **options: Any) -> httpx.AsyncClient:
    """A client for talking to other servers: checked addresses, no environment proxies, no redirects followed."""
    headers = {"User-Agent": USER_AGENT, **options.pop("headers", {})}
    options.setdefault("follow_redirects", False)
    return httpx.AsyncClient(transport=transport(settings), headers=headers, trust_env=False, **options)
