"""Invite links for admins and community moderators, and the sign-ups that wait for an admin."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from server.errors import ProblemError, forbidden
from server.registration.invites import InviteService
from server.registration.schemas import InviteCreate
from server.registration.service import RegistrationService
from server.settings import Settings
from server.web.core import Viewer, flash, page, see_other
from server.web.errors import signed_in
from server.web.forms import build, field_errors, form_data


async def _invites_page(
    request: Request[Any, Any, Any], db: AsyncSession, settings: Settings, viewer: Viewer, **extra: Any
) -> Template:
    status_code = extra.pop("status_code", 200)
    service = InviteService(db, settings)
    context = {
        "invites": await service.list(viewer.principal),
        "communities": await service.invitable_communities(viewer.principal),
        "can_invite_alone": viewer.is_admin,
        "created": None, "errors": {}, "selected": "", **extra,
    }  # fmt: skip
    return await page(request, db, "settings/invites", context, status_code=status_code, title="Invite links")


@get("/settings/invites", name="invites")
async def invites(
    request: Request[Any, Any, Any], db: AsyncSession, settings: Settings, community: str = ""
) -> Template:
    viewer = await signed_in(request, db)
    if settings.registration == "closed":
        raise ProblemError(403, "Registration is closed on this instance, so invite links would not work.")
    return await _invites_page(request, db, settings, viewer, selected=community)


@post("/settings/invites", name="invite_create")
async def invite_create(request: Request[Any, Any, Any], db: AsyncSession, settings: Settings) -> Template:
    viewer = await signed_in(request, db)
    data = await form_data(request)
    try:
        wanted = build(
            InviteCreate,
            {
                "community": data.get("community", "").strip() or None,
                "max_uses": _number(data.get("max_uses", "1")),
                "expires_in_days": _number(data.get("expires_in_days", "7")),
            },
        )
        created = await InviteService(db, settings).create(viewer.principal, wanted)
    except ProblemError as exc:
        if exc.status not in (403, 404, 422):
            raise
        errors = field_errors(exc)
        return await _invites_page(request, db, settings, viewer, errors=errors, status_code=exc.status)
    # The link is shown in this one response: only its hash is kept.
    return await _invites_page(request, db, settings, viewer, created=created, selected=created.community or "")


def _number(text: str) -> int | str:
    # Not a number: left as text, so the schema's check names the field.
    return int(text) if text.strip().isdigit() else text


@post("/settings/invites/{invite_id:uuid}/revoke", name="invite_revoke")
async def invite_revoke(
    invite_id: UUID, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings
) -> Redirect:
    viewer = await signed_in(request, db)
    await InviteService(db, settings).revoke(viewer.principal, invite_id)
    flash(request, "Invite withdrawn: its link no longer works.")
    return see_other("/settings/invites")


async def _admin(request: Request[Any, Any, Any], db: AsyncSession) -> Viewer:
    viewer = await signed_in(request, db)
    if not viewer.is_admin:
        raise forbidden("Sign-ups are decided by instance admins.")
    return viewer


@get("/admin/sign-ups", name="sign_ups")
async def sign_ups(request: Request[Any, Any, Any], db: AsyncSession, settings: Settings) -> Template:
    viewer = await _admin(request, db)
    pending = await RegistrationService(db, settings).pending(viewer.principal)
    return await page(request, db, "admin/sign_ups", {"pending": pending}, title="Sign-ups")


@post("/admin/sign-ups/{username:str}/approve", name="sign_up_approve")
async def sign_up_approve(
    username: str, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings
) -> Redirect:
    viewer = await _admin(request, db)
    account = await RegistrationService(db, settings).approve(viewer.principal, username)
    flash(request, f"{account.username} can sign in now.")
    return see_other("/admin/sign-ups")


@post("/admin/sign-ups/{username:str}/reject", name="sign_up_reject")
async def sign_up_reject(
    username: str, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings
) -> Redirect:
    viewer = await _admin(request, db)
    await RegistrationService(db, settings).reject(viewer.principal, username)
    flash(request, f"The sign-up of {username} was refused and removed.")
    return see_other("/admin/sign-ups")


invite_handlers = [invites, invite_create, invite_revoke, sign_ups, sign_up_approve, sign_up_reject]
