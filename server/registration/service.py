"""Sign-ups as the registration mode allows them, and the approval of those that wait."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.security import Principal
from server.accounts.service import AccountService
from server.communities.service import CommunityService
from server.errors import forbidden, invalid
from server.models import Community, Membership, User
from server.registration import schemas
from server.registration.invites import InviteService, UsableInvite
from server.registration.mail import mail_configured, send_confirmation, token_matches, token_user
from server.registration.rules import closed_problem, invite_needed_problem
from server.settings import Settings


class RegistrationService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings

    @property
    def mode(self) -> str:
        return self.settings.registration

    async def sign_up(self, data: schemas.AccountCreate) -> schemas.Account:
        """One transaction: the account, the invite's use and the community membership commit together, or none
        of them does (a refusal at any step rolls back what came before it)."""
        if self.mode == "closed":
            raise closed_problem()
        invites = InviteService(self.session, self.settings)
        invite: UsableInvite | None = None
        if data.invite:
            invite = await invites.usable(data.invite)  # a dead link is refused before any work is done
        elif self.mode == "invite":
            raise invite_needed_problem()
        # An invited person was vouched for by whoever made the link: they need no approval.
        pending = self.mode == "approval" and invite is None
        reason = (data.reason or "").strip()
        if pending and not reason:
            raise invalid("reason", "tell the admins in a few words why you would like to join")
        try:
            user = await AccountService(self.session, self.settings).add_local_user(
                data.username, data.password, display_name=data.display_name, email=data.email,
                pending=pending, reason=reason or None,
            )  # fmt: skip
            communities = []
            if data.invite:
                invite = await invites.use(data.invite)
                if invite.community_id is not None:
                    await CommunityService(self.session, self.settings).add_invited_member(invite.community_id, user.id)
                    communities.append(invite.community_slug or "")
            await self.session.commit()
        except BaseException:
            await self.session.rollback()
            raise
        if user.email and mail_configured(self.settings):
            # After the commit: a mail must never announce an account that was rolled back.
            await send_confirmation(self.settings, user.id, user.username, user.email)
        return _account(user, communities)

    async def confirm_email(self, token: str) -> bool:
        """The link of a confirmation mail: true when it confirmed the account's current address."""
        user_id = token_user(token)
        if user_id is None:
            return False
        email = await self.session.scalar(select(User.email).where(User.id == user_id, User.local.is_(True)))
        if not email or not token_matches(self.settings, token, user_id, email):
            return False
        return await AccountService(self.session, self.settings).confirm_email(user_id, email)

    async def pending(self, principal: Principal) -> list[schemas.PendingAccount]:
        _require_admin(principal)
        return [
            schemas.PendingAccount(
                username=user.username,
                display_name=user.display_name or user.username,
                email=user.email,
                reason=user.sign_up_reason or "",
                created_at=user.created_at,
            )  # fmt: skip
            for user in await AccountService(self.session, self.settings).pending_users()
        ]

    async def approve(self, principal: Principal, username: str) -> schemas.Account:
        _require_admin(principal)
        user = await AccountService(self.session, self.settings).approve_pending(username)
        return _account(user, await self._communities_of(user))

    async def reject(self, principal: Principal, username: str) -> None:
        _require_admin(principal)
        await AccountService(self.session, self.settings).reject_pending(username)

    async def _communities_of(self, user: User) -> list[str]:
        rows = await self.session.scalars(
            select(Community.slug)
            .join(Membership, Membership.community_id == Community.id)
            .where(Membership.user_id == user.id)
        )
        return list(rows)


def _require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise forbidden("Only an instance admin (with an admin token) decides on sign-ups.")


def _account(user: User, communities: list[str]) -> schemas.Account:
    return schemas.Account(
        id=user.id, username=user.username, display_name=user.display_name or user.username,
        state="pending" if user.pending else "active", email=user.email,
        email_confirmed=user.email_confirmed_at is not None, communities=communities,
        created_at=user.created_at,
    )  # fmt: skip
