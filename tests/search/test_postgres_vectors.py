"""The postgres backend's vectors: written with Kith's analysis whatever an entry holds, recomputed by migration
0015 and by `kith reindex`. PostgreSQL only: SQLite has no vectors."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import text

from server import migrate
from server.accounts.schemas import RemotePerson
from server.app import create_app
from server.db import create_engine, create_sessionmaker
from server.guides.schemas import RemoteGuide
from server.guides.service import GuideService
from server.models import Community
from server.settings import SearchSettings, Settings
from tests.conftest import People, migrated_database
from tests.support.limits import ROOMY

PEER = "peer.example"
LONG_WORD = "a" * 3000  # past PostgreSQL's longest lexeme
TAGS = ["it's", "back\\slash", "a:b", "Machine Learning"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Settings, str, Any]]:
    """A postgres-backend app over a database of its own holding one guide; the guide's id; its admin."""
    directory: Path = tmp_path_factory.mktemp("vectors")
    with migrated_database("postgresql", directory) as url:
        settings = Settings(
            base_url="http://127.0.0.1:8000", data_dir=directory / "data", database_url=url, secret_key="t",
            rate_limits=ROOMY, search=SearchSettings(backend="postgres"),
        )  # fmt: skip
        admin = People(settings).make("admin", admin=True)
        with TestClient(app=create_app(settings), base_url=settings.base_url) as client:
            assert client.post(
                "/api/v1/communities", json={"slug": "lab", "name": "Lab"}, headers=admin.auth
            ).is_success
            guide = client.post(
                "/api/v1/communities/lab/guides",
                json={"title": "Tables with DataFrames.jl", "summary": "O'Reilly \\ notes",
                      "body_markdown": f"Publishing results. {LONG_WORD} done.", "tags": TAGS},
                headers=admin.auth,
            )  # fmt: skip
            assert guide.status_code == 201, guide.text
            yield client, settings, guide.json()["id"], admin


def _found(client: TestClient, q: str) -> list[str]:
    response = client.get("/api/v1/search", params={"q": q})
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def _sql(url: str, statement: str) -> int:
    """A count, or the rows an update changed."""

    async def run() -> int:
        engine = create_engine(url)
        try:
            async with engine.begin() as connection:
                result = await connection.execute(text(statement))
                return int(result.scalar() or 0) if result.returns_rows else result.rowcount
        finally:
            await engine.dispose()

    return asyncio.run(run())


@pytest.mark.parametrize(
    "query",
    ['tag:"it\'s"', "tag:back\\slash", 'tag:"a:b"', 'tag:"machine learning"', "dataframes", "jl", "publish",
     "o'reilly", "done"],
)  # fmt: skip
def test_what_an_entry_holds_is_written_and_found(site, query):
    client, _, guide, _ = site
    assert _found(client, query) == [guide]


def test_a_body_of_distinct_compounds_as_long_as_allowed_is_written(site):
    client, _, _, admin = site
    # Words like "ab123.c4567X", each indexed whole and in parts, as many as a body may hold: the longest
    # vector found, near the 1 MB PostgreSQL allows (`vectors._MAX_VECTOR_BYTES` keeps a longer one from failing).
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    body = " ".join(
        f"{letters[n % 52]}{letters[n // 52 % 52]}{n % 1000}.{letters[n // 7 % 52]}{n}X" for n in range(20_000)
    )
    created = client.post(
        "/api/v1/communities/lab/guides",
        json={"title": "Long compounds", "body_markdown": body[:199_000]},
        headers=admin.auth,
    )
    assert created.status_code == 201, created.text
    assert _found(client, "compounds") == [created.json()["id"]]


def test_migration_0015_computes_the_vectors_written_before_it(site):
    client, settings, guide, _ = site
    analysed = "SELECT count(*) FROM guides WHERE search_vector @@ CAST('datafram' AS tsquery)"
    migrate.downgrade(settings.database_url, "0014")
    try:
        # 0012's trigger computed every vector again with PostgreSQL's `simple` configuration.
        assert _sql(settings.database_url, analysed) == 0
    finally:
        migrate.upgrade(settings.database_url)
    assert _sql(settings.database_url, analysed) == 1
    assert _found(client, "dataframes") == [guide]


def test_kith_reindex_computes_every_vector_again(site, tmp_path):
    client, settings, guide, _ = site
    entries = _sql(settings.database_url, "UPDATE guides SET search_vector = NULL WHERE deleted_at IS NULL")
    assert _found(client, "dataframes") == []
    env = {**os.environ, "KITH_DATA_DIR": str(tmp_path), "KITH_DATABASE_URL": settings.database_url,
           "KITH_SECRET_KEY": "t", "KITH_SEARCH_BACKEND": "postgres"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "reindex"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert f"search index rebuilt with {entries} entries" in done.stderr
    assert _found(client, "dataframes") == [guide]


def _remote(title: str) -> RemoteGuide:
    uri = f"https://{PEER}/guides/{title.split()[-1]}"
    return RemoteGuide(
        uri=uri, instance=PEER, url=uri, community_uris=[f"https://{PEER}/c/weavers"],
        audience=[f"https://{PEER}/c/weavers"],
        author=RemotePerson(uri=f"https://{PEER}/u/ada", instance=PEER, username="ada"),
        title=title, summary="", body_markdown="Warp and weft.", body_html="<p>Warp and weft.</p>", tags=["craft"],
        license="CC-BY-4.0",
    )  # fmt: skip


def test_a_batch_of_remote_guides_is_searchable_when_it_commits(site):
    client, settings, _, _ = site

    async def backfill() -> None:
        engine = create_engine(settings.database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                uri = f"https://{PEER}/c/weavers"
                session.add(Community(uri=uri, url=uri, slug="weavers", name="Weavers", local=False, instance=PEER))
                await session.flush()
                guides = GuideService(session, settings)
                await guides.apply_remote(_remote("Looms first"))  # makes the author known
                batch = guides.remote_batch()
                remotes = [_remote(f"Tapestry {name}") for name in ("second", "third", "fourth")]
                await batch.look_up(remotes)
                assert all(batch.take(remote) for remote in remotes)
                await batch.write()
                await session.commit()
        finally:
            await engine.dispose()

    asyncio.run(backfill())
    found = client.get("/api/v1/search", params={"q": "tapestry", "origin": "remote"}).json()
    assert sorted(item["title"] for item in found["items"]) == ["Tapestry fourth", "Tapestry second", "Tapestry third"]
    assert _sql(settings.database_url, "SELECT count(*) FROM guides WHERE search_vector IS NULL") == 0
