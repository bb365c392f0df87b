"""Many new guides of peers written at once: the form of `GuideService.apply_remote` that a backfill uses.

A backfill brings thousands of guides. One at a time, each costs a dozen round trips (guide, community,
author, slug); here the lookups are one IN query per table for the whole batch and the writes one executemany.
Only the plain case is taken: a guide this instance has never seen, whose community and author it already
knows. The caller applies the rest one at a time, through the same rules, so the outcome is the same.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from server import changes
from server.db import new_id, utcnow
from server.errors import ProblemError
from server.guides import rules, schemas
from server.models import Community, Guide, User
from server.settings import Settings, host_of


class RemoteGuideBatch:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings

    async def write(self, remotes: list[schemas.RemoteGuide]) -> set[str]:
        """Insert the plain ones among `remotes` with their changes; returns their uris."""
        if not remotes:
            return set()
        session = self.session
        uris = {remote.uri for remote in remotes}
        refs = {uri for remote in remotes for uri in remote.community_uris} | {r.author.uri for r in remotes}
        existing = set(await session.scalars(select(Guide.uri).where(Guide.uri.in_(uris))))
        communities = {c.uri: c for c in await session.scalars(select(Community).where(Community.uri.in_(refs)))}
        authors = {u.uri: u for u in await session.scalars(select(User).where(User.uri.in_(refs)))}
        rows: list[dict[str, Any]] = []
        for remote in remotes:
            community = _home(remote, communities)
            author = authors.get(remote.author.uri)
            if remote.uri in existing or community is None or author is None:
                continue
            try:
                fields = rules.remote_fields(remote, 0)
            except ProblemError:
                continue  # apply_remote refuses it with the same reason, one at a time
            existing.add(remote.uri)
            rows.append(
                {
                    "id": new_id(), "uri": remote.uri, "community_id": community.id, "author_id": author.id,
                    "slug": remote.slug_hint or fields["title"], "status": "published", "local": False,
                    "instance": remote.instance, "created_at": remote.published or utcnow(), **fields,
                }
            )  # fmt: skip
        if not rows:
            return set()
        await self._free_slugs(rows)
        # Bulk inserts: one executemany, without the unit of work's per-object bookkeeping.
        await session.execute(insert(Guide), rows)
        await changes.record_all(
            session,
            self.settings,
            [changes.Change("Create", "guide", row["id"], local=False, public=True) for row in rows],
        )
        return {row["uri"] for row in rows}

    async def _free_slugs(self, rows: list[dict[str, Any]]) -> None:
        """free_slug for every row with one query, probing further only where a slug is taken."""
        bases = [rules.slug_base(row["slug"]) for row in rows]
        community_ids = {row["community_id"] for row in rows}
        taken: dict[Any, set[str]] = {community_id: set() for community_id in community_ids}
        found = await self.session.execute(
            select(Guide.community_id, Guide.slug).where(Guide.community_id.in_(community_ids), Guide.slug.in_(bases))
        )
        for community_id, slug in found:
            taken[community_id].add(slug)
        probed: set[tuple[Any, str]] = set()
        for row, base in zip(rows, bases, strict=True):
            used = taken[row["community_id"]]
            if base in used and (row["community_id"], base) not in probed:
                probed.add((row["community_id"], base))
                numbered = select(Guide.slug).where(
                    Guide.community_id == row["community_id"], Guide.slug.like(f"{base}-%")
                )
                used.update(await self.session.scalars(numbered))
            row["slug"] = rules.first_free_slug(base, used)
            used.add(row["slug"])


def _home(remote: schemas.RemoteGuide, communities: dict[str, Community]) -> Community | None:
    """The community `CommunityService.remote_home` would choose, when it is plain: known and not deleted."""
    for uri in remote.community_uris:
        if host_of(uri) != remote.instance:
            continue
        community = communities.get(uri)
        if community is None:
            return None  # not known here: the one-at-a-time path says why
        return community if community.deleted_at is None else None
    return None
