"""A community's move from this instance to a new home, and its arrival here: the domain's side of it.

The protocol side (fetching the new home's Group, the Move activity, learning where each entry went) is
server/federation/move_out.py; this module writes what the move changes in the community's tables and reads the
redirect map. A moved community is never deleted: it stays, read-only, as the map from its old pages to the new
ones, for as long as this instance lives.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import func, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.security import Principal
from server.communities import rules, schemas
from server.communities.service import CommunityService
from server.db import utcnow
from server.errors import FieldError, ProblemError, invalid
from server.models import Community, CommunityMovedEntry, CommunityMovePeer, Guide, MentorshipOffer
from server.settings import Settings, host_of


class MoveService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        self.communities = CommunityService(session, settings)

    # the old instance

    async def movable(self, principal: Principal, ref: str, target: str) -> Community:
        """The local community `principal` may move to `target`: checked before anything is fetched, so that
        nobody without the right can make this instance reach out."""
        community = await self.communities.get_local(ref)
        await self.communities.require_moderator(principal, community)
        rules.not_moved(community)
        schemes = ("https://",) if self.settings.is_https else ("http://", "https://")
        if not target.startswith(schemes) or not host_of(target):
            raise invalid("target", "must be the absolute URI of the community's Group on its new home")
        if host_of(target) == self.settings.host:
            raise invalid("target", "is on this instance; a community moves to another instance")
        if host_of(target) not in self.settings.peer_hosts:
            raise invalid("target", f"{host_of(target)} is not a configured peer of this instance")
        return community

    async def begin(
        self, community: Community, target: str, target_claims: Iterable[str], peer_hosts: Iterable[str]
    ) -> None:
        """Mark `community` moved to `target`, in the caller's transaction, once the target's Group was fetched:
        only a home that names this Group among its `alsoKnownAs` may receive it, or anyone could move a
        community to a home of their choosing. `peer_hosts` are the peers the Move goes to."""
        if community.uri not in set(target_claims):
            raise ProblemError(
                422,
                f"{target} does not claim to be {community.uri}: a moderator there must first name this community "
                "as its old name (its also_known_as), then the move can start.",
                errors=[FieldError("target", f"does not list {community.uri} in alsoKnownAs")],
            )
        community.moved_to = target
        community.moved_at = utcnow()
        for host in sorted(set(peer_hosts)):
            self.session.add(CommunityMovePeer(community_id=community.id, instance=host))
        await self.session.flush()

    async def mark_notified(self, community_uri: str, host: str) -> None:
        """The Move reached `host`: recorded the first time only."""
        community = await self.session.scalar(select(Community).where(Community.uri == community_uri))
        if community is None:
            return
        row = await self.session.get(CommunityMovePeer, (community.id, host))
        if row is None:
            row = CommunityMovePeer(community_id=community.id, instance=host)
            self.session.add(row)
        if row.notified_at is None:
            row.notified_at = utcnow()

    async def learn(self, community: Community, found: Iterable[tuple[str, str, str]]) -> int:
        """Remember where entries of `community` went: (old uri, new uri, new page) as the new home says, kept
        only for this community's own entries, and only when the new uri and page are on the new home. Returns
        how many were new."""
        home = host_of(community.moved_to or "")
        wanted = {old: (new, url) for old, new, url in found if host_of(new) == home and host_of(url) == home}
        if not home or not wanted:
            return 0
        ours = set(
            await self.session.scalars(
                union_all(
                    select(Guide.uri).where(Guide.community_id == community.id, Guide.uri.in_(wanted)),
                    select(MentorshipOffer.uri).where(
                        MentorshipOffer.community_id == community.id, MentorshipOffer.uri.in_(wanted)
                    ),
                )
            )
        )
        known = set(
            await self.session.scalars(select(CommunityMovedEntry.old_uri).where(CommunityMovedEntry.old_uri.in_(ours)))
        )
        for old in sorted(ours - known):
            new, url = wanted[old]
            self.session.add(CommunityMovedEntry(old_uri=old, community_id=community.id, new_uri=new, new_url=url))
        await self.session.flush()
        return len(ours - known)

    async def unknown_count(self, community_id: uuid.UUID) -> int:
        """Public entries of a moved community whose new place is not known yet."""
        known = select(CommunityMovedEntry.old_uri).where(CommunityMovedEntry.community_id == community_id)
        guides = select(func.count()).where(
            Guide.community_id == community_id, Guide.deleted_at.is_(None), Guide.status == "published",
            Guide.uri.not_in(known),
        )  # fmt: skip
        offers = select(func.count()).where(
            MentorshipOffer.community_id == community_id, MentorshipOffer.deleted_at.is_(None),
            MentorshipOffer.uri.not_in(known),
        )  # fmt: skip
        return (await self.session.scalar(guides) or 0) + (await self.session.scalar(offers) or 0)

    async def new_place(self, old_uri: str) -> CommunityMovedEntry | None:
        return await self.session.get(CommunityMovedEntry, old_uri)

    # the new home

    async def acknowledge(self, community: Community, host: str) -> None:
        """A peer's instance fetched this linked Group (as it does to check a Move): it has heard of the move."""
        if not community.local or not community.also_known_as or host not in self.settings.peer_hosts:
            return
        row = await self.session.get(CommunityMovePeer, (community.id, host))
        if row is None:
            row = CommunityMovePeer(community_id=community.id, instance=host)
            self.session.add(row)
        if row.acknowledged_at is None:
            row.acknowledged_at = utcnow()
        await self.session.commit()

    # both

    async def status(self, ref: str) -> schemas.MoveStatus:
        community = await self.communities.get(ref)
        rows = await self.session.scalars(
            select(CommunityMovePeer)
            .where(CommunityMovePeer.community_id == community.id)
            .order_by(CommunityMovePeer.instance)
        )
        peers = [
            schemas.MovePeer(instance=r.instance, notified_at=r.notified_at, acknowledged_at=r.acknowledged_at)
            for r in rows
        ]
        known = unknown = 0
        if community.moved_to:
            known = (
                await self.session.scalar(select(func.count()).where(CommunityMovedEntry.community_id == community.id))
                or 0
            )
            unknown = await self.unknown_count(community.id)
        return schemas.MoveStatus(
            community=community.slug, moved_to=community.moved_to, moved_at=community.moved_at,
            moved_from=community.moved_from, arrived_at=community.arrived_at, peers=peers, entries_known=known,
            entries_unknown=unknown, also_known_as=list(community.also_known_as or []),
        )  # fmt: skip

    async def moved_statuses(self) -> list[schemas.MoveStatus]:
        """Every local community that moved away, arrived by a move or claims an old Group (the admin page)."""
        communities = await self.session.scalars(
            select(Community).where(Community.local.is_(True), Community.deleted_at.is_(None)).order_by(Community.slug)
        )
        moving = [c.slug for c in communities if c.moved_to or c.moved_from or c.also_known_as]
        return [await self.status(slug) for slug in moving]
