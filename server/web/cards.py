"""Which guides and offers the home and community pages show as cards, as statements built once.

The columns and the decoders are the domain's (`server.guides.queries.CARD`, `server.mentorship.queries.OFFER`):
a card is read as the API reads the same entry, by name, only fewer columns of it. Each statement runs through
`server.db.fetch_all` with `into=` the card's decoder (on SQLite, one hop to the reader thread, and a row read
again is not decoded again).

Which guides a list shows is decided exactly as the guide API (`GuideReads.list`) decides it: not deleted, the
status asked for, drafts only for those who may edit them (the service's own rule). Offers are public unless
deleted, as in `MentorshipService.list`. The guide page reads only a published guide this way
(`server.guides.queries.PUBLISHED_GUIDE`); anything else goes through `GuideService.get`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import Select, bindparam, select

from server.accounts.security import Principal
from server.guides import queries as guides
from server.guides.queries import GuideCard, drafts_visible_to, guide_card, newest_first
from server.mentorship import queries as offers
from server.mentorship.queries import OfferCard, offer_card
from server.models import Community, Guide, MentorshipOffer
from server.pagination import keyset, keyset_params

__all__ = ["GuideCard", "OfferCard", "guide_card", "guide_cards_query", "offer_card", "offer_cards_query"]


def guide_cards_query(
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
    return newest_first(query, after=bool(cursor)), params


# A moved community's entries are listed under its new home; here their pages only redirect there.
_MOVED_AWAY = select(Community.id).where(Community.moved_away).scalar_subquery()


def _cards_query(by_community: bool, status: str) -> Select[Any]:
    query = guides.joined(select(*guides.CARD.columns)).where(Guide.deleted_at.is_(None), Guide.status == status)
    query = query.where(Guide.community_id.not_in(_MOVED_AWAY))
    if by_community:
        query = query.where(Guide.community_id == bindparam("community_id"))
    return query


@lru_cache(maxsize=4)
def _published_cards(by_community: bool, after: bool) -> Select[Any]:
    """Published cards are what every visitor sees: their statements are built (and compiled) once."""
    return newest_first(_cards_query(by_community, "published"), after=after)


@lru_cache(maxsize=16)
def offer_cards_query(*, by_community: bool, open_only: bool, limit: int) -> Select[Any]:
    """The newest offers, as `MentorshipService.list(community=..., status=...)` lists them; with
    `by_community`, bind `community_id`."""
    query = offers.joined(select(*offers.OFFER.columns)).where(MentorshipOffer.deleted_at.is_(None))
    query = query.where(MentorshipOffer.community_id.not_in(_MOVED_AWAY))
    if by_community:
        query = query.where(MentorshipOffer.community_id == bindparam("community_id"))
    if open_only:
        query = query.where(MentorshipOffer.status == "open")
    return keyset(query, MentorshipOffer, limit, None)
