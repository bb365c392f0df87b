"""Several `kith worker` processes on one PostgreSQL database share its queues: each delivery is sent once.

The workers claim rows with FOR UPDATE SKIP LOCKED (server/jobs.py `claim`); here two real worker processes drain
one queue of deliveries to a peer that records every POST, and every activity arrives exactly once.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from server.db import create_engine, create_sessionmaker
from server.models import Activity, Delivery
from tests.support import postgres
from tests.support.fake_peer import FakePeer
from tests.support.server import KithServer
from tests.support.wait import eventually
from tests.support.workers import start_worker, stop_all

QUEUED = 300


@pytest.fixture(scope="module")
def setup() -> Iterator[tuple[KithServer, FakePeer, list[subprocess.Popen[bytes]]]]:
    with postgres.fresh_database() as url, FakePeer() as peer:
        server = KithServer(database_url=url, worker=False, env={"KITH_PEERS": peer.base_url})
        workers: list[subprocess.Popen[bytes]] = []
        try:
            server.start()
            workers.append(start_worker(server, "worker-1"))
            workers.append(start_worker(server, "worker-2"))
            yield server, peer, workers
        finally:
            stop_all(workers)
            server.close()


async def queue_deliveries(server: KithServer, peer: FakePeer) -> list[str]:
    """QUEUED activities, each with a delivery to the peer's inbox, in one transaction: both workers find them due.

    As `server.federation.outbox.publish` queues them for a following peer (the workers' own peer sync only
    follows the peer, which never accepts here)."""
    engine = create_engine(server.database_url)
    actor = f"{server.base_url}/actor"
    uris = [f"{server.base_url}/activities/queued-{n}" for n in range(QUEUED)]
    try:
        async with create_sessionmaker(engine)() as session:
            activities = [
                Activity(
                    uri=uri,
                    type="Create",
                    actor_uri=actor,
                    object_type="guide",
                    object_uri=f"{uri}/object",
                    community_uri=None,
                    public=True,
                    payload={"id": uri, "type": "Create", "actor": actor},
                )  # fmt: skip
                for uri in uris
            ]
            session.add_all(activities)
            await session.flush()
            session.add_all(
                Delivery(activity_seq=row.seq, inbox_url=f"{peer.base_url}/inbox", peer_host=peer.host)
                for row in activities
            )
            await session.commit()
        return uris
    finally:
        await engine.dispose()


async def delivery_states(server: KithServer, uris: set[str]) -> Counter[str]:
    engine = create_engine(server.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            states = await session.scalars(
                select(Delivery.state)
                .join(Activity, Activity.seq == Delivery.activity_seq)
                .where(Activity.uri.in_(uris))
            )
            return Counter(states)
    finally:
        await engine.dispose()


def test_two_workers_deliver_each_queued_activity_exactly_once(setup):
    server, peer, workers = setup
    uris = set(asyncio.run(queue_deliveries(server, peer)))
    received = lambda: Counter(body.get("id") for body in list(peer.posted) if body.get("id") in uris)  # noqa: E731
    eventually(lambda: set(received()) == uris, timeout=60, message="not every queued activity arrived")
    eventually(lambda: asyncio.run(delivery_states(server, uris)) == Counter({"sent": QUEUED}), timeout=15)
    assert all(process.poll() is None for process in workers)  # both still running: neither took the queue alone
    assert set(received().values()) == {1}
