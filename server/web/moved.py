"""The redirect map of a community that moved away: its pages answer 301 to the same pages on its new home.

A moved community stays on this instance for as long as the instance lives, read-only, so that every link to it
keeps working: its community page and feeds go to the new community, each guide and offer page to the same entry
on the new home once its new place is known (server/federation/move_out.py learns them), else to the new
community. Only its own published, undeleted entries redirect: a peer's copy of an entry that moved (its page
here belongs to the peer's community) and a deleted or draft entry answer as they did. Its ActivityPub documents
still answer, with `movedTo`, for peers to check the move; so do its inbox, outbox and followers.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from litestar import Request, Response
from litestar.response import Redirect
from litestar.status_codes import HTTP_301_MOVED_PERMANENTLY
from sqlalchemy import bindparam, select

from server.db import fetch_all
from server.federation.discovery import wants_activitypub
from server.models import Community, CommunityMovedEntry, Guide, MentorshipOffer

_COMMUNITY_PATH = re.compile(r"^/c/([a-z0-9-]+)(?:/(guides/([^/]+)|feed\.atom|[^/]+)?)?(?:/.*)?$")
_FEED_PATH = re.compile(r"^/feeds/c/([a-z0-9-]+)\.atom$")
_ENTRY_PATH = re.compile(r"^/(guides|mentorship/offers)/([0-9a-f-]{36})$")
# What a moved community still answers itself: its ActivityPub collections and inbox.
_STILL_ANSWERED = frozenset({"inbox", "outbox", "followers"})

_MOVED = select(Community.id, Community.moved_to).where(
    Community.slug == bindparam("slug"),
    Community.instance == bindparam("instance"),
    Community.local.is_(True),
    Community.moved_to.is_not(None),
)
_GUIDE_BY_SLUG = (
    select(CommunityMovedEntry.new_url)
    .select_from(Guide)
    .outerjoin(CommunityMovedEntry, CommunityMovedEntry.old_uri == Guide.uri)
    .where(
        Guide.community_id == bindparam("community_id"),
        Guide.slug == bindparam("guide_slug"),
        Guide.deleted_at.is_(None),
        Guide.status == "published",
    )  # fmt: skip
)


def _moved_entry(model: type[Guide] | type[MentorshipOffer], *shown: Any) -> Any:
    """A live entry of a community of this instance that moved: the new Group, and the entry's new page once
    known. A peer's copy of a moved community is never redirected off-site."""
    return (
        select(Community.moved_to, CommunityMovedEntry.new_url)
        .select_from(model)
        .join(Community, Community.id == model.community_id)
        .outerjoin(CommunityMovedEntry, CommunityMovedEntry.old_uri == model.uri)
        .where(model.id == bindparam("id"), Community.moved_away, model.deleted_at.is_(None), *shown)
    )


_GUIDE_BY_ID = _moved_entry(Guide, Guide.status == "published")
_OFFER_BY_ID = _moved_entry(MentorshipOffer)


async def redirect_moved(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """A 301 to the new home for a page of a moved community; None for anything else (the usual handler runs).
    Pages only: a read by a person or a feed reader, never an ActivityPub fetch or a form's POST."""
    if request.method not in ("GET", "HEAD") or wants_activitypub(request):
        return None
    path = request.url.path
    if not path.startswith(("/c/", "/feeds/c/", "/guides/", "/mentorship/offers/")):
        return None
    engine = request.app.state.engine
    host = request.app.state.settings.host
    if match := _ENTRY_PATH.match(path):
        statement = _GUIDE_BY_ID if match.group(1) == "guides" else _OFFER_BY_ID
        try:
            entry_id = uuid.UUID(match.group(2))
        except ValueError:
            return None
        rows = await fetch_all(engine, statement, {"id": entry_id}, quick=True)
        return _moved(rows[0][1] or rows[0][0]) if rows else None
    if match := _FEED_PATH.match(path):
        rows = await fetch_all(engine, _MOVED, {"slug": match.group(1), "instance": host}, quick=True)
        return _moved(f"{rows[0][1]}/feed.atom") if rows else None
    match = _COMMUNITY_PATH.match(path)
    if match is None or match.group(2) in _STILL_ANSWERED:
        return None
    rows = await fetch_all(engine, _MOVED, {"slug": match.group(1), "instance": host}, quick=True)
    if not rows:
        return None
    community_id, moved_to = rows[0]
    if match.group(2) == "feed.atom":
        return _moved(f"{moved_to}/feed.atom")
    if match.group(3):
        found = await fetch_all(
            engine, _GUIDE_BY_SLUG, {"community_id": community_id, "guide_slug": match.group(3)}, quick=True
        )
        # A deleted or draft guide answers as it would have (410, 404); a published one goes to its new page.
        return _moved(found[0][0] or moved_to) if found else None
    return _moved(moved_to)


def _moved(location: str) -> Response[Any]:
    # Permanent, so caches keep it; but the same URL still answers ActivityPub clients itself.
    return Redirect(location, status_code=HTTP_301_MOVED_PERMANENTLY, headers={"Vary": "Accept"})
