"""What the home, community and guide pages show, as statements of only those columns and their decoders.

A card needs neither the guide's bodies nor its author's other columns, and a page of cards needs no ORM
entities: rows go straight into small structs. The statements are built once and bound per request, and each
runs through `server.db.fetch_all` (on SQLite, one hop to the reader thread instead of several aiosqlite
round trips).

Which guides a list shows is decided exactly as the guide API (`GuideReads.list`) decides it: not deleted, the
status asked for, drafts only for those who may edit them (the service's own rule). Offers are public unless
deleted, as in `MentorshipService.list`. The guide page reads only a published guide this way; anything else goes
through `GuideService.get`.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, Literal
from uuid import UUID

import msgspec
from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.schemas import PersonRef
from server.accounts.security import Principal
from server.communities.schemas import CommunityRef
from server.guides.queries import drafts_visible_to
from server.guides.schemas import Origin
from server.models import Community, Guide, MentorshipOffer, User
from server.pagination import keyset, keyset_bound, keyset_params
from server.settings import Settings


class GuideCard(msgspec.Struct):
    """The part of `server.guides.schemas.Guide` a card shows, with the same names."""

    id: UUID
    slug: str
    title: str
    summary: str
    tags: list[str]
    status: str
    local: bool
    author: PersonRef
    community: CommunityRef
    origin: Origin
    created_at: datetime
    updated_at: datetime


class OfferCard(msgspec.Struct):
    """The part of `server.mentorship.schemas.Offer` a card shows, with the same names."""

    id: UUID
    title: str
    topics: list[str]
    format: str
    capacity: int
    seats_taken: int
    status: str
    local: bool
    mentor: PersonRef
    community: CommunityRef
    origin: Origin
    created_at: datetime
    updated_at: datetime


class GuideView(msgspec.Struct):
    """The part of `server.guides.schemas.Guide` the guide page shows, with the same names."""

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
    origin: Origin
    derived_from: str | None
    created_at: datetime
    updated_at: datetime
    author_id: UUID
    community_id: UUID


_COMMUNITY = (Community.slug, Community.name, Community.instance, Community.uri, Community.url, Community.color)
_PERSON = (User.username, User.display_name, User.uri, User.instance)
_GUIDE_CARD = (
    Guide.id, Guide.slug, Guide.title, Guide.summary, Guide.tags, Guide.status, Guide.local, Guide.instance,
    Guide.uri, Guide.url, Guide.former_peer, Guide.created_at, Guide.updated_at, *_COMMUNITY, *_PERSON,
)  # fmt: skip
_OFFER_CARD = (
    MentorshipOffer.id, MentorshipOffer.title, MentorshipOffer.topics, MentorshipOffer.format,
    MentorshipOffer.capacity, MentorshipOffer.seats_taken, MentorshipOffer.status, MentorshipOffer.local,
    MentorshipOffer.instance, MentorshipOffer.uri, MentorshipOffer.url, MentorshipOffer.former_peer,
    MentorshipOffer.created_at, MentorshipOffer.updated_at, *_COMMUNITY, *_PERSON,
)  # fmt: skip
_GUIDE_VIEW = (
    Guide.id, Guide.slug, Guide.title, Guide.summary, Guide.body_html, Guide.tags, Guide.license, Guide.status,
    Guide.revision, Guide.local, Guide.instance, Guide.uri, Guide.url, Guide.former_peer, Guide.derived_from,
    Guide.created_at, Guide.updated_at, Guide.author_id, Guide.community_id, *_COMMUNITY, *_PERSON,
)  # fmt: skip


def _community(row: Any, at: int) -> CommunityRef:
    slug, name, instance, uri, url, color = row[at : at + 6]
    return CommunityRef(slug=slug, name=name, instance=instance, uri=uri, url=url, color=color)


def _person(row: Any, at: int) -> PersonRef:
    username, display_name, uri, instance = row[at : at + 4]
    return PersonRef(username=username, display_name=display_name or username, uri=uri, instance=instance)


# guide cards


def guide_cards_query(
    db: AsyncSession | None,
    settings: Settings,
    principal: Principal | None,
    *,
    by_community: bool,
    status: Literal["draft", "published"] = "published",
    limit: int = 20,
    cursor: str | None = None,
) -> tuple[Select[Any], dict[str, Any]]:
    """Newest first, keyset-paginated like `GuideReads.list`: the statement and its parameters (with
    `by_community`, add `community_id`). A bad cursor raises here (422), before any statement runs."""
    params = keyset_params(limit, cursor)
    if status == "published":
        return _published_cards(by_community, bool(cursor)), params
    query = _cards_query(by_community, status)
    # The very rule the guide list applies, so a card never shows a draft its page would hide.
    query = drafts_visible_to(query, principal)
    return keyset_bound(query, Guide, after=bool(cursor)), params


def _cards_query(by_community: bool, status: str) -> Select[Any]:
    query = (
        select(*_GUIDE_CARD)
        .join(Community, Community.id == Guide.community_id)
        .join(User, User.id == Guide.author_id)
        .where(Guide.deleted_at.is_(None), Guide.status == status)
    )
    if by_community:
        query = query.where(Guide.community_id == bindparam("community_id"))
    return query


@lru_cache(maxsize=4)
def _published_cards(by_community: bool, after: bool) -> Select[Any]:
    """Published cards are what every visitor sees: their statements are built (and compiled) once."""
    return keyset_bound(_cards_query(by_community, "published"), Guide, after=after)


def guide_card(row: Any) -> GuideCard:
    """A card from a row of a `guide_cards_query` (a function of the row alone: `fetch_all(..., into=...)`)."""
    (id_, slug, title, summary, tags, status, local, instance, uri, url, former_peer, created_at, updated_at) = row[:13]
    return GuideCard(
        id=id_, slug=slug, title=title, summary=summary, tags=list(tags), status=status, local=local,
        author=_person(row, 19), community=_community(row, 13),
        origin=Origin(instance=instance, uri=uri, url=url, former_peer=former_peer),
        created_at=created_at, updated_at=updated_at,
    )  # fmt: skip


# offer cards


@lru_cache(maxsize=16)
def offer_cards_query(*, by_community: bool, open_only: bool, limit: int) -> Select[Any]:
    """The newest offers, as `MentorshipService.list(community=..., status=...)` lists them; with
    `by_community`, bind `community_id`."""
    query = (
        select(*_OFFER_CARD)
        .join(Community, Community.id == MentorshipOffer.community_id)
        .join(User, User.id == MentorshipOffer.mentor_id)
        .where(MentorshipOffer.deleted_at.is_(None))
    )
    if by_community:
        query = query.where(MentorshipOffer.community_id == bindparam("community_id"))
    if open_only:
        query = query.where(MentorshipOffer.status == "open")
    return keyset(query, MentorshipOffer, limit, None)


def offer_card(row: Any) -> OfferCard:
    """A card from a row of an `offer_cards_query` (a function of the row alone)."""
    (
        id_, title, topics, format_, capacity, seats_taken, status, local, instance, uri, url, former_peer,
        created_at, updated_at,
    ) = row[:14]  # fmt: skip
    return OfferCard(
        id=id_, title=title, topics=list(topics), format=format_, capacity=capacity, seats_taken=seats_taken,
        status=status, local=local, mentor=_person(row, 20), community=_community(row, 14),
        origin=Origin(instance=instance, uri=uri, url=url, former_peer=former_peer),
        created_at=created_at, updated_at=updated_at,
    )  # fmt: skip


# the guide page

# Bind `community_slug`, `community_instance` and `guide_slug`.
PUBLISHED_GUIDE = (
    select(*_GUIDE_VIEW)
    .join(Community, Community.id == Guide.community_id)
    .join(User, User.id == Guide.author_id)
    .where(
        Community.slug == bindparam("community_slug"),
        Community.instance == bindparam("community_instance"),
        Community.deleted_at.is_(None),
        Guide.slug == bindparam("guide_slug"),
        Guide.deleted_at.is_(None),
        Guide.status == "published",
    )
)


def guide_view(row: Any) -> GuideView:
    """The guide page's view from a row of PUBLISHED_GUIDE."""
    (
        id_, slug, title, summary, body_html, tags, license_, status, revision, local, instance, uri, url,
        former_peer, derived_from, created_at, updated_at, author_id, community_id,
    ) = row[:19]  # fmt: skip
    return GuideView(
        id=id_, slug=slug, title=title, summary=summary, body_html=body_html, tags=list(tags), license=license_,
        status=status, revision=revision, local=local, author=_person(row, 25), community=_community(row, 19),
        origin=Origin(instance=instance, uri=uri, url=url, former_peer=former_peer), derived_from=derived_from,
        created_at=created_at, updated_at=updated_at, author_id=author_id, community_id=community_id,
    )  # fmt: skip
