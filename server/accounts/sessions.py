"""Browser sign-ins, kept as rows so that signing out, or changing a password, ends them for good.

The cookie (encrypted by the session middleware) carries only a random secret; the row keeps its SHA-256. A
copied cookie is worth nothing once its row is gone.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.security import hash_token
from server.db import utcnow
from server.models import User, WebSession

# As long as the cookie lives: after it the browser forgets the secret anyway, and the row would be dead weight.
SESSION_LIFETIME = timedelta(days=14)


class SessionService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def start(self, user_id: UUID, *, replacing: str | None = None) -> str:
        """A new sign-in for the person; the secret goes into the cookie and is never stored.

        `replacing` is the secret the browser held before, if any: that sign-in ends here, whoever it was for.
        """
        now = utcnow()
        if replacing:
            await self.session.execute(delete(WebSession).where(WebSession.secret_hash == hash_token(replacing)))
        # A person's lapsed sign-ins go when they sign in again, so the table stays the size of who is signed in.
        await self.session.execute(
            delete(WebSession).where(WebSession.user_id == user_id, WebSession.expires_at <= now)
        )
        secret = secrets.token_urlsafe(32)
        self.session.add(
            WebSession(
                user_id=user_id, secret_hash=hash_token(secret), created_at=now, expires_at=now + SESSION_LIFETIME
            )
        )
        await self.session.commit()
        return secret

    async def signed_in(self, secret: str) -> tuple[User, UUID] | None:
        """The local person a live sign-in belongs to, and the sign-in's id. Every signed-in page asks this, so it
        is one lookup by a unique index joined to the user's primary key."""
        row = (
            await self.session.execute(
                select(User, WebSession.id)
                .join(WebSession, WebSession.user_id == User.id)
                .where(
                    WebSession.secret_hash == hash_token(secret),
                    WebSession.expires_at > utcnow(),
                    User.local.is_(True),
                )
            )
        ).first()
        return None if row is None else (row[0], row[1])

    async def end(self, secret: str) -> None:
        await self.session.execute(delete(WebSession).where(WebSession.secret_hash == hash_token(secret)))
        await self.session.commit()

    async def end_all(self, user_id: UUID, *, keep: UUID | None = None) -> None:
        """Ends every sign-in of the person but `keep`, in the caller's transaction (it commits with its change)."""
        statement = delete(WebSession).where(WebSession.user_id == user_id)
        if keep is not None:
            statement = statement.where(WebSession.id != keep)
        await self.session.execute(statement)
