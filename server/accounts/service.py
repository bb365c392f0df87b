"""Users, tokens and community roles: the only code that writes them."""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from datetime import UTC, datetime, timedelta
from uuid import UUID

from slugify import slugify
from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.passwords import check_new_password
from server.accounts.reserved import is_reserved
from server.accounts.schemas import PersonRef, RemotePerson, Roles, Token, TokenCreated
from server.accounts.security import (
    SCOPES,
    Principal,
    hash_password,
    hash_token,
    new_token_secret,
    verify_password,
)
from server.db import new_id, utcnow
from server.errors import ProblemError, conflict, invalid, not_found
from server.models import ApiToken, Community, Membership, OIDCIdentity, User
from server.settings import Settings

USERNAME_RE = re.compile(r"^[a-z0-9_][a-z0-9_.-]{0,31}$")
# Enough to catch a typo; whether the address works is for the confirmation mail to tell.
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
# last_used_at is for humans; writing it on every request would turn each read into a write.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def username_from(hint: str) -> str:
    """A valid username (see USERNAME_RE) close to what a person is called elsewhere; "user" if nothing is left."""
    text = unicodedata.normalize("NFKD", hint.split("@", 1)[0]).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[^a-z0-9_.-]+", "-", text).strip(".-")[:32].rstrip(".-")
    return text or "user"


def person_ref(user: User) -> PersonRef:
    return person_ref_of(user.username, user.display_name, user.uri, user.instance)


def person_ref_of(username: str, display_name: str, uri: str, instance: str) -> PersonRef:
    """The same from the columns alone, for reads that select them without loading the User."""
    return PersonRef(username=username, display_name=display_name or username, uri=uri, instance=instance)


# Far enough for anything planned; "until revoked" is the absence of an expiry, not a date in year 9999.
_LONGEST_EXPIRY = timedelta(days=3660)


def _checked_expiry(expires_at: datetime) -> datetime:
    now = utcnow()
    if expires_at <= now:
        raise invalid("expires_at", "must be in the future")
    if expires_at - now > _LONGEST_EXPIRY:
        raise invalid("expires_at", "must be within ten years; leave it out for a token that lasts until revoked")
    return expires_at.astimezone(UTC)


