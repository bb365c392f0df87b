from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.db import Base, new_id, utcnow
from server.models.accounts import User
from server.models.communities import Community


class Guide(Base):
    __tablename__ = "guides"
    __table_args__ = (
        UniqueConstraint("community_id", "slug"),
        Index("ix_guides_listing", "deleted_at", "created_at", "id"),
        # A community's guides, newest first, and its published-guide count, both read from the index alone.
        Index("ix_guides_community_listing", "community_id", "status", "deleted_at", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    community_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("communities.id"), index=True)
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    slug: Mapped[str] = mapped_column(String(120))
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text, default="")
    body_markdown: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    # "|tag1|tag2|": lets one portable LIKE filter by tag on SQLite and PostgreSQL alike.
    tags_key: Mapped[str] = mapped_column(Text, default="|")
    license: Mapped[str] = mapped_column(String(64), default="CC-BY-4.0")
    status: Mapped[str] = mapped_column(String(16), default="published")
    revision: Mapped[int] = mapped_column(default=1)
    local: Mapped[bool] = mapped_column(default=True)
    # Set when its instance is removed from peers: the entry stays, shown as from a former peer.
    former_peer: Mapped[bool] = mapped_column(default=False)
    instance: Mapped[str] = mapped_column(String(255), index=True)
    # The guide this one adapts (its uri): indexed, since the origin lists the guides that adapt it.
    derived_from: Mapped[str | None] = mapped_column(String(2048), index=True)
    # The uri it had before its community moved here (migration 0013): links and adaptations naming it still find it.
    former_uri: Mapped[str | None] = mapped_column(String(2048), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]

    community: Mapped[Community] = relationship(lazy="joined", innerjoin=True)
    author: Mapped[User] = relationship(lazy="joined", innerjoin=True)


class GuideRevision(Base):
    __tablename__ = "guide_revisions"
    __table_args__ = (UniqueConstraint("guide_id", "number"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    guide_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("guides.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text, default="")
    body_markdown: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    license: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    summary_of_change: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    author: Mapped[User] = relationship(lazy="joined", innerjoin=True)


class GuideUpstream(Base):
    """What a local adaptation was based on: the upstream's revision and text at that point (a peer's guide keeps
    no revisions here, so the text is kept to diff and merge against), and the attribution its license asks for."""

    __tablename__ = "guide_upstreams"

    guide_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("guides.id", ondelete="CASCADE"), primary_key=True)
    uri: Mapped[str] = mapped_column(String(2048), index=True)
    base_revision: Mapped[int]
    base_title: Mapped[str] = mapped_column(String(200))
    base_body: Mapped[str] = mapped_column(Text)
    # "Dismiss until the next change": the upstream revision the members chose not to take.
    dismissed_revision: Mapped[int | None]
    url: Mapped[str] = mapped_column(String(2048))
    community_name: Mapped[str] = mapped_column(String(100))
    community_url: Mapped[str] = mapped_column(String(2048))
    instance: Mapped[str] = mapped_column(String(255))
    author_name: Mapped[str] = mapped_column(String(100))
    author_url: Mapped[str] = mapped_column(String(2048))
    license: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
