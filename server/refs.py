"""Community references and the origin filters every list shares."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import Select, select

from server.errors import invalid
from server.models import Community

Origin = Literal["local", "remote", "all"]


def split_ref(ref: str, local_host: str) -> tuple[str, str]:
    """`slug` names a local community, `slug@host` any community."""
    slug, _, host = ref.partition("@")
    return slug.lower(), (host.lower() or local_host)


def apply_origin_filters(
    query: Select[Any],
    model: Any,
    local_host: str,
    *,
    origin: Origin = "all",
    instance: str | None = None,
    community: str | None = None,
) -> Select[Any]:
    if origin == "local":
        query = query.where(model.local.is_(True))
    elif origin == "remote":
        query = query.where(model.local.is_(False))
    elif origin != "all":
        raise invalid("origin", "must be local, remote or all")
    if instance:
        query = query.where(model.instance == instance.lower())
    if community and model is not Community:
        slug, host = split_ref(community, local_host)
        community_ids = select(Community.id).where(Community.slug == slug, Community.instance == host)
        query = query.where(model.community_id.in_(community_ids.scalar_subquery()))
    return query


def key_of(values: list[str]) -> str:
    """The "|a|b|" form that lets a LIKE match one tag portably."""
    return "|" + "|".join(values) + "|"
