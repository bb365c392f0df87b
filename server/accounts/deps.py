"""Request-scoped dependencies shared by every API controller."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from litestar import Request
from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.security import Principal
from server.accounts.service import AccountService
from server.errors import ProblemError
from server.settings import Settings


async def provide_db(state: State) -> AsyncGenerator[AsyncSession, None]:
    """The request's session. One that never began a transaction holds no connection: closing it would only
    be a round trip through SQLAlchemy's greenlet for nothing, which every page that reads without the session
    would pay."""
    session = state.sessionmaker()
    try:
        yield session
    finally:
        if session.in_transaction() or session.sync_session.identity_map or session.sync_session.new:
            await session.close()


def provide_settings(state: State) -> Settings:
    return state.settings


async def provide_principal(request: Request[Any, Any, Any]) -> Principal | None:
    """The bearer token's principal; cookies are never looked at under /api/.

    With no Authorization header there is nothing to look up and no session is opened; with one, the lookup
    has a session of its own, so handlers that never touch the database need no `db` at all. A handler with
    no parameters to validate may await it itself rather than have it injected (see the guide reads).
    """
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ProblemError(401, "Use 'Authorization: Bearer <token>'.", headers=_challenge())
    state = request.app.state
    async with state.sessionmaker() as db:
        principal = await AccountService(db, state.settings).principal_for_token(secret.strip())
    if principal is None:
        raise ProblemError(401, "The token is unknown, revoked or expired.", headers=_challenge())
    return principal


def require(principal: Principal | None) -> Principal:
    if principal is None:
        raise ProblemError(401, "This needs a bearer token.", headers=_challenge())
    return principal


def require_writer(principal: Principal | None) -> Principal:
    principal = require(principal)
    if not principal.can_write:
        raise ProblemError(403, "This token has the read scope; writing needs a write or admin token.")
    return principal


def _challenge() -> dict[str, str]:
    return {"WWW-Authenticate": 'Bearer realm="kith"'}
