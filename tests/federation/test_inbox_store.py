"""The inbox's writer against a real database, on both backends: the rows of requests that arrive together share
a transaction, each caller returns only once its own row is committed, and a row the database refuses costs the
others of its transaction nothing."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError

from server.db import create_engine
from server.federation.inbox_store import InboxWriter
from server.models import InboxItem

HOST = "peer.test"


def activity_uri() -> str:
    return f"http://{HOST}/activities/{uuid.uuid4()}"


def payload(uri: str) -> dict:
    return {"id": uri, "type": "Create", "actor": f"http://{HOST}/u/sam"}


async def stored(engine, uris: list[str]) -> dict[str, int]:
    """How many rows each of `uris` has, read on a connection of its own (what another process would see)."""
    async with engine.connect() as connection:
        query = (
            select(InboxItem.activity_uri, func.count())
            .where(InboxItem.activity_uri.in_(uris))
            .group_by(InboxItem.activity_uri)
        )
        found = dict((await connection.execute(query)).all())
    return {uri: found.get(uri, 0) for uri in uris}


def commits_of(engine) -> list[int]:
    """A list that grows by one for each transaction `engine` commits."""
    commits: list[int] = []
    event.listen(engine.sync_engine, "commit", lambda _connection: commits.append(1))
    return commits


@pytest.fixture
def engines(database_url):
    """The writer's engine and a second one to read with, as another process would; disposed after the test."""
    made = []

    def make():
        made.append(create_engine(database_url))
        return made[-1]

    yield make
    for engine in made:
        asyncio.run(engine.dispose())


def test_requests_that_arrive_together_share_a_transaction_and_each_returns_once_its_row_is_committed(engines):
    async def work() -> None:
        engine, reader = engines(), engines()
        writer = InboxWriter(engine)
        commits = commits_of(engine)
        uris = [activity_uri() for _ in range(40)]
        seen_on_return: dict[str, int] = {}

        async def request(uri: str) -> None:
            await writer.store(uri, HOST, payload(uri))
            seen_on_return.update(await stored(reader, [uri]))

        await asyncio.gather(*(request(uri) for uri in uris))
        assert seen_on_return == {uri: 1 for uri in uris}
        assert 1 <= len(commits) < len(uris)

    asyncio.run(work())


def test_an_activity_sent_again_in_the_same_transaction_or_a_later_one_is_stored_once(engines):
    async def work() -> None:
        engine, reader = engines(), engines()
        writer = InboxWriter(engine)
        uris = [activity_uri() for _ in range(10)]
        await asyncio.gather(*(writer.store(uri, HOST, payload(uri)) for uri in uris + uris))
        await asyncio.gather(*(writer.store(uri, HOST, payload(uri)) for uri in uris[:5]))
        assert await stored(reader, uris) == {uri: 1 for uri in uris}

    asyncio.run(work())


def test_a_row_the_database_refuses_fails_only_its_own_request_and_the_others_are_stored_once(engines):
    async def work() -> None:
        engine, reader = engines(), engines()
        writer = InboxWriter(engine)
        commits = commits_of(engine)
        good = [activity_uri() for _ in range(20)]
        refused = activity_uri()
        requests = [writer.store(uri, HOST, payload(uri)) for uri in good[:10]]
        # NOT NULL on both backends: the database itself refuses the row, in the middle of the transaction.
        requests.append(writer.store(refused, None, payload(refused)))  # type: ignore[arg-type]
        requests += [writer.store(uri, HOST, payload(uri)) for uri in good[10:]]
        outcomes = await asyncio.gather(*requests, return_exceptions=True)
        assert [type(outcome) for outcome in outcomes] == [type(None)] * 10 + [IntegrityError] + [type(None)] * 10
        assert await stored(reader, [*good, refused]) == {**{uri: 1 for uri in good}, refused: 0}
        # The transaction of all 21 failed; then each row was written alone.
        assert len(commits) == len(good)
        # The writer goes on: a later request is stored as usual.
        later = activity_uri()
        await writer.store(later, HOST, payload(later))
        assert await stored(reader, [later]) == {later: 1}

    asyncio.run(work())


def test_a_request_that_goes_away_before_its_commit_still_leaves_its_row_and_the_others_theirs(engines):
    async def work() -> None:
        engine, reader = engines(), engines()
        writer = InboxWriter(engine)
        uris = [activity_uri() for _ in range(10)]
        requests = [asyncio.create_task(writer.store(uri, HOST, payload(uri))) for uri in uris]
        await asyncio.sleep(0)  # every request has handed its row over
        requests[3].cancel()
        outcomes = await asyncio.gather(*requests, return_exceptions=True)
        assert isinstance(outcomes[3], asyncio.CancelledError)
        await writer.close()
        # Not acknowledged, yet written: the peer sends it again, and the repeat is a no-op.
        assert await stored(reader, uris) == {uri: 1 for uri in uris}

    asyncio.run(work())
