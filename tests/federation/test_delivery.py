"""Delivery outcomes against a real HTTP inbox on loopback that answers what each test needs."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from email.utils import format_datetime

import pytest
from sqlalchemy import select

from server.db import create_engine, create_sessionmaker, utcnow
from server.federation.delivery import Deliverer, classify
from server.federation.fetch import make_client
from server.federation.signatures import key_owner, verify_request
from server.models import Activity, Delivery
from tests.support.server import free_port


class _Inbox(http.server.BaseHTTPRequestHandler):
    status = 202
    answer_headers: dict[str, str] = {}
    received: list[tuple[str, dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server naming
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        type(self).received.append((self.path, dict(self.headers), body))
        self.send_response(type(self).status)
        for name, value in type(self).answer_headers.items():
            self.send_header(name, value)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[str, type[_Inbox]]]:
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Inbox)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}", _Inbox
    server.shutdown()


async def _deliver_once(
    settings, peer_url: str, status: int, inbox_cls, inbox_url: str | None = None, actor: str | None = None
) -> Delivery:
    inbox_cls.status = status
    actor = actor or f"{settings.base_url}/u/ada"
    settings = replace(settings, peers=(peer_url,))
    engine = create_engine(settings.database_url)
    sessions = create_sessionmaker(engine)
    host = peer_url.removeprefix("http://")
    try:
        async with sessions() as session:
            activity = Activity(
                uri=f"{settings.base_url}/activities/test-{utcnow().timestamp()}-{status}", type="Create",
                actor_uri=actor, object_type="guide", object_uri="x", public=True,
                payload={"id": "x", "type": "Create", "actor": actor},
            )  # fmt: skip
            session.add(activity)
            await session.flush()
            delivery = Delivery(activity_seq=activity.seq, inbox_url=inbox_url or f"{peer_url}/inbox", peer_host=host)
            session.add(delivery)
            await session.commit()
            delivery_id = delivery.id
        async with make_client(settings) as client:
            await Deliverer(settings, sessions, client)()
        async with sessions() as session:
            return await session.scalar(select(Delivery).where(Delivery.id == delivery_id))
    finally:
        await engine.dispose()


def test_success_marks_sent_and_request_is_signed(settings, inbox):
    url, inbox_cls = inbox
    inbox_cls.received.clear()
    delivery = asyncio.run(_deliver_once(settings, url, 202, inbox_cls))
    assert delivery.state == "sent" and delivery.sent_at is not None
    path, headers, body = inbox_cls.received[-1]
    assert path == "/inbox"
    assert headers["Content-Type"] == "application/activity+json"
    # Signed by the activity's own actor, not by the instance on its behalf.
    assert key_owner(_key_id(headers["Signature"])) == f"{settings.base_url}/u/ada"

    async def verify():
        from server.federation.keys import local_key

        engine = create_engine(settings.database_url)
        async with create_sessionmaker(engine)() as session:
            pem = (await local_key(session, f"{settings.base_url}/u/ada")).public_key_pem
        await engine.dispose()

        async def get_key(key_id: str, refresh: bool) -> str:
            return pem

        return await verify_request("POST", "/inbox", headers, body, get_key, url_scheme="http")

    assert asyncio.run(verify()).key_id == f"{settings.base_url}/u/ada#main-key"


def test_a_key_made_by_another_worker_at_the_same_moment_loses_no_delivery(settings, inbox, monkeypatch):
    """Two workers signing for a new actor both insert its key; the loser's `local_key` rolls its session back."""
    from server.federation import delivery as delivery_module

    made_elsewhere = delivery_module.local_key

    async def lost_the_race(session, actor_uri):
        await session.rollback()
        return await made_elsewhere(session, actor_uri)

    monkeypatch.setattr(delivery_module, "local_key", lost_the_race)
    url, inbox_cls = inbox
    inbox_cls.received.clear()
    delivery = asyncio.run(_deliver_once(settings, url, 202, inbox_cls))
    assert delivery.state == "sent" and len(inbox_cls.received) == 1


def test_an_activity_whose_actor_is_not_local_is_never_sent(settings, inbox):
    url, inbox_cls = inbox
    inbox_cls.received.clear()
    delivery = asyncio.run(_deliver_once(settings, url, 202, inbox_cls, actor="http://elsewhere.example/u/eve"))
    assert inbox_cls.received == []
    assert delivery.state == "failed" and "not a local actor" in delivery.last_error


