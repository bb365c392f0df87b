"""RFC 9457 problem details for everything under /api/."""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

log = logging.getLogger("kith")

PROBLEM_JSON = "application/problem+json"

_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    412: "Precondition failed",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Validation failed",
    428: "Precondition required",
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
}


class FieldError(msgspec.Struct):
    field: str
    message: str


class Problem(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None
    # An extension member: where a moved community went, on a write refused because it moved.
    moved_to: str | None = None


class ProblemError(Exception):
    """Raised by services and handlers; rendered as problem+json (API) or an error page (web)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        moved_to: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.moved_to = moved_to

    @property
    def title(self) -> str:
        return _TITLES.get(self.status, "Error")


def not_found(what: str) -> ProblemError:
    return ProblemError(404, f"{what} was not found.")


def forbidden(detail: str) -> ProblemError:
    return ProblemError(403, detail)


def conflict(detail: str) -> ProblemError:
    return ProblemError(409, detail)


def invalid(field: str, message: str) -> ProblemError:
    return ProblemError(422, f"{field}: {message}", errors=[FieldError(field, message)])


def problem_response(
    status: int,
    detail: str,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    moved_to: str | None = None,
) -> Response[Problem]:
    title = _TITLES.get(status, "Error")
    problem = Problem(
        type=f"urn:kith:problem:{title.lower().replace(' ', '-')}",
        title=title,
        status=status,
        detail=detail,
        errors=errors,
        moved_to=moved_to,
    )
    return Response(problem, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _problem_from_error(_: Request[Any, Any, Any], exc: ProblemError) -> Response[Problem]:
    return problem_response(exc.status, exc.detail, exc.errors, exc.headers, exc.moved_to)


def _problem_from_validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Problem]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors = [
        FieldError(field=str(item.get("key") or "body"), message=str(item.get("message", "is invalid")))
        for item in extra
        if isinstance(item, dict)
    ]
    # Litestar reports an undecodable body with no field key: that is a 400, not a 422.
    if not errors or all(e.field == "body" and "malformed" in e.message.lower() for e in errors):
        return problem_response(400, _malformed_detail(exc, errors))
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
    return problem_response(422, detail, errors)


def _malformed_detail(exc: ValidationException, errors: list[FieldError]) -> str:
    if errors:
        return errors[0].message
    return str(exc.detail or "The request body could not be read as JSON.")


def _problem_from_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    status = exc.status_code
    detail = exc.detail if exc.detail and exc.detail.lower() != _TITLES.get(status, "").lower() else ""
    if status == 413:
        detail = f"The request body is larger than {_size(_body_limit(request))}."
    elif isinstance(exc, NotFoundException) and not detail:
        detail = "No such resource."
    return problem_response(status, detail or _TITLES.get(status, "Error"), headers=exc.headers)


def _body_limit(request: Request[Any, Any, Any]) -> int:
    """The body limit of the route asked for (an archive import takes more than the usual 1 MB)."""
    try:
        return request.route_handler.resolve_request_max_body_size() or request.app.request_max_body_size or 0
    except (AttributeError, KeyError):
        return request.app.request_max_body_size or 0


def _size(limit: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MB", 1_000_000)):
        if limit >= size:
            return f"{limit / size:g} {unit}"
    return f"{limit} bytes"


def _problem_from_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(HTTP_500_INTERNAL_SERVER_ERROR, "An unexpected error occurred.")


API_EXCEPTION_HANDLERS = {
    ProblemError: _problem_from_error,
    ValidationException: _problem_from_validation,
    HTTPException: _problem_from_http,
    Exception: _problem_from_unexpected,
}

__all__ = ["API_EXCEPTION_HANDLERS", "MediaType", "Problem", "ProblemError"]


# A JSON `\u0000` escape whose backslash is not itself escaped (an even number of backslashes before it):
# `"a \\u0000"` in JSON is the text `a \u0000`, harmless characters that people write about escapes.
_JSON_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def has_nul(body: bytes) -> bool:
    """A NUL byte, or JSON's escape of one (and not an escaped backslash followed by `u0000`)."""
    return b"\x00" in body or (b"\\u0000" in body and _JSON_NUL_ESCAPE.search(body) is not None)


async def reject_nul_characters(request: Request[Any, Any, Any]) -> None:
    """PostgreSQL cannot store NUL in text, and no honest input needs it: refuse it before any query runs."""
    if "\x00" in request.url.path:
        raise ProblemError(404, "No such resource.")
    if not request.url.path.startswith("/api/"):
        return
    if b"%00" in request.scope.get("query_string", b"").lower():
        raise ProblemError(422, "Query parameters must not contain NUL characters.",
                           errors=[FieldError("query", "contains a NUL character")])  # fmt: skip
    # A route that takes a binary body (an archive) says so, and reads it as a stream itself.
    if request.method in ("POST", "PUT", "PATCH") and not request.route_handler.opt.get("binary_body"):
        body = await request.body()
        if has_nul(body):
            raise ProblemError(422, "Text must not contain NUL characters.",
                               errors=[FieldError("body", "contains a NUL character")])  # fmt: skip
