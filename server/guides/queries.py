"""Reading guides: the one column list and row decoder that the API, the pages and the cards share."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import Select, bindparam, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import aliased

from server.accounts.schemas import PersonRef
from server.accounts.security import Principal
from server.accounts.service import person_ref, person_ref_of
from server.communities.schemas import CommunityRef
from server.communities.service import community_ref
from server.db import fetch_all
from server.errors import not_found
from server.etags import make_etag
from server.guides import adaptation, rules, schemas
from server.markdown import render
from server.models import Community, Guide, GuideRevision, Membership, User
from server.pagination import keyset_bound, keyset_params, split_page
from server.projection import Projection
from server.refs import Origin, apply_origin_filters, split_ref
from server.settings import Settings


def etag(guide: Guide | schemas.Guide) -> str:
    return make_etag(guide.id.hex[:12], guide.revision)


def to_schema(guide: Guide) -> schemas.Guide:
    return schemas.Guide(
        id=guide.id, uri=guide.uri, url=guide.url, slug=guide.slug, title=guide.title,
        summary=guide.summary, body_markdown=guide.body_markdown, body_html=guide.body_html,
        tags=list(guide.tags), license=guide.license, status=guide.status,  # type: ignore[arg-type]
        revision=guide.revision, author=person_ref(guide.author),
        community=community_ref(guide.community), local=guide.local,
        origin=schemas.Origin(instance=guide.instance, uri=guide.uri, url=guide.url, former_peer=guide.former_peer),
        derived_from=guide.derived_from, created_at=guide.created_at, updated_at=guide.updated_at,
        moved_from=guide.former_uri,
    )  # fmt: skip


# Every read of guides selects from GUIDE, by name: the API's schema, the guide page's view and the cards. No ORM
# entities, so no identity map, and none of the author's password hash or the community's description and links.
# The joined tables are aliased, as the ORM's joined loads were, so that the filters' subqueries on `users` and
# `communities` (apply_origin_filters, author=, drafts_visible_to) stay uncorrelated.
_author = aliased(User, name="author")
_community = aliased(Community, name="community")
JOINED_COMMUNITY = _community  # for reads elsewhere that filter on the community `joined` names
_AUTHOR = ("author_username", "author_display_name", "author_uri", "author_instance")
_COMMUNITY = (
    "community_slug", "community_name", "community_instance", "community_uri", "community_url", "community_color"
)  # fmt: skip
_ORIGIN = ("instance", "uri", "url", "former_peer")
_adaptation = aliased(Guide, name="adaptation")
# Whether the guide has a published adaptation: read with the guide, so that the query for its adaptations
# (adaptation.ADAPTATIONS), a round trip to the database, runs only for a guide that has some.
_ADAPTED = exists().where(
    _adaptation.derived_from == Guide.uri, _adaptation.deleted_at.is_(None), _adaptation.status == "published"
)
GUIDE = Projection(
    "GuideRow",
    {
        "id": Guide.id, "uri": Guide.uri, "url": Guide.url, "slug": Guide.slug, "title": Guide.title,
        "summary": Guide.summary, "body_markdown": Guide.body_markdown, "body_html": Guide.body_html,
        "tags": Guide.tags, "license": Guide.license, "status": Guide.status, "revision": Guide.revision,
        "local": Guide.local, "instance": Guide.instance, "former_peer": Guide.former_peer,
        "derived_from": Guide.derived_from, "created_at": Guide.created_at, "updated_at": Guide.updated_at,
        "former_uri": Guide.former_uri,
        "author_username": _author.username, "author_display_name": _author.display_name,
        "author_uri": _author.uri, "author_instance": _author.instance,
        "community_slug": _community.slug, "community_name": _community.name,
        "community_instance": _community.instance, "community_uri": _community.uri,
        "community_url": _community.url, "community_color": _community.color,
        "adapted": _ADAPTED,
        # Who may see a draft is decided by these two; the schema shows neither.
        "author_id": Guide.author_id, "community_id": Guide.community_id,
    },
)  # fmt: skip
_SCHEMA = GUIDE.without("GuideSchemaRow", "author_id", "community_id")
# What a card shows: neither body, so a page of cards reads and remembers (fetch_all's `into`) small rows.
CARD = GUIDE.only(
    "GuideCardRow", "id", "slug", "title", "summary", "tags", "status", "local", *_ORIGIN, "created_at",
    "updated_at", *_AUTHOR, *_COMMUNITY,
)  # fmt: skip
VIEW = GUIDE.without("GuideViewRow", "body_markdown")


def joined(query: Select[Any]) -> Select[Any]:
    """A select of GUIDE's columns with the author and the community they name."""
    return query.join(_author, _author.id == Guide.author_id).join(_community, _community.id == Guide.community_id)


