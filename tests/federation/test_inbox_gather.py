"""The worker's inbox step under a steady stream, on both databases: after a batch short of full it lets what
arrives gather before it claims again, and after a full one it goes on at once; either way each item is applied
once."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import func, select

from server.db import create_engine, create_sessionmaker
from server.federation import processing
from server.federation.inbox_store import InboxWriter
from server.federation.processing import BATCH, InboxProcessor
from server.models import InboxItem
from server.settings import Settings

HOST = "peer.test"


async def arrive(writer: InboxWriter, count: int) -> list[str]:
    """`count` activities stored as the inbox stores them; each is one the worker refuses (a verb it does not
    take), which is all the step needs to claim and settle it."""
    uris = [f"http://{HOST}/activities/{uuid.uuid4()}" for _ in range(count)]
    payloads = [{"id": uri, "type": "Listen", "actor": f"http://{HOST}/u/sam", "object": uri} for uri in uris]
    await asyncio.gather(*(writer.store(uri, HOST, payload) for uri, payload in zip(uris, payloads, strict=True)))
    return uris


async def pending(sessions) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).where(InboxItem.state == "pending"))


def test_after_a_short_batch_the_step_gathers_before_claiming_and_after_a_full_one_it_claims_at_once(
    fresh_database, tmp_path, monkeypatch
):
    monkeypatch.setattr(processing, "GATHER_SECONDS", 3600.0)  # longer than the test: the pause cannot run out

    settings = Settings(
        base_url="http://127.0.0.1:8000", instance_name="Kith Test", data_dir=tmp_path,
        database_url=fresh_database, secret_key="test-secret",
    )  # fmt: skip

    async def work() -> None:
        engine = create_engine(fresh_database)
        sessions = create_sessionmaker(engine)
        writer = InboxWriter(engine)
        try:
            async with httpx.AsyncClient() as client:
                step = InboxProcessor(settings, sessions, client)
                await arrive(writer, 3)
                assert await step() == 3
                await arrive(writer, 2)
                assert await step() == 0  # gathering: the two wait for the next claim
                assert await pending(sessions) == 2
                # Another worker (or this one, once its pause is over) claims what gathered, in one batch.
                other = InboxProcessor(settings, sessions, client)
                await arrive(writer, BATCH + 3)
                assert await other() == BATCH
                assert await other() == 5  # a full batch is followed by the next claim at once
                assert await pending(sessions) == 0
                async with sessions() as session:
                    outcomes = await session.execute(select(InboxItem.state, func.count()).group_by(InboxItem.state))
                    assert dict(outcomes.all()) == {"rejected": BATCH + 8}
        finally:
            await engine.dispose()

    asyncio.run(work())
