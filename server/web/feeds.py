"""Atom feeds of published guides: the instance's, a community's, a tag's, and one guide's revisions.

Readers poll feeds. Each is one statement; its ETag is a hash of what the feed shows and its Last-Modified the
newest `updated` in it, so a reader that already has it gets a 304 and the feed is not built at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from html import escape
from typing import Any
from urllib.parse import quote
from uuid import UUID

import msgspec
from feedgen.feed import FeedGenerator
from litestar import Request, get
from litestar.response import Redirect, Response
from litestar.status_codes import HTTP_301_MOVED_PERMANENTLY

from server import __version__
from server.communities.queries import ONE_BY_REF, community_from_row
from server.db import fetch_all
from server.errors import not_found
from server.guides import feeds as reads
from server.guides.diffs import unified_diff
from server.guides.feeds import FeedRevision
from server.guides.queries import GuideView, guide_view
from server.markdown import render, sanitize
from server.refs import split_ref
from server.settings import Settings
from server.web.core import app_engine

ATOM = "application/atom+xml; charset=utf-8"
SUFFIX = ".atom"
# The `updated` of a feed nothing was ever published in.
NEVER = datetime(1970, 1, 1, tzinfo=UTC)
# Part of every ETag: when what a feed holds for the same rows changes (a new element), readers fetch it again.
FORMAT = "kith-atom-1"
CACHE_CONTROL = "public, max-age=300"
MAX_TAG = 50

# What a page's <head> links to (`feeds` in a page's context, see base.html) and what a feed calls itself.
Link = dict[str, str]


def instance_feed(settings: Settings) -> Link:
    return {"href": "/feeds/guides.atom", "title": f"Guides on {settings.instance_name}"}


def community_feed(ref: str, name: str) -> Link:
    return {"href": f"/feeds/c/{ref}{SUFFIX}", "title": f"Guides of {name}"}


def community_feed_of(community: Any, local_host: str) -> Link:
    """A community's feed from what a page has of it (a schema or a ref: `slug`, `instance`, `name`)."""
    return community_feed(_ref(community, local_host), community.name)


def tag_feed(tag: str) -> Link:
    return {"href": f"/feeds/tags/{quote(tag, safe='')}{SUFFIX}", "title": f"Guides tagged “{tag}”"}


def revisions_feed(guide_id: UUID, title: str) -> Link:
    return {"href": f"/feeds/guides/{guide_id}/revisions{SUFFIX}", "title": f"Revisions of “{title}”"}


def guide_feeds(guide: Any, local_host: str) -> list[Link]:
    """A published guide's page links to its revisions and to its community's guides; a draft has no feed."""
    if guide.status != "published":
        return []
    return [revisions_feed(guide.id, guide.title), community_feed_of(guide.community, local_host)]


@get("/feeds/guides.atom", name="feed_guides")
async def guides_feed(request: Request[Any, Any, Any]) -> Response[bytes]:
    settings: Settings = request.app.state.settings
    guides = await fetch_all(app_engine(request), reads.INSTANCE_FEED, into=guide_view)
    return _guides_response(request, settings, instance_feed(settings), "/", guides, NEVER)


@get("/feeds/c/{name:str}", name="feed_community")
async def community_guides_feed(name: str, request: Request[Any, Any, Any]) -> Response[bytes]:
    """`name` is the community as the pages address it (`slug`, or `slug@host` for a peer's) with `.atom`."""
    settings: Settings = request.app.state.settings
    slug, host = split_ref(_stem(name, "Feed"), settings.host)
    engine = app_engine(request)
    params = {"community_slug": slug, "community_instance": host}
    guides = await fetch_all(engine, reads.COMMUNITY_FEED, params, into=guide_view)
    if guides:
        community_name, since = guides[0].community.name, NEVER
    else:  # no guide yet, or no such community: only then is the community read on its own
        found = await fetch_all(engine, ONE_BY_REF, {"slug": slug, "instance": host}, quick=True)
        if not found:
            raise not_found(f"Community {slug!r}")
        community = community_from_row(found[0])
        community_name, since = community.name, _aware(community.created_at)
    ref = slug if host == settings.host else f"{slug}@{host}"
    return _guides_response(request, settings, community_feed(ref, community_name), f"/c/{ref}", guides, since)


