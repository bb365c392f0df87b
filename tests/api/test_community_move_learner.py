"""The old instance learning where its moved entries went, from the new home's outbox (a fake peer here): a few
pages per attempt, each attempt reading on from the page the last one stopped at, and only http(s) pages on the
new home kept as a redirect's Location."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select

from server.app import create_app
from server.db import create_engine, create_sessionmaker
from server.federation.fetch import make_client
from server.federation.move_out import LEARN_JOB, MoveLearner
from server.models import Job
from server.settings import Settings
from tests.conftest import People, migrated_database
from tests.support.accounts import with_session
from tests.support.fake_peer import FakePeer


@pytest.fixture(scope="module")
def peer() -> Iterator[FakePeer]:
    with FakePeer() as fake:
        yield fake


@pytest.fixture(scope="module")
def old(
    settings: Settings, database_url: str, peer: FakePeer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    with migrated_database(backend, tmp_path_factory.mktemp("old")) as url:
        mine = replace(settings, database_url=url, data_dir=tmp_path_factory.mktemp("old-data"), peers=(peer.base_url,))
        with TestClient(app=create_app(mine), base_url=mine.base_url) as client:
            yield client


def _step(settings: Settings, pages: int) -> int:
    """One run of the worker's learning step, as `kith serve` runs it."""

    async def run() -> int:
        engine = create_engine(settings.database_url)
        try:
            async with make_client(settings) as client:
                return await MoveLearner(settings, create_sessionmaker(engine), client, pages=pages)()
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _job(settings: Settings) -> Job:
    async def work(session) -> Job:  # type: ignore[no-untyped-def]
        return await session.scalar(select(Job).where(Job.kind == LEARN_JOB))

    return with_session(settings, work)


def _entry(peer: FakePeer, home: str, old_uri: str, new_path: str, url: str | None = None) -> dict[str, Any]:
    new = f"{peer.base_url}{new_path}"
    item = {"id": new, "type": "Article", "formerUri": old_uri, "url": url or new, "attributedTo": home}
    return {"id": f"{new}#create", "type": "Create", "actor": home, "object": item}


def test_the_learner_reads_on_where_it_stopped_and_keeps_only_http_pages_on_the_new_home(
    old: TestClient, peer: FakePeer
):
    settings = old.app.state.settings
    admin = People(settings).make("admin", admin=True)
    slug = f"mv-{uuid.uuid4().hex[:8]}"
    community = old.post("/api/v1/communities", json={"slug": slug, "name": "Movers"}, headers=admin.auth).json()
    guide = old.post(
        f"/api/v1/communities/{slug}/guides", json={"title": "Packing", "body_markdown": "Boxes."}, headers=admin.auth
    ).json()
    offer = old.post(
        f"/api/v1/communities/{slug}/mentorship/offers",
        json={"title": "Lifting", "description_markdown": "Knees.", "topics": ["moving"], "format": "group",
              "capacity": 2},
        headers=admin.auth,
    ).json()  # fmt: skip
    home_path = f"/c/home-{slug}"
    home = peer.actor(home_path, "Group", alsoKnownAs=[community["uri"]], outbox=f"{peer.base_url}{home_path}/outbox")
    pages = [f"{home_path}/outbox?page={n}" for n in (1, 2, 3)]
    items = [
        # Page 1: the guide's new page given as something no reader should be sent to.
        [_entry(peer, home["id"], guide["uri"], "/guides/g1", url=f"ftp://{peer.host}/guides/g1")],
        [_entry(peer, home["id"], guide["uri"], "/guides/g1")],
        [_entry(peer, home["id"], offer["uri"], "/mentorship/offers/o1")],
    ]
    peer.serve(f"{home_path}/outbox", {"id": f"{peer.base_url}{home_path}/outbox", "type": "OrderedCollection",
                                       "first": f"{peer.base_url}{pages[0]}"})  # fmt: skip
    for n, path in enumerate(pages):
        document = {"id": f"{peer.base_url}{path}", "type": "OrderedCollectionPage", "orderedItems": items[n]}
        if n + 1 < len(pages):
            document["next"] = f"{peer.base_url}{pages[n + 1]}"
        peer.serve(path, document)
    moved = old.post(f"/api/v1/communities/{slug}/move", json={"target": home["id"]}, headers=admin.auth)
    assert moved.status_code == 202, moved.text

    def status() -> dict[str, Any]:
        return old.get(f"/api/v1/communities/{slug}/move", headers=admin.auth).json()

    def read(path: str) -> int:
        return sum(1 for method, p in peer.requests if method == "GET" and p == path)

    assert _step(settings, pages=1) == 1
    assert read(pages[0]) == 1 and read(pages[1]) == 0
    assert _job(settings).payload["next"] == f"{peer.base_url}{pages[1]}"
    assert status()["entries_known"] == 0  # the ftp page was not kept
    assert old.get(f"/guides/{guide['id']}", follow_redirects=False).headers["location"] == home["id"]

    assert _step(settings, pages=1) == 1
    assert read(pages[0]) == 1 and read(pages[1]) == 1  # read on from page 2, not again from the start
    assert status()["entries_known"] == 1
    location = old.get(f"/guides/{guide['id']}", follow_redirects=False).headers["location"]
    assert location == f"{peer.base_url}/guides/g1"

    assert _step(settings, pages=1) == 1
    assert read(pages[2]) == 1 and read(pages[0]) == 1
    assert status()["entries_known"] == 2 and status()["entries_unknown"] == 0
    job = _job(settings)
    assert job.state == "done" and "next" not in job.payload
