"""Shared fixtures. Database-touching tests run once on SQLite and once on PostgreSQL.

Each run makes its own SQLite file and its own PostgreSQL database, and removes them afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from litestar.testing import TestClient

from server import migrate
from server.accounts.service import AccountService
from server.app import create_app
from server.db import create_engine, create_sessionmaker
from server.settings import Settings
from tests.support import postgres
from tests.support.limits import ROOMY

BACKENDS = ["sqlite", "postgresql"]


@contextlib.contextmanager
def migrated_database(backend: str, directory: Path) -> Iterator[str]:
    """A database of its own, migrated to head: a SQLite file in `directory`, or a PostgreSQL database that is
    dropped afterwards."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{directory / 'kith.db'}"
        migrate.upgrade(url)
        yield url
        return
    with postgres.fresh_database() as url:
        migrate.upgrade(url)
        yield url


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with migrated_database(request.param, tmp_path_factory.mktemp("sqlite")) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database for one test alone: for code that claims every row of a table (the indexer, the worker's
    steps), which must not see other tests' rows."""
    with migrated_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        base_url="http://127.0.0.1:8000",
        instance_name="Kith Test",
        data_dir=tmp_path_factory.mktemp("data"),
        database_url=database_url,
        secret_key="test-secret",
        # Test peers, inboxes and the OpenID provider all listen on loopback.
        allowed_private_networks=("127.0.0.0/8",),
        rate_limits=ROOMY,
    )


@pytest.fixture(scope="session")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(app=create_app(settings), base_url=settings.base_url) as test_client:
        yield test_client


@dataclass
class Person:
    username: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class People:
    """Makes users with tokens straight through the account service."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def make(self, prefix: str = "user", *, admin: bool = False, scope: str | None = None) -> Person:
        username = f"{prefix}-{uuid.uuid4().hex[:8]}"
        scope = scope or ("admin" if admin else "write")

        async def work() -> str:
            engine = create_engine(self.settings.database_url)
            try:
                async with create_sessionmaker(engine)() as session:
                    service = AccountService(session, self.settings)
                    user = await service.create_user(username, "correct horse", is_admin=admin)
                    return (await service.create_token(user, "test", scope)).secret
            finally:
                await engine.dispose()

        return Person(username, asyncio.run(work()))


@pytest.fixture(scope="session")
def people(settings: Settings) -> People:
    return People(settings)


@pytest.fixture(scope="session")
def admin(people: People) -> Person:
    return people.make("admin", admin=True)


@pytest.fixture
def community(client: TestClient, admin: Person) -> dict:
    slug = f"c-{uuid.uuid4().hex[:8]}"
    response = client.post("/api/v1/communities", json={"slug": slug, "name": f"Community {slug}"}, headers=admin.auth)
    assert response.status_code == 201, response.text
    return response.json()


def join(client: TestClient, admin: Person, community: dict, person: Person, role: str = "member") -> None:
    response = client.post(
        f"/api/v1/communities/{community['slug']}/members",
        json={"username": person.username, "role": role},
        headers=admin.auth,
    )
    assert response.status_code in (200, 201), response.text


def with_database(settings: Settings, database_url: str) -> Settings:
    return replace(settings, database_url=database_url)


ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("KITH_TESTING", "1")
