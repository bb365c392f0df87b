"""Federation state: the transactional outbox, deliveries, inbox items, peers, keys and jobs.

Queue rows (QueueRow) are state machines, declared in server/queues.py.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, new_id, utcnow
from server.queues import PENDING


class QueueRow:
    """The columns of a queue row, which moves through its queue's transitions (server/queues.py)."""

    state: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class Activity(Base):
    """An activity this instance emitted, written in the same transaction as the change."""

    __tablename__ = "activities"
    __table_args__ = (Index("ix_activities_outbox", "public", "seq"),)

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    actor_uri: Mapped[str] = mapped_column(String(2048))
    object_type: Mapped[str] = mapped_column(String(32))
    object_uri: Mapped[str] = mapped_column(String(2048), index=True)
    community_uri: Mapped[str | None] = mapped_column(String(2048), index=True)
    public: Mapped[bool] = mapped_column(default=True)
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Delivery(QueueRow, Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("activity_seq", "inbox_url"),
        Index("ix_deliveries_due", "state", "next_attempt_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    activity_seq: Mapped[int] = mapped_column(ForeignKey("activities.seq", ondelete="CASCADE"))
    inbox_url: Mapped[str] = mapped_column(String(2048))
    peer_host: Mapped[str] = mapped_column(String(255), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class InboxItem(QueueRow, Base):
    """A verified incoming activity, stored once by its id and processed by the worker."""

    __tablename__ = "inbox_items"
    __table_args__ = (Index("ix_inbox_items_due", "state", "next_attempt_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    activity_uri: Mapped[str] = mapped_column(String(2048), unique=True)
    signer_host: Mapped[str] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]


class Peer(Base):
    __tablename__ = "peers"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    host: Mapped[str] = mapped_column(String(255), unique=True)
    base_url: Mapped[str] = mapped_column(String(2048))
    # pending | following | rejected | removed: our Follow of their instance actor
    state: Mapped[str] = mapped_column(String(16), default="pending")
    followed_back: Mapped[bool] = mapped_column(default=False)
    actor_uri: Mapped[str | None] = mapped_column(String(2048))
    inbox_url: Mapped[str | None] = mapped_column(String(2048))
    outbox_url: Mapped[str | None] = mapped_column(String(2048))
    follow_activity_uri: Mapped[str | None] = mapped_column(String(2048))
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    entries_received: Mapped[int] = mapped_column(default=0)
    last_received_at: Mapped[datetime | None]
    backfilled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ActorKey(Base):
    """Key pairs of local actors (private_key_pem set) and cached public keys of remote ones."""

    __tablename__ = "actor_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    key_id: Mapped[str] = mapped_column(String(2048), unique=True)
    owner_uri: Mapped[str] = mapped_column(String(2048), index=True)
    public_key_pem: Mapped[str] = mapped_column(Text)
    private_key_pem: Mapped[str | None] = mapped_column(Text)
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(QueueRow, Base):
    """Other background work: search indexing, peer sync."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_due", "kind", "state", "next_attempt_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class DeletedObject(Base):
    """A remote object deleted before we ever saw it: a late Create must not bring it back."""

    __tablename__ = "deleted_objects"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    deleted_at: Mapped[datetime] = mapped_column(default=utcnow)
