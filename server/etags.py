"""Strong ETags and If-Match checks for optimistic concurrency."""

from __future__ import annotations

from server.errors import ProblemError


def make_etag(*parts: object) -> str:
    return '"' + "-".join(str(p) for p in parts) + '"'


def check_if_match(if_match: str | None, current: str) -> None:
    """A stale If-Match means someone saved meanwhile: refuse rather than overwrite their work."""
    if if_match is None:
        return
    candidates = {tag.strip().removeprefix("W/") for tag in if_match.split(",")}
    if "*" in candidates or current in candidates:
        return
    raise ProblemError(412, "The entry changed since you read it; fetch it again and reapply your edit.")
