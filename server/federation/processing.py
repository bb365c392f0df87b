"""The worker step that applies stored inbox items, a batch per transaction: new guides together, the rest singly."""

from __future__ import annotations

import logging
from collections import Counter

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db import utcnow
from server.federation import vocab
from server.federation.fetch import Fetcher, FetchError
from server.federation.handlers import NewGuides, Rejected, handle, parse
from server.federation.keys import key_id_for, local_key
from server.jobs import claim, schedule_retry
from server.models import InboxItem
from server.settings import Settings

log = logging.getLogger("kith.federation")
BATCH = 100


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
            await self._apply_all(session, items, fetcher)
            await session.commit()
            return len(ids)

    async def _apply_all(self, session: AsyncSession, items: list[InboxItem], fetcher: Fetcher) -> None:
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
        batch = NewGuides(session)
        await batch.look_up([a for a in parsed if a is not None])
        staged: list[InboxItem] = []
        for position, (item, activity) in enumerate(zip(items, parsed, strict=True)):
            if activity is not None and touched[activity.object_id] == 1 and batch.stage(activity, item.signer_host):
                staged.append(item)
                continue
            if staged:
                await self._write(session, batch, staged, fetcher)
                staged = []
            await self._apply(session, item, fetcher, activity)
            # What this item wrote (a community, an author, a tombstone) changes what the batch may take.
            await batch.look_up([a for a in parsed[position + 1 :] if a is not None])
        if staged:
            await self._write(session, batch, staged, fetcher)

    async def _write(self, session: AsyncSession, batch: NewGuides, staged: list[InboxItem], fetcher: Fetcher) -> None:
        try:
            async with session.begin_nested():
                await batch.write()
        except Exception:  # noqa: BLE001 - e.g. a unique clash with another worker: redo them one by one
            log.warning("writing %d new guides together failed; applying them one at a time", len(staged))
            for item in staged:
                await self._apply(session, item, fetcher, None)
            return
        now = utcnow()
        for item in staged:
            item.state, item.last_error, item.processed_at, item.locked_until = "done", "guide stored", now, None

    async def _apply(
        self, session: AsyncSession, item: InboxItem, fetcher: Fetcher, activity: vocab.Activity | None
    ) -> None:
        # A savepoint per item: one bad activity must not undo the rest of the batch.
        try:
            async with session.begin_nested():
                outcome = await handle(
                    session, self.settings, item.payload, item.signer_host, fetcher.get_object, activity=activity
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
