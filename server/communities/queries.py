"""Reading communities: the one column list and row decoder that the API and the pages share."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import msgspec
from sqlalchemy import Select, bindparam, select

from server.communities import schemas
from server.models import Community, Membership, User
from server.pagination import keyset_bound
from server.projection import Projection
from server.refs import Origin, apply_origin_filters

COMMUNITY = Projection(
    "CommunityRow",
    {
        "id": Community.id, "uri": Community.uri, "url": Community.url, "slug": Community.slug,
        "name": Community.name, "description": Community.description, "color": Community.color,
        "links": Community.links, "local": Community.local, "instance": Community.instance,
        "created_at": Community.created_at, "updated_at": Community.updated_at,
        "former_peer": Community.former_peer, "also_known_as": Community.also_known_as,
        "moved_to": Community.moved_to, "moved_at": Community.moved_at, "moved_from": Community.moved_from,
        "arrived_at": Community.arrived_at,
        # Published guides and open offers, not deleted: counters kept by database triggers (migration 0006) on
        # every write to guides and offers, so no count is taken on a read.
        "guides": Community.guides_count, "offers": Community.open_offers_count,
    },
)  # fmt: skip
MEMBER = Projection(
    "MemberRow",
    {
        "username": User.username, "display_name": User.display_name, "role": Membership.role,
        "joined_at": Membership.created_at,
    },
)  # fmt: skip


@lru_cache(maxsize=64)
def list_statement(local_host: str, origin: Origin, instance: str | None, after: bool) -> Select[Any]:
    """Built once per set of filters: building and compiling a statement costs more than running it."""
    query = select(*COMMUNITY.columns).where(Community.deleted_at.is_(None))
    query = apply_origin_filters(query, Community, local_host, origin=origin, instance=instance)
    return keyset_bound(query, Community, after=after)


# One community by `slug` and `instance` (see CommunityService.ref_params_for), with its counts.
ONE_BY_REF = select(*COMMUNITY.columns).where(
    Community.slug == bindparam("slug"), Community.instance == bindparam("instance"), Community.deleted_at.is_(None)
)
# The members of the community `community_id`, in the order they joined.
MEMBERS = (
    select(*MEMBER.columns)
    .join(Membership, Membership.user_id == User.id)
    .where(Membership.community_id == bindparam("community_id"))
    .order_by(Membership.created_at, User.username)
)


def community_from_row(row: Sequence[Any]) -> schemas.Community:
    """A community's schema from a row of COMMUNITY's columns: the same as the service's `_to_schema`."""
    r = COMMUNITY.named(row)
    return schemas.Community(
        id=r.id, uri=r.uri, url=r.url, slug=r.slug, name=r.name, description=r.description, color=r.color,
        links=msgspec.convert(r.links or [], list[schemas.Link]), local=r.local, instance=r.instance,
        created_at=r.created_at, updated_at=r.updated_at,
        stats=schemas.CommunityStats(guides=r.guides, offers=r.offers), former_peer=r.former_peer,
        also_known_as=list(r.also_known_as or []), moved_to=r.moved_to, moved_at=r.moved_at,
        moved_from=r.moved_from, arrived_at=r.arrived_at,
    )  # fmt: skip


def member_from_row(row: Sequence[Any]) -> schemas.Member:
    r = MEMBER.named(row)
    return schemas.Member(
        username=r.username, display_name=r.display_name or r.username, role=r.role, joined_at=r.joined_at
    )