@get("/feeds/tags/{name:str}", name="feed_tag")
async def tag_guides_feed(name: str, request: Request[Any, Any, Any]) -> Response[bytes]:
    settings: Settings = request.app.state.settings
    tag = _stem(name, "Feed").strip().lower()
    if not tag or len(tag) > MAX_TAG:
        raise not_found("Feed")
    guides = await fetch_all(
        app_engine(request), reads.TAG_FEED, {"tag_pattern": reads.tag_pattern(tag)}, into=guide_view
    )
    page = f"/search?type=guide&tag={quote(tag, safe='')}"
    return _guides_response(request, settings, tag_feed(tag), page, guides, NEVER)


@get("/feeds/guides/{guide_id:uuid}/revisions.atom", name="feed_revisions")
async def revisions_feed_handler(guide_id: UUID, request: Request[Any, Any, Any]) -> Response[bytes]:
    settings: Settings = request.app.state.settings
    rows = await fetch_all(app_engine(request), reads.REVISIONS_FEED, {"id": guide_id})
    guide, revisions = reads.revisions_feed_rows(rows)
    if guide is None:  # deleted, a draft, or never here: a feed is public, and a draft's existence is not
        raise not_found("Guide")
    link = revisions_feed(guide.id, guide.title)
    page = _page_path(guide, settings.host)
    updated = _aware(revisions[0].created_at) if revisions else _aware(guide.updated_at)
    etag = _etag(link, guide, revisions)

    def build() -> bytes:
        feed = _feed(settings, link, page, updated)
        shown = revisions[: reads.FEED_ENTRIES]
        for index, revision in enumerate(shown):
            before = revisions[index + 1] if index + 1 < len(revisions) else None
            _revision_entry(feed, settings, guide, page, revision, before)
        return feed.atom_str(pretty=False)

    return _respond(request, etag, updated, build)


@get("/c/{ref:str}/feed.atom", name="feed_community_short")
async def community_feed_redirect(ref: str) -> Redirect:
    """The address the API contract names; the feeds live together under /feeds."""
    return Redirect(f"/feeds/c/{ref}{SUFFIX}", status_code=HTTP_301_MOVED_PERMANENTLY)


def _stem(name: str, what: str) -> str:
    if not name.endswith(SUFFIX) or len(name) == len(SUFFIX):
        raise not_found(what)
    return name[: -len(SUFFIX)]


def _ref(community: Any, local_host: str) -> str:
    return community.slug if community.instance == local_host else f"{community.slug}@{community.instance}"


def _page_path(guide: GuideView, local_host: str) -> str:
    return f"/c/{_ref(guide.community, local_host)}/guides/{guide.slug}"


def _aware(moment: datetime) -> datetime:
    """Atom's dates carry their offset; SQLite hands back naive UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _etag(link: Link, *shown: Any) -> str:
    digest = hashlib.sha256(f"{FORMAT}|{link['href']}|{link['title']}|".encode())
    digest.update(msgspec.json.encode(shown))
    return f'"{digest.hexdigest()[:32]}"'


def _not_modified(request: Request[Any, Any, Any], etag: str, updated: datetime) -> bool:
    """RFC 9110 §13.2.2: If-None-Match decides when present; only without it does If-Modified-Since."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or etag in tags
    if_modified_since = request.headers.get("if-modified-since")
    if not if_modified_since:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False  # a date we cannot read is ignored, as the RFC asks
    return updated.replace(microsecond=0) <= _aware(since)


def _respond(
    request: Request[Any, Any, Any], etag: str, updated: datetime, build: Callable[[], bytes]
) -> Response[bytes]:
    headers = {"ETag": etag, "Last-Modified": format_datetime(updated, usegmt=True), "Cache-Control": CACHE_CONTROL}
    if _not_modified(request, etag, updated):
        return Response(b"", status_code=304, headers=headers)
    return Response(build(), media_type=ATOM, headers=headers)


