"""Many new guides of peers written at once: the form of `GuideService.apply_remote` that a backfill uses.

A backfill brings thousands of guides. One at a time, each costs a dozen round trips (guide, community,
author, slug); here the lookups are one IN query per table for a whole batch and the writes one executemany.
Only the plain case is taken (`take`): a guide this instance has never seen, whose community and author it
already knows, and that passes the rules. The caller applies everything else one at a time with
`apply_remote`, writing what was taken first, so that the order of a batch holds.
"""

from __future__ import annotations

from collections.abc import Sequence
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
        self._staged: list[dict[str, Any]] = []
        self._existing: set[str] = set()
        self._communities: dict[str, Community] = {}
        self._authors: dict[str, User] = {}

    async def look_up(self, remotes: Sequence[schemas.RemoteGuide]) -> None:
        """What `take` needs to know of `remotes`; again after another write, which may have added some of it."""
        if not remotes:
            return  # nothing for the batch: spare the queries
        uris = {remote.uri for remote in remotes}
        refs = {uri for remote in remotes for uri in remote.community_uris} | {r.author.uri for r in remotes}
        session = self.session
        self._existing = set(await session.scalars(select(Guide.uri).where(Guide.uri.in_(uris))))
        communities = await session.scalars(select(Community).where(Community.uri.in_(refs)))
        self._communities = {community.uri: community for community in communities}
        self._authors = {user.uri: user for user in await session.scalars(select(User).where(User.uri.in_(refs)))}

    def take(self, remote: schemas.RemoteGuide) -> bool:
        """Stage the guide when it is the plain case; False leaves it to `apply_remote`."""
        community = self._home(remote)
        author = self._authors.get(remote.author.uri)
        if remote.uri in self._existing or community is None or author is None:
            return False
        if remote.former_uri is not None or community.moved_to is not None:
            return False  # a moved guide: apply_remote re-points our copy of its former uri
        try:
            fields = rules.remote_fields(remote, 0)
        except ProblemError:
            return False  # apply_remote refuses it with the same reason
        self._existing.add(remote.uri)
        self._staged.append(
            {
                "id": new_id(), "uri": remote.uri, "community_id": community.id, "author_id": author.id,
                "slug": remote.slug_hint or fields["title"], "status": "published", "local": False,
                "instance": remote.instance, "created_at": remote.published or utcnow(), **fields,
            }
        )  # fmt: skip
        return True

    async def write(self) -> set[str]:
        """Insert the staged guides with their changes; returns their uris."""
        rows, self._staged = self._staged, []
        if not rows:
            return set()
        await self._free_slugs(rows)
        # Bulk inserts: one executemany, without the unit of work's per-object bookkeeping.
        await self.session.execute(insert(Guide), rows)
        await changes.record_all(
            self.session,
            self.settings,
            [changes.Change("Create", "guide", row["id"], local=False, public=True) for row in rows],
        )
        return {row["uri"] for row in rows}

    def _home(self, remote: schemas.RemoteGuide) -> Community | None:
        """The community `CommunityService.remote_home` would choose, when that is plain: known and not deleted."""
        for uri in remote.community_uris:
            if host_of(uri) != remote.instance:
                continue
            community = self._communities.get(uri)
            if community is None and uri in remote.audience:
                return None  # an audience not known here yet: the one-at-a-time path fetches or refuses it
            if community is not None:
                return community if community.deleted_at is None else None
        return None

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
