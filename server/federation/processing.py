"""The worker step that applies stored inbox items, a batch per transaction."""

from __future__ import annotations

import logging

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db import utcnow
from server.federation.fetch import Fetcher, FetchError
from server.federation.handlers import Rejected, handle
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
            for item in items:
                await self._apply(session, item, fetcher)
            await session.commit()
            return len(ids)

    async def _apply(self, session: AsyncSession, item: InboxItem, fetcher: Fetcher) -> None:
        # A savepoint per item: one bad activity must not undo the rest of the batch.
        try:
            async with session.begin_nested():
                outcome = await handle(session, self.settings, item.payload, item.signer_host, fetcher.get_object)
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
