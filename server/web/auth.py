"""Local sign-in and sign-out, with a small in-memory limit on guessing."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from typing import Any
from uuid import UUID

from litestar import Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.service import AccountService
from server.accounts.sessions import SessionService
from server.errors import ProblemError
from server.settings import Settings
from server.web.core import SESSION_SECRET, current_viewer, flash, page, safe_next, see_other, session_of
from server.web.forms import form_data

WINDOW_SECONDS = 300.0
MAX_FAILURES_PER_NAME = 5
MAX_FAILURES_PER_ADDRESS = 20


class SignInLimiter:
    """Failed attempts per (address, username) and per address, in a sliding window.

    In memory and per process: enough to make guessing slow; a restart forgets, which is acceptable here.
    """

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self.failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        stamps = self.failures[key]
        horizon = self.clock() - WINDOW_SECONDS
        while stamps and stamps[0] < horizon:
            stamps.popleft()
        return stamps

    def retry_after(self, address: str, username: str) -> int:
        """Seconds to wait, or 0 when another attempt is allowed."""
        for key, limit in (((address, username), MAX_FAILURES_PER_NAME), ((address, ""), MAX_FAILURES_PER_ADDRESS)):
            stamps = self._recent(key)
            if len(stamps) >= limit:
                return max(1, int(stamps[0] + WINDOW_SECONDS - self.clock()) + 1)
        return 0

    def failed(self, address: str, username: str) -> None:
        now = self.clock()
        self.failures[(address, username)].append(now)
        self.failures[(address, "")].append(now)

    def succeeded(self, address: str, username: str) -> None:
        self.failures.pop((address, username), None)


def limiter_of(request: Request[Any, Any, Any]) -> SignInLimiter:
    state = request.app.state
    if getattr(state, "sign_in_limiter", None) is None:
        state.sign_in_limiter = SignInLimiter()
    return state.sign_in_limiter  # type: ignore[no-any-return]


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
    address = request.client.host if request.client else "unknown"
    limiter = limiter_of(request)
    wait = limiter.retry_after(address, username)
    if wait:
        raise ProblemError(
            429, f"Too many failed sign-in attempts. Try again in {wait} seconds.", headers={"Retry-After": str(wait)}
        )
    user = await AccountService(db, settings).authenticate(username, data.get("password", ""))
    if user is None:
        limiter.failed(address, username)
        context = {
            "next": target,
            "providers": settings.oidc,
            "username": username,
            "errors": {"form": "That username and password do not match."},
        }
        return await page(request, db, "account/login", context, status_code=400, title="Sign in")
    if user.pending:
        # Said only after the right password: the waiting state is nobody else's business.
        context = {
            "next": target,
            "providers": settings.oidc,
            "username": username,
            "errors": {"form": "Your sign-up is waiting for an admin's approval. You can sign in once it is approved."},
        }
        return await page(request, db, "account/login", context, status_code=403, title="Sign in")
    limiter.succeeded(address, username)
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
