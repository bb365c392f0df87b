"""Communities and their members: the only code that writes them."""

from __future__ import annotations

import msgspec
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.security import Principal
from server.accounts.service import AccountService
from server.communities import schemas
from server.db import utcnow
from server.errors import conflict, forbidden, invalid, not_found
from server.federation import outbox
from server.models import Community, Guide, Membership, MentorshipOffer, User
from server.pagination import keyset, split_page
from server.refs import Origin, apply_origin_filters, split_ref
from server.settings import Settings

DEFAULT_COLOR = "#3b6e8f"


def community_ref(community: Community) -> schemas.CommunityRef:
    return schemas.CommunityRef(
        slug=community.slug, name=community.name, instance=community.instance, uri=community.uri,
        url=community.url, color=community.color,
    )  # fmt: skip


class CommunityService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings

    # reads

    async def list(
        self, *, origin: Origin = "all", instance: str | None = None, limit: int = 20,
        cursor: str | None = None,
    ) -> tuple[list[schemas.Community], str | None]:  # fmt: skip
        query = select(Community).where(Community.deleted_at.is_(None))
        query = apply_origin_filters(query, Community, self.settings.host, origin=origin, instance=instance)
        rows = list(await self.session.scalars(keyset(query, Community, limit, cursor)))
        page, next_cursor = split_page(rows, limit)
        return await self.to_schemas(page), next_cursor

    async def get(self, ref: str) -> Community:
        slug, host = split_ref(ref, self.settings.host)
        community = await self.session.scalar(
            select(Community).where(Community.slug == slug, Community.instance == host, Community.deleted_at.is_(None))
        )
        if community is None:
            raise not_found(f"Community {ref!r}")
        return community

    async def get_local(self, ref: str) -> Community:
        community = await self.get(ref)
        if not community.local:
            raise forbidden("This community lives on another instance; change it there.")
        return community

    async def to_schemas(self, communities: list[Community]) -> list[schemas.Community]:
        ids = [c.id for c in communities]
        guides = await self._counts(Guide, ids, Guide.status == "published")
        offers = await self._counts(MentorshipOffer, ids, MentorshipOffer.status == "open")
        return [
            _to_schema(c, schemas.CommunityStats(guides=guides.get(c.id, 0), offers=offers.get(c.id, 0)))
            for c in communities
        ]

    async def to_schema(self, community: Community) -> schemas.Community:
        return (await self.to_schemas([community]))[0]

    async def _counts(self, model, ids, condition) -> dict:  # type: ignore[no-untyped-def]
        if not ids:
            return {}
        rows = await self.session.execute(
            select(model.community_id, func.count())
            .where(model.community_id.in_(ids), model.deleted_at.is_(None), condition)
            .group_by(model.community_id)
        )
        return {community_id: count for community_id, count in rows}

    # permissions

    async def role(self, principal: Principal | None, community: Community) -> str | None:
        if principal is None:
            return None
        return await AccountService(self.session, self.settings).role_in(principal.user_id, community.id)

    async def require_moderator(self, principal: Principal, community: Community) -> None:
        if principal.is_admin:
            return
        if not principal.can_write or await self.role(principal, community) != "moderator":
            raise forbidden(f"Only moderators of {community.slug!r} can do this.")

    async def require_member(self, principal: Principal, community: Community) -> None:
        if principal.is_admin:
            return
        if not principal.can_write or await self.role(principal, community) is None:
            raise forbidden(f"Only members of {community.slug!r} can post here.")

    # writes

    async def create(self, principal: Principal, data: schemas.CommunityCreate) -> Community:
        if not principal.is_admin:
            raise forbidden("Only an instance admin (with an admin token) can create communities.")
        if not data.name.strip():
            raise invalid("name", "must not be blank")
        uri = f"{self.settings.base_url}/c/{data.slug}"
        community = Community(
            uri=uri, url=uri, slug=data.slug, name=data.name.strip(), description=data.description,
            color=(data.color or DEFAULT_COLOR).lower(), links=msgspec.to_builtins(data.links),
            local=True, instance=self.settings.host,
        )  # fmt: skip
        self.session.add(community)
        try:
            await self.session.flush()
        except IntegrityError as exc:
            await self.session.rollback()
            raise conflict(f"A community with slug {data.slug!r} already exists.") from exc
        # Whoever founds a community moderates it.
        self.session.add(Membership(community_id=community.id, user_id=principal.user_id, role="moderator"))
        await outbox.record(self.session, self.settings, "Create", community)
        await self.session.commit()
        return community

    async def update(self, principal: Principal, ref: str, data: schemas.CommunityUpdate) -> Community:
        community = await self.get_local(ref)
        await self.require_moderator(principal, community)
        if data.name is not msgspec.UNSET:
            if not data.name.strip():
                raise invalid("name", "must not be blank")
            community.name = data.name.strip()
        if data.description is not msgspec.UNSET:
            community.description = data.description
        if data.color is not msgspec.UNSET:
            community.color = data.color.lower()
        if data.links is not msgspec.UNSET:
            community.links = msgspec.to_builtins(data.links)
        community.updated_at = utcnow()
        await outbox.record(self.session, self.settings, "Update", community)
        await self.session.commit()
        return community

    async def delete(self, principal: Principal, ref: str) -> None:
        community = await self.get_local(ref)
        if not principal.is_admin:
            raise forbidden("Only an instance admin can delete a community.")
        now = utcnow()
        # Its entries become tombstones too, each announced so peers drop their copies.
        for model in (Guide, MentorshipOffer):
            entries = await self.session.scalars(
                select(model).where(model.community_id == community.id, model.deleted_at.is_(None))
            )
            for entry in entries:
                entry.deleted_at = now
                public = entry.status != "draft"
                await outbox.record(self.session, self.settings, "Delete", entry, public=public)
        community.deleted_at = now
        await outbox.record(self.session, self.settings, "Delete", community)
        await self.session.commit()

    # members

    async def members(self, ref: str) -> list[schemas.Member]:
        community = await self.get(ref)
        rows = await self.session.execute(
            select(User, Membership)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.community_id == community.id)
            .order_by(Membership.created_at, User.username)
        )
        return [_member(user, membership) for user, membership in rows]

    async def set_member(
        self, principal: Principal, ref: str, data: schemas.MemberCreate
    ) -> tuple[schemas.Member, bool]:
        community = await self.get_local(ref)
        await self.require_moderator(principal, community)
        user = await AccountService(self.session, self.settings).local_user(data.username)
        if user is None:
            raise invalid("username", f"no local user named {data.username!r}")
        membership = await self.session.scalar(
            select(Membership).where(Membership.community_id == community.id, Membership.user_id == user.id)
        )
        created = membership is None
        if membership is None:
            membership = Membership(community_id=community.id, user_id=user.id, role=data.role)
            self.session.add(membership)
        else:
            membership.role = data.role
        await self.session.commit()
        return _member(user, membership), created

    async def remove_member(self, principal: Principal, ref: str, username: str) -> None:
        community = await self.get_local(ref)
        await self.require_moderator(principal, community)
        user = await AccountService(self.session, self.settings).local_user(username)
        result = await self.session.execute(
            Membership.__table__.delete().where(
                Membership.community_id == community.id,
                Membership.user_id == (user.id if user else None),
            )
        )
        if not result.rowcount:
            raise not_found(f"Member {username!r}")
        await self.session.commit()


def _to_schema(c: Community, stats: schemas.CommunityStats) -> schemas.Community:
    return schemas.Community(
        id=c.id, uri=c.uri, url=c.url, slug=c.slug, name=c.name, description=c.description,
        color=c.color, links=msgspec.convert(c.links or [], list[schemas.Link]), local=c.local,
        instance=c.instance, created_at=c.created_at, updated_at=c.updated_at, stats=stats,
        former_peer=c.former_peer,
    )  # fmt: skip


def _member(user: User, membership: Membership) -> schemas.Member:
    return schemas.Member(
        username=user.username, display_name=user.display_name or user.username,
        role=membership.role, joined_at=membership.created_at,  # type: ignore[arg-type]
    )  # fmt: skip
