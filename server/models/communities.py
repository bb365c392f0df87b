from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, ForeignKey, String, Text, UniqueConstraint, and_, text
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, new_id, utcnow


class Community(Base):
    """A community: local, or a remote Group mirrored from a peer (local=False)."""

    __tablename__ = "communities"
    __table_args__ = (UniqueConstraint("slug", "instance"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    color: Mapped[str] = mapped_column(String(7), default="#3b6e8f")
    links: Mapped[list[Any]] = mapped_column(default=list)
    local: Mapped[bool] = mapped_column(default=True, index=True)
    # Set when its instance is removed from peers: the entry stays, shown as from a former peer.
    former_peer: Mapped[bool] = mapped_column(default=False)
    instance: Mapped[str] = mapped_column(String(255), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Deleted communities stay as tombstones so a late Create from a peer cannot resurrect them.
    deleted_at: Mapped[datetime | None]
    # Published guides and open offers that are not deleted, kept by database triggers (migration 0006) on every
    # write to guides and mentorship_offers, whoever makes it: read them, never set them.
    guides_count: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    open_offers_count: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    # A move (migration 0013). On the new home: the old Groups this one claims to be (`alsoKnownAs`), and, once
    # the old instance has moved it here, where it came from and when. On the old instance: the Group it moved
    # to and when; from then on it is a redirect map, read-only.
    also_known_as: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    moved_to: Mapped[str | None] = mapped_column(String(2048))
    moved_at: Mapped[datetime | None]
    moved_from: Mapped[str | None] = mapped_column(String(2048))
    arrived_at: Mapped[datetime | None]

    @hybrid_property
    def moved_away(self) -> bool:
        """A community of this instance that moved to a new home: its entries are listed and found there, and its
        pages here redirect. A peer's community that moved keeps what its new home never sent."""
        return self.local and self.moved_to is not None

    @moved_away.inplace.expression
    @classmethod
    def _moved_away(cls) -> ColumnElement[bool]:
        return and_(cls.local.is_(True), cls.moved_to.is_not(None))


class CommunityImport(Base):
    """A community archive imported here: its archive id is unique, so the same archive cannot be imported twice."""

    __tablename__ = "community_imports"

    archive_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    community_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"), index=True)
    # The Group the archive was exported from, on its instance.
    source_uri: Mapped[str] = mapped_column(String(2048))
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)


class CommunityMovePeer(Base):
    """A moved community's peer instance: when the Move was delivered to it, and when it followed the new home."""

    __tablename__ = "community_move_peers"

    community_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"), primary_key=True)
    instance: Mapped[str] = mapped_column(String(255), primary_key=True)
    notified_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]


class CommunityMovedEntry(Base):
    """The redirect map of a community that moved away: each of its guides and offers (by the uri it had here) and
    the uri and page it has on the new home, learnt from the new home's entries' `formerUri`."""

    __tablename__ = "community_moved_entries"

    old_uri: Mapped[str] = mapped_column(String(2048), primary_key=True)
    community_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"), index=True)
    new_uri: Mapped[str] = mapped_column(String(2048))
    new_url: Mapped[str] = mapped_column(String(2048))
    learnt_at: Mapped[datetime] = mapped_column(default=utcnow)
