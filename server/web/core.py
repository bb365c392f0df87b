"""What every page shares: the signed-in viewer, page rendering (full or fragment), flash messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from litestar import Request
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from server.accounts.security import Principal
from server.accounts.sessions import SessionService
from server.models import User
from server.notifications.service import header_count

# The cookie's key for the sign-in secret (see server/accounts/sessions.py); the cookie holds nothing else of note.
SESSION_SECRET = "sid"


@dataclass(frozen=True)
class Viewer:
    """The person behind a browser session, and the principal the services check roles against."""

    principal: Principal
    display_name: str
    session_id: UUID | None = None  # the sign-in in use, which a password change keeps

    @property
    def user_id(self) -> UUID:
        return self.principal.user_id

    @property
    def username(self) -> str:
        return self.principal.username

    @property
    def is_admin(self) -> bool:
        return self.principal.is_admin


def principal_for(user: User) -> Principal:
    # A session is a full sign-in: admins act with admin powers, everyone else may write.
    return Principal(
        user_id=user.id,
        username=user.username,
        user_is_admin=user.is_admin,
        scope="admin" if user.is_admin else "write",
    )


def session_of(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The session dict, or an empty one where the session middleware does not run."""
    if "session" not in request.scope:
        return {}
    return request.session


async def current_viewer(request: Request[Any, Any, Any], db: AsyncSession | None = None) -> Viewer | None:
    """The signed-in person, read once per request. Without `db`, a session is opened only when the browser
    session holds a sign-in: an anonymous visitor's page opens none."""
    cached = request.scope.get("kith_viewer", False)
    if cached is not False:
        return cached  # type: ignore[no-any-return]
    viewer = None
    cookie = session_of(request)
    secret = cookie.get(SESSION_SECRET)
    if isinstance(secret, str) and secret:
        if db is None:
            async with request.app.state.sessionmaker() as session:
                found = await SessionService(session).signed_in(secret)
        else:
            found = await SessionService(db).signed_in(secret)
        if found is None:
            # Signed out elsewhere, or lapsed: forget it, so later pages do not look it up again.
            cookie.pop(SESSION_SECRET, None)
            request.set_session(cookie)
        else:
            user, session_id = found
            # Plain values, not the ORM row: a service's commit expires rows, and pages render after commits.
            viewer = Viewer(principal_for(user), user.display_name or user.username, session_id)
    request.scope["kith_viewer"] = viewer  # type: ignore[typeddict-unknown-key]
    return viewer


def app_engine(request: Request[Any, Any, Any]) -> AsyncEngine:
    """The app's engine, for pages that read through `server.db.fetch_all` and need no session at all."""
    return request.app.state.engine  # type: ignore[no-any-return]


def is_fragment_request(request: Request[Any, Any, Any]) -> bool:
    """htmx asks for the fragment; a history restore needs the whole page again."""
    headers = request.headers
    return headers.get("hx-request") == "true" and headers.get("hx-history-restore-request") != "true"


def flash(request: Request[Any, Any, Any], message: str, kind: str = "info") -> None:
    session = session_of(request)
    if "session" in request.scope:
        session.setdefault("flash", []).append({"message": message, "kind": kind})
        request.set_session(session)


def take_flashes(request: Request[Any, Any, Any]) -> list[dict[str, str]]:
    session = session_of(request)
    messages = session.pop("flash", []) if session else []
    if messages:
        request.set_session(session)
    return messages


async def page(
    request: Request[Any, Any, Any],
    db: AsyncSession | None,
    name: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    title: str = "",
    at_object_id: bool = False,
) -> Template:
    """`name` is "area/page": the full page is pages/area/page.html, which includes partials/area/_page.html.
    A page `at_object_id` shares its URL with an ActivityPub document, so caches must tell them apart by Accept."""
    area, _, leaf = name.partition("/")
    viewer = await current_viewer(request, db)
    settings = request.app.state.settings
    full_context = {
        **context,
        "viewer": viewer,
        "settings": settings,
        "title": title,
        "flashes": take_flashes(request),
        "current_path": request.url.path,
    }
    if is_fragment_request(request):
        template = f"partials/{area}/_{leaf}.html"
    else:
        template = f"pages/{area}/{leaf}.html"
        # Only a whole page has the header that shows it.
        if viewer is not None:
            full_context["unread_notifications"] = await header_count(app_engine(request), viewer.user_id)
    return Template(
        template_name=template, context=full_context, status_code=status_code,
        headers={"Vary": "Accept, HX-Request" if at_object_id else "HX-Request"},
    )  # fmt: skip


async def fragment(
    request: Request[Any, Any, Any], db: AsyncSession, template: str, context: dict[str, Any], status_code: int = 200
) -> Template:
    viewer = await current_viewer(request, db)
    return Template(
        template_name=template,
        context={**context, "viewer": viewer, "settings": request.app.state.settings},
        status_code=status_code,
        headers={"Vary": "HX-Request"},
    )


def see_other(url: str) -> Redirect:
    """After a successful form post: 303, so a reload does not post again."""
    return Redirect(url, status_code=303)


def safe_next(target: str | None, default: str = "/") -> str:
    """Only same-site paths: an open redirect would let others send people anywhere after sign-in."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
