"""The community counters (published guides, open offers) that the pages and the API show are kept by database
triggers (migration 0006): after every kind of write they equal a fresh COUNT, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import create_engine
from server.models import Community, Guide, MentorshipOffer, User
from server.settings import Settings
from tests.conftest import join


def _run(settings: Settings, work: Callable[[AsyncConnection], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        engine = create_engine(settings.database_url)
        try:
            async with engine.begin() as connection:
                return await work(connection)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _counts(settings: Settings, community_id: str) -> tuple[int, int]:
    """The counters, after checking them against a fresh COUNT of what they stand for."""

    async def read(connection: AsyncConnection) -> tuple[int, int]:
        cid = uuid.UUID(community_id)
        counters = (
            await connection.execute(
                select(Community.guides_count, Community.open_offers_count).where(Community.id == cid)
            )
        ).one()
        guides = await connection.scalar(
            select(func.count()).where(
                Guide.community_id == cid, Guide.status == "published", Guide.deleted_at.is_(None)
            )
        )
        offers = await connection.scalar(
            select(func.count()).where(
                MentorshipOffer.community_id == cid,
                MentorshipOffer.status == "open",
                MentorshipOffer.deleted_at.is_(None),
            )
        )
        assert tuple(counters) == (guides, offers)
        return guides, offers

    return _run(settings, read)


def _stats(client, community: dict) -> dict:  # type: ignore[no-untyped-def]
    response = client.get(f"/api/v1/communities/{community['slug']}")
    assert response.status_code == 200, response.text
    return response.json()["stats"]


def _guide(client, person, community: dict, **fields: Any) -> dict:  # type: ignore[no-untyped-def]
    body = {"title": f"Guide {uuid.uuid4().hex[:6]}", "body_markdown": "Some *text*.", **fields}
    response = client.post(f"/api/v1/communities/{community['slug']}/guides", json=body, headers=person.auth)
    assert response.status_code == 201, response.text
    return response.json()


def _offer(client, person, community: dict, **fields: Any) -> dict:  # type: ignore[no-untyped-def]
    body = {"title": "Pairing", "description_markdown": "Weekly.", "topics": ["julia"], "format": "one_to_one",
            "capacity": 1, **fields}  # fmt: skip
    url = f"/api/v1/communities/{community['slug']}/mentorship/offers"
    response = client.post(url, json=body, headers=person.auth)
    assert response.status_code == 201, response.text
    return response.json()


def test_guide_counter_follows_create_publish_unpublish_and_delete(client, settings, admin, community):
    cid = community["id"]
    assert _counts(settings, cid) == (0, 0)
    published = _guide(client, admin, community)
    draft = _guide(client, admin, community, status="draft")
    assert _counts(settings, cid) == (1, 0)

    url = f"/api/v1/guides/{draft['id']}"
    assert client.patch(url, json={"status": "published"}, headers=admin.auth).status_code == 200
    assert _counts(settings, cid) == (2, 0)
    assert client.patch(url, json={"title": "Only the title"}, headers=admin.auth).status_code == 200
    assert _counts(settings, cid) == (2, 0)
    assert client.patch(url, json={"status": "draft"}, headers=admin.auth).status_code == 200
    assert _counts(settings, cid) == (1, 0)
    assert client.delete(url, headers=admin.auth).status_code == 204  # a deleted draft never counted
    assert _counts(settings, cid) == (1, 0)
    assert _stats(client, community)["guides"] == 1
    assert client.delete(f"/api/v1/guides/{published['id']}", headers=admin.auth).status_code == 204
    assert _counts(settings, cid) == (0, 0)
    assert _stats(client, community)["guides"] == 0


def test_offer_counter_follows_open_closed_full_and_delete(client, settings, admin, people, community):
    cid = community["id"]
    mentor = people.make("mentor")
    join(client, admin, community, mentor)
    offer = _offer(client, mentor, community, capacity=1)
    _offer(client, mentor, community, status="closed")
    assert _counts(settings, cid) == (0, 1)

    url = f"/api/v1/mentorship/offers/{offer['id']}"
    assert client.patch(url, json={"status": "closed"}, headers=mentor.auth).status_code == 200
    assert _counts(settings, cid) == (0, 0)
    assert client.patch(url, json={"status": "open"}, headers=mentor.auth).status_code == 200
    assert _counts(settings, cid) == (0, 1)

    # A seat taken changes seats_taken, not the status: the offer still counts as open, as listed.
    request = client.post(f"{url}/requests", json={"message": "Hi"}, headers=people.make().auth).json()
    accepted = client.post(f"/api/v1/mentorship/requests/{request['id']}/accept", headers=mentor.auth)
    assert accepted.status_code == 200, accepted.text
    assert _counts(settings, cid) == (0, 1)
    assert _stats(client, community)["offers"] == 1

    assert client.delete(url, headers=mentor.auth).status_code == 204
    assert _counts(settings, cid) == (0, 0)
    assert _stats(client, community)["offers"] == 0


def test_deleting_a_community_leaves_its_counters_at_zero(client, settings, admin, community):
    _guide(client, admin, community)
    _offer(client, admin, community)
    assert _counts(settings, community["id"]) == (1, 1)
    assert client.delete(f"/api/v1/communities/{community['slug']}", headers=admin.auth).status_code == 204
    assert _counts(settings, community["id"]) == (0, 0)


def test_counters_follow_bulk_statements_moves_and_hard_deletes(client, settings, admin, community):
    """What the federation handlers and clean-ups do: multi-row inserts and updates, moves, deletes."""
    other = client.post(
        "/api/v1/communities", json={"slug": f"o-{uuid.uuid4().hex[:8]}", "name": "Other"}, headers=admin.auth
    ).json()
    cid, oid = uuid.UUID(community["id"]), uuid.UUID(other["id"])
    now = datetime.now(UTC)

    def guide_row(status: str, deleted: bool = False) -> dict[str, Any]:
        key = uuid.uuid4().hex
        return {"id": uuid.uuid4(), "uri": f"https://peer.example/g/{key}", "url": f"https://peer.example/g/{key}",
                "community_id": cid, "author_id": author_id, "slug": key, "title": "T", "body_markdown": "b",
                "body_html": "<p>b</p>", "status": status, "local": False, "instance": "peer.example",
                "created_at": now, "updated_at": now, "deleted_at": now if deleted else None}  # fmt: skip

    def offer_row(status: str) -> dict[str, Any]:
        key = uuid.uuid4().hex
        return {"id": uuid.uuid4(), "uri": f"https://peer.example/o/{key}", "url": f"https://peer.example/o/{key}",
                "community_id": cid, "mentor_id": author_id, "title": "O", "description_markdown": "d",
                "description_html": "<p>d</p>", "format": "group", "capacity": 3, "status": status, "local": False,
                "instance": "peer.example", "created_at": now, "updated_at": now}  # fmt: skip

    async def author(connection: AsyncConnection) -> uuid.UUID:
        return await connection.scalar(select(User.id).where(User.username == admin.username))

    author_id = _run(settings, author)
    guides = [guide_row("published"), guide_row("published"), guide_row("draft"), guide_row("published", True)]
    offers = [offer_row("open"), offer_row("open"), offer_row("closed")]

    async def bulk_insert(connection: AsyncConnection) -> None:
        await connection.execute(insert(Guide), guides)
        await connection.execute(insert(MentorshipOffer), offers)

    _run(settings, bulk_insert)
    assert _counts(settings, str(cid)) == (2, 2)

    ids = [g["id"] for g in guides]

    async def publish_all(connection: AsyncConnection) -> None:
        await connection.execute(update(Guide).where(Guide.id.in_(ids)).values(status="published"))

    _run(settings, publish_all)  # the draft now counts; the deleted one still does not
    assert _counts(settings, str(cid)) == (3, 2)

    async def move_two(connection: AsyncConnection) -> None:
        await connection.execute(update(Guide).where(Guide.id.in_(ids[:2])).values(community_id=oid))
        await connection.execute(update(MentorshipOffer).where(MentorshipOffer.id == offers[0]["id"]).values(
            community_id=oid))  # fmt: skip

    _run(settings, move_two)
    assert _counts(settings, str(cid)) == (1, 1)
    assert _counts(settings, str(oid)) == (2, 1)

    async def soft_delete_and_restore(connection: AsyncConnection) -> None:
        await connection.execute(update(Guide).where(Guide.id.in_(ids)).values(deleted_at=now))
        await connection.execute(update(Guide).where(Guide.id == ids[3]).values(deleted_at=None))

    _run(settings, soft_delete_and_restore)
    assert _counts(settings, str(cid)) == (1, 1)
    assert _counts(settings, str(oid)) == (0, 1)

    async def hard_delete(connection: AsyncConnection) -> None:
        await connection.execute(delete(Guide).where(Guide.id.in_(ids)))
        await connection.execute(delete(MentorshipOffer).where(MentorshipOffer.id.in_([o["id"] for o in offers])))

    _run(settings, hard_delete)
    assert _counts(settings, str(cid)) == (0, 0)
    assert _counts(settings, str(oid)) == (0, 0)


def test_home_and_community_pages_show_the_counters(visitor, client, settings, admin, community):
    _guide(client, admin, community)
    _guide(client, admin, community)
    _guide(client, admin, community, status="draft")
    _offer(client, admin, community)
    assert _counts(settings, community["id"]) == (2, 1)
    home = visitor.get("/")
    assert home.status_code == 200
    card = home.text[home.text.index(f"/c/{community['slug']}") :]
    assert "2 guides" in card[:2000] and "1 open offer" in card[:2000]
    assert "1 open offers" not in card[:2000]