def _feed(settings: Settings, link: Link, page: str, updated: datetime) -> FeedGenerator:
    feed = FeedGenerator()
    self_url = settings.base_url + link["href"]
    feed.id(self_url)
    feed.title(link["title"])
    feed.link(href=self_url, rel="self", type="application/atom+xml")
    feed.link(href=settings.base_url + page, rel="alternate", type="text/html")
    # Atom asks for a feed author when an entry could lack one, as an empty feed's entries do.
    feed.author(name=settings.instance_name, uri=settings.base_url)
    feed.generator("Kith", version=__version__, uri=None)
    feed.updated(updated)
    return feed


def _guides_response(
    request: Request[Any, Any, Any], settings: Settings, link: Link, page: str, guides: list[GuideView],
    empty_since: datetime,
) -> Response[bytes]:  # fmt: skip
    updated = max((_aware(g.updated_at) for g in guides), default=empty_since)

    def build() -> bytes:
        feed = _feed(settings, link, page, updated)
        for guide in guides:
            _guide_entry(feed, settings, guide)
        return feed.atom_str(pretty=False)

    return _respond(request, _etag(link, guides), updated, build)


def _guide_entry(feed: FeedGenerator, settings: Settings, guide: GuideView) -> None:
    entry = feed.add_entry(order="append")
    # The guide's URI: the same entry through every edit, and the same a peer's feed would give for it.
    entry.id(guide.origin.uri)
    entry.title(guide.title)
    entry.updated(_aware(guide.updated_at))
    entry.published(_aware(guide.created_at))
    # A peer's guide links to where it lives, as its page here does.
    entry.link(href=guide.origin.url, rel="alternate", type="text/html")
    entry.author(name=guide.author.display_name, uri=guide.author.uri)
    community = guide.community
    ref = _ref(community, settings.host)
    entry.category(term=ref, label=community.name, scheme=f"{settings.base_url}/c/")
    for tag in guide.tags:
        entry.category(term=tag, scheme=f"{settings.base_url}/search?type=guide&tag=")
    if guide.summary:
        entry.summary(guide.summary)
    attribution = ""
    if not guide.local:
        attribution = (
            f'<p>From <a href="{escape(community.url)}">{escape(community.name)}</a> on {escape(guide.origin.instance)}'
            f' · <a href="{escape(guide.origin.url)}">read the original</a></p>'
        )
        entry.source(url=community.url, title=f"{community.name} on {guide.origin.instance}")
    # Stored HTML was sanitized when written; a feed sanitizes again, whatever the rules were then.
    entry.content(sanitize(attribution + guide.body_html), type="html")
    entry.rights(guide.license)


def _revision_entry(
    feed: FeedGenerator, settings: Settings, guide: GuideView, page: str, revision: FeedRevision,
    before: FeedRevision | None,
) -> None:  # fmt: skip
    entry = feed.add_entry(order="append")
    # Each revision's own address in the API: stable, and never the guide's (that one is the guide's entry).
    entry.id(f"{settings.base_url}/api/v1/guides/{guide.id}/revisions/{revision.number}")
    change = revision.summary_of_change or ("Created" if before is None else "Edited")
    entry.title(f"Revision {revision.number}: {change}")
    entry.updated(_aware(revision.created_at))
    entry.published(_aware(revision.created_at))
    # Each revision's changes on the revisions page; the first has nothing before it, so the history itself.
    compare = f"?from={before.number}&to={revision.number}" if before else ""
    entry.link(href=f"{settings.base_url}{page}/revisions{compare}", rel="alternate", type="text/html")
    entry.author(name=revision.author.display_name, uri=revision.author.uri)
    parts = [f"<p>{escape(revision.title)}</p>"]
    if before is None:
        parts.append(render(revision.body_markdown))
    else:
        diff = unified_diff(
            before.body_markdown, revision.body_markdown, f"revision {before.number}", f"revision {revision.number}"
        )
        parts.append(f"<pre><code>{escape(diff or 'The text did not change.')}</code></pre>")
    entry.content(sanitize("".join(parts)), type="html")


feed_handlers = [guides_feed, community_guides_feed, tag_guides_feed, revisions_feed_handler, community_feed_redirect]
