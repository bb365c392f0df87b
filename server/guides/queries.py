"""Reading guides: the one column list and row decoder that the API, the pages and the cards share."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any
from uuid import UUID

from sqlalchemy import Select, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import aliased

from server.accounts.security import Principal
from server.accounts.service import person_ref, person_ref_of
from server.communities.schemas import CommunityRef
from server.communities.service import community_ref
from server.db import fetch_all
from server.errors import not_found
from server.etags import make_etag
from server.guides import rules, schemas
from server.markdown import render
from server.models import Community, Guide, GuideRevision, Membership, User
from server.pagination import keyset_bound, keyset_params, split_page
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
    )  # fmt: skip


# Reads select the columns the schema needs, in the order _from_row takes them: the guide's, then its author's
# and its community's. No ORM entities, so no identity map, and none of the author's password hash or the
# community's description and links. The joined tables are aliased, as the ORM's joined loads were, so that
# the filters' subqueries on `users` and `communities` (apply_origin_filters, author=) stay uncorrelated.
_author = aliased(User, name="author")
_community = aliased(Community, name="community")
_COLUMNS = (
    Guide.id, Guide.uri, Guide.url, Guide.slug, Guide.title, Guide.summary, Guide.body_markdown, Guide.body_html,
    Guide.tags, Guide.license, Guide.status, Guide.revision, Guide.local, Guide.instance, Guide.former_peer,
    Guide.derived_from, Guide.created_at, Guide.updated_at,
    _author.username, _author.display_name, _author.uri, _author.instance,
    _community.slug, _community.name, _community.instance, _community.uri, _community.url, _community.color,
)  # fmt: skip
_READ = (
    select(*_COLUMNS).join(_author, _author.id == Guide.author_id).join(_community, _community.id == Guide.community_id)
)
# One guide by id (`:id`), with what deciding who may see a draft takes.
_ONE = _READ.add_columns(Guide.author_id, Guide.community_id).where(
    Guide.id == bindparam("id"), Guide.deleted_at.is_(None)
)
_MODERATOR_ROLE = select(Membership.role).where(
    Membership.user_id == bindparam("user_id"), Membership.community_id == bindparam("community_id")
)


def _from_row(row: Sequence[Any]) -> schemas.Guide:
    """A guide's schema from a row of _READ: the same as to_schema of the loaded Guide."""
    (
        id_, uri, url, slug, title, summary, body_markdown, body_html, tags, license_, status, revision, local,
        instance, former_peer, derived_from, created_at, updated_at,
        author_username, author_display_name, author_uri, author_instance,
        community_slug, community_name, community_instance, community_uri, community_url, community_color, *_,
    ) = row  # fmt: skip
    return schemas.Guide(
        id=id_, uri=uri, url=url, slug=slug, title=title, summary=summary, body_markdown=body_markdown,
        body_html=body_html, tags=list(tags), license=license_, status=status, revision=revision,
        author=person_ref_of(author_username, author_display_name, author_uri, author_instance),
        community=CommunityRef(
            slug=community_slug, name=community_name, instance=community_instance, uri=community_uri,
            url=community_url, color=community_color,
        ),  # community_ref's fields
        local=local, origin=schemas.Origin(instance=instance, uri=uri, url=url, former_peer=former_peer),
        derived_from=derived_from, created_at=created_at, updated_at=updated_at,
    )  # fmt: skip


@lru_cache(maxsize=256)
def _list_statement(
    local_host: str, status: str, origin: Origin, instance: str | None, community: str | None, tag: str | None,
    author: str | None, drafts_for: Principal | None, after: bool,
) -> Select[Any]:  # fmt: skip
    """The list's statement for these filters, built once: building and hashing a select of this size costs
    more than running it. Only the page position and size are left as parameters (see keyset_params)."""
    query = _READ.where(Guide.deleted_at.is_(None), Guide.status == status)
    query = apply_origin_filters(query, Guide, local_host, origin=origin, instance=instance, community=community)
    if status == "draft":
        query = drafts_visible_to(query, drafts_for)
    if tag:
        query = query.where(Guide.tags_key.contains(f"|{tag.strip().lower()}|", autoescape=True))
    if author:
        name, host = split_ref(author, local_host)
        authors = select(User.id).where(User.username == name, User.instance == host)
        query = query.where(Guide.author_id.in_(authors.scalar_subquery()))
    return keyset_bound(query, Guide, after=after)


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


def _page(rows: Sequence[Sequence[Any]], limit: int) -> tuple[list[schemas.Guide], str | None]:
    return split_page([_from_row(row) for row in rows], limit)


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
        return _page(await fetch_all(self.engine, statement, params, quick=quick), limit)

    async def get(self, guide_id: UUID, principal: Principal | None) -> schemas.Guide:
        """The guide as GuideService.get finds it: 404 if deleted, or a draft the principal may not edit."""
        rows = await fetch_all(self.engine, _ONE, {"id": guide_id}, quick=True)  # by primary key
        if not rows:
            raise not_found("Guide")
        guide = _from_row(rows[0])
        author_id, community_id = rows[0][-2:]
        if guide.status == "draft" and not await self._may_edit(principal, author_id, community_id):
            raise not_found("Guide")  # a draft's existence is nobody else's business
        return guide

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
