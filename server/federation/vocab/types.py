"""The AS2 types Kith sends and accepts, as the parsers hand them out: ids normalized, Kith terms named."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, TypeAlias, get_args

import msgspec

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
MAX_DEPTH = 10
MAX_ID_LENGTH = 2048

ActivityType = Literal[
    "Create", "Update", "Delete", "Follow", "Accept", "TentativeAccept", "Reject", "Undo", "Announce", "Offer", "Move"
]
# Agreement: a mentorship request, the object of an Offer (FEP-0837's shape).
PostType = Literal["Article", "Page", "Note", "MentorshipOffer", "Agreement"]
ActorType = Literal["Application", "Group", "Person", "Service"]

ACTIVITY_TYPES: frozenset[str] = frozenset(get_args(ActivityType))
POST_TYPES: frozenset[str] = frozenset(get_args(PostType))
ACTOR_TYPES: frozenset[str] = frozenset(get_args(ActorType))
OBJECT_TYPES: frozenset[str] = POST_TYPES | ACTOR_TYPES | {"Tombstone"}

# Terms Kith defines in its hosted @context; peers may send them bare or as `kith:term`.
KITH_TERMS = (
    "MentorshipOffer",
    "license",
    "slug",
    "revision",
    "derivedFrom",
    "color",
    "topics",
    "languages",
    "format",
    "capacity",
    "seatsTaken",
    "availability",
    "status",
    "formerUri",
)


class VocabError(ValueError):
    """The document is not ActivityStreams Kith accepts; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Tag(msgspec.Struct, frozen=True, kw_only=True):
    type: Literal["Hashtag", "Mention"]
    name: str | None = None
    href: str | None = None


class Link(msgspec.Struct, frozen=True, kw_only=True):
    href: str
    name: str | None = None


class Source(msgspec.Struct, frozen=True, kw_only=True):
    content: str
    media_type: str | None = None


class PublicKey(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    owner: str
    pem: str


class Mentorship(msgspec.Struct, frozen=True, kw_only=True):
    """The Kith terms of a MentorshipOffer; shapes are checked, values are not."""

    topics: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    format: str | None = None
    capacity: int | None = None
    seats_taken: int | None = None
    availability: str | None = None
    status: str | None = None


class Post(msgspec.Struct, frozen=True, kw_only=True):
    """An Article, Page, Note or MentorshipOffer."""

    id: str
    type: PostType
    name: str | None = None
    summary: str | None = None
    content: str | None = None
    content_map: dict[str, str] = {}
    media_type: str = "text/html"
    source: Source | None = None
    url: str | None = None
    attributed_to: tuple[str, ...] = ()
    audience: tuple[str, ...] = ()
    in_reply_to: str | None = None
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    tags: tuple[Tag, ...] = ()
    sensitive: bool = False
    published: datetime | None = None
    updated: datetime | None = None
    license: str | None = None
    slug: str | None = None
    revision: int | None = None
    derived_from: str | None = None
    mentorship: Mentorship | None = None
    # Once its community moved (issue 13): the id it had before (`formerUri`, also in `alsoKnownAs`), or, on the
    # old instance, where it went (`movedTo`).
    former_uri: str | None = None
    also_known_as: tuple[str, ...] = ()
    moved_to: str | None = None
    embedded: dict[str, APObject] = {}

    @property
    def is_public(self) -> bool:
        return PUBLIC in self.to or PUBLIC in self.cc


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """A Person, Group, Application or Service."""

    id: str
    type: ActorType
    preferred_username: str | None = None
    name: str | None = None
    summary: str | None = None
    url: str | None = None
    icon: str | None = None
    inbox: str | None = None
    outbox: str | None = None
    followers: str | None = None
    following: str | None = None
    shared_inbox: str | None = None
    public_keys: tuple[PublicKey, ...] = ()
    manually_approves_followers: bool = False
    attributed_to: tuple[str, ...] = ()
    color: str | None = None
    links: tuple[Link, ...] = ()
    # A Group that moved (issue 13): the old one names the new in `movedTo`, the new one the old in `alsoKnownAs`.
    also_known_as: tuple[str, ...] = ()
    moved_to: str | None = None
    published: datetime | None = None
    updated: datetime | None = None
    embedded: dict[str, APObject] = {}

    def public_key(self, key_id: str) -> PublicKey | None:
        return next((key for key in self.public_keys if key.id == key_id), None)


class Tombstone(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: Literal["Tombstone"] = "Tombstone"
    former_type: str | None = None
    deleted: datetime | None = None
    published: datetime | None = None
    updated: datetime | None = None


APObject: TypeAlias = Post | Actor | Tombstone


class Activity(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: ActivityType
    actor: str
    object_id: str
    object: Activity | APObject | None = None
    # Where a Move goes: the new Group.
    target: str | None = None
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    audience: tuple[str, ...] = ()
    # What an answer says to a mentorship request: a Reject's reason, and whether the mentor declined it or
    # the offer's rules refused it (the Kith `status` term).
    summary: str | None = None
    status: str | None = None
    published: datetime | None = None
    updated: datetime | None = None
    embedded: dict[str, APObject] = {}

    @property
    def is_public(self) -> bool:
        return PUBLIC in self.to or PUBLIC in self.cc