class AccountService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings

    async def create_user(
        self,
        username: str,
        password: str,
        *,
        is_admin: bool = False,
        display_name: str = "",
        allow_reserved: bool = False,
    ) -> User:
        user = await self.add_local_user(
            username, password, is_admin=is_admin, display_name=display_name, allow_reserved=allow_reserved
        )
        await self.session.commit()
        return user

    async def add_local_user(
        self,
        username: str,
        password: str,
        *,
        is_admin: bool = False,
        display_name: str = "",
        email: str | None = None,
        pending: bool = False,
        reason: str | None = None,
        allow_reserved: bool = False,
    ) -> User:
        """A new local account in the caller's transaction (flushed, not committed), so a sign-up's other
        writes commit or roll back with it. `allow_reserved` is for the instance's first admin alone."""
        username = username.strip().lower()
        if not USERNAME_RE.match(username):
            raise invalid("username", "use 1-32 lowercase letters, digits, '_', '.' or '-'")
        if is_reserved(username) and not allow_reserved:
            raise invalid("username", f"{username!r} is reserved on this instance; please pick another")
        check_new_password(password)
        email = (email or "").strip() or None
        if email is not None and (len(email) > 320 or not EMAIL_RE.match(email)):
            raise invalid("email", "is not an email address")
        if await self.local_user(username):
            raise conflict(f"The username {username!r} is taken.")
        uri = f"{self.settings.base_url}/u/{username}"
        user = User(
            username=username, instance=self.settings.host, display_name=display_name.strip() or username,
            password_hash=hash_password(password), is_admin=is_admin, local=True, uri=uri, url=uri,
            email=email, pending=pending, sign_up_reason=reason if pending else None,
        )  # fmt: skip
        self.session.add(user)
        try:
            await self.session.flush()
        except IntegrityError as exc:
            # Someone took the name between the look and the insert.
            await self.session.rollback()
            raise conflict(f"The username {username!r} is taken.") from exc
        return user

    async def add_claimable_user(self, username: str, display_name: str) -> User:
        """A local account for a person whose entries arrive in a community archive, in the caller's transaction.
        It has no password, so nobody signs in as it until an admin gives it one (`kith user set-password`). The
        username is the one the person had on the archive's instance, even one reserved for new sign-ups here:
        it names the same person, on the instance that took their community over."""
        username = username.strip().lower()
        if not USERNAME_RE.match(username):
            raise invalid("username", "use 1-32 lowercase letters, digits, '_', '.' or '-'")
        if await self.local_user(username):
            raise conflict(f"The username {username!r} is taken.")
        uri = f"{self.settings.base_url}/u/{username}"
        user = User(
            username=username, instance=self.settings.host, display_name=display_name.strip()[:100] or username,
            password_hash=None, is_admin=False, local=True, uri=uri, url=uri,
        )  # fmt: skip
        self.session.add(user)
        await self.session.flush()
        return user

    async def pending_users(self) -> list[User]:
        return list(
            await self.session.scalars(
                select(User).where(User.local.is_(True), User.pending.is_(True)).order_by(User.created_at)
            )
        )

    async def approve_pending(self, username: str) -> User:
        user = await self._pending(username)
        user.pending = False
        user.sign_up_reason = None
        await self.session.commit()
        return user

    async def reject_pending(self, username: str) -> None:
        # A refused sign-up leaves nothing behind: the name is free again.
        await self.session.delete(await self._pending(username))
        await self.session.commit()

    async def confirm_email(self, user_id: UUID, email: str) -> bool:
        """Mark the address confirmed, if it is still the account's address."""
        user = await self.session.get(User, user_id)
        if user is None or not user.local or (user.email or "").lower() != email.lower():
            return False
        if user.email_confirmed_at is None:
            user.email_confirmed_at = utcnow()
            await self.session.commit()
        return True

    async def _pending(self, username: str) -> User:
        user = await self.local_user(username)
        if user is None or not user.pending:
            raise not_found(f"Pending sign-up {username!r}")
        return user

    async def local_user(self, username: str) -> User | None:
        return await self.session.scalar(select(User).where(User.username == username.lower(), User.local.is_(True)))

    async def authenticate(self, username: str, password: str) -> User | None:
        user = await self.local_user(username.strip())
        # The hash is checked (against a stand-in) even when there is no such account: see verify_password.
        if not verify_password(user.password_hash if user else None, password):
            return None
        return user

    async def oidc_user(self, issuer: str, subject: str, *, username_hint: str, display_name: str = "") -> User:
        """The account linked to this identity at an OpenID provider; on its first sign-in, a new account for it.

        A new account gets a free username near `username_hint` and no password. It is never linked to an existing
        account by a matching username or email: whoever controls the provider's account would take over the
        local one.
        """
        for _attempt in range(3):
            user = await self.session.scalar(
                select(User)
                .join(OIDCIdentity, OIDCIdentity.user_id == User.id)
                .where(OIDCIdentity.issuer == issuer, OIDCIdentity.subject == subject, User.local.is_(True))
            )
            if user is not None:
                return user
            username = await self._free_username(username_from(username_hint))
            uri = f"{self.settings.base_url}/u/{username}"
            user = User(
                id=new_id(), username=username, instance=self.settings.host,
                display_name=(display_name.strip() or username)[:100], password_hash=None, is_admin=False,
                local=True, uri=uri, url=uri,
            )  # fmt: skip
            self.session.add(user)
            self.session.add(OIDCIdentity(user_id=user.id, issuer=issuer, subject=subject))
            try:
                await self.session.commit()
            except IntegrityError:
                # A concurrent first sign-in took the identity or the username: look again.
                await self.session.rollback()
                continue
            return user
        raise conflict("Could not create an account for this sign-in; please try again.")

    async def _free_username(self, base: str) -> str:
        for number in range(1, 20):
            suffix = "" if number == 1 else f"-{number}"
            candidate = base[: 32 - len(suffix)] + suffix
            if await self.local_user(candidate) is None:
                return candidate
        suffix = f"-{secrets.token_hex(4)}"
        return base[: 32 - len(suffix)] + suffix

    async def has_users(self) -> bool:
        return await self.session.scalar(select(User.id).where(User.local.is_(True)).limit(1)) is not None

    async def create_token(
        self, user: User | Principal, name: str, scope: str, expires_at: datetime | None = None
    ) -> TokenCreated:
        if scope not in SCOPES:
            raise invalid("scope", f"must be one of {', '.join(SCOPES)}")
        user_id = user.id if isinstance(user, User) else user.user_id
        if isinstance(user, Principal) and scope == "admin" and not user.is_admin:
            raise ProblemError(403, "Only an instance admin using an admin token can create admin tokens.")
        if isinstance(user, Principal) and not user.can_write:
            # A leaked read token must not become a way to keep access once it is revoked.
            raise ProblemError(403, "A read token cannot create tokens.")
        if expires_at is not None:
            expires_at = _checked_expiry(expires_at)
        secret = new_token_secret()
        token = ApiToken(
            user_id=user_id, name=name.strip(), scope=scope, token_hash=hash_token(secret), expires_at=expires_at
        )
        self.session.add(token)
        await self.session.commit()
        return TokenCreated(
            id=token.id,
            name=token.name,
            scope=scope,
            secret=secret,
            created_at=token.created_at,  # type: ignore[arg-type]
            expires_at=expires_at,
        )

    async def list_tokens(self, principal: Principal) -> list[Token]:
        rows = await self.session.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == principal.user_id, ApiToken.revoked_at.is_(None))
            .order_by(ApiToken.created_at.desc())
        )
        return [
            Token(
                id=t.id,
                name=t.name,
                scope=t.scope,
                created_at=t.created_at,
                last_used_at=t.last_used_at,  # type: ignore[arg-type]
                expires_at=t.expires_at,
            )  # fmt: skip
            for t in rows
        ]

    async def revoke_token(self, principal: Principal, token_id: UUID) -> None:
        if not principal.can_write:
            raise ProblemError(403, "A read token cannot revoke tokens.")
        token = await self.session.get(ApiToken, token_id)
        if token is None or token.user_id != principal.user_id or token.revoked_at is not None:
            raise not_found("Token")
        token.revoked_at = utcnow()
        await self.session.commit()

    async def principal_for_token(self, secret: str) -> Principal | None:
        now = utcnow()
        row = (
            await self.session.execute(
                select(ApiToken, User)
                .join(User, User.id == ApiToken.user_id)
                .where(
                    ApiToken.token_hash == hash_token(secret),
                    ApiToken.revoked_at.is_(None),
                    or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
                )
            )
        ).first()
        if row is None:
            return None
        token, user = row
        if token.last_used_at is None or now - token.last_used_at > _LAST_USED_RESOLUTION:
            token.last_used_at = now
            await self.session.commit()
        return Principal(user_id=user.id, username=user.username, user_is_admin=user.is_admin, scope=token.scope)

    async def roles(self, principal: Principal) -> Roles:
        rows = await self.session.execute(
            select(Community.slug, Membership.role)
            .join(Community, Community.id == Membership.community_id)
            .where(Membership.user_id == principal.user_id, Community.deleted_at.is_(None))
        )
        return Roles(
            instance="admin" if principal.user_is_admin else None,
            communities={slug: role for slug, role in rows},  # type: ignore[misc]
        )

    async def purge_instance(self, host: str) -> None:
        """Forget the people of a former peer (their entries are gone first)."""
        await self.session.execute(delete(User).where(User.instance == host, User.local.is_(False)))

    async def apply_remote_person(self, person: RemotePerson) -> User:
        """Our record of a person of another instance, made the first time one of their entries arrives."""
        user = await self.session.scalar(select(User).where(User.uri == person.uri))
        if user is not None and user.local:
            raise conflict("a peer cannot speak for a person of this instance")
        if user is not None:
            return user
        username = (slugify(person.username, max_length=64, separator="_") or "someone")[:64]
        taken = await self.session.scalar(
            select(User.id).where(User.username == username, User.instance == person.instance)
        )
        if taken is not None:
            # Two people of one instance whose names slug alike: the uri tells them apart, for good.
            username = f"{username[:55]}_{hashlib.sha256(person.uri.encode()).hexdigest()[:8]}"
        user = User(
            username=username, instance=person.instance, display_name=person.display_name[:100] or username,
            password_hash=None, local=False, uri=person.uri, url=person.url or person.uri,
        )  # fmt: skip
        self.session.add(user)
        await self.session.flush()
        return user

    async def role_in(self, user_id: UUID, community_id: UUID) -> str | None:
        return await self.session.scalar(
            select(Membership.role).where(Membership.user_id == user_id, Membership.community_id == community_id)
        )
