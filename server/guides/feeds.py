"""The reads of the guide feeds (server/web/feeds.py): the published guides changed last, and a guide's revisions,
one statement each."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import bindparam, select
from sqlalchemy.orm import aliased

from server.accounts.schemas import PersonRef
from server.accounts.service import person_ref_of
from server.guides.queries import JOINED_COMMUNITY as _community
from server.guides.queries import VIEW, GuideView, guide_view, joined
from server.models import Guide, GuideRevision, User
from server.projection import Projection

# The newest changed published guides, read as the guide page's view (guide_view decodes a row).
FEED_ENTRIES = 50
_FEED = (
    joined(select(*VIEW.columns))
    .where(Guide.deleted_at.is_(None), Guide.status == "published", _community.deleted_at.is_(None))
    .where(~_community.moved_away)  # listed under the new home; its pages here redirect there
    .order_by(Guide.updated_at.desc(), Guide.id.desc())
    .limit(FEED_ENTRIES)
)
INSTANCE_FEED = _FEED
# Bind `community_slug` and `community_instance`.
COMMUNITY_FEED = _FEED.where(
    _community.slug == bindparam("community_slug"), _community.instance == bindparam("community_instance")
)
# Bind `tag_pattern` (tag_pattern below).
TAG_FEED = _FEED.where(Guide.tags_key.like(bindparam("tag_pattern"), escape="\\"))


def tag_pattern(tag: str) -> str:
    """The LIKE pattern for guides carrying `tag`, its wildcards taken literally."""
    literal = tag.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%|{literal}|%"


class FeedRevision(msgspec.Struct):
    number: int
    title: str
    body_markdown: str
    summary_of_change: str
    created_at: datetime
    author: PersonRef


_reviser = aliased(User, name="reviser")
_REVISION = Projection(
    "RevisionRow",
    {
        "number": GuideRevision.number, "revision_title": GuideRevision.title,
        "revision_body": GuideRevision.body_markdown, "summary_of_change": GuideRevision.summary_of_change,
        "revision_created_at": GuideRevision.created_at, "reviser_username": _reviser.username,
        "reviser_display_name": _reviser.display_name, "reviser_uri": _reviser.uri,
        "reviser_instance": _reviser.instance,
    },
)  # fmt: skip
# A published guide (`:id`) and its newest revisions, one more than a feed shows: the oldest shown is compared with
# the one before it. A guide with no revisions of ours (a peer's) is one row with no revision.
REVISIONS_FEED = (
    joined(select(*VIEW.columns, *_REVISION.columns))
    .outerjoin(GuideRevision, GuideRevision.guide_id == Guide.id)
    .outerjoin(_reviser, _reviser.id == GuideRevision.author_id)
    .where(
        Guide.id == bindparam("id"), Guide.deleted_at.is_(None), Guide.status == "published",
        _community.deleted_at.is_(None),
    )
    .order_by(GuideRevision.number.desc())
    .limit(FEED_ENTRIES + 1)
)  # fmt: skip


def revisions_feed_rows(rows: Sequence[Sequence[Any]]) -> tuple[GuideView | None, list[FeedRevision]]:
    """The guide and its revisions, newest first, from the rows of REVISIONS_FEED."""
    if not rows:
        return None, []
    width = len(VIEW.columns)
    guide = guide_view(rows[0][:width])
    revisions = []
    for row in rows:
        r = _REVISION.named(row[width:])
        if r.number is not None:
            author = person_ref_of(r.reviser_username, r.reviser_display_name, r.reviser_uri, r.reviser_instance)
            revisions.append(
                FeedRevision(
                    number=r.number,
                    title=r.revision_title,
                    body_markdown=r.revision_body,
                    summary_of_change=r.summary_of_change,
                    created_at=r.revision_created_at,
                    author=author,
                )  # fmt: skip
            )
    return guide, revisions
