"""A mentorship offer arriving with a community archive: written as a local offer of this instance.

It passes the API's checks for a new offer and its HTML is rendered here from its markdown. It gets this
instance's id and URI, keeps its dates, starts with no seat taken (requests are private to their people and
stay behind), and is recorded as a local creation: peers hear of it and search indexes it.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from server import changes
from server.db import new_id
from server.errors import invalid
from server.markdown import render
from server.mentorship import rules, schemas
from server.models import Community, MentorshipOffer, User
from server.refs import key_of
from server.rules import normalize_labels
from server.settings import Settings


async def add_imported(
    session: AsyncSession, settings: Settings, community: Community, mentor_id: UUID, data: schemas.OfferCreate,
    created_at: datetime, updated_at: datetime, former_uri: str | None = None,
) -> MentorshipOffer:  # fmt: skip
    """The offer, in the caller's transaction; `data` was decoded with the API's request schema."""
    mentor = await session.get(User, mentor_id)
    if mentor is None:
        raise invalid("mentor", "is not a person known here")
    topics = normalize_labels("topics", data.topics)
    languages = normalize_labels("languages", data.languages)
    offer_id = new_id()
    uri = f"{settings.base_url}/mentorship/offers/{offer_id}"
    offer = MentorshipOffer(
        id=offer_id, uri=uri, url=uri, community=community, mentor=mentor, title=rules.title(data.title),
        description_markdown=data.description_markdown, description_html=render(data.description_markdown),
        topics=topics, topics_key=key_of(topics), format=data.format, capacity=data.capacity, seats_taken=0,
        languages=languages, languages_key=key_of(languages), availability=rules.availability(data.availability),
        status=data.status, local=True, instance=settings.host, created_at=created_at, updated_at=updated_at,
        former_uri=former_uri,
    )  # fmt: skip
    session.add(offer)
    await changes.record(session, settings, "Create", offer)
    return offer
