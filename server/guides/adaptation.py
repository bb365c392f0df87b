"""Adapting a guide of another community or instance: where an adaptation starts, what changed upstream since,
taking that change by a three-way merge, and the links both ways (an adaptation's upstream, a guide's adaptations).

GuideService calls these; only it writes. The upstream is read from our own copy of it (a peer's guide keeps no
revisions here), so the text an adaptation was based on is kept in its `guide_upstreams` row.
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec
from merge3 import Merge3
from sqlalchemy import Select, select
from sqlalchemy.orm import aliased

from server.communities.schemas import CommunityRef
from server.db.one_of import one_of
from server.errors import invalid
from server.guides import rules, schemas
from server.models import Community, Guide, GuideUpstream, User
from server.projection import Projection
from server.settings import host_of

# Runs a statement with its parameters: `fetch_all` on the engine, or a session's execute.
Run = Callable[[Select[Any], dict[str, Any]], Awaitable[Sequence[Sequence[Any]]]]


def is_available(upstream: Guide | None) -> bool:
    return upstream is not None and upstream.deleted_at is None and rules.is_public(upstream.status)


def check_source(upstream: Guide | None, community: Community) -> Guide:
    """The guide a new adaptation for `community` starts from, if it may be adapted."""
    if not is_available(upstream):
        raise invalid("derived_from", "no published guide known on this instance has this uri")
    assert upstream is not None
    if upstream.community_id == community.id:
        raise invalid("derived_from", "is a guide of this community already: adapt it for another community")
    rules.adaptable(upstream.license)
    return upstream


def starting_point(data: schemas.GuideCreate, upstream: Guide | None) -> schemas.GuideCreate:
    """What the new guide is made of: an adaptation takes from the upstream what it was not given, as a draft."""
    if upstream is None:
        return msgspec.structs.replace(
            data, title=data.title or "", body_markdown=data.body_markdown or "", summary=data.summary or "",
            tags=data.tags or [], license=data.license or rules.DEFAULT_LICENSE, status=data.status or "published",
        )  # fmt: skip
    return msgspec.structs.replace(
        data,
        title=data.title if data.title is not None else upstream.title,
        body_markdown=data.body_markdown if data.body_markdown is not None else upstream.body_markdown,
        summary=data.summary if data.summary is not None else upstream.summary,
        tags=data.tags if data.tags is not None else list(upstream.tags),
        license=rules.adaptation_license(upstream.license, data.license),
        status=data.status or "draft",
    )


def upstream_row(guide_id: UUID, upstream: Guide) -> GuideUpstream:
    row = GuideUpstream(guide_id=guide_id, uri=upstream.uri)
    rebase(row, upstream)
    return row


def rebase(row: GuideUpstream, upstream: Guide) -> None:
    """The adaptation is now based on the upstream as it is: its text, and its attribution as of then."""
    author = upstream.author
    row.base_revision, row.base_title, row.base_body = upstream.revision, upstream.title, upstream.body_markdown
    row.dismissed_revision = None
    row.url, row.instance, row.license = upstream.url, upstream.instance, upstream.license
    row.community_name, row.community_url = upstream.community.name, upstream.community.url
    row.author_name, row.author_url = (author.display_name or author.username)[:100], author.url


@dataclass(frozen=True)
class Merged:
    title: str
    markdown: str
    conflicts: int
    revision: int


def _lines(text: str) -> list[str]:
    # Line ends as one: a browser's textarea sends CRLF, the API LF, and they must not differ as lines.
    return [line + "\n" for line in text.splitlines()]


def merge(row: GuideUpstream, guide: Guide, upstream: Guide) -> Merged:
    """The upstream's change since the base (base -> upstream), applied to the adaptation's own text."""
    theirs_label = f"{rules.THEIRS_LABEL} {upstream.revision}"
    merger = Merge3(_lines(row.base_body), _lines(guide.body_markdown), _lines(upstream.body_markdown))
    text = "".join(merger.merge_lines(name_a=rules.OURS_LABEL, name_b=theirs_label))
    conflicts = sum(1 for region in merger.merge_regions() if region[0] == "conflict")
    if not guide.body_markdown.endswith(("\n", "\r")):
        text = text.removesuffix("\n")
    # A title is one line: the upstream's new one is taken where the adaptation kept the old one.
    title = upstream.title if guide.title == row.base_title else guide.title
    return Merged(title, text, conflicts, upstream.revision)


def unified_diff(row: GuideUpstream, upstream: Guide | None) -> str:
    if upstream is None:
        return ""
    lines = difflib.unified_diff(
        _lines(row.base_body), _lines(upstream.body_markdown),
        f"revision {row.base_revision}", f"revision {upstream.revision}",
    )  # fmt: skip
    return "".join(lines)


def is_changed(row: GuideUpstream, upstream: Guide | None) -> bool:
    if upstream is None or not is_available(upstream):
        return False
    return upstream.revision > max(row.base_revision, row.dismissed_revision or 0)


def upstream_change(row: GuideUpstream, guide: Guide, upstream: Guide | None) -> schemas.UpstreamChange:
    known = upstream if is_available(upstream) else None
    merged = merge(row, guide, known) if known is not None else None
    return schemas.UpstreamChange(
        uri=row.uri, base_revision=row.base_revision, current_revision=known.revision if known else None,
        changed=is_changed(row, known), deleted=known is None, diff=unified_diff(row, known),
        merged_title=merged.title if merged else guide.title,
        merged_markdown=merged.markdown if merged else guide.body_markdown, conflicts=merged.conflicts if merged else 0,
    )  # fmt: skip


# --- links for the schemas: each adaptation's upstream, each guide's adaptations, a page of guides at a time ---

_up = aliased(Guide, name="up")
_up_community = aliased(Community, name="up_community")
_up_author = aliased(User, name="up_author")
_UPSTREAM = Projection(
    "UpstreamRow",
    {
        "guide_id": Guide.id, "uri": Guide.derived_from, "base_revision": GuideUpstream.base_revision,
        "dismissed_revision": GuideUpstream.dismissed_revision, "kept_title": GuideUpstream.base_title,
        "kept_url": GuideUpstream.url, "kept_community": GuideUpstream.community_name,
        "kept_community_url": GuideUpstream.community_url, "kept_instance": GuideUpstream.instance,
        "kept_author": GuideUpstream.author_name, "kept_author_url": GuideUpstream.author_url,
        "kept_license": GuideUpstream.license, "revision": _up.revision, "deleted_at": _up.deleted_at,
        "status": _up.status, "title": _up.title, "url": _up.url, "instance": _up.instance, "license": _up.license,
        "community": _up_community.name, "community_url": _up_community.url,
        "author_name": _up_author.display_name, "author_username": _up_author.username, "author_url": _up_author.url,
    },
)  # fmt: skip
UPSTREAMS = (
    select(*_UPSTREAM.columns)
    .select_from(Guide)
    .outerjoin(GuideUpstream, GuideUpstream.guide_id == Guide.id)
    .outerjoin(_up, _up.uri == Guide.derived_from)
    .outerjoin(_up_community, _up_community.id == _up.community_id)
    .outerjoin(_up_author, _up_author.id == _up.author_id)
    .where(one_of(Guide.id, "ids"), Guide.derived_from.is_not(None))
)
_by = aliased(Community, name="by_community")
_ADAPTATION = Projection(
    "AdaptationRow",
    {
        "derived_from": Guide.derived_from, "uri": Guide.uri, "url": Guide.url, "title": Guide.title,
        "instance": Guide.instance, "community_slug": _by.slug, "community_name": _by.name,
        "community_instance": _by.instance, "community_uri": _by.uri, "community_url": _by.url,
        "community_color": _by.color,
    },
)  # fmt: skip
# The published adaptations of the guides with the uris `uris`, oldest first.
ADAPTATIONS = (
    select(*_ADAPTATION.columns)
    .join(_by, _by.id == Guide.community_id)
    .where(
        one_of(Guide.derived_from, "uris"),
        Guide.deleted_at.is_(None),
        Guide.status == "published",
    )
    .order_by(Guide.created_at, Guide.id)
)


def _upstream_of(row: Sequence[Any]) -> schemas.Upstream:
    r = _UPSTREAM.named(row)
    tracked = r.base_revision is not None
    live = r.revision is not None and r.deleted_at is None and rules.is_public(r.status)
    changed = tracked and live and r.revision > max(r.base_revision, r.dismissed_revision or 0)
    deleted = (r.revision is not None and not live) or (tracked and r.revision is None)
    if tracked:  # the attribution as of the base, which holds even when the upstream is gone
        title, url, community, community_url = r.kept_title, r.kept_url, r.kept_community, r.kept_community_url
        instance, author, author_url, license = r.kept_instance, r.kept_author, r.kept_author_url, r.kept_license
    elif r.revision is not None:
        title, url, community, community_url = r.title, r.url, r.community, r.community_url
        instance, author, author_url = r.instance, r.author_name or r.author_username, r.author_url
        license = r.license
    else:  # a peer's adaptation of a guide this instance does not know
        title, url, community, community_url, instance = "", r.uri, "", "", host_of(r.uri)
        author, author_url, license = "", "", ""
    return schemas.Upstream(
        uri=r.uri, base_revision=r.base_revision, current_revision=r.revision if live else None, changed=changed,
        deleted=deleted, title=title, url=url, community=community, community_url=community_url, instance=instance,
        author=author, author_url=author_url, license=license,
    )  # fmt: skip


def _adaptation_of(row: Sequence[Any]) -> schemas.Adaptation:
    r = _ADAPTATION.named(row)
    community = CommunityRef(
        slug=r.community_slug, name=r.community_name, instance=r.community_instance, uri=r.community_uri,
        url=r.community_url, color=r.community_color,
    )  # fmt: skip
    return schemas.Adaptation(uri=r.uri, url=r.url, title=r.title, community=community, instance=r.instance)


async def links(
    run: Run, guides: Sequence[tuple[UUID, str, str | None]], adapted: Collection[str] | None = None
) -> tuple[dict[UUID, schemas.Upstream], dict[str, list[schemas.Adaptation]]]:
    """The upstream of each guide that adapts another, and the adaptations of each, by guide id and uri;
    `guides` are (id, uri, derived_from). `adapted`: the uris among them known to have adaptations, when the
    read of the guides said so (None: ask for every guide's)."""
    upstreams: dict[UUID, schemas.Upstream] = {}
    adaptations: dict[str, list[schemas.Adaptation]] = {}
    if not guides:
        return upstreams, adaptations
    derived = [guide_id for guide_id, _, derived_from in guides if derived_from]
    if derived:
        for row in await run(UPSTREAMS, {"ids": derived}):
            upstreams[row[0]] = _upstream_of(row)
    uris = [uri for _, uri, _ in guides if adapted is None or uri in adapted]
    if uris:
        for row in await run(ADAPTATIONS, {"uris": uris}):
            adaptations.setdefault(row[0], []).append(_adaptation_of(row))
    return upstreams, adaptations


async def with_links(
    run: Run, guides: list[schemas.Guide], adapted: Collection[str] | None = None
) -> list[schemas.Guide]:
    upstreams, adaptations = await links(run, [(guide.id, guide.uri, guide.derived_from) for guide in guides], adapted)
    return [
        msgspec.structs.replace(guide, upstream=upstreams.get(guide.id), adaptations=adaptations.get(guide.uri, []))
        for guide in guides
    ]


def reach(adaptations: Sequence[schemas.Adaptation]) -> tuple[int, int]:
    """(communities, instances) that adapted a guide."""
    return len({a.community.uri for a in adaptations}), len({a.instance for a in adaptations})
