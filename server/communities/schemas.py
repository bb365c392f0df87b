from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

Slug = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$", max_length=64)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Description = Annotated[str, msgspec.Meta(max_length=5000)]
Color = Annotated[str, msgspec.Meta(pattern=r"^#[0-9a-fA-F]{6}$")]
HttpUrl = Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s]+$", max_length=2048)]


class Link(msgspec.Struct):
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    url: HttpUrl


Links = Annotated[list[Link], msgspec.Meta(max_length=20)]
# The old Groups a community claims to be, once it has been imported from them: one per move it came through.
# Checked by rules.also_known_as, whose refusals say what is wrong with which name.
AlsoKnownAs = Annotated[list[Annotated[str, msgspec.Meta(max_length=2048)]], msgspec.Meta(max_length=20)]


class CommunityCreate(msgspec.Struct):
    slug: Slug
    name: Name
    description: Description = ""
    color: Color | None = None
    links: Links = msgspec.field(default_factory=list)


class CommunityUpdate(msgspec.Struct):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    color: Color | msgspec.UnsetType = msgspec.UNSET
    links: Links | msgspec.UnsetType = msgspec.UNSET
    also_known_as: AlsoKnownAs | msgspec.UnsetType = msgspec.UNSET


class CommunityStats(msgspec.Struct):
    guides: int
    offers: int


class Community(msgspec.Struct):
    id: UUID
    uri: str
    url: str
    slug: str
    name: str
    description: str
    color: str
    links: list[Link]
    local: bool
    instance: str
    created_at: datetime
    updated_at: datetime
    stats: CommunityStats
    former_peer: bool = False
    # A move: the old Groups it claims to be; where it moved and when (the old instance); where it came from and
    # when (the new home, once the old instance has moved it here).
    also_known_as: list[str] = msgspec.field(default_factory=list)
    moved_to: str | None = None
    moved_at: datetime | None = None
    moved_from: str | None = None
    arrived_at: datetime | None = None


class MoveCreate(msgspec.Struct):
    target: HttpUrl


class MovePeer(msgspec.Struct):
    """A peer instance of a moved community: when the Move reached it (the old instance), and when it fetched the
    new home (the new home)."""

    instance: str
    notified_at: datetime | None
    acknowledged_at: datetime | None


class MoveStatus(msgspec.Struct):
    community: str
    moved_to: str | None
    moved_at: datetime | None
    moved_from: str | None
    arrived_at: datetime | None
    peers: list[MovePeer]
    also_known_as: list[str] = msgspec.field(default_factory=list)
    # Old entries whose new uri the old instance has learnt (each redirects to its new page), and how many not yet.
    entries_known: int = 0
    entries_unknown: int = 0


class CommunityPage(msgspec.Struct):
    items: list[Community]
    next_cursor: str | None


class CommunityRef(msgspec.Struct):
    """How guides and offers name their community."""

    slug: str
    name: str
    instance: str
    uri: str
    url: str
    color: str


Role = Literal["member", "moderator"]


class MemberCreate(msgspec.Struct):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    role: Role = "member"


class Member(msgspec.Struct):
    username: str
    display_name: str
    role: Role
    joined_at: datetime


class MemberList(msgspec.Struct):
    items: list[Member]


class RemoteCommunity(msgspec.Struct, frozen=True):
    """A community of another instance, as its origin describes it (an AS2 Group); `CommunityService.apply_remote`
    keeps our copy. Its fields are as the peer sent them: the service's rules decide what is kept."""

    uri: str
    instance: str
    url: str
    slug_hint: str
    name: str
    description: str
    color: str | None
    links: list[tuple[str, str]]  # (title, url)
    published: datetime | None = None
    updated: datetime | None = None
