from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from server.accounts.schemas import PersonRef

# request: someone asked for a seat on my offer; accepted / declined / refused / failed: what became of my
# request; withdrawn: a request on my offer was taken back; message: a new message on one of my requests.
Kind = Literal["request", "accepted", "declined", "refused", "withdrawn", "failed", "message"]
Ids = Annotated[list[UUID], msgspec.Meta(min_length=1, max_length=100)]


class Subject(msgspec.Struct):
    """What the notification is about: its type, its id in this API and the page a person opens."""

    type: Literal["mentorship_request"]
    id: UUID
    url: str


class Notification(msgspec.Struct):
    id: UUID
    kind: Kind
    subject: Subject
    # Who did it; null when nobody did (a request that could not be delivered).
    actor: PersonRef | None
    created_at: datetime
    read: bool


class NotificationPage(msgspec.Struct):
    items: list[Notification]
    next_cursor: str | None


class MarkRead(msgspec.Struct, forbid_unknown_fields=True):
    """`{"ids": [...]}` marks those of mine read, `{"all": true}` every one."""

    ids: Ids | None = None
    all: bool = False


class Unread(msgspec.Struct):
    unread: int


class Entry(msgspec.Struct):
    """A notification as the web page shows it: the API's item, said in words, with the offer it concerns."""

    item: Notification
    text: str
    offer_title: str
