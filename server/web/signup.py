"""The sign-up page and invite links (`/join/{code}`), following the instance's registration mode."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from server.errors import ProblemError
from server.ratelimit import client_address, limiter_of
from server.registration.invites import InviteService, UsableInvite
from server.registration.rules import closed_problem, invite_needed_problem
from server.registration.schemas import AccountCreate
from server.registration.service import RegistrationService
from server.settings import Settings
from server.web.auth import sign_in
from server.web.core import flash, page, see_other
from server.web.forms import build, field_errors, form_data

_FIELDS = ("username", "display_name", "email", "reason")


async def _form(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    settings: Settings,
    *,
    invite: UsableInvite | None = None,
    code: str = "",
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    refused: str = "",
    status_code: int = 200,
) -> Template:
    context = {
        "mode": settings.registration, "invite": invite, "code": code, "values": values or {},
        "errors": errors or {}, "refused": refused,
    }  # fmt: skip
    title = f"Join {invite.community_name}" if invite and invite.community_name else "Sign up"
    return await page(request, db, "account/signup", context, status_code=status_code, title=title)


@get("/signup", name="signup")
async def signup_form(request: Request[Any, Any, Any], db: AsyncSession, settings: Settings) -> Template:
    if settings.registration == "closed":
        return await _form(request, db, settings, refused=closed_problem().detail, status_code=403)
    if settings.registration == "invite":
        return await _form(request, db, settings, refused=invite_needed_problem().detail)
    return await _form(request, db, settings)


@get("/join/{code:str}", name="join")
async def join_form(code: str, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings) -> Template:
    if settings.registration == "closed":
        return await _form(request, db, settings, refused=closed_problem().detail, status_code=403)
    try:
        invite = await InviteService(db, settings).usable(code)
    except ProblemError as exc:
        return await _form(request, db, settings, refused=exc.detail, status_code=exc.status)
    return await _form(request, db, settings, invite=invite, code=code)


@post("/signup", name="signup_submit")
async def signup_submit(request: Request[Any, Any, Any], db: AsyncSession, settings: Settings) -> Template | Redirect:
    data = await form_data(request)
    limiter_of(request).check("registration", client_address(request))
    code = data.get("invite", "").strip()
    values = {name: data.get(name, "") for name in _FIELDS}
    invite = None
    try:
        if code:
            invite = await InviteService(db, settings).usable(code)
        wanted = build(
            AccountCreate,
            {
                "username": values["username"].strip(), "password": data.get("password", ""),
                "display_name": values["display_name"].strip(), "email": values["email"].strip() or None,
                "reason": values["reason"].strip() or None, "invite": code or None,
            },
        )  # fmt: skip
        account = await RegistrationService(db, settings).sign_up(wanted)
    except ProblemError as exc:
        if exc.status not in (403, 404, 409, 422):
            raise
        errors = field_errors(exc)
        if exc.status in (403, 404) or "invite" in errors:
            # The mode or the invite says no: no form would help.
            return await _form(request, db, settings, refused=exc.detail, status_code=exc.status)
        return await _form(
            request, db, settings, invite=invite, code=code, values=values, errors=errors, status_code=exc.status
        )
    if account.state == "pending":
        return await page(request, db, "account/signed_up", {"account": account}, title="Sign-up received")
    await sign_in(request, db, account.id)
    flash(request, f"Welcome to {settings.instance_name}, {account.display_name}.")
    return see_other(f"/c/{account.communities[0]}" if account.communities else "/")


@get("/confirm-email/{token:str}", name="confirm_email")
async def confirm_email(token: str, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings) -> Template:
    if not await RegistrationService(db, settings).confirm_email(token):
        raise ProblemError(404, "This confirmation link is not valid, or the address it was for has changed.")
    return await page(request, db, "account/email_confirmed", {}, title="Email confirmed")


signup_handlers = [signup_form, join_form, signup_submit, confirm_email]
