"""A peer's offers whose community moved to another instance: the same entries, re-pointed to the new home.

As for guides (server/guides/moves.py, which says why in full): a new copy that arrives after the move becomes
our row of the old uri (`arrived`); two copies held when the move is followed fold into one row (`follow_move`),
ours when one is ours, else the one held first. The requests people made for the row that goes are kept, on the
row that stays.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import func, select, update
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
    touched: list[UUID] = []
    for held, copy in pairs:
        await _fold(session, held, copy)
        touched += [held.id, copy.id]
    await changes.reindex(session, settings, "offer", touched)
    await session.flush()
    waiting = select(func.count()).where(MentorshipOffer.community_id == old.id, MentorshipOffer.deleted_at.is_(None))
    return int(await session.scalar(waiting) or 0)


async def _fold(session: AsyncSession, held: MentorshipOffer, copy: MentorshipOffer) -> None:
    old_uri = held.uri
    kept, gone = (copy, held) if copy.local else (held, copy)
    values = {c.key: getattr(copy, c.key) for c in MentorshipOffer.__mapper__.column_attrs if c.key not in _KEPT}
    await session.execute(
        update(MentorshipRequest)
        .where(MentorshipRequest.offer_id == gone.id)
        .values(offer_id=kept.id)
        .execution_options(synchronize_session=False)
    )
    await session.delete(gone)
    await session.flush()  # the uri is free only once the other row is gone
    if kept is held:
        for key, value in values.items():
            setattr(kept, key, value)
        kept.community, kept.mentor, kept.former_uri = copy.community, copy.mentor, old_uri
