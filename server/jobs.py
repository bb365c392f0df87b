"""The worker: claims due rows (deliveries, inbox items, index and sync jobs) and runs their handlers.

Queue rows are state machines (server/queues.py: state, attempts, next_attempt_at, locked_until, last_error),
so a crash at any point leaves work that another claim picks up once its lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from server.db import fetch_all, utcnow
from server.queues import PENDING

log = logging.getLogger("kith.worker")

Step = Callable[[], Awaitable[int]]


@functools.cache
def due_probe(model: Any, kind: str | None = None) -> Select[Any]:
    """The id of one row `claim` could lease now (`:now` bound), if there is any: a read through the due index.

    Built once per table and job kind, so that an idle worker's look costs a plain read and no statement building.
    """
    now = bindparam("now")
    probe = select(model.id).where(
        model.state == PENDING,
        model.next_attempt_at <= now,
        or_(model.locked_until.is_(None), model.locked_until < now),
    )
    if kind is not None:
        probe = probe.where(model.kind == kind)
    return probe.limit(1)


async def claim(
    session: AsyncSession,
    model: Any,
    *conditions: Any,
    kind: str | None = None,
    limit: int = 50,
    lease: timedelta = timedelta(minutes=2),
) -> list[Any]:
    """Lease up to `limit` due rows (of the job `kind`, if given) to this worker and return their ids.

    PostgreSQL skips rows another worker holds (FOR UPDATE SKIP LOCKED); SQLite serialises writers,
    so the guarded UPDATE alone decides. Either way a row is leased to exactly one worker.

    Most looks find nothing due. Those are answered by a plain read (`server.db.fetch_all`, on the event
    loop on SQLite) before any write transaction: the leasing UPDATE and its commit would cost an idle
    worker a write transaction per step and tick (bench/README.md has the figures). A session with a
    transaction of its own open reads through it instead, as its uncommitted rows may be the due ones.
    """
    now = utcnow()
    idle_look = not session.in_transaction() and isinstance(session.bind, AsyncEngine)
    if idle_look and not await fetch_all(session.bind, due_probe(model, kind), {"now": now}, quick=True):
        return []
    if kind is not None:
        conditions = (*conditions, model.kind == kind)
    free = or_(model.locked_until.is_(None), model.locked_until < now)
    due = (
        select(model.id)
        .where(model.state == PENDING, model.next_attempt_at <= now, free, *conditions)
        .order_by(model.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        update(model)
        .where(model.id.in_(due.scalar_subquery()), free)
        .values(locked_until=now + lease)
        .returning(model.id)
        .execution_options(synchronize_session=False)
    )
    ids = list(result.scalars())
    await session.commit()
    return ids


_running: weakref.WeakSet[Worker] = weakref.WeakSet()


def wake() -> None:
    """Have the workers running in this process look for work now rather than after their nap: the web process
    calls it when it stored something for them (an inbox item). Safe to call from any thread."""
    for worker in list(_running):
        worker.wake()


class Worker:
    """Runs its steps until none has anything to do, then naps briefly (or until woken); stops when asked."""

    def __init__(self, steps: Sequence[Step], *, idle_seconds: float = 0.25) -> None:
        self.steps = list(steps)
        self.idle_seconds = idle_seconds
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def tick(self) -> int:
        done = 0
        for step in self.steps:
            try:
                done += await step()
            except Exception:  # one failing step must not stop the others or the loop
                log.exception("worker step %s failed", getattr(step, "__qualname__", step))
        return done

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        _running.add(self)
        try:
            for step in self.steps:
                if start := getattr(step, "start", None):
                    await start()  # e.g. the indexer moves to a process of its own
            while not self._stop.is_set():
                # Cleared before the steps run: a wake-up that comes while they run is not lost.
                self._wake.clear()
                if await self.tick() == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=self.idle_seconds)
        finally:
            _running.discard(self)
            for step in self.steps:
                if close := getattr(step, "close", None):
                    await close()  # e.g. the indexer commits what it still holds

    def wake(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
