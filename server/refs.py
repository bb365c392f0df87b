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


def normalize_labels(field: str, values: list[str], *, limit: int = 20, max_length: int = 50) -> list[str]:
    cleaned: list[str] = []
    for value in values:
        label = " ".join(value.strip().lower().lstrip("#").split())
        if not label:
            raise invalid(field, "must not contain empty values")
        if len(label) > max_length or "|" in label:
            raise invalid(field, f"each value must be at most {max_length} characters, without '|'")
        if label not in cleaned:
            cleaned.append(label)
    if len(cleaned) > limit:
        raise invalid(field, f"at most {limit} values")
    return cleaned
