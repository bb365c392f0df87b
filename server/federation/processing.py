"""Applying incoming activities: the worker step for stored inbox items, and a peer's outbox pages at once.

Both go through `Applier`: a batch per transaction, plain new guides written together, everything else one
activity at a time in its own savepoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import httpx
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db import new_id, utcnow
from server.federation import vocab
from server.federation.fetch import Fetcher, FetchError
from server.federation.handlers import NewGuides, ObjectFetcher, Rejected, handle, parse, referenced_actors
from server.federation.keys import key_id_for, local_key
from server.jobs import claim, schedule_retry
from server.models import Community, InboxItem, User
from server.settings import Settings, host_of

log = logging.getLogger("kith.federation")
BATCH = 100
# Documents a page of a peer's outbox refers to (its communities, its authors) fetched side by side.
PREFETCH_AT_ONCE = 8
PREFETCH_MAX = 50


class Received(Protocol):
    """What applying needs of an activity and records about it: an InboxItem, or a `Pulled` one."""

    activity_uri: str
    signer_host: str
    payload: dict[str, Any]
    state: str
    attempts: int
    next_attempt_at: datetime
    locked_until: datetime | None
    last_error: str | None
    received_at: datetime
    processed_at: datetime | None


@dataclass
class Pulled:
    """An activity read from a peer's outbox: applied at once, then stored as an inbox item with its outcome,
    so that it counts as received (a repeat by push or pull is a no-op) and a retry is left to the worker."""

    activity_uri: str
    signer_host: str
    payload: dict[str, Any]
    received_at: datetime
    state: str = "pending"
    attempts: int = 0
    next_attempt_at: datetime = field(default_factory=utcnow)
    locked_until: datetime | None = None
    last_error: str | None = None
    processed_at: datetime | None = None

    def row(self) -> dict[str, Any]:
        return {
            "id": new_id(), "activity_uri": self.activity_uri, "signer_host": self.signer_host,
            "payload": self.payload, "state": self.state, "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at, "locked_until": self.locked_until,
            "last_error": self.last_error, "received_at": self.received_at, "processed_at": self.processed_at,
        }  # fmt: skip


async def instance_fetcher(session: AsyncSession, settings: Settings, client: httpx.AsyncClient) -> Fetcher:
    actor_uri = f"{settings.base_url}/actor"
    key = await local_key(session, actor_uri)
    return Fetcher(settings, client, key_id_for(actor_uri), key.private_key_pem or "")


class InboxProcessor:
    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession], client: httpx.AsyncClient):
        self.settings = settings
        self.sessions = sessions
        self.client = client

    async def __call__(self) -> int:
        async with self.sessions() as session:
            ids = await claim(session, InboxItem, limit=BATCH)
            if not ids:
                return 0
            fetcher = await instance_fetcher(session, self.settings, self.client)
            query = select(InboxItem).where(InboxItem.id.in_(ids)).order_by(InboxItem.received_at)
            items = list(await session.scalars(query))
            # The batch's first statement is a write, so it holds SQLite's write lock from the start. A transaction
            # opened by a SAVEPOINT and reading first fails at its first write, without waiting, when another
            # connection (the web process storing an incoming activity, another worker) committed in between.
            await session.execute(
                update(InboxItem)
                .where(InboxItem.id.in_(ids))
                .values(attempts=InboxItem.attempts)
                .execution_options(synchronize_session=False)
            )
            await Applier(session, self.settings, fetcher.get_object).apply_all(items)
            await session.commit()
            return len(ids)


async def apply_pulled(
    session: AsyncSession, settings: Settings, fetch: ObjectFetcher, host: str, items: Sequence[dict[str, Any]]
) -> int:
    """Apply the activities of one page of a peer's outbox (`items` oldest first, none of them stored yet) and
    store each as an inbox item with its outcome, all in the session's current transaction; returns how many.

    The same checks and the same code as for an item the worker claims (`Applier`); one that must be tried
    again later (a fetch failed) is stored pending, and the worker's inbox step retries it as usual. The
    caller's transaction must already hold the write lock (see InboxProcessor) and commits.
    """
    if not items:
        return 0
    now = utcnow()
    # Microseconds apart, in page order: a pending one is claimed in that order.
    pulled = [
        Pulled(activity_uri=item["id"], signer_host=host, payload=item, received_at=now + timedelta(microseconds=n))
        for n, item in enumerate(items)
    ]
    await Applier(session, settings, fetch).apply_all(pulled)
    await session.execute(insert(InboxItem), [entry.row() for entry in pulled])
    return len(pulled)


async def prefetch_actors(
    session: AsyncSession, fetcher: Fetcher, host: str, items: Sequence[dict[str, Any]]
) -> ObjectFetcher:
    """`fetcher.get_object`, answering at once for the communities and authors the page's entries name that
    this instance does not know yet: those are fetched side by side first, instead of one after another while
    the page is applied. What is served from here went through the same checks as any fetch (peers only, the
    id must be the URL); a failed prefetch is simply fetched again when it is needed.
    """
    wanted: set[str] = set()
    for item in items:
        wanted.update(referenced_actors(item))
    wanted = {uri for uri in wanted if host_of(uri) == host}  # as in handle: only the signer's own
    if wanted:
        wanted -= set(await session.scalars(select(Community.uri).where(Community.uri.in_(wanted))))
    if wanted:
        wanted -= set(await session.scalars(select(User.uri).where(User.uri.in_(wanted))))
    documents: dict[str, dict[str, Any]] = {}
    limit = asyncio.Semaphore(PREFETCH_AT_ONCE)

    async def one(uri: str) -> None:
        async with limit:
            with contextlib.suppress(FetchError):  # fetched again, and its failure reported, when needed
                documents[uri] = await fetcher.get_object(uri)

    await asyncio.gather(*(one(uri) for uri in sorted(wanted)[:PREFETCH_MAX]))

    async def get_object(uri: str) -> dict[str, Any]:
        document = documents.get(uri)
        return document if document is not None else await fetcher.get_object(uri)

    return get_object


class Applier:
    """Applies received activities in order in one transaction: plain new guides together, the rest singly."""

    def __init__(self, session: AsyncSession, settings: Settings, fetch: ObjectFetcher) -> None:
        self.session = session
        self.settings = settings
        self.fetch = fetch

    async def apply_all(self, items: Sequence[Received]) -> None:
        """Apply the items in order: plain new guides together, everything else one at a time.

        An object that more than one item of the batch touches (a Create and its Update, a Delete before a
        Create) is always applied one item at a time, so the order between them holds.
        """
        parsed: list[vocab.Activity | None] = []
        for item in items:
            try:
                parsed.append(parse(item.payload))
            except Exception:  # noqa: BLE001 - `handle` meets it again in the item's own try, and says why
                parsed.append(None)
        touched = Counter(activity.object_id for activity in parsed if activity is not None)
        batch = NewGuides(self.session)
        await batch.look_up([a for a in parsed if a is not None])
        staged: list[Received] = []
        for position, (item, activity) in enumerate(zip(items, parsed, strict=True)):
            if activity is not None and touched[activity.object_id] == 1 and batch.stage(activity, item.signer_host):
                staged.append(item)
                continue
            if staged:
                await self._write(batch, staged)
                staged = []
            await self._apply(item, activity)
            # What this item wrote (a community, an author, a tombstone) changes what the batch may take.
            await batch.look_up([a for a in parsed[position + 1 :] if a is not None])
        if staged:
            await self._write(batch, staged)

    async def _write(self, batch: NewGuides, staged: list[Received]) -> None:
        try:
            async with self.session.begin_nested():
                await batch.write()
        except Exception:  # noqa: BLE001 - e.g. a unique clash with another worker: redo them one by one
            log.warning("writing %d new guides together failed; applying them one at a time", len(staged))
            for item in staged:
                await self._apply(item, None)
            return
        now = utcnow()
        for item in staged:
            item.state, item.last_error, item.processed_at, item.locked_until = "done", "guide stored", now, None

    async def _apply(self, item: Received, activity: vocab.Activity | None) -> None:
        # A savepoint per item: one bad activity must not undo the rest of the batch.
        try:
            async with self.session.begin_nested():
                outcome = await handle(
                    self.session, self.settings, item.payload, item.signer_host, self.fetch, activity=activity
                )
        except Rejected as exc:
            item.state, item.last_error = "rejected", exc.reason[:2000]
            log.info("rejected %s from %s: %s", item.activity_uri, item.signer_host, exc.reason)
        except (FetchError, httpx.HTTPError) as exc:
            schedule_retry(item, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - keep the item for a later try and say why
            log.exception("failed to apply %s", item.activity_uri)
            schedule_retry(item, f"{exc.__class__.__name__}: {exc}")
            return
        else:
            item.state, item.last_error = "done", outcome
        item.processed_at, item.locked_until = utcnow(), None
