"""API tokens and password for everyone, and the federation page for admins."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from litestar import Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.passwords import PasswordService
from server.accounts.schemas import TokenCreate
from server.accounts.security import SCOPES
from server.accounts.service import AccountService
from server.communities.moving import MoveService
from server.db import utcnow
from server.errors import ProblemError, forbidden, invalid, not_found
from server.federation.peers import peer_statuses, request_sync
from server.ratelimit import limiter_of, password_guesses
from server.settings import Settings
from server.web.core import Viewer, flash, page, see_other
from server.web.errors import signed_in
from server.web.forms import build, field_errors, form_data

# The lifetimes the form offers, in days, as GitHub does; the API takes any `expires_at` in the future.
EXPIRY_DAYS = (7, 30, 90, 365)


async def _signed_in(request: Request[Any, Any, Any], db: AsyncSession) -> Viewer:
    viewer = await signed_in(request, db)
    return viewer


async def _tokens_page(
    request: Request[Any, Any, Any], db: AsyncSession, settings: Settings, viewer: Viewer, **extra: Any
) -> Template:
    status_code = extra.pop("status_code", 200)
    tokens = await AccountService(db, settings).list_tokens(viewer.principal)
    scopes = SCOPES if viewer.is_admin else tuple(s for s in SCOPES if s != "admin")
    context = {
        "tokens": tokens, "scopes": scopes, "expiry_days": EXPIRY_DAYS, "now": utcnow(), "created": None,
        "errors": {}, **extra,
    }  # fmt: skip
    return await page(request, db, "settings/tokens", context, status_code=status_code, title="API tokens")


@get("/settings/tokens", name="tokens")
async def tokens(request: Request[Any, Any, Any], db: AsyncSession, settings: Settings) -> Template:
    return await _tokens_page(request, db, settings, await _signed_in(request, db))


@post("/settings/tokens", name="token_create")
async def token_create(request: Request[Any, Any, Any], db: AsyncSession, settings: Settings) -> Template:
    viewer = await _signed_in(request, db)
    data = await form_data(request)
    limiter_of(request).check("token_create", viewer.username)
    try:
        wanted = build(TokenCreate, {"name": data.get("name", "").strip(), "scope": data.get("scope", "read")})
        expires_at = _expiry(data.get("expires_in_days", ""))
        created = await AccountService(db, settings).create_token(
            viewer.principal, wanted.name, wanted.scope, expires_at
        )
    except ProblemError as exc:
        if exc.status not in (403, 422):
            raise
        return await _tokens_page(request, db, settings, viewer, errors=field_errors(exc), status_code=exc.status)
    # The secret is shown in this one response and never again: it is stored only as a hash.
    return await _tokens_page(request, db, settings, viewer, created=created)


def _expiry(days: str) -> datetime | None:
    if not days:
        return None
    if days not in {str(choice) for choice in EXPIRY_DAYS}:
        raise invalid("expires_in_days", "choose one of the offered lifetimes")
    return utcnow() + timedelta(days=int(days))


@post("/settings/tokens/{token_id:uuid}/revoke", name="token_revoke")
async def token_revoke(
    token_id: UUID, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings
) -> Redirect:
    viewer = await _signed_in(request, db)
    await AccountService(db, settings).revoke_token(viewer.principal, token_id)
    flash(request, "Token revoked; it stopped working at once.")
    return see_other("/settings/tokens")


async def _password_page(
    request: Request[Any, Any, Any], db: AsyncSession, viewer: Viewer, errors: dict[str, str], status_code: int = 200
) -> Template:
    has_password = await PasswordService(db).has_password(viewer.user_id)
    context = {"has_password": has_password, "errors": errors}
    return await page(request, db, "settings/password", context, status_code=status_code, title="Password")


@get("/settings/password", name="password")
async def password(request: Request[Any, Any, Any], db: AsyncSession) -> Template:
    return await _password_page(request, db, await _signed_in(request, db), {})


@post("/settings/password", name="password_change")
async def password_change(request: Request[Any, Any, Any], db: AsyncSession) -> Template | Redirect:
    viewer = await _signed_in(request, db)
    data = await form_data(request)
    new = data.get("new_password", "")
    try:
        if new != data.get("new_password_again", ""):
            raise invalid("new_password_again", "does not match the new password")
        with password_guesses(limiter_of(request), viewer.username):
            await PasswordService(db).change(
                viewer.principal, data.get("current_password", ""), new, keep_session=viewer.session_id
            )
    except ProblemError as exc:
        if exc.status not in (403, 409, 422):
            raise
        return await _password_page(request, db, viewer, field_errors(exc), exc.status)
    flash(request, "Password changed. Every other browser signed in as you is now signed out.", "success")
    return see_other("/settings/password")


async def _admin(request: Request[Any, Any, Any], db: AsyncSession) -> Viewer:
    viewer = await _signed_in(request, db)
    if not viewer.is_admin:
        raise forbidden("The federation page is for instance admins.")
    return viewer


@get("/admin/federation", name="federation")
async def federation(request: Request[Any, Any, Any], db: AsyncSession, settings: Settings) -> Template:
    await _admin(request, db)
    peers = await peer_statuses(db)
    known = {peer.host for peer in peers}
    configured = [host for host in settings.peer_hosts if host not in known]
    moves = await MoveService(db, settings).moved_statuses()
    context = {"peers": peers, "configured": configured, "peer_hosts": settings.peer_hosts, "moves": moves}
    return await page(request, db, "admin/federation", context, title="Federation")


@post("/admin/federation/peers/{host:str}/sync", name="federation_sync")
async def federation_sync(host: str, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings) -> Redirect:
    await _admin(request, db)
    try:
        await request_sync(db, settings, host)
    except LookupError as exc:
        raise not_found(f"Peer {host!r}") from exc
    flash(request, f"Sync with {host} started; the worker is on it.")
    return see_other("/admin/federation")


settings_handlers = [tokens, token_create, token_revoke, password, password_change, federation, federation_sync]
