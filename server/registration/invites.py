"""Invite links: made by admins and community moderators, used up atomically by sign-ups."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.security import Principal
from server.communities import rules as community_rules
from server.communities.service import CommunityService
from server.db import utcnow
from server.errors import FieldError, ProblemError, forbidden, not_found
from server.models import Community, Invite, Membership, User
from server.registration import schemas
from server.registration.rules import closed_problem
from server.settings import Settings


def hash_code(code: str) -> str:
    # Codes carry 128 bits of randomness: a fast hash is enough, as for tokens.
    return hashlib.sha256(code.encode()).hexdigest()


def invite_state(invite: Invite, now: datetime) -> schemas.InviteState:
    if invite.revoked_at is not None:
        return "revoked"
    if invite.uses >= invite.max_uses:
        return "used_up"
    if invite.expires_at <= now:
        return "expired"
    return "active"


@dataclass(frozen=True)
class UsableInvite:
    """What a join page shows, and what a sign-up needs from the invite."""

    id: UUID
    community_id: UUID | None
    community_slug: str | None
    community_name: str | None


_REFUSALS = {
    "revoked": (403, "This invite link was withdrawn."),
    "expired": (403, "This invite link has expired."),
    "used_up": (409, "This invite link has been used as many times as it allows."),
}


def _refusal(status: int, detail: str) -> ProblemError:
    # Named as the `invite` field's problem, so a form can tell a dead link from a mistake of its own.
    return ProblemError(status, detail, errors=[FieldError("invite", detail)])


def _listed(invite: Invite, slug: str | None, creator: str, now: datetime) -> schemas.Invite:
    return schemas.Invite(
        id=invite.id, community=slug, max_uses=invite.max_uses, uses=invite.uses, state=invite_state(invite, now),
        expires_at=invite.expires_at, created_at=invite.created_at, created_by=creator,
    )  # fmt: skip


class InviteService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings

    def _statement(self) -> Select[tuple[Invite, str | None, str]]:
        return (
            select(Invite, Community.slug, User.username)
            .join(User, User.id == Invite.created_by_id)
            .outerjoin(Community, Community.id == Invite.community_id)
        )

    async def create(self, principal: Principal, data: schemas.InviteCreate) -> schemas.InviteCreated:
        if self.settings.registration == "closed":
            raise closed_problem()
        community = None
        if data.community:
            communities = CommunityService(self.session, self.settings)
            community = await communities.get_local(data.community)
            await communities.require_moderator(principal, community)
            community_rules.not_moved(community)
        elif not principal.is_admin:
            raise forbidden("Only instance admins make invites to the instance alone; name a community you moderate.")
        code = secrets.token_urlsafe(16)
        now = utcnow()
        invite = Invite(
            code_hash=hash_code(code), created_by_id=principal.user_id,
            community_id=community.id if community else None, max_uses=data.max_uses, uses=0,
            expires_at=now + timedelta(days=data.expires_in_days), created_at=now,
        )  # fmt: skip
        self.session.add(invite)
        await self.session.commit()
        return schemas.InviteCreated(
            id=invite.id, code=code, url=f"{self.settings.base_url}/join/{code}",
            community=community.slug if community else None, max_uses=invite.max_uses, uses=0, state="active",
            expires_at=invite.expires_at, created_at=invite.created_at, created_by=principal.username,
        )  # fmt: skip

    async def list(self, principal: Principal) -> list[schemas.Invite]:
        """Admins see every invite; anyone else the ones they made."""
        statement = self._statement().order_by(Invite.created_at.desc())
        if not principal.is_admin:
            statement = statement.where(Invite.created_by_id == principal.user_id)
        now = utcnow()
        return [_listed(invite, slug, creator, now) for invite, slug, creator in await self.session.execute(statement)]

    async def invitable_communities(self, principal: Principal) -> list[tuple[str, str]]:
        """(slug, name) of the communities this person may make invites to: all local ones for an admin."""
        statement = select(Community.slug, Community.name).where(
            Community.local.is_(True), Community.deleted_at.is_(None)
        )
        if not principal.is_admin:
            statement = statement.join(Membership, Membership.community_id == Community.id).where(
                Membership.user_id == principal.user_id, Membership.role == "moderator"
            )
        return [(slug, name) for slug, name in await self.session.execute(statement.order_by(Community.name))]

    async def revoke(self, principal: Principal, invite_id: UUID) -> None:
        if not principal.can_write:
            raise forbidden("A read token cannot withdraw invites.")
        invite = await self.session.get(Invite, invite_id)
        if invite is None or invite.revoked_at is not None:
            raise not_found("Invite")
        if invite.created_by_id != principal.user_id and not principal.is_admin:
            community = await self.session.get(Community, invite.community_id) if invite.community_id else None
            if community is None:
                raise not_found("Invite")
            await CommunityService(self.session, self.settings).require_moderator(principal, community)
        await self.session.execute(update(Invite).where(Invite.id == invite_id).values(revoked_at=utcnow()))
        await self.session.commit()

    async def usable(self, code: str) -> UsableInvite:
        """The invite behind a link, or the problem that says why it cannot be used (nothing is used up here)."""
        row = (await self.session.execute(self._statement().where(Invite.code_hash == hash_code(code)))).first()
        if row is None:
            raise _refusal(404, "This invite link is not valid. Check that it was copied whole.")
        invite, slug, _creator = row
        state = invite_state(invite, utcnow())
        if state != "active":
            raise _refusal(*_REFUSALS[state])
        community_name = None
        if invite.community_id is not None:
            statement = select(Community.name).where(Community.id == invite.community_id)
            community_name = await self.session.scalar(statement)
        return UsableInvite(invite.id, invite.community_id, slug, community_name)

    async def use(self, code: str) -> UsableInvite:
        """Take one use of the invite in the caller's transaction.

        The check and the count are one conditional UPDATE: of two sign-ups racing for the last use, exactly one
        matches (PostgreSQL re-checks the row it waited for; SQLite has one writer at a time).
        """
        invite = await self.usable(code)
        result = await self.session.execute(
            update(Invite)
            .where(
                Invite.id == invite.id,
                Invite.uses < Invite.max_uses,
                Invite.expires_at > utcnow(),
                Invite.revoked_at.is_(None),
            )
            .values(uses=Invite.uses + 1)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise _refusal(*_REFUSALS["used_up"])
        return invite
