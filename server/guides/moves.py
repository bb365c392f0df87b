"""A peer's guides whose community moved to another instance: the same entries, re-pointed to the new home.

A moved guide keeps one row here. The new home publishes it under a new uri with `formerUri` naming the old
one, before or after the Move reaches us, so either order ends the same way:

- the new copy arrives after the move was followed: our row of the old uri becomes it (`arrived`), an update;
- both copies are here when the move is followed: they fold into one row (`follow_move`). Our own row stays
  when one of them is ours (this instance is the new home and imported it), else the row we held first, so its
  id and links stay; the other is removed without a trace, its references re-pointed.

Adaptations name their original by uri (`derived_from`, `guide_upstreams.uri`): those naming an old uri name the
new one from then on. The caller (server/federation/moves.py) has verified the move; this module only writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from server import changes
from server.guides.schemas import RemoteGuide
from server.models import Community, Guide, GuideUpstream, User
from server.settings import Settings

# Columns a folded row keeps of its own: its identity here.
_KEPT = {"id", "created_at"}


async def arrived(session: AsyncSession, remote: RemoteGuide, community: Community, author: User) -> Guide | None:
    """Our row of the guide under its former uri, re-pointed to `remote`'s uri, when its community has moved
    to `community`; None when there is none (then `remote` is a new guide). The caller applies its fields."""
    guide = await session.scalar(
        select(Guide)
        .join(Community, Community.id == Guide.community_id)
        .where(Guide.uri == remote.former_uri, Guide.local.is_(False), Community.moved_to == community.uri)
    )
    if guide is None:
        return None
    old_uri = guide.uri
    guide.uri, guide.instance, guide.former_uri = remote.uri, remote.instance, old_uri
    guide.author_id = author.id
    guide.slug = await _free_slug(session, community.id, remote.slug_hint or guide.slug, guide.id)
    guide.community = community
    await session.flush()  # its community, as apply_remote then compares it
    await _rename_references(session, old_uri, guide)
    return guide


async def follow_move(session: AsyncSession, settings: Settings, old: Community, new: Community) -> int:
    """Fold each guide of `old` that `new` already holds under its new uri; returns how many of `old`'s guides
    are still waiting for theirs (the new home has not published them to us yet).

    A community of thousands of guides folds in one transaction, so the rows that go are deleted a chunk at a
    time and the rows that stay are written in one flush; references are renamed only for the guides that
    something here adapts."""
    moved = aliased(Guide)
    pairs = (
        await session.execute(
            select(Guide, moved)
            .join(moved, moved.former_uri == Guide.uri)
            .where(Guide.community_id == old.id, Guide.local.is_(False), moved.community_id == new.id)
        )
    ).all()
    renamed: dict[str, Guide] = {}  # old uri -> the row that stays
    taken: list[tuple[Guide, str, dict[str, Any]]] = []  # a row held first, its old uri, the copy's values
    gone: list[Guide] = []
    for held, copy in pairs:
        # Our own row stays (this instance is the new home), else the row held first: its id and links stay.
        kept, other = (copy, held) if copy.local else (held, copy)
        renamed[held.uri] = kept
        gone.append(other)
        if kept is held:
            taken.append((held, held.uri, _values_of(copy) | {"community": copy.community, "author": copy.author}))
    for chunk in _chunks([row.id for row in gone]):
        # The uris and slugs are free only once the other rows are gone.
        await session.execute(delete(Guide).where(Guide.id.in_(chunk)).execution_options(synchronize_session=False))
    for row in gone:
        session.expunge(row)
    for held, old_uri, values in taken:
        for key, value in values.items():
            setattr(held, key, value)
        held.former_uri = old_uri
    await session.flush()
    for old_uri in await _adapted(session, list(renamed)):
        await _rename_references(session, old_uri, renamed[old_uri])
    await changes.reindex(session, settings, "guide", [h.id for h, _ in pairs] + [c.id for _, c in pairs])
    waiting = select(func.count()).where(Guide.community_id == old.id, Guide.deleted_at.is_(None))
    return int(await session.scalar(waiting) or 0)


def _values_of(copy: Guide) -> dict[str, Any]:
    """What a folded row takes from the new home's copy: everything but its identity here."""
    return {c.key: getattr(copy, c.key) for c in Guide.__mapper__.column_attrs if c.key not in _KEPT}


async def _adapted(session: AsyncSession, uris: list[str]) -> set[str]:
    """Those of `uris` that a guide here adapts: the only ones whose references need renaming."""
    found: set[str] = set()
    for chunk in _chunks(uris):
        found.update(await session.scalars(select(Guide.derived_from).where(Guide.derived_from.in_(chunk))))
        found.update(await session.scalars(select(GuideUpstream.uri).where(GuideUpstream.uri.in_(chunk))))
    return found - {None}  # type: ignore[arg-type]


def _chunks(items: Sequence[Any], size: int = 500) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def _rename_references(session: AsyncSession, old_uri: str, guide: Guide) -> None:
    """Adaptations of the guide at `old_uri`, ours and our peers', name it by its new uri, and ours credit its
    new home."""
    await session.execute(
        update(Guide)
        .where(Guide.derived_from == old_uri)
        .values(derived_from=guide.uri)
        .execution_options(synchronize_session=False)
    )
    community = guide.community
    await session.execute(
        update(GuideUpstream)
        .where(GuideUpstream.uri == old_uri)
        .values(
            uri=guide.uri,
            url=guide.url,
            instance=guide.instance,
            community_name=community.name,
            community_url=community.url,
        )  # fmt: skip
        .execution_options(synchronize_session=False)
    )


async def _free_slug(session: AsyncSession, community_id: UUID, slug: str, guide_id: UUID) -> str:
    """`slug` when no other guide of the community has it, else one made unique by the guide's id."""
    taken = select(Guide.id).where(Guide.community_id == community_id, Guide.slug == slug, Guide.id != guide_id)
    if await session.scalar(taken) is None:
        return slug
    return f"{slug[:110]}-{guide_id.hex[:8]}"