_READ = joined(select(*_SCHEMA.columns))
# One guide by id (`:id`), with what deciding who may see a draft takes.
_ONE = joined(select(*GUIDE.columns)).where(Guide.id == bindparam("id"), Guide.deleted_at.is_(None))
# The guide page's read of a published guide: bind `community_slug`, `community_instance` and `guide_slug`.
PUBLISHED_GUIDE = joined(select(*VIEW.columns)).where(
    _community.slug == bindparam("community_slug"),
    _community.instance == bindparam("community_instance"),
    _community.deleted_at.is_(None),
    Guide.slug == bindparam("guide_slug"),
    Guide.deleted_at.is_(None),
    Guide.status == "published",
)
_MODERATOR_ROLE = select(Membership.role).where(
    Membership.user_id == bindparam("user_id"), Membership.community_id == bindparam("community_id")
)


class GuideCard(msgspec.Struct):
    """The part of `schemas.Guide` a card shows, with the same names."""

    id: UUID
    slug: str
    title: str
    summary: str
    tags: list[str]
    status: str
    local: bool
    author: PersonRef
    community: CommunityRef
    origin: schemas.Origin
    created_at: datetime
    updated_at: datetime


class GuideView(msgspec.Struct):
    """The part of `schemas.Guide` the guide page shows, with the same names, and who may edit it."""

    id: UUID
    slug: str
    title: str
    summary: str
    body_html: str
    tags: list[str]
    license: str
    status: str
    revision: int
    local: bool
    author: PersonRef
    community: CommunityRef
    origin: schemas.Origin
    derived_from: str | None
    created_at: datetime
    updated_at: datetime
    author_id: UUID
    community_id: UUID
    adapted: bool  # has a published adaptation


def _author_of(r: Any) -> PersonRef:
    return person_ref_of(r.author_username, r.author_display_name, r.author_uri, r.author_instance)


def _community_of(r: Any) -> CommunityRef:
    return CommunityRef(
        slug=r.community_slug, name=r.community_name, instance=r.community_instance, uri=r.community_uri,
        url=r.community_url, color=r.community_color,
    )  # fmt: skip


def _origin_of(r: Any) -> schemas.Origin:
    return schemas.Origin(instance=r.instance, uri=r.uri, url=r.url, former_peer=r.former_peer)


def _from_row(row: Sequence[Any]) -> schemas.Guide:
    """A guide's schema from a row of _READ: the same as to_schema of the loaded Guide."""
    return _guide_of(_SCHEMA.named(row))


def _guide_of(r: Any) -> schemas.Guide:
    return schemas.Guide(
        id=r.id, uri=r.uri, url=r.url, slug=r.slug, title=r.title, summary=r.summary,
        body_markdown=r.body_markdown, body_html=r.body_html, tags=list(r.tags), license=r.license,
        status=r.status, revision=r.revision, author=_author_of(r), community=_community_of(r), local=r.local,
        origin=_origin_of(r), derived_from=r.derived_from, created_at=r.created_at, updated_at=r.updated_at,
        moved_from=r.former_uri,
    )  # fmt: skip


def guide_card(row: Sequence[Any]) -> GuideCard:
    """A card from a row of CARD's columns (a function of the row alone: `fetch_all(..., into=...)`)."""
    r = CARD.named(row)
    return GuideCard(
        id=r.id, slug=r.slug, title=r.title, summary=r.summary, tags=list(r.tags), status=r.status, local=r.local,
        author=_author_of(r), community=_community_of(r), origin=_origin_of(r), created_at=r.created_at,
        updated_at=r.updated_at,
    )  # fmt: skip


def guide_view(row: Sequence[Any]) -> GuideView:
    """The guide page's view from a row of VIEW's columns."""
    r = VIEW.named(row)
    return GuideView(
        id=r.id, slug=r.slug, title=r.title, summary=r.summary, body_html=r.body_html, tags=list(r.tags),
        license=r.license, status=r.status, revision=r.revision, local=r.local, author=_author_of(r),
        community=_community_of(r), origin=_origin_of(r), derived_from=r.derived_from, created_at=r.created_at,
        updated_at=r.updated_at, author_id=r.author_id, community_id=r.community_id, adapted=bool(r.adapted),
    )  # fmt: skip


@lru_cache(maxsize=256)
def _list_statement(
    local_host: str, status: str, origin: Origin, instance: str | None, community: str | None, tag: str | None,
    author: str | None, drafts_for: Principal | None, after: bool,
) -> Select[Any]:  # fmt: skip
    """The list's statement for these filters, built once: building and hashing a select of this size costs
    more than running it. Only the page position and size are left as parameters (see keyset_params)."""
    query = _READ.where(Guide.deleted_at.is_(None), Guide.status == status, ~_community.moved_away)
    query = apply_origin_filters(query, Guide, local_host, origin=origin, instance=instance, community=community)
    if status == "draft":
        query = drafts_visible_to(query, drafts_for)
    if tag:
        query = query.where(Guide.tags_key.contains(f"|{tag.strip().lower()}|", autoescape=True))
    if author:
        name, host = split_ref(author, local_host)
        authors = select(User.id).where(User.username == name, User.instance == host)
        query = query.where(Guide.author_id.in_(authors.scalar_subquery()))
    return newest_first(query, after=after)


