"""A Kith server killed while a peer's activities pour into its inbox, on both databases: every activity it
answered 202 is stored, and once the peer sends everything again, each is stored and applied exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from server.db import create_engine
from server.settings import normalize_database_url
from tests.support import postgres
from tests.support.fake_peer import FakePeer
from tests.support.server import KithServer
from tests.support.wait import eventually

ACTIVITIES = 300
KILL_AFTER = 40  # acknowledged activities before the kill: the rest are in flight, in batches or not yet sent


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def instance(request: pytest.FixtureRequest) -> Iterator[tuple[FakePeer, KithServer]]:
    with (
        postgres.database_for(request.param) as database_url,
        FakePeer() as peer,
        KithServer(database_url=database_url, env={"KITH_PEERS": peer.base_url}) as kith,
    ):
        yield peer, kith


def create(peer: FakePeer, obj: dict[str, Any], actor: str) -> dict[str, Any]:
    return peer.activity("Create", {key: value for key, value in obj.items() if key != "@context"}, actor)


async def send_all(
    inbox: str, signed: list[tuple[bytes, dict[str, str]]], on_acknowledged=None
) -> dict[int, int | None]:
    """POST each signed activity at once, side by side; the status each got (None: no answer)."""
    statuses: dict[int, int | None] = {}
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def send(n: int, body: bytes, headers: dict[str, str]) -> None:
            try:
                statuses[n] = (await client.post(inbox, content=body, headers=headers)).status_code
            except httpx.TransportError:
                statuses[n] = None
                return
            if statuses[n] == 202 and on_acknowledged is not None:
                on_acknowledged()

        await asyncio.gather(*(send(n, body, headers) for n, (body, headers) in enumerate(signed)))
    return statuses


def counts(kith: KithServer, prefix: str, uris: list[str]) -> dict[str, int]:
    """Read from the instance's database: rows per activity in the inbox, and how the peer's items and guides stand."""

    async def read() -> dict[str, int]:
        engine = create_engine(normalize_database_url(kith.database_url))
        try:
            async with engine.connect() as connection:
                rows = dict(
                    (
                        await connection.execute(
                            text("SELECT activity_uri, count(*) FROM inbox_items WHERE activity_uri LIKE :p"
                                 " GROUP BY activity_uri"),
                            {"p": f"{prefix}%"},
                        )
                    ).all()
                )  # fmt: skip
                guides = (
                    await connection.execute(
                        text("SELECT count(*), count(DISTINCT uri) FROM guides WHERE uri LIKE :p"), {"p": f"{prefix}%"}
                    )
                ).one()
                pending = (
                    await connection.execute(
                        text("SELECT count(*) FROM inbox_items WHERE activity_uri LIKE :p AND state <> 'done'"),
                        {"p": f"{prefix}%"},
                    )
                ).scalar_one()
        finally:
            await engine.dispose()
        return {
            "stored once": sum(1 for uri in uris if rows.get(uri) == 1),
            "stored twice": sum(1 for uri in uris if rows.get(uri, 0) > 1),
            "guides": guides[0],
            "distinct guides": guides[1],
            "not done": pending,
        }

    return asyncio.run(read())


def test_a_crash_while_activities_arrive_loses_none_it_acknowledged_and_a_resend_applies_each_once(instance):
    peer, kith = instance
    inbox = f"{kith.base_url}/inbox"
    group = peer.actor("/c/crash", "Group", name="Crash circle")
    person = peer.actor("/u/kim", "Person", name="Kim")
    body, headers = peer.signed(inbox, create(peer, group, group["id"]))
    assert httpx.post(inbox, content=body, headers=headers, timeout=30).status_code == 202
    activities = [
        create(peer, peer.article(group["id"], person, f"Crash guide {n}"), person["id"]) for n in range(ACTIVITIES)
    ]
    signed = [peer.signed(inbox, activity) for activity in activities]
    uris = [activity["id"] for activity in activities]
    acknowledged = 0

    def count_and_kill() -> None:
        nonlocal acknowledged
        acknowledged += 1
        if acknowledged == KILL_AFTER:
            kith.kill()  # SIGKILL: rows waiting for their transaction, or in one, die with the process

    statuses = asyncio.run(send_all(inbox, signed, count_and_kill))
    answered = [n for n, status in statuses.items() if status == 202]
    assert len(answered) >= KILL_AFTER
    assert len(answered) < ACTIVITIES, "the server was killed only after every activity was answered"
    assert set(statuses.values()) <= {202, None}

    stored = counts(kith, peer.base_url, [uris[n] for n in answered])
    assert stored["stored once"] == len(answered)  # acknowledged means committed

    kith.start()
    again = asyncio.run(send_all(inbox, signed))
    assert set(again.values()) == {202}
    eventually(
        # Items the killed worker held wait for its lease (two minutes) to run out.
        lambda: counts(kith, peer.base_url, uris)["not done"] == 0,
        timeout=300,
        message="not every activity applied",
    )
    assert counts(kith, peer.base_url, uris) == {
        "stored once": ACTIVITIES,
        "stored twice": 0,
        "guides": ACTIVITIES,
        "distinct guides": ACTIVITIES,
        "not done": 0,
    }
