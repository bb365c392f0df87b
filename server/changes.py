"""What a domain write announces: one change per written entry, recorded in the writer's transaction.

The domain services (communities, guides, mentorship) record every write here, local or remote, and know
nothing of who listens. The search index job is queued here for every guide and offer change; federation
subscribes (see server/app.py) and turns a local change into its outbox activity and deliveries, in the same
transaction, so a write and its announcements commit or roll back together. Lemmy's activity channel and
Takahē's fan-outs have the same shape: the write emits an intent, the protocol layer decides what it means.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Community, Guide, Job, MentorshipOffer
from server.settings import Settings

Verb = Literal["Create", "Update", "Delete"]
Kind = Literal["community", "guide", "offer"]
Entry = Community | Guide | MentorshipOffer


@dataclass(frozen=True, slots=True)
class Change:
    verb: Verb
    kind: Kind
    entry_id: UUID
    local: bool
    # Whether anyone but the author and moderators may see it: a draft's changes are nobody else's news.
    public: bool
    # The written entry; a bulk write of remote entries has none, and nothing needs it for them.
    entry: Entry | None = None

    @classmethod
    def of(cls, verb: Verb, entry: Entry, *, public: bool = True) -> Change:
        kind: Kind = "community"
        if isinstance(entry, Guide):
            kind = "guide"
        elif isinstance(entry, MentorshipOffer):
            kind = "offer"
        return cls(verb, kind, entry.id, entry.local, public, entry)


Subscriber = Callable[[AsyncSession, Settings, Change], Awaitable[None]]
_subscribers: list[Subscriber] = []


def subscribe(subscriber: Subscriber) -> None:
    """Hear every recorded change from now on; subscribing twice is the same as once."""
    if subscriber not in _subscribers:
        _subscribers.append(subscriber)


async def record(session: AsyncSession, settings: Settings, verb: Verb, entry: Entry, *, public: bool = True) -> None:
    await record_all(session, settings, [Change.of(verb, entry, public=public)])


async def reindex(session: AsyncSession, settings: Settings, kind: Kind, entry_ids: Sequence[UUID]) -> None:
    """Queue the search index jobs of entries re-pointed or removed without a change of their own to announce (a
    moved community's entries folded on a peer): search shows them as they are now, and nobody hears of it."""
    if settings.search.backend == "whoosh" and entry_ids:
        jobs = [{"kind": "index", "payload": {"type": kind, "id": str(entry_id)}} for entry_id in entry_ids]
        await session.execute(insert(Job), jobs)


async def record_all(session: AsyncSession, settings: Settings, changes: Sequence[Change]) -> None:
    if any(change.local for change in changes) and not _subscribers:
        # A local write nobody announces would silently never reach the peers.
        raise RuntimeError("no subscriber for changes: wire federation in before writing local entries")
    # With the postgres search backend the write's own trigger keeps the entry searchable: no index job.
    index_jobs = settings.search.backend == "whoosh"
    jobs = [
        {"kind": "index", "payload": {"type": change.kind, "id": str(change.entry_id)}}
        for change in changes
        if index_jobs and change.kind != "community"  # communities are not searched
    ]
    if jobs:
        await session.execute(insert(Job), jobs)
    for change in changes:
        for subscriber in _subscribers:
            await subscriber(session, settings, change)