def newest_first(query: Select[Any], *, after: bool) -> Select[Any]:
    """keyset_bound for guides that are not deleted, ordered first by `deleted_at` (NULL in every row): to
    PostgreSQL's planner `deleted_at IS NULL` is no equality, so without it leading the ORDER BY the listing
    indexes, which start with it, give no order, and each page sorted every guide (SQLite reads them either way)."""
    return keyset_bound(query.order_by(Guide.deleted_at.desc()), Guide, after=after)


def drafts_visible_to(query, principal: Principal | None):  # type: ignore[no-untyped-def]
    if principal is None:
        return query.where(False)
    if principal.is_admin:
        return query
    moderated = select(Membership.community_id).where(
        Membership.user_id == principal.user_id, Membership.role == "moderator"
    )
    return query.where(or_(Guide.author_id == principal.user_id, Guide.community_id.in_(moderated.scalar_subquery())))


def _list_query(
    settings: Settings, principal: Principal | None, *, community: str | None, tag: str | None,
    author: str | None, origin: Origin, instance: str | None, status: str, limit: int, cursor: str | None,
) -> tuple[Select[Any], dict[str, Any]]:  # fmt: skip
    statement = _list_statement(
        settings.host if community or author else "", status, origin, instance, community, tag, author,
        principal if status == "draft" else None, bool(cursor),
    )  # fmt: skip
    return statement, keyset_params(limit, cursor)


def _page(rows: Sequence[Sequence[Any]], limit: int) -> tuple[list[schemas.Guide], str | None, set[str]]:
    """The page's guides, the next cursor, and the uris of those guides that have adaptations."""
    named = [_SCHEMA.named(row) for row in rows]
    items, next_cursor = split_page([_guide_of(r) for r in named], limit)
    return items, next_cursor, {r.uri for r in named[:limit] if r.adapted}


class GuideReads:
    """The guide API's reads, with no session: each runs one statement through fetch_all (on SQLite, a single hop
    to the reader thread) and decodes the rows straight into the schemas."""

    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    async def list(
        self, principal: Principal | None, *, community: str | None = None, tag: str | None = None,
        author: str | None = None, origin: Origin = "all", instance: str | None = None,
        status: schemas.Status = "published", limit: int = 20, cursor: str | None = None,
    ) -> tuple[list[schemas.Guide], str | None]:  # fmt: skip
        statement, params = _list_query(
            self.settings, principal, community=community, tag=tag, author=author, origin=origin,
            instance=instance, status=status, limit=limit, cursor=cursor,
        )  # fmt: skip
        # Newest published guides, no filter but the page: the listing index read in order, a quick read.
        quick = status == "published" and not (community or tag or author or instance or origin != "all")
        items, next_cursor, adapted = _page(await fetch_all(self.engine, statement, params, quick=quick), limit)
        return await adaptation.with_links(self._run, items, adapted), next_cursor

    async def _run(self, statement: Select[Any], params: dict[str, Any]) -> Sequence[Sequence[Any]]:
        return await fetch_all(self.engine, statement, params)

    async def get(self, guide_id: UUID, principal: Principal | None) -> schemas.Guide:
        """The guide as GuideService.get finds it: 404 if deleted, or a draft the principal may not edit."""
        rows = await fetch_all(self.engine, _ONE, {"id": guide_id}, quick=True)  # by primary key
        if not rows:
            raise not_found("Guide")
        one = GUIDE.named(rows[0])
        guide = _guide_of(one)
        if guide.status == "draft" and not await self._may_edit(principal, one.author_id, one.community_id):
            raise not_found("Guide")  # a draft's existence is nobody else's business
        return (await adaptation.with_links(self._run, [guide], {guide.uri} if one.adapted else set()))[0]

    async def _may_edit(self, principal: Principal | None, author_id: UUID, community_id: UUID) -> bool:
        known = rules.edit_right(principal, author_id)
        if known is not None or principal is None:
            return bool(known)
        rows = await fetch_all(
            self.engine, _MODERATOR_ROLE, {"user_id": principal.user_id, "community_id": community_id}
        )
        return rules.may_edit(principal, author_id, rows[0][0] if rows else None)


def revision_detail(revision: GuideRevision) -> schemas.RevisionDetail:
    return schemas.RevisionDetail(
        number=revision.number, title=revision.title, summary=revision.summary,
        body_markdown=revision.body_markdown, body_html=render(revision.body_markdown),
        tags=list(revision.tags), license=revision.license, status=revision.status,  # type: ignore[arg-type]
        created_at=revision.created_at, author=person_ref(revision.author),
        summary_of_change=revision.summary_of_change,
    )  # fmt: skip
