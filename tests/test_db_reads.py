"""`fetch_all` on each backend: `one_of` lists, what a read sees, and PostgreSQL's read pool (a lost connection,
the engine's disposal)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from sqlalchemy import select

from server.db import create_engine, create_sessionmaker, fetch_all
from server.db.one_of import one_of
from server.models import Community
from tests.conftest import migrated_database

BY_SLUG = select(Community.slug).where(one_of(Community.slug, "slugs")).order_by(Community.slug)


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _add_communities(engine, slugs: list[str]) -> None:  # type: ignore[no-untyped-def]
    async with create_sessionmaker(engine)() as session:
        for slug in slugs:
            uri = f"http://127.0.0.1:8000/c/{slug}"
            session.add(Community(slug=slug, name=slug, instance="127.0.0.1:8000", uri=uri, url=uri))
        await session.commit()


def test_one_of_finds_what_in_finds_for_any_length_of_list(fresh_database: str) -> None:
    async def check() -> None:
        engine = create_engine(fresh_database)
        try:
            await _add_communities(engine, ["a-one", "b-two", "c-three"])
            for slugs, expected in (
                (["b-two"], ["b-two"]),
                (["c-three", "a-one", "missing"], ["a-one", "c-three"]),
                ([], []),
            ):
                assert [row[0] for row in await fetch_all(engine, BY_SLUG, {"slugs": slugs})] == expected
                async with create_sessionmaker(engine)() as session:
                    assert list(await session.scalars(BY_SLUG, {"slugs": slugs})) == expected
        finally:
            await engine.dispose()

    asyncio.run(check())


def test_a_read_sees_what_was_committed_before_it_and_holds_no_transaction(fresh_database: str) -> None:
    async def check() -> None:
        engine = create_engine(fresh_database)
        try:
            assert await fetch_all(engine, BY_SLUG, {"slugs": ["later"]}) == []
            await _add_communities(engine, ["later"])
            assert [row[0] for row in await fetch_all(engine, BY_SLUG, {"slugs": ["later"]})] == ["later"]
            if fresh_database.startswith("postgresql"):
                connection = await asyncpg.connect(_plain(fresh_database))
                try:
                    states = await connection.fetch(
                        "SELECT state FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                finally:
                    await connection.close()
                assert states and all(row["state"] == "idle" for row in states)  # none "idle in transaction"
        finally:
            await engine.dispose()

    asyncio.run(check())


@pytest.fixture
def postgres_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    with migrated_database("postgresql", tmp_path) as url:
        yield url


def test_a_read_whose_connection_was_cut_runs_again_on_a_new_one(postgres_url: str) -> None:
    """PostgreSQL only: SQLite has no connection to lose."""

    async def check() -> None:
        engine = create_engine(postgres_url)
        admin = await asyncpg.connect(_plain(postgres_url))
        try:
            await _add_communities(engine, ["kept"])
            assert [row[0] for row in await fetch_all(engine, BY_SLUG, {"slugs": ["kept"]})] == ["kept"]
            cut = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert cut >= 1
            await asyncio.sleep(0.2)  # the backends are gone before the next read
            assert [row[0] for row in await fetch_all(engine, BY_SLUG, {"slugs": ["kept"]})] == ["kept"]
        finally:
            await admin.close()
            await engine.dispose()

    asyncio.run(check())


def test_disposing_the_engine_closes_its_read_connections(postgres_url: str) -> None:
    async def backends(admin: asyncpg.Connection) -> int:
        return await admin.fetchval(  # type: ignore[no-any-return]
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )

    async def check() -> None:
        admin = await asyncpg.connect(_plain(postgres_url))
        try:
            engine = create_engine(postgres_url)
            reads = [fetch_all(engine, BY_SLUG, {"slugs": [uuid.uuid4().hex]}) for _ in range(5)]
            assert await asyncio.gather(*reads) == [[]] * 5
            assert await backends(admin) >= 1
            await engine.dispose()
            for _ in range(50):  # a backend ends a moment after its client went away
                if await backends(admin) == 0:
                    break
                await asyncio.sleep(0.1)
            assert await backends(admin) == 0
        finally:
            await admin.close()

    asyncio.run(check())
