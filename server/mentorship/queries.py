"""Reading offers: the one column list and row decoder that the pages' cards read offers through."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import Select
from sqlalchemy.orm import aliased

from server.accounts.schemas import PersonRef
from server.accounts.service import person_ref_of
from server.communities.schemas import CommunityRef
from server.guides.schemas import Origin
from server.models import Community, MentorshipOffer, User
from server.projection import Projection

# Aliased as the guides' reads alias theirs, so a filter's subquery on `users` or `communities` stays uncorrelated.
_mentor = aliased(User, name="mentor")
_community = aliased(Community, name="community")
OFFER = Projection(
    "OfferRow",
    {
        "id": MentorshipOffer.id, "title": MentorshipOffer.title, "topics": MentorshipOffer.topics,
        "format": MentorshipOffer.format, "capacity": MentorshipOffer.capacity,
        "seats_taken": MentorshipOffer.seats_taken, "status": MentorshipOffer.status,
        "local": MentorshipOffer.local, "instance": MentorshipOffer.instance, "uri": MentorshipOffer.uri,
        "url": MentorshipOffer.url, "former_peer": MentorshipOffer.former_peer,
        "created_at": MentorshipOffer.created_at, "updated_at": MentorshipOffer.updated_at,
        "mentor_username": _mentor.username, "mentor_display_name": _mentor.display_name,
        "mentor_uri": _mentor.uri, "mentor_instance": _mentor.instance,
        "community_slug": _community.slug, "community_name": _community.name,
        "community_instance": _community.instance, "community_uri": _community.uri,
        "community_url": _community.url, "community_color": _community.color,
    },
)  # fmt: skip


def joined(query: Select[Any]) -> Select[Any]:
    """A select of OFFER's columns with the mentor and the community they name."""
    return query.join(_community, _community.id == MentorshipOffer.community_id).join(
        _mentor, _mentor.id == MentorshipOffer.mentor_id
    )


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


def offer_card(row: Sequence[Any]) -> OfferCard:
    """A card from a row of OFFER's columns (a function of the row alone: `fetch_all(..., into=...)`)."""
    r = OFFER.named(row)
    return OfferCard(
        id=r.id, title=r.title, topics=list(r.topics), format=r.format, capacity=r.capacity,
        seats_taken=r.seats_taken, status=r.status, local=r.local,
        mentor=person_ref_of(r.mentor_username, r.mentor_display_name, r.mentor_uri, r.mentor_instance),
        community=CommunityRef(
            slug=r.community_slug, name=r.community_name, instance=r.community_instance, uri=r.community_uri,
            url=r.community_url, color=r.community_color,
        ),
        origin=Origin(instance=r.instance, uri=r.uri, url=r.url, former_peer=r.former_peer),
        created_at=r.created_at, updated_at=r.updated_at,
    )  # fmt: skip
