"""Changing a password: by its owner, who proves the current one, or by an operator on the command line.

Either way every other sign-in of the person ends, so whoever learnt the old password (or copied a cookie) is
out. API tokens stay: each is its own credential, listed and revoked on its own, as on GitHub.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.security import Principal, hash_password, verify_password
from server.accounts.sessions import SessionService
from server.db import utcnow
from server.errors import FieldError, ProblemError, invalid, not_found
from server.models import User

MIN_PASSWORD_LENGTH = 8
# Long passphrases are welcome; megabytes are not a password, only work for the hasher.
MAX_PASSWORD_LENGTH = 1024


def check_new_password(password: str, field: str = "password") -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise invalid(field, f"must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise invalid(field, f"must be at most {MAX_PASSWORD_LENGTH} characters")


class PasswordService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def has_password(self, user_id: UUID) -> bool:
        user = await self.session.get(User, user_id)
        return user is not None and bool(user.password_hash)

    async def change(self, principal: Principal, current: str, new: str, *, keep_session: UUID | None = None) -> None:
        """The person's own change. `keep_session` is the sign-in they are using, which stays signed in."""
        if not principal.can_write:
            # A read token is for reading; it must not become a way to take the account.
            raise ProblemError(403, "A read token cannot change the password.")
        user = await self.session.get(User, principal.user_id)
        if user is None or not user.local:
            raise not_found("Account")
        if not user.password_hash:
            raise ProblemError(
                409,
                "This account signs in through an OpenID provider and has no password to change; "
                "an operator can give it one with `kith user set-password`.",
            )
        check_new_password(new, "new_password")
        if not verify_password(user.password_hash, current):
            raise ProblemError(
                403,
                "The current password is not right; nothing was changed.",
                errors=[FieldError("current_password", "is not your current password")],
            )
        await self._set(user, new, keep_session)

    async def set_by_operator(self, user: User, new: str) -> None:
        """For whoever runs the instance: no current password needed, and every sign-in of the person ends."""
        check_new_password(new)
        await self._set(user, new, None)

    async def _set(self, user: User, new: str, keep_session: UUID | None) -> None:
        user.password_hash = hash_password(new)
        user.updated_at = utcnow()
        await SessionService(self.session).end_all(user.id, keep=keep_session)
        await self.session.commit()
