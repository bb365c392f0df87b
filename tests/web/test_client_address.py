"""Whose address a limit counts, against a real `kith serve` process on loopback.

X-Forwarded-For names the client only when the direct peer is a trusted proxy (settings.trusted_proxies),
and then its rightmost hop that is not a trusted proxy: what a client writes to the left of it is its own
invention. The API's search limit (per client address) shows which address was counted. The database plays
no part here, so these run on SQLite only.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.server import KithServer


def search(kith: KithServer, forwarded_for: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    response = httpx.get(f"{kith.base_url}/api/v1/search", params={"q": "compost"}, headers=headers, trust_env=False)
    if response.status_code == 429:
        assert int(response.headers["retry-after"]) >= 1
    return response.status_code


@pytest.fixture(scope="module")
def behind_proxy() -> Iterator[KithServer]:
    """Loopback is the trusted proxy (the default): the tests' own requests play the reverse proxy."""
    with KithServer(worker=False, env={"KITH_LIMIT_SEARCH": "2/hour"}) as kith:
        yield kith


@pytest.fixture(scope="module")
def direct() -> Iterator[KithServer]:
    """No proxy trusted: clients connect directly, and any X-Forwarded-For they send is theirs to make up."""
    with KithServer(worker=False, env={"KITH_LIMIT_SEARCH": "2/hour", "KITH_TRUSTED_PROXIES": ""}) as kith:
        yield kith


def test_a_forwarded_for_header_from_an_untrusted_client_is_ignored(direct):
    statuses = [search(direct, f"198.51.100.{n}") for n in range(1, 4)]
    assert 429 not in statuses[:2] and statuses[2] == 429  # three made-up addresses, one real client


def test_behind_a_trusted_proxy_each_forwarded_client_counts_on_its_own(behind_proxy):
    assert 429 not in [search(behind_proxy, "203.0.113.5") for _ in range(2)]
    assert search(behind_proxy, "203.0.113.5") == 429
    assert search(behind_proxy, "203.0.113.6") != 429  # a different client behind the same proxy
    # What the client wrote to the left of the address the proxy saw changes nothing.
    assert search(behind_proxy, "192.0.2.1, 203.0.113.5") == 429
    assert search(behind_proxy, "192.0.2.2, 127.0.0.1, 203.0.113.5") == 429
