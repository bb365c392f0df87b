"""Storing verified activities for the worker: the rows of inbox requests that arrive together are committed in
one transaction, and each request is answered only once its own row is committed.

Every commit takes SQLite's one write lock, which the worker's transactions hold too; with a commit per request,
a steady stream of deliveries queued behind each other and behind the worker. Here one writer per process writes
the rows that are waiting, and those that arrive while it writes wait for its next transaction: the busier the
inbox, the more rows a commit carries, while a lone request is written at once.

A row the database refuses, or a transaction that fails, must not cost the other requests of its transaction
their answer: the transaction is rolled back and each of its rows written alone, and only the request whose own
row fails is told so. Nothing is acknowledged before its commit, so a crash loses only rows that no peer was told
were stored; the peer delivers them again, and a repeated activity id is a no-op (ON CONFLICT DO NOTHING).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server import jobs
from server.models import InboxItem

log = logging.getLogger("kith.federation")

# Rows per transaction at most: a backlog is written in several, so none holds the write lock for long.
MAX_ROWS = 500

Waiting = tuple[dict[str, Any], "asyncio.Future[None]"]


class InboxWriter:
    """Writes inbox rows for the requests of one process (one event loop), a transaction for those waiting."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._waiting: list[Waiting] = []
        self._writing: asyncio.Task[None] | None = None
        dialect = sqlite if engine.dialect.name == "sqlite" else postgresql
        self._insert: Insert = dialect.insert(InboxItem).on_conflict_do_nothing(index_elements=["activity_uri"])

    async def store(self, activity_uri: str, signer_host: str, payload: dict[str, Any]) -> None:
        """Return once the activity is committed (or was stored before); raise what the database raised if its
        row could not be written, even alone."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(({"activity_uri": activity_uri, "signer_host": signer_host, "payload": payload}, future))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write_waiting())
        # Shielded: a request that goes away does not take its row out of a transaction under way.
        await asyncio.shield(future)

    async def close(self) -> None:
        """Wait for the rows already handed over to be written."""
        if self._writing is not None:
            await asyncio.gather(self._writing, return_exceptions=True)

    async def _write_waiting(self) -> None:
        while self._waiting:
            batch: list[Waiting] = []
            try:
                # One connection while rows keep coming: a checkout costs round trips of its own (the pool's ping).
                async with self.engine.connect() as connection:
                    while self._waiting:
                        batch, self._waiting = self._waiting[:MAX_ROWS], self._waiting[MAX_ROWS:]
                        await self._write(connection, batch)
                        _settle(batch)
                        batch = []
                        jobs.wake()  # a worker in this process applies them now, not after its nap
            except Exception as exc:  # noqa: BLE001 - the batch alone failed: each row gets its own try
                if not batch:  # no connection to be had: the rows waiting for one try alone too
                    batch, self._waiting = self._waiting[:MAX_ROWS], self._waiting[MAX_ROWS:]
                if len(batch) > 1:
                    log.warning("storing %d inbox rows together failed (%s); storing them one by one", len(batch), exc)
                await self._write_each(batch, exc)  # on connections of their own: that one may be broken
                jobs.wake()

    async def _write(self, connection: AsyncConnection, batch: Sequence[Waiting]) -> None:
        async with connection.begin():
            await connection.execute(self._insert, [row for row, _ in batch])

    async def _write_each(self, batch: Sequence[Waiting], error: Exception) -> None:
        if len(batch) == 1:
            _settle(batch, error)
            return
        for waiting in batch:
            try:
                async with self.engine.connect() as connection:
                    await self._write(connection, [waiting])
            except Exception as exc:  # noqa: BLE001 - this row's request is answered with it
                _settle([waiting], exc)
            else:
                _settle([waiting])


def _settle(batch: Sequence[Waiting], error: Exception | None = None) -> None:
    for _, future in batch:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
