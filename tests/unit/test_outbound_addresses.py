"""Which addresses outbound connections refuse, and what the operator's allowed networks let through."""

from __future__ import annotations

from ipaddress import ip_address, ip_network
from pathlib import Path

import pytest

from server.outbound import kind_of, refusal


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata services
        ("fe80::1", "link-local"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("100.127.255.254", "shared (CGNAT)"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("fc00::1", "unique-local"),
        ("fd12:3456::1", "unique-local"),
        ("fec0::1", "site-local"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.10", "private"),  # documentation range: never a real peer
        ("198.18.0.1", "private"),  # benchmarking range
        # IPv6 spellings of IPv4 addresses are judged by the IPv4 address the network carries them to.
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
    ],
)
def test_non_public_addresses_are_refused_by_default(address, kind):
    assert kind_of(ip_address(address)) == kind
    assert refusal(ip_address(address), ()) == kind


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "1.1.1.1", "100.63.255.255", "100.128.0.1", "2606:4700::1111", "::ffff:1.1.1.1"]
)
def test_public_addresses_pass(address):
    assert kind_of(ip_address(address)) is None
    assert refusal(ip_address(address), ()) is None


def test_allowed_networks_let_exactly_their_addresses_through():
    allowed = (ip_network("127.0.0.0/8"), ip_network("10.1.0.0/16"))
    assert refusal(ip_address("127.0.0.1"), allowed) is None
    assert refusal(ip_address("10.1.200.3"), allowed) is None
    assert refusal(ip_address("::ffff:127.0.0.1"), allowed) is None  # the same address, spelled in IPv6
    assert refusal(ip_address("10.2.0.1"), allowed) == "private"
    assert refusal(ip_address("::1"), allowed) == "loopback"  # IPv6 loopback is a network of its own
    assert refusal(ip_address("169.254.169.254"), allowed) == "link-local"
    assert refusal(ip_address("::1"), (ip_network("::1/128"),)) is None


def test_every_client_for_other_servers_comes_from_the_one_factory():
    server = Path(__file__).resolve().parents[2] / "server"
    # demo.py drives the two demo instances it started, as a person with curl would; it is not Kith reaching out.
    exempt = {server / "outbound.py", server / "demo.py"}
    for path in sorted(server.rglob("*.py")):
        if path in exempt:
            continue
        text = path.read_text(encoding="utf-8")
        for construction in ("AsyncClient(", "httpx.Client(", "AsyncHTTPTransport(", "AsyncConnectionPool("):
            assert construction not in text, f"{path.relative_to(server)} builds its own client: use server.outbound"
        if "AsyncOAuth2Client(" in text:
            assert "transport=outbound.transport(" in text, f"{path.relative_to(server)}: OAuth client unchecked"
