"""The transactional outbox: a local change becomes an activity and its deliveries; the worker sends them later.

`publish` hears every change a domain service records (server/changes.py), in the writer's transaction, and
never touches the network.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.changes import Change, Entry
from server.db import utcnow
from server.federation import mapping
from server.models import Activity, Delivery, Guide, MentorshipOffer, Peer
from server.settings import Settings


def _describe(entry: Entry) -> tuple[str, str, dict[str, Any], str, str | None]:
    """(kind, AS2 type, AS2 object, actor uri, community uri) for an entry."""
    if isinstance(entry, Guide):
        return "guide", "Article", mapping.article(entry), entry.author.uri, entry.community.uri
    if isinstance(entry, MentorshipOffer):
        return "offer", "MentorshipOffer", mapping.offer(entry), entry.mentor.uri, entry.community.uri
    return "community", "Group", mapping.group(entry), entry.uri, entry.uri


async def publish(session: AsyncSession, settings: Settings, change: Change) -> None:
    """The activity of a local change, and a delivery of it to every following peer when it is public."""
    entry = change.entry
    if not change.local or entry is None:
        return  # a remote entry is announced by its origin, never again by us
    verb = change.verb
    public = change.public
    kind, as_type, document, actor_uri, community_uri = _describe(entry)
    now = utcnow()
    if verb == "Delete":
        document = mapping.tombstone(entry.uri, as_type, entry.deleted_at or now)
    activity_uri = new_activity_uri(settings)
    row = Activity(
        uri=activity_uri, type=verb, actor_uri=actor_uri, object_type=kind, object_uri=entry.uri,
        community_uri=community_uri, public=public,
        payload=mapping.activity(settings.base_url, activity_uri, verb, actor_uri, document, now),
        created_at=now,
    )  # fmt: skip
    session.add(row)
    if public:
        await session.flush()
        await _fan_out(session, settings, row)


async def _fan_out(session: AsyncSession, settings: Settings, activity: Activity) -> None:
    """One delivery row per inbox of a configured peer that follows us."""
    peers = await session.scalars(
        select(Peer).where(
            Peer.followed_back.is_(True),
            Peer.inbox_url.is_not(None),
            Peer.host.in_(settings.peer_hosts),
        )
    )
    for peer in peers:
        session.add(Delivery(activity_seq=activity.seq, inbox_url=peer.inbox_url, peer_host=peer.host))


async def send(
    session: AsyncSession, settings: Settings, document: dict[str, Any], *, inbox_url: str, peer_host: str
) -> Activity:
    """Queue a protocol activity (Follow, Accept, Reject, Undo) for one inbox; it is not part of the outbox."""
    row = Activity(
        uri=document["id"], type=document["type"], actor_uri=document["actor"], object_type="protocol",
        object_uri=_object_id(document), community_uri=None, public=False, payload=document,
    )  # fmt: skip
    session.add(row)
    await session.flush()
    session.add(Delivery(activity_seq=row.seq, inbox_url=inbox_url, peer_host=peer_host))
    return row


def new_activity_uri(settings: Settings) -> str:
    return f"{settings.base_url}/activities/{uuid.uuid4()}"


def _object_id(document: dict[str, Any]) -> str:
    obj = document.get("object")
    return str(obj.get("id", "")) if isinstance(obj, dict) else str(obj or "")