def test_server_error_is_retried_with_backoff(settings, inbox):
    url, inbox_cls = inbox
    delivery = asyncio.run(_deliver_once(settings, url, 500, inbox_cls))
    assert delivery.state == "pending" and delivery.attempts == 1
    assert "HTTP 500" in delivery.last_error
    assert delivery.next_attempt_at > utcnow() + timedelta(seconds=20)


@pytest.mark.parametrize("retry_after", ["900", "http-date"])
def test_a_peer_that_answers_429_is_tried_again_no_sooner_than_its_retry_after(settings, inbox, retry_after):
    url, inbox_cls = inbox
    if retry_after == "http-date":
        retry_after = format_datetime(utcnow() + timedelta(seconds=900), usegmt=True)
    inbox_cls.answer_headers = {"Retry-After": retry_after}
    try:
        delivery = asyncio.run(_deliver_once(settings, url, 429, inbox_cls))
    finally:
        inbox_cls.answer_headers = {}
    assert delivery.state == "pending" and "HTTP 429" in delivery.last_error
    assert delivery.next_attempt_at > utcnow() + timedelta(seconds=800)  # not the first backoff's 30 s


def test_gone_is_permanent(settings, inbox):
    url, inbox_cls = inbox
    delivery = asyncio.run(_deliver_once(settings, url, 410, inbox_cls))
    assert delivery.state == "failed" and "HTTP 410" in delivery.last_error


def test_unreachable_peer_is_retried(settings):
    delivery = asyncio.run(_deliver_once(settings, f"http://127.0.0.1:{free_port()}", 0, _Inbox))
    assert delivery.state == "pending" and delivery.attempts == 1
    assert delivery.last_error


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, (True, False)), (202, (True, False)), (400, (False, True)), (403, (False, True)), (410, (False, True)),
     (401, (False, False)), (408, (False, False)), (429, (False, False)), (500, (False, False)), (503, (False, False))],
)  # fmt: skip
def test_classification(status, outcome):
    assert classify(status) == outcome


def _key_id(signature: str) -> str:
    return signature.split('keyId="', 1)[1].split('"', 1)[0]


def test_an_inbox_that_is_not_on_the_peers_host_receives_nothing(settings, inbox):
    url, inbox_cls = inbox
    inbox_cls.received.clear()
    peer = f"http://127.0.0.1:{free_port()}"  # the configured peer, whose row names an inbox on another port
    delivery = asyncio.run(_deliver_once(settings, peer, 202, inbox_cls, inbox_url=f"{url}/inbox"))
    assert inbox_cls.received == []
    assert delivery.state == "failed" and "not on the peer's host" in delivery.last_error


def test_a_delivery_to_a_refused_address_is_a_failed_attempt_and_nothing_arrives(settings, inbox):
    url, inbox_cls = inbox
    inbox_cls.received.clear()
    refusing = replace(settings, allowed_private_networks=())
    delivery = asyncio.run(_deliver_once(refusing, url, 202, inbox_cls))
    assert inbox_cls.received == []
    # As for an unreachable peer: retried later, in case the operator meant to allow the network.
    assert delivery.state == "pending" and delivery.attempts == 1
    assert "127.0.0.1 is a loopback address" in delivery.last_error


def test_a_batch_records_the_peers_last_success_and_its_last_error(settings, inbox):
    """The peer's health is written once per batch, after the deliveries' commit, and says what happened."""
    from server.models import Peer

    url, inbox_cls = inbox
    host = url.removeprefix("http://")

    async def peer() -> Peer:
        engine = create_engine(settings.database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                found = await session.scalar(select(Peer).where(Peer.host == host))
                if found is None:
                    found = Peer(host=host, base_url=url)
                    session.add(found)
                    await session.commit()
                return found
        finally:
            await engine.dispose()

    asyncio.run(peer())
    before = utcnow()
    asyncio.run(_deliver_once(settings, url, 202, inbox_cls))
    succeeded = asyncio.run(peer())
    assert succeeded.last_success_at is not None and succeeded.last_success_at >= before
    asyncio.run(_deliver_once(settings, url, 503, inbox_cls))
    failed = asyncio.run(peer())
    assert "HTTP 503" in (failed.last_error or "") and failed.last_error_at >= before
    assert failed.last_success_at == succeeded.last_success_at
