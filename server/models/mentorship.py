from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.db import Base, new_id, utcnow
from server.models.accounts import User
from server.models.communities import Community


class MentorshipOffer(Base):
    __tablename__ = "mentorship_offers"
    __table_args__ = (Index("ix_mentorship_offers_listing", "deleted_at", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    community_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("communities.id"), index=True)
    mentor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description_markdown: Mapped[str] = mapped_column(Text)
    description_html: Mapped[str] = mapped_column(Text)
    topics: Mapped[list[Any]] = mapped_column(default=list)
    topics_key: Mapped[str] = mapped_column(Text, default="|")
    format: Mapped[str] = mapped_column(String(16))
    capacity: Mapped[int]
    seats_taken: Mapped[int] = mapped_column(default=0)
    languages: Mapped[list[Any]] = mapped_column(default=list)
    languages_key: Mapped[str] = mapped_column(Text, default="|")
    availability: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(16), default="open")
    version: Mapped[int] = mapped_column(default=1)
    local: Mapped[bool] = mapped_column(default=True)
    # Set when its instance is removed from peers: the entry stays, shown as from a former peer.
    former_peer: Mapped[bool] = mapped_column(default=False)
    instance: Mapped[str] = mapped_column(String(255), index=True)
    # The uri it had before its community moved here (migration 0013): links and adaptations naming it still find it.
    former_uri: Mapped[str | None] = mapped_column(String(2048), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]

    community: Mapped[Community] = relationship(lazy="joined", innerjoin=True)
    mentor: Mapped[User] = relationship(lazy="joined", innerjoin=True)


class MentorshipRequest(Base):
    """A person's request for a seat. Stored on the requester's instance and on the offer's, under one `uri` (the
    requester's instance names it): the offer's instance decides, the requester's mirrors what it was told."""

    __tablename__ = "mentorship_requests"
    __table_args__ = (Index("ix_mentorship_requests_requester_state", "requester_id", "state"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    offer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mentorship_offers.id", ondelete="CASCADE"), index=True)
    requester_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    message: Mapped[str] = mapped_column(Text, default="")
    # sending (to the offer's instance), pending, accepted, declined (by the mentor), refused (by the offer's
    # rules: full, closed, a duplicate, gone), withdrawn, failed (could not be delivered).
    state: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str] = mapped_column(String(500), default="")
    # Made on this instance (the requester is ours); otherwise a peer's person asked for one of our offers.
    local: Mapped[bool] = mapped_column(default=True)
    # The Offer activity that carried it across, which the answers refer to.
    activity_uri: Mapped[str | None] = mapped_column(String(2048), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    offer: Mapped[MentorshipOffer] = relationship(lazy="joined", innerjoin=True)
    requester: Mapped[User] = relationship(lazy="joined", innerjoin=True)


class MentorshipMessage(Base):
    """A private message on a request, between the requester and the mentor only."""

    __tablename__ = "mentorship_messages"
    __table_args__ = (Index("ix_mentorship_messages_thread", "request_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mentorship_requests.id", ondelete="CASCADE"))
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    body_markdown: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    local: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    author: Mapped[User] = relationship(lazy="joined", innerjoin=True)
