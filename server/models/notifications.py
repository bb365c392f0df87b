from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.db import Base, new_id, utcnow
from server.models.accounts import User
from server.models.mentorship import MentorshipMessage, MentorshipRequest


class Notification(Base):
    """Something that needs a local person: a request on their offer, an answer to theirs, a new message."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_inbox", "user_id", "read_at", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # request, accepted, declined, refused, withdrawn, failed, message
    kind: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("mentorship_requests.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("mentorship_messages.id", ondelete="CASCADE"))
    # Who did it (a local or a remote person), when someone did.
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]

    actor: Mapped[User | None] = relationship(foreign_keys=[actor_id], lazy="joined")
    request: Mapped[MentorshipRequest | None] = relationship(lazy="joined")
    message: Mapped[MentorshipMessage | None] = relationship(lazy="joined")
