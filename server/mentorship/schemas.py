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
RequestState = Literal["sending", "pending", "accepted", "declined", "refused", "withdrawn", "failed"]
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
    # The uri it had before its community moved here.
    moved_from: str | None = None


class OfferPage(msgspec.Struct):
    items: list[Offer]
    next_cursor: str | None


class RequestCreate(msgspec.Struct):
    message: Annotated[str, msgspec.Meta(max_length=5000)] = ""


class OfferSummary(msgspec.Struct):
    id: UUID
    uri: str
    title: str
    url: str
    mentor: PersonRef
    instance: str


class MentorshipRequest(msgspec.Struct):
    id: UUID
    # The id both instances know the request by; its page, for the two parties, is `url`.
    uri: str
    url: str
    state: RequestState
    # Why it was refused, declined or could not be delivered; empty otherwise.
    reason: str
    message: str
    offer: OfferSummary
    requester: PersonRef
    # Made on this instance; false when a person of a peer asked for one of this instance's offers.
    local: bool
    created_at: datetime
    updated_at: datetime


class RequestPage(msgspec.Struct):
    items: list[MentorshipRequest]
    next_cursor: str | None


MessageBody = Annotated[str, msgspec.Meta(min_length=1, max_length=10_000)]


class MessageCreate(msgspec.Struct, forbid_unknown_fields=True):
    body_markdown: MessageBody


class Message(msgspec.Struct):
    id: UUID
    uri: str
    author: PersonRef
    body_markdown: str
    body_html: str
    created_at: datetime


class MessagePage(msgspec.Struct):
    items: list[Message]
    next_cursor: str | None


class RemoteRequest(msgspec.Struct, frozen=True):
    """A request made on a peer for one of our offers, as the requester's instance describes it."""

    uri: str
    activity_uri: str
    offer_uri: str
    requester: RemotePerson
    message: str
    published: datetime | None = None


class RemoteMessage(msgspec.Struct, frozen=True):
    """A message of a request's thread written on a peer."""

    uri: str
    request_uri: str
    author_uri: str
    body_markdown: str
    body_html: str
    published: datetime | None = None


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
    # The uri it had before its community moved to `instance` (`formerUri`): our copy under that uri is this offer.
    former_uri: str | None = None
