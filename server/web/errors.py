"""Error pages in the site's layout, for the HTML routes only (the API keeps problem+json)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from server.errors import ProblemError
from server.web.core import Viewer, current_viewer, is_fragment_request

log = logging.getLogger("kith.web")

_HEADLINES = {
    400: "Something in that address needs a look",
    401: "Please sign in",
    403: "That is not yours to do",
    404: "We could not find that page",
    405: "That does not work here",
    409: "That clashes with something",
    410: "This is gone",
    412: "Someone saved meanwhile",
    413: "That is too large",
    422: "Something in the form needs a look",
    429: "Too many attempts",
    500: "Something went wrong on our side",
}


class SignInRequired(Exception):
    """The page needs a signed-in person; send them to the sign-in page and back."""


async def signed_in(request: Request[Any, Any, Any], db: AsyncSession) -> Viewer:
    """The signed-in viewer of a page that needs one; anyone else is sent to sign in first."""
    viewer = await current_viewer(request, db)
    if viewer is None:
        raise SignInRequired
    return viewer


def error_page(
    request: Request[Any, Any, Any], status: int, detail: str, headers: dict[str, str] | None = None,
    moved_to: str | None = None,
) -> Template:  # fmt: skip
    template = "partials/errors/_error.html" if is_fragment_request(request) else "pages/errors/error.html"
    return Template(
        template_name=template,
        context={
            "status": status,
            "headline": _HEADLINES.get(status, "Something went wrong"),
            "detail": detail,
            "viewer": request.scope.get("kith_viewer"),
            "settings": request.app.state.settings,
            "title": _HEADLINES.get(status, "Error"),
            "flashes": [],
            "current_path": request.url.path,
            "moved_to": moved_to,
        },
        status_code=status,
        headers={"Vary": "HX-Request", **(headers or {})},
    )


def _from_problem(request: Request[Any, Any, Any], exc: ProblemError) -> Response[Any]:
    return error_page(request, exc.status, exc.detail, exc.headers, exc.moved_to)


def _from_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    detail = exc.detail
    if isinstance(exc, NotFoundException):
        detail = "The address may be mistyped, or the page was removed."
    return error_page(request, exc.status_code, detail, getattr(exc, "headers", None) or None)


def _sign_in(request: Request[Any, Any, Any], _: SignInRequired) -> Response[Any]:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return Redirect(f"/login?next={quote(target, safe='/')}", status_code=303)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_page(request, 500, "The error was logged. Please try again in a moment.")


WEB_EXCEPTION_HANDLERS: dict[Any, Any] = {
    SignInRequired: _sign_in,
    ProblemError: _from_problem,
    HTTPException: _from_http,
    Exception: _unexpected,
}


def wants_html(request: Request[Any, Any, Any]) -> bool:
    """A browser outside /api/: it gets pages. Scripts and peers keep problem+json."""
    if request.url.path.startswith("/api/"):
        return False
    accept = request.headers.get("accept", "").lower()
    if "application/activity+json" in accept or "application/ld+json" in accept:
        return False
    return "text/html" in accept or bool(request.headers.get("hx-request"))


def negotiated(api_handlers: dict[Any, Any]) -> dict[Any, Any]:
    """App-wide handlers (unknown URLs, the ActivityPub routes) that answer each client in its own format."""

    def pick(api_handler: Any, web_handler: Any) -> Any:
        def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
            return web_handler(request, exc) if wants_html(request) else api_handler(request, exc)

        return handle

    web_for = {ProblemError: _from_problem, HTTPException: _from_http, Exception: _unexpected}

    def web_handler(kind: Any) -> Any:
        # The API may answer a subclass on its own (a validation error); a page answers it as its nearest base.
        return next((web_for[base] for base in getattr(kind, "__mro__", ()) if base in web_for), _unexpected)

    return {kind: pick(handler, web_handler(kind)) for kind, handler in api_handlers.items()}
