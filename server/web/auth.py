"""Local sign-in and sign-out; failed sign-ins are limited per account name and per client address."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.service import AccountService
from server.accounts.sessions import SessionService
from server.ratelimit import client_address, limiter_of
from server.settings import Settings
from server.web.core import SESSION_SECRET, current_viewer, flash, page, safe_next, see_other, session_of
from server.web.forms import form_data


async def sign_in(request: Request[Any, Any, Any], db: AsyncSession, user_id: UUID) -> None:
    # A fresh session at sign-in: nothing from before the sign-in carries over, and a sign-in the browser held
    # before ends rather than lingering on the server.
    previous = session_of(request).get(SESSION_SECRET)
    secret = await SessionService(db).start(user_id, replacing=previous if isinstance(previous, str) else None)
    request.clear_session()
    request.set_session({SESSION_SECRET: secret})


@get("/login", name="login")
async def login_form(
    request: Request[Any, Any, Any], db: AsyncSession, settings: Settings, next: str = "/"
) -> Template:
    return await page(
        request,
        db,
        "account/login",
        {"next": safe_next(next), "providers": settings.oidc, "errors": {}},
        title="Sign in",
    )


@post("/login", name="login_submit")
async def login_submit(request: Request[Any, Any, Any], db: AsyncSession, settings: Settings) -> Template | Redirect:
    data = await form_data(request)
    username = data.get("username", "").strip().lower()
    target = safe_next(data.get("next"))
    address = client_address(request)
    limiter = limiter_of(request)
    # Refused before the password is even checked, right or wrong: the point is that guessing stops. Per
    # account across all addresses (guessing one password from many machines), per address across all names.
    limiter.refuse_if_spent("sign_in_address", address)
    limiter.refuse_if_spent("sign_in_account", username)
    user = await AccountService(db, settings).authenticate(username, data.get("password", ""))
    if user is None:
        limiter.hit("sign_in_address", address)
        limiter.hit("sign_in_account", username)
        context = {
            "next": target,
            "providers": settings.oidc,
            "username": username,
            "errors": {"form": "That username and password do not match."},
        }
        return await page(request, db, "account/login", context, status_code=400, title="Sign in")
    limiter.forget("sign_in_account", username)
    await sign_in(request, db, user.id)
    flash(request, f"Welcome back, {user.display_name or user.username}.")
    return see_other(target)


@get("/logout", name="logout")
async def logout_form(request: Request[Any, Any, Any], db: AsyncSession) -> Template | Redirect:
    if await current_viewer(request, db) is None:
        return see_other("/")
    return await page(request, db, "account/logout", {}, title="Sign out")


@post("/logout", name="logout_submit")
async def logout_submit(request: Request[Any, Any, Any], db: AsyncSession) -> Redirect:
    # The sign-in ends on the server: a copy of the cookie taken before is worth nothing from now on.
    secret = session_of(request).get(SESSION_SECRET)
    if isinstance(secret, str) and secret:
        await SessionService(db).end(secret)
    if session_of(request):
        request.clear_session()
    return see_other("/")


auth_handlers = [login_form, login_submit, logout_form, logout_submit]
