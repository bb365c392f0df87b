"""A peer's offers whose community moved to another instance: the same entries, re-pointed to the new home.

As for guides (server/guides/moves.py, which says why in full): a new copy that arrives after the move becomes
our row of the old uri (`arrived`); two copies held when the move is followed fold into one row (`follow_move`),
ours when one is ours, else the one held first. The requests people made for the row that goes are kept, on the
row that stays.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from server import changes
from server.mentorship.schemas import RemoteOffer
from server.models import Community, MentorshipOffer, MentorshipRequest, User
from server.settings import Settings

_KEPT = {"id", "created_at"}


async def arrived(
    session: AsyncSession, remote: RemoteOffer, community: Community, mentor: User
) -> MentorshipOffer | None:
    """Our row of the offer under its former uri, re-pointed to `remote`'s uri, when its community has moved
    to `community`; None when there is none. The caller applies its fields."""
    offer = await session.scalar(
        select(MentorshipOffer)
        .join(Community, Community.id == MentorshipOffer.community_id)
        .where(
            MentorshipOffer.uri == remote.former_uri,
            MentorshipOffer.local.is_(False),
            Community.moved_to == community.uri,
        )
    )
    if offer is None:
        return None
    offer.former_uri, offer.uri, offer.instance = offer.uri, remote.uri, remote.instance
    offer.community, offer.mentor = community, mentor
    await session.flush()
    return offer


async def follow_move(session: AsyncSession, settings: Settings, old: Community, new: Community) -> int:
    """Fold each offer of `old` that `new` already holds under its new uri; returns how many of `old`'s offers
    are still waiting for theirs."""
    moved = aliased(MentorshipOffer)
    pairs = (
        await session.execute(
            select(MentorshipOffer, moved)
            .join(moved, moved.former_uri == MentorshipOffer.uri)
            .where(
                MentorshipOffer.community_id == old.id,
                MentorshipOffer.local.is_(False),
                moved.community_id == new.id,
            )
        )
    ).all()
    kept_for: dict[UUID, MentorshipOffer] = {}  # the id of a row that goes -> the row that stays
    taken: list[tuple[MentorshipOffer, str, dict[str, Any]]] = []
    for held, copy in pairs:
        kept, other = (copy, held) if copy.local else (held, copy)
        kept_for[other.id] = kept
        if kept is held:
            values = {
                c.key: getattr(copy, c.key) for c in MentorshipOffer.__mapper__.column_attrs if c.key not in _KEPT
            }
            taken.append((held, held.uri, values | {"community": copy.community, "mentor": copy.mentor}))
    gone = list(kept_for)
    asked: set[UUID] = set()
    for chunk in _chunks(gone):
        asked.update(
            await session.scalars(select(MentorshipRequest.offer_id).where(MentorshipRequest.offer_id.in_(chunk)))
        )
    for offer_id in asked:
        await session.execute(
            update(MentorshipRequest)
            .where(MentorshipRequest.offer_id == offer_id)
            .values(offer_id=kept_for[offer_id].id)
            .execution_options(synchronize_session=False)
        )
    for chunk in _chunks(gone):
        await session.execute(
            delete(MentorshipOffer).where(MentorshipOffer.id.in_(chunk)).execution_options(synchronize_session=False)
        )
    for held, copy in pairs:
        session.expunge(copy if copy.id in kept_for else held)
    for held, old_uri, values in taken:
        for key, value in values.items():
            setattr(held, key, value)
        held.former_uri = old_uri
    await session.flush()
    await changes.reindex(session, settings, "offer", [h.id for h, _ in pairs] + [c.id for _, c in pairs])
    waiting = select(func.count()).where(MentorshipOffer.community_id == old.id, MentorshipOffer.deleted_at.is_(None))
    return int(await session.scalar(waiting) or 0)


def _chunks(items: list[UUID], size: int = 500) -> list[list[UUID]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
