"""Communities and their members: the only code that writes them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Select, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server import changes
from server.accounts.security import Principal
from server.accounts.service import AccountService
from server.communities import rules, schemas
from server.communities.queries import MEMBERS, community_from_row, list_statement, member_from_row
from server.db import utcnow
from server.errors import conflict, forbidden, invalid, not_found
from server.models import Community, CommunityImport, Membership, User
from server.pagination import keyset_params, split_page
from server.refs import Origin, split_ref
from server.rules import is_newer
from server.settings import Settings, host_of


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
        statement, params = self.list_statement(origin=origin, instance=instance, limit=limit, cursor=cursor)
        rows = await self.session.execute(statement, params)
        return split_page([community_from_row(row) for row in rows], limit)

    def list_statement(
        self, *, origin: Origin = "all", instance: str | None = None, limit: int = 20, cursor: str | None = None
    ) -> tuple[Select[Any], dict[str, Any]]:
        """What `list` runs and its parameters, for callers with a connection of their own; rows decode with
        `community_from_row`. A bad cursor, limit or origin raises here."""
        return self.list_statement_for(self.settings, origin=origin, instance=instance, limit=limit, cursor=cursor)

    @staticmethod
    def list_statement_for(
        settings: Settings, *, origin: Origin = "all", instance: str | None = None, limit: int = 20,
        cursor: str | None = None,
    ) -> tuple[Select[Any], dict[str, Any]]:  # fmt: skip
        """`list_statement` without a service, for readers that need no session."""
        params = keyset_params(limit, cursor)
        return list_statement(settings.host, origin, instance.lower() if instance else None, bool(cursor)), params

    @staticmethod
    def ref_params_for(settings: Settings, ref: str) -> dict[str, str]:
        """The parameters of ONE_BY_REF."""
        slug, host = split_ref(ref, settings.host)
        return {"slug": slug, "instance": host}

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

    async def joined(self, principal: Principal) -> list[Community]:
        """The local communities `principal` is a member of, by name."""
        rows = await self.session.scalars(
            select(Community)
            .join(Membership, Membership.community_id == Community.id)
            .where(Membership.user_id == principal.user_id, Community.local.is_(True), Community.deleted_at.is_(None))
            .order_by(Community.name)
        )
        return list(rows)

    async def to_schemas(self, communities: list[Community]) -> list[schemas.Community]:
        stats: dict[uuid.UUID, schemas.CommunityStats] = {}
        if communities:
            rows = await self.session.execute(
                select(Community.id, Community.guides_count, Community.open_offers_count).where(
                    Community.id.in_([c.id for c in communities])
                )
            )
            stats = {id_: schemas.CommunityStats(guides=guides, offers=offers) for id_, guides, offers in rows}
        return [_to_schema(c, stats.get(c.id, schemas.CommunityStats(guides=0, offers=0))) for c in communities]

    async def to_schema(self, community: Community) -> schemas.Community:
        return (await self.to_schemas([community]))[0]

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
        rules.local_slug(data.slug)
        uri = f"{self.settings.base_url}/c/{data.slug}"
        community = Community(
            uri=uri, url=uri, slug=data.slug, name=rules.name(data.name),
            description=rules.description(data.description), color=rules.color(data.color),
            links=msgspec.to_builtins(data.links),
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
        await changes.record(self.session, self.settings, "Create", community)
        await self.session.commit()
        return community

    async def add_imported(
        self, data: schemas.CommunityCreate, *, created_at: datetime, updated_at: datetime, archive_id: uuid.UUID,
        source_uri: str,
    ) -> Community:  # fmt: skip
        """A community recreated from an archive, in the caller's transaction: local, with the archive's dates, and
        its archive recorded so that the same archive is never imported again. Its members come with it (see
        add_imported_member), so nobody is made its moderator here."""
        rules.local_slug(data.slug)
        taken = select(Community.id).where(Community.slug == data.slug, Community.instance == self.settings.host)
        if await self.session.scalar(taken) is not None:
            raise conflict(f"A community with slug {data.slug!r} exists here already; import it under another slug.")
        if await self.session.get(CommunityImport, archive_id) is not None:
            raise conflict(f"Archive {archive_id} was imported here already.")
        uri = f"{self.settings.base_url}/c/{data.slug}"
        community = Community(
            uri=uri, url=uri, slug=data.slug, name=rules.name(data.name),
            description=rules.description(data.description), color=rules.color(data.color),
            links=msgspec.to_builtins(data.links), local=True, instance=self.settings.host,
            created_at=created_at, updated_at=updated_at,
        )  # fmt: skip
        self.session.add(community)
        await self.session.flush()
        self.session.add(CommunityImport(archive_id=archive_id, community_id=community.id, source_uri=source_uri))
        await changes.record(self.session, self.settings, "Create", community)
        return community

    async def add_imported_member(
        self, community: Community, user_id: uuid.UUID, role: schemas.Role, joined_at: datetime
    ) -> None:
        """A member of an imported community, with the role and date they had."""
        self.session.add(Membership(community_id=community.id, user_id=user_id, role=role, created_at=joined_at))

    async def update(self, principal: Principal, ref: str, data: schemas.CommunityUpdate) -> Community:
        community = await self.get_local(ref)
        await self.require_moderator(principal, community)
        rules.not_moved(community)
        if data.name is not msgspec.UNSET:
            community.name = rules.name(data.name)
        if data.description is not msgspec.UNSET:
            community.description = rules.description(data.description)
        if data.color is not msgspec.UNSET:
            community.color = rules.color(data.color)
        if data.links is not msgspec.UNSET:
            community.links = msgspec.to_builtins(data.links)
        if data.also_known_as is not msgspec.UNSET:
            community.also_known_as = rules.also_known_as(data.also_known_as, community.uri, self.settings)
        community.updated_at = utcnow()
        await changes.record(self.session, self.settings, "Update", community)
        await self.session.commit()
        return community

    async def delete(self, principal: Principal, ref: str) -> None:
        community = await self.get_local(ref)
        if not principal.is_admin:
            raise forbidden("Only an instance admin can delete a community.")
        rules.not_moved(community)  # its pages stay, as a redirect map, for as long as this instance lives
        now = utcnow()
        community.deleted_at = now
        # Its guides and offers go with it: their services hear this change (see app.py).
        await changes.record(self.session, self.settings, "Delete", community)
        await self.session.commit()

    # a peer's writes: the caller's transaction, committed by the caller

    async def mark_former_peer(self, host: str, former: bool) -> None:
        """A former peer's communities stay, shown as from a former peer (or no more, when it is one again)."""
        copies = (Community.instance == host, Community.local.is_(False))
        await self.session.execute(update(Community).where(*copies).values(former_peer=former))

    async def purge_instance(self, host: str) -> int:
        """Remove a former peer's communities; returns how many."""
        copies = (Community.instance == host, Community.local.is_(False))
        result = await self.session.execute(delete(Community).where(*copies))
        return result.rowcount or 0

    async def apply_remote(self, remote: schemas.RemoteCommunity) -> str:
        """Keep our copy of a peer's community current (last writer wins); say what happened."""
        if host_of(remote.uri) != remote.instance:
            raise invalid("id", "the community is not on the instance that sends it")
        community = await self.session.scalar(select(Community).where(Community.uri == remote.uri))
        if community is not None and community.local:
            raise conflict("a peer cannot change a community of this instance")
        if community is not None and not is_newer(remote.updated or remote.published, community.updated_at):
            return "ignored stale community"
        slug = rules.remote_slug(remote)
        fields = rules.remote_fields(remote, slug)
        if community is None:
            clash = await self.session.scalar(
                select(Community).where(Community.slug == slug, Community.instance == remote.instance)
            )
            if clash is not None:
                raise conflict(f"{remote.instance} already has a community {slug!r} with another id")
            community = Community(
                uri=remote.uri, slug=slug, local=False, instance=remote.instance,
                created_at=remote.published or utcnow(), **fields,
            )  # fmt: skip
            self.session.add(community)
            await self.session.flush()
            verb = "Create"
        else:
            for key, value in fields.items():
                setattr(community, key, value)
            community.deleted_at = None  # a peer's Update after its Delete brings it back
            verb = "Update"
        await changes.record(self.session, self.settings, verb, community)
        return "community stored"

    async def remote_home(self, uris: list[str], instance: str) -> Community:
        """The community a peer's entry belongs to: the first of `uris` that names a known community of the
        entry's own instance (a peer cannot publish into another's community)."""
        for uri in uris:
            if host_of(uri) != instance:
                continue
            community = await self.session.scalar(select(Community).where(Community.uri == uri))
            if community is not None:
                if community.deleted_at is not None:
                    raise conflict("its community was deleted")
                return community
        raise invalid("audience", "no community of the signer's instance is its audience")

    async def apply_remote_delete(self, uri: str, instance: str) -> bool | None:
        """Delete our copy of a peer's community: None when there is none, False when it was deleted already."""
        community = await self.session.scalar(
            select(Community).where(Community.uri == uri, Community.instance == instance)
        )
        if community is None or community.deleted_at is not None:
            return None if community is None else False
        community.deleted_at = utcnow()
        await changes.record(self.session, self.settings, "Delete", community)
        return True

    # members

    async def members(self, ref: str) -> list[schemas.Member]:
        community = await self.get(ref)
        return [member_from_row(row) for row in await self.session.execute(MEMBERS, {"community_id": community.id})]

    async def set_member(
        self, principal: Principal, ref: str, data: schemas.MemberCreate
    ) -> tuple[schemas.Member, bool]:
        community = await self.get_local(ref)
        await self.require_moderator(principal, community)
        rules.not_moved(community)
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

    async def add_invited_member(self, community_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """A person who signed up through a community's invite joins it as a member, in the sign-up's
        transaction. The invite is the permission: its maker was checked as a moderator when making it. An invite
        to a community that has moved since joins nobody to it: its members carry on at its new home."""
        community = await self.session.get(Community, community_id)
        if community is not None and community.moved_to:
            return
        self.session.add(Membership(community_id=community_id, user_id=user_id, role="member"))
        await self.session.flush()

    async def remove_member(self, principal: Principal, ref: str, username: str) -> None:
        community = await self.get_local(ref)
        await self.require_moderator(principal, community)
        rules.not_moved(community)
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
        former_peer=c.former_peer, also_known_as=list(c.also_known_as or []), moved_to=c.moved_to,
        moved_at=c.moved_at, moved_from=c.moved_from, arrived_at=c.arrived_at,
    )  # fmt: skip


def _member(user: User, membership: Membership) -> schemas.Member:
    return schemas.Member(
        username=user.username, display_name=user.display_name or user.username,
        role=membership.role, joined_at=membership.created_at,  # type: ignore[arg-type]
    )  # fmt: skip
