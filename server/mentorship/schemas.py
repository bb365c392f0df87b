from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from server.accounts.schemas import PersonRef, RemotePerson
from server.communities.schemas import CommunityRef
from server.guides.schemas import Markdown, Origin, Title

Format = Literal["one_to_one", "group"]
OfferStatus = Literal["open", "closed"]
RequestState = Literal["pending", "accepted", "declined", "withdrawn"]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
Topics = Annotated[list[Label], msgspec.Meta(min_length=1, max_length=20)]
Languages = Annotated[list[Label], msgspec.Meta(max_length=20)]
Capacity = Annotated[int, msgspec.Meta(ge=1, le=1000)]
Availability = Annotated[str, msgspec.Meta(max_length=500)]


class OfferCreate(msgspec.Struct):
    title: Title
    description_markdown: Markdown
    topics: Topics
    format: Format
    capacity: Capacity
    languages: Languages = msgspec.field(default_factory=list)
    availability: Availability = ""
    status: OfferStatus = "open"


class OfferUpdate(msgspec.Struct):
    title: Title | msgspec.UnsetType = msgspec.UNSET
    description_markdown: Markdown | msgspec.UnsetType = msgspec.UNSET
    topics: Topics | msgspec.UnsetType = msgspec.UNSET
    format: Format | msgspec.UnsetType = msgspec.UNSET
    capacity: Capacity | msgspec.UnsetType = msgspec.UNSET
    languages: Languages | msgspec.UnsetType = msgspec.UNSET
    availability: Availability | msgspec.UnsetType = msgspec.UNSET
    status: OfferStatus | msgspec.UnsetType = msgspec.UNSET


class Offer(msgspec.Struct):
    id: UUID
    uri: str
    url: str
    title: str
    description_markdown: str
    description_html: str
    topics: list[str]
    format: Format
    capacity: int
    seats_taken: int
    languages: list[str]
    availability: str
    status: OfferStatus
    mentor: PersonRef
    community: CommunityRef
    local: bool
    origin: Origin
    created_at: datetime
    updated_at: datetime


class OfferPage(msgspec.Struct):
    items: list[Offer]
    next_cursor: str | None


class RequestCreate(msgspec.Struct):
    message: Annotated[str, msgspec.Meta(max_length=5000)] = ""


class OfferSummary(msgspec.Struct):
    id: UUID
    title: str
    url: str
    mentor: PersonRef


class MentorshipRequest(msgspec.Struct):
    id: UUID
    state: RequestState
    message: str
    offer: OfferSummary
    requester: PersonRef
    created_at: datetime
    updated_at: datetime


class RequestPage(msgspec.Struct):
    items: list[MentorshipRequest]
    next_cursor: str | None


class RemoteOffer(msgspec.Struct, frozen=True):
    """A mentorship offer of another instance, as its origin describes it; `MentorshipService.apply_remote` keeps
    our copy. Its fields are as the peer sent them: the service's rules decide what is kept."""

    uri: str
    instance: str
    url: str
    community_uris: list[str]
    mentor: RemotePerson
    title: str
    description_markdown: str
    description_html: str
    topics: list[str]
    languages: list[str]
    format: str | None
    capacity: int | None
    seats_taken: int | None
    availability: str
    status: str | None
    published: datetime | None = None
    updated: datetime | None = None
