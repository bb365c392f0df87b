"""Inbox POSTs are limited per peer host, on both databases, with requests signed as a real peer signs them
(the peers and their cached keys as in test_inbox_hostile.py). A peer over its allowance gets 429 and
Retry-After, which delivering peers honour by trying again later."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy import delete

from server.app import create_app
from server.models import InboxItem
from server.ratelimit import Limiter
from server.settings import Settings
from tests.federation.test_inbox_hostile import OTHER, PEER, Instance, _seed_peers, activity, alice
from tests.support.limits import Clock


@dataclass
class Peered:
    instance: Instance
    clock: Clock
    sent: list[str] = field(default_factory=list)

    def send(self, signer: str = PEER, **kwargs) -> tuple[str, httpx.Response]:  # type: ignore[no-untyped-def]
        payload = activity("Create", f"{signer}/guides/{len(self.sent)}", actor=alice(signer))
        self.sent.append(payload["id"])
        return payload["id"], self.instance.deliver(payload, signer=signer, **kwargs)


@pytest.fixture
def limited(settings: Settings) -> Iterator[Peered]:
    peered = replace(settings, peers=(PEER, OTHER), rate_limits=replace(settings.rate_limits, inbox="3/minute"))
    clock = Clock()
    app = create_app(peered)
    app.state.limiter = Limiter(peered.rate_limits, clock=clock)
    with TestClient(app=app, base_url=peered.base_url) as client:
        instance = Instance(peered, client)
        original = client.app.state.http_client
        client.app.state.http_client = httpx.AsyncClient(transport=httpx.MockTransport(instance.record))
        instance.run(_seed_peers)
        peered_instance = Peered(instance, clock)
        try:
            yield peered_instance
        finally:
            client.blocking_portal.call(client.app.state.http_client.aclose)
            client.app.state.http_client = original
            # Stored but never processed here: no other test's worker step should meet them.
            instance.run(lambda s: s.execute(delete(InboxItem).where(InboxItem.activity_uri.in_(peered_instance.sent))))


def test_a_peer_over_its_inbox_allowance_gets_429_with_retry_after_and_nothing_is_stored(limited):
    for _ in range(3):
        assert limited.send()[1].status_code == 202
    uri, refused = limited.send()
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert limited.instance.items(uri) == 0
    # Another peer has its own allowance.
    assert limited.send(signer=OTHER)[1].status_code == 202
    # After the window the peer's retry is taken.
    limited.clock.now += int(refused.headers["retry-after"])
    uri, retried = limited.send()
    assert retried.status_code == 202 and limited.instance.items(uri) == 1
    assert limited.instance.outbound == []


def test_requests_that_fail_verification_do_not_spend_a_peers_allowance(limited):
    """Someone who names a peer's key but cannot sign with it must not be able to silence that peer."""
    for _ in range(10):
        forged = json.dumps(activity("Create", f"{PEER}/guides/forged", actor=alice(PEER))).encode()
        _, response = limited.send(sent_body=forged)  # signed for another body
        assert response.status_code == 401
    for _ in range(3):
        assert limited.send()[1].status_code == 202
    assert limited.send()[1].status_code == 429
