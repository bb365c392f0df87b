"""Outbound connections refuse private addresses at connect time, against real servers on loopback.

Each server counts the connections it accepts, so "refused" means nothing ever reached it.
"""

from __future__ import annotations

import asyncio
import datetime
import http.server
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import replace
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from litestar.testing import TestClient

from server import outbound
from server.app import create_app
from server.federation import signatures
from server.federation.fetch import Fetcher, FetchError, make_client
from server.settings import Settings

LOOPBACK_V4 = ("127.0.0.0/8",)


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server naming
        body = json.dumps({"id": f"http://{self.headers['Host']}{self.path}", "type": "Note"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/activity+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class CountingServer(http.server.ThreadingHTTPServer):
    """An HTTP server that counts every TCP connection it accepts."""

    def __init__(self, host: str, family: socket.AddressFamily = socket.AF_INET) -> None:
        self.address_family = family
        self.connections = 0
        super().__init__((host, 0), _Answer)
        self.port = self.server_address[1]

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.connections += 1
        return True

    def __enter__(self) -> CountingServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def v4() -> Iterator[CountingServer]:
    with CountingServer("127.0.0.1") as server:
        yield server


@pytest.fixture
def v6() -> Iterator[CountingServer]:
    with CountingServer("::1", socket.AF_INET6) as server:
        yield server


def _settings(*peers: str, allowed: tuple[str, ...] = ()) -> Settings:
    return Settings(base_url="http://kith.test", peers=peers, allowed_private_networks=allowed)


async def _fetch(settings: Settings, url: str) -> dict[str, Any]:
    private_pem, _ = _keys()
    async with make_client(settings) as client:
        return await Fetcher(settings, client, "http://kith.test/actor#main-key", private_pem).get_json(url)


_KEYS: list[tuple[str, str]] = []


def _keys() -> tuple[str, str]:
    if not _KEYS:
        _KEYS.append(signatures.generate_keypair())
    return _KEYS[0]


def test_a_fetch_from_a_loopback_peer_is_refused_and_never_connects(v4):
    url = f"http://127.0.0.1:{v4.port}/actor"
    with pytest.raises(FetchError, match="127.0.0.1 is a loopback address"):
        asyncio.run(_fetch(_settings(url), url))
    assert v4.connections == 0


def test_a_name_that_resolves_to_loopback_is_refused(v4):
    url = f"http://localhost:{v4.port}/actor"
    with pytest.raises(FetchError, match="refusing to connect to localhost: 127.0.0.1 is a loopback address"):
        asyncio.run(_fetch(_settings(url), url))
    assert v4.connections == 0


def test_the_operator_can_allow_loopback(v4):
    for url in (f"http://127.0.0.1:{v4.port}/actor", f"http://localhost:{v4.port}/actor"):
        assert asyncio.run(_fetch(_settings(url, allowed=LOOPBACK_V4), url))["type"] == "Note"
    assert v4.connections == 2


def test_ipv6_loopback_and_ipv4_mapped_loopback_are_refused(v4, v6):
    mapped = f"http://[::ffff:127.0.0.1]:{v4.port}/actor"
    with pytest.raises(FetchError, match="::ffff:127.0.0.1 is a loopback address"):
        asyncio.run(_fetch(_settings(mapped), mapped))
    ipv6 = f"http://[::1]:{v6.port}/actor"
    for allowed in ((), LOOPBACK_V4):  # allowing IPv4 loopback does not open IPv6's
        with pytest.raises(FetchError, match="::1 is a loopback address"):
            asyncio.run(_fetch(_settings(ipv6, allowed=allowed), ipv6))
    assert v4.connections == 0 and v6.connections == 0
    assert asyncio.run(_fetch(_settings(ipv6, allowed=("::1/128",)), ipv6))["type"] == "Note"
    assert v6.connections == 1


class _Recording(httpcore.AsyncNetworkBackend):
    """Opens real connections and notes the host each was opened to."""

    def __init__(self) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.hosts: list[str] = []

    async def connect_tcp(self, host: str, port: int, **options: Any) -> httpcore.AsyncNetworkStream:
        self.hosts.append(host)
        return await self.inner.connect_tcp(host, port, **options)


def test_the_connection_goes_to_the_address_that_was_checked_not_to_the_name_again(v4):
    # A rebinding DNS server answers a public address to the check and a private one to the connect: here the
    # name is resolved once, and the socket is opened to the address that was checked.
    recording = _Recording()
    backend = outbound.GuardedBackend([ip_network("127.0.0.0/8")], inner=recording)

    async def connect() -> None:
        stream = await backend.connect_tcp("localhost", v4.port, timeout=5)
        await stream.aclose()

    asyncio.run(connect())
    assert recording.hosts == ["127.0.0.1"]
    assert v4.connections == 1


# --- TLS: the address is checked, the certificate is still checked against the name ----------------------


def _certificate(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate it signed for the name `localhost` only (not for 127.0.0.1)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Kith test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


def test_tls_is_verified_against_the_host_name_while_the_checked_address_is_dialled(tmp_path):
    ca, cert, key = _certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(ca))
    with CountingServer("127.0.0.1") as server:
        server.socket = server_context.wrap_socket(server.socket, server_side=True)

        async def get(url: str) -> httpx.Response:
            transport = outbound.GuardedTransport([ip_network("127.0.0.0/8")], ssl_context=client_context)
            async with httpx.AsyncClient(transport=transport) as client:
                return await client.get(url)

        assert asyncio.run(get(f"https://localhost:{server.port}/x")).status_code == 200
        # The same server by its address: the certificate does not name it, so TLS fails as it should.
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            asyncio.run(get(f"https://127.0.0.1:{server.port}/x"))


# --- an inbound request whose key would have to be fetched from a refused address --------------------------


def test_an_inbox_post_whose_key_lives_at_a_refused_address_is_a_401_not_a_500(settings, v4):
    peer = f"http://127.0.0.1:{v4.port}"
    app = create_app(replace(settings, peers=(peer,), allowed_private_networks=()))
    body = json.dumps({"id": f"{peer}/activities/1", "type": "Delete", "actor": f"{peer}/actor"}).encode()
    headers = signatures.sign_request(
        "POST", f"{settings.base_url}/inbox", body, f"{peer}/actor#main-key", _keys()[0],
        {"Content-Type": "application/activity+json"},
    )  # fmt: skip
    with TestClient(app=app, base_url=settings.base_url) as client:
        response = client.post("/inbox", content=body, headers=headers)
        assert response.status_code == 401, response.text
        assert client.get("/healthz").status_code == 200
    assert v4.connections == 0
