"""The rules of a community, for a local admin's write and a peer's Group alike."""

from __future__ import annotations

import re
from typing import Any

from slugify import slugify

from server.communities import schemas
from server.db import utcnow
from server.errors import ProblemError, invalid
from server.models import Community
from server.rules import clean_text
from server.settings import Settings, host_of

DEFAULT_COLOR = "#3b6e8f"
# A peer's community whose colour we cannot read: a neutral grey, not our own default, so it never looks local.
REMOTE_DEFAULT_COLOR = "#5a6b7b"
MAX_NAME = 100
MAX_DESCRIPTION = 5000
MAX_SLUG = 64
MAX_LINKS = 20
MAX_ALSO_KNOWN_AS = 5
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


# Paths under /api/v1/communities/ that name no community: a community of that slug could not be read or changed.
RESERVED_SLUGS = frozenset({"import"})


def local_slug(value: str) -> str:
    if value in RESERVED_SLUGS:
        raise invalid("slug", f"{value!r} is reserved; please pick another")
    return value


def name(value: str) -> str:
    return clean_text("name", value, MAX_NAME, one_line=True, required=True)


def description(value: str) -> str:
    return clean_text("description", value, MAX_DESCRIPTION)


def color(value: str | None, *, default: str = DEFAULT_COLOR) -> str:
    return value.lower() if value and _COLOR.match(value) else default


def remote_slug(remote: schemas.RemoteCommunity) -> str:
    slug = slugify(remote.slug_hint, max_length=MAX_SLUG) or slugify(remote.uri.rsplit("/", 1)[-1])[:MAX_SLUG]
    if not slug:
        raise invalid("preferredUsername", "the group has no usable preferredUsername")
    return slug


def remote_fields(remote: schemas.RemoteCommunity, slug: str) -> dict[str, Any]:
    """A peer's community's columns, through the same rules as a local write."""
    return {
        "name": name(" ".join(remote.name.split()) or slug),
        "description": description(remote.description),
        "color": color(remote.color, default=REMOTE_DEFAULT_COLOR),
        "links": [
            {"title": (title or url)[:100], "url": url}
            for title, url in remote.links[:MAX_LINKS]
            if url.startswith(("http://", "https://"))
        ],
        "url": remote.url,
        "updated_at": remote.updated or remote.published or utcnow(),
    }


def also_known_as(uris: list[str], own_uri: str, settings: Settings) -> list[str]:
    """The old Groups a community may claim to be: Groups of configured peers only, since the claim is what lets
    that peer move its community here, and a peer checks it by fetching this Group, which only a peer may do."""
    schemes = ("https://",) if settings.is_https else ("http://", "https://")
    kept: list[str] = []
    for uri in uris:
        if not uri.startswith(schemes) or not host_of(uri):
            raise invalid("also_known_as", f"{uri!r} is not an absolute {' or '.join(s[:-3] for s in schemes)} URI")
        if uri == own_uri or host_of(uri) == settings.host:
            raise invalid("also_known_as", f"{uri!r} is on this instance; name the Group on the old instance")
        if host_of(uri) not in settings.peer_hosts:
            raise invalid("also_known_as", f"{host_of(uri)} is not a configured peer of this instance")
        if uri not in kept:
            kept.append(uri)
    if len(kept) > MAX_ALSO_KNOWN_AS:
        raise invalid("also_known_as", f"at most {MAX_ALSO_KNOWN_AS} names")
    return kept


def not_moved(community: Community) -> None:
    """A moved community is a redirect map: nothing is written to it any more, and the refusal says where it went."""
    if community.moved_to:
        raise ProblemError(
            409, f"This community has moved to {community.moved_to}; write there instead.", moved_to=community.moved_to
        )
