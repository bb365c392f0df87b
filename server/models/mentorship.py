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
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]

    community: Mapped[Community] = relationship(lazy="joined", innerjoin=True)
    mentor: Mapped[User] = relationship(lazy="joined", innerjoin=True)


class MentorshipRequest(Base):
    __tablename__ = "mentorship_requests"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    offer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mentorship_offers.id", ondelete="CASCADE"), index=True)
    requester_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    message: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    offer: Mapped[MentorshipOffer] = relationship(lazy="joined", innerjoin=True)
    requester: Mapped[User] = relationship(lazy="joined", innerjoin=True)
