"""A peer's community that moved to another instance, as this instance follows the move (issue 13).

The old instance says where its Group went (a verified `Move`, or `movedTo` on the Group); here that is kept on
both communities: the old copy names where it went and when, and, when this instance is the new home, the
local community names where it came from. Protocol and verification live in server/federation/moves.py; the
entries are re-pointed by their own domains (server/guides/moves.py, server/mentorship/moves.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Community


async def held(session: AsyncSession, uri: str) -> Community | None:
    """Our copy of a peer's community: what a Move may move. A local community is never moved by a peer."""
    return await session.scalar(select(Community).where(Community.uri == uri, Community.local.is_(False)))


async def by_uri(session: AsyncSession, uri: str) -> Community | None:
    return await session.scalar(select(Community).where(Community.uri == uri, Community.deleted_at.is_(None)))


async def local_claimant(session: AsyncSession, target: str, old_uri: str) -> Community | None:
    """The local community at `target` when it claims to be `old_uri` (its also_known_as): this instance is
    the new home. Only a moderator here links the two, so the claim is ours, not a peer's word."""
    community = await session.scalar(
        select(Community).where(Community.uri == target, Community.local.is_(True), Community.deleted_at.is_(None))
    )
    if community is None or old_uri not in (community.also_known_as or []):
        return None
    return community


def follow(old: Community, new: Community, at: datetime) -> None:
    """Mark the old copy moved to `new`, and `new`, when it is ours, arrived from it. Kept from the first time
    it was seen: a repeated Move (a retry, a pull) does not change the date."""
    old.moved_to = new.uri
    old.moved_at = old.moved_at or at
    if new.local:
        new.moved_from = old.uri
        new.arrived_at = new.arrived_at or at
