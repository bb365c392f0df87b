"""The bridge from the database to the index: documents for entries, the worker's indexing step, rebuilds.

Only public entries are indexed (published guides, offers that are not deleted), so nobody can find a
draft or a deleted entry. The worker is the only writer: its `Indexer` step, in a process of its own while
the worker runs (`server.search.indexer_process`); of several workers on one data dir, the one holding the
writer lock (`server.search.writer_lock`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db import fetch_all, utcnow
from server.jobs import claim
from server.models import Guide, InboxItem, Job, MentorshipOffer
from server.search import IndexWriterQueue, SearchDocument, SearchIndex, index_ok
from server.search import rebuild as rebuild_index
from server.search.documents import document_from
from server.search.indexer_process import IndexerProcess, available_cores
from server.search.storage import read_current
from server.search.writer_lock import WriterLock
from server.search.writer_thread import IndexWriterThread
from server.settings import Settings

log = logging.getLogger("kith.search")
REBUILDING = "REBUILDING"
BATCH = 500
# While this many inbox items are due (a backfill, a burst from a peer), applying them comes first: the
# index is derived and catches up afterwards. The wait is bounded: the index keeps moving during a long backfill.
INBOX_BACKLOG = 100
MAX_DEFER_SECONDS = 20.0
# When the wait runs out during a backlog, only this many index jobs are taken, so the writer thread's turn
# is short and applying goes on at nearly full speed meanwhile.
BACKLOG_BATCH = 100
# A worker that does not write the index tries the writer's lock this often, to take over when the writer stops.
TAKEOVER_SECONDS = 1.0
Entry = Guide | MentorshipOffer


def index_path(settings: Settings) -> Path:
    return settings.data_dir / "search"


def searchable(path: Path) -> bool:
    """Cheap enough for every request: an index exists and no rebuild is under way."""
    return not (path / REBUILDING).exists() and read_current(path) is not None


def community_ref(entry: Entry) -> str:
    community = entry.community
    return community.slug if community.local else f"{community.slug}@{community.instance}"


def document_for(entry: Entry) -> SearchDocument | None:
    snapshot = snapshot_of(entry)
    return None if snapshot is None else document_from(snapshot)


def snapshot_of(entry: Entry) -> dict[str, Any] | None:
    """What the index needs of a public entry, as plain values: cheap to read, safe to hand to another thread."""
    if entry.deleted_at is not None or entry.community.deleted_at is not None:
        return None
    if entry.community.moved_away:  # its page redirects to the new home, which is searched instead
        return None
    common: dict[str, Any] = {
        "id": str(entry.id), "title": entry.title, "url": entry.url, "community": community_ref(entry),
        "community_name": entry.community.name, "instance": entry.instance,
        "origin": "local" if entry.local else "remote", "created_at": entry.created_at,
        "updated_at": entry.updated_at,
    }  # fmt: skip
    if isinstance(entry, Guide):
        if entry.status != "published":
            return None
        return {
            "type": "guide", "summary": entry.summary, "markdown": entry.body_markdown, "tags": list(entry.tags),
            "status": entry.status, "author": entry.author.username, **common,
        }  # fmt: skip
    return {
        "type": "offer", "markdown": entry.description_markdown, "topics": list(entry.topics),
        "languages": list(entry.languages), "status": entry.status, "author": entry.mentor.username, **common,
    }  # fmt: skip


async def _documents(session: AsyncSession, since: datetime | None = None) -> AsyncIterator[list[SearchDocument]]:
    """Every public entry, a batch at a time, so a 100k-entry rebuild never sits in memory at once."""
    for model in (Guide, MentorshipOffer):
        last: uuid.UUID | None = None
        while True:
            query = select(model).where(model.deleted_at.is_(None)).order_by(model.id).limit(BATCH)
            if last is not None:
                query = query.where(model.id > last)
            if since is not None:
                query = query.where(model.updated_at >= since)
            rows = list((await session.scalars(query)).unique())
            if not rows:
                break
            last = rows[-1].id
            yield [doc for doc in map(document_for, rows) if doc is not None]
            session.expunge_all()


async def rebuild_from_database(
    sessions: async_sessionmaker[AsyncSession], build: Callable[[Iterator[SearchDocument]], int]
) -> int:
    """Feed documents read asynchronously to a synchronous index build running in a thread."""
    handoff: queue.Queue[list[SearchDocument] | None] = queue.Queue(maxsize=4)
    stop = threading.Event()

    def documents() -> Iterator[SearchDocument]:
        while (batch := handoff.get()) is not None:
            yield from batch

    builder = asyncio.create_task(asyncio.to_thread(build, documents()))
    try:
        async with sessions() as session:
            async for batch in _documents(session):
                while not stop.is_set():
                    try:
                        await asyncio.to_thread(handoff.put, batch, True, 0.5)
                        break
                    except queue.Full:
                        if builder.done():  # the build failed: stop feeding it
                            stop.set()
        if not builder.done():
            await asyncio.to_thread(handoff.put, None)
    finally:
        if not builder.done():
            with contextlib.suppress(queue.Full):
                handoff.put_nowait(None)
    return await builder


async def reindex(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], progress: Callable[[int], None] | None = None
) -> int:
    """Build a fresh whoosh generation from the database and swap it in while search keeps serving.

    A worker in another process may index changes into the old generation meanwhile; those entries are
    queued again afterwards, so the new generation misses nothing.
    """
    path = index_path(settings)
    path.mkdir(parents=True, exist_ok=True)
    started = utcnow()
    count = await rebuild_from_database(sessions, lambda docs: rebuild_index(path, docs, progress))
    async with sessions() as session:
        await requeue_changed_since(session, started)
    return count


async def requeue_changed_since(session: AsyncSession, since: datetime) -> None:
    for model, kind in ((Guide, "guide"), (MentorshipOffer, "offer")):
        changed = await session.scalars(
            select(model.id).where(or_(model.updated_at >= since, model.deleted_at >= since))
        )
        session.add_all(Job(kind="index", payload={"type": kind, "id": str(entry_id)}) for entry_id in changed)
    await session.commit()


# A row only when at least INBOX_BACKLOG inbox items are due (`:now` bound): the due index, read no further.
_BACKLOG_PROBE = (
    select(InboxItem.id)
    .where(InboxItem.state == "pending", InboxItem.next_attempt_at <= bindparam("now"))
    .order_by(InboxItem.state, InboxItem.next_attempt_at)
    .offset(INBOX_BACKLOG - 1)
    .limit(1)
)


class Indexer:
    """Worker step: reads index jobs and hands them to the index writer, which runs in its own thread.

    The writer commits at most every second or 500 documents. Whoosh commits, and now and then a merge of
    segments that takes many seconds, happen in that thread, so they never hold up the worker's loop
    (applying inbox items, delivering). There is still exactly one writer: this step's `IndexWriterQueue`.
    Job rows are deleted only once their changes are committed to the index: a crash before that replays them.

    A running worker moves the step into a process of its own (`start`, `IndexerProcess`) when the machine
    has a second core: reading entries, analysis and commits then run beside the worker's steps, also while
    one of them takes long (a backfill applies a peer's whole outbox in one step). In that process the step
    does not `yield_to_inbox`: it shares no interpreter with the inbox step, so waiting would gain nothing.

    Given a `writer_lock` (the worker's step is: several workers may share a data dir), the step does nothing
    until it holds that lock, and holds it until `close`: one writer per index however many workers run.
    """

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        *,
        yield_to_inbox: bool = True,
        writer_lock: WriterLock | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.yield_to_inbox = yield_to_inbox
        self.writer_lock = writer_lock
        self.last_try = float("-inf")
        self.process: IndexerProcess | None = None
        self.move_to_process = False  # set by `start`; see there
        self.path = index_path(settings)
        self.queue: IndexWriterQueue | None = None
        self.rebuilding: asyncio.Task[int] | None = None
        self.held: list[tuple[int, list[Any]]] = []  # (hand-over number, job ids) not yet committed
        self.writer: IndexWriterThread | None = None
        self.last_take = time.monotonic()

    async def start(self) -> None:
        """Called by `Worker.run`: index in a process of its own from now on, if there is a core for it.

        An index that must be built first (a new instance, a deleted or damaged index) is built right here, as
        on one core, and the step moves once that is done: a process takes a few seconds to start, and a new
        instance's search should not answer 503 for that long."""
        if self.process is None and self.queue is None and available_cores() > 1:
            self.move_to_process = True

    async def __call__(self) -> int:
        if not self._writes_here():
            return 0  # another process writes this index; its jobs are left to it
        if self.process is not None:
            self.process.ensure_running()
            return 0  # the work is done and counted over there
        if self.queue is None:
            if self.move_to_process and not await asyncio.to_thread(self._needs_rebuild):
                self.process = IndexerProcess(self.settings, step_in_process)
                self.process.ensure_running()
                return 0
            await self._start()
        assert self.queue is not None and self.writer is not None
        backlog = self.yield_to_inbox and await self._inbox_backlog()
        self.writer.busy = backlog
        if backlog and time.monotonic() - self.last_take < MAX_DEFER_SECONDS:
            done = 0  # see `_inbox_backlog`
        else:
            done = await self._take_jobs(BACKLOG_BATCH if backlog else BATCH)
        if self.rebuilding is not None:
            if not self.rebuilding.done():
                return done  # changes wait in the queue; the rebuild replays them onto the new generation
            await self._finish_rebuild()
        if self.move_to_process and self.queue is not None:  # built: the process takes over from here
            await self._move_to_process()
            return done
        await self._forget_committed()
        return done

    def _writes_here(self) -> bool:
        lock = self.writer_lock
        if lock is None or lock.held:
            return True
        if time.monotonic() - self.last_try < TAKEOVER_SECONDS:
            return False
        first_try = self.last_try == float("-inf")
        self.last_try = time.monotonic()
        if lock.acquire():
            log.info("this process writes the search index at %s", self.path)
            return True
        if first_try:
            log.info("another process writes the search index at %s (%s); this one stands by", self.path, lock.path)
        return False

    def _needs_rebuild(self) -> bool:
        return (self.path / REBUILDING).exists() or not index_ok(self.path)

    async def _move_to_process(self) -> None:
        """Hand the index over to the indexing process: commit what this step holds and let its writer go. Not
        waiting for a moment when nothing is held: during a backfill index jobs keep coming."""
        assert self.queue is not None and self.writer is not None
        await asyncio.to_thread(self.writer.stop, True)
        await self._forget_committed()
        await asyncio.to_thread(self.queue.index.close)
        self.queue, self.writer = None, None
        self.process = IndexerProcess(self.settings, step_in_process)
        self.process.ensure_running()

    async def _start(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        needs_rebuild = await asyncio.to_thread(self._needs_rebuild)
        if needs_rebuild:
            (self.path / REBUILDING).touch()
        index = await asyncio.to_thread(SearchIndex, self.path)
        self.queue = IndexWriterQueue(index)
        if self.writer is None:
            self.writer = IndexWriterThread()
        if needs_rebuild:
            log.warning("search index missing or damaged at %s; rebuilding it from the database", self.path)
            queue_ = self.queue
            self.rebuilding = asyncio.create_task(rebuild_from_database(self.sessions, queue_.rebuild))

    async def _finish_rebuild(self) -> None:
        task, self.rebuilding = self.rebuilding, None
        assert task is not None
        try:
            count = task.result()
            log.info("search index rebuilt with %d entries", count)
            (self.path / REBUILDING).unlink(missing_ok=True)
        except Exception:
            log.exception("search index rebuild failed; retrying")
            self.queue = None

    async def _inbox_backlog(self) -> bool:
        """True while inbox items pile up (a backfill, a burst from a peer).

        The writer thread shares the interpreter with the worker's loop: while it indexes, applying goes
        slower. So during a backlog the index waits, up to `MAX_DEFER_SECONDS` at a time, then takes a small
        batch, which the thread indexes in slices with pauses. Indexing later costs the same, so the entries
        become searchable no later overall.
        """
        return bool(await fetch_all(self.sessions.kw["bind"], _BACKLOG_PROBE, {"now": utcnow()}, quick=True))

    async def _take_jobs(self, limit: int = BATCH) -> int:
        assert self.queue is not None and self.writer is not None
        if self.writer.backlog >= 2 * BATCH:
            return 0  # the writer is behind: leave the jobs in the table until it catches up
        self.last_take = time.monotonic()
        async with self.sessions() as session:
            ids = await claim(session, Job, kind="index", limit=limit)
            self.writer.more_waiting = bool(ids)
            if not ids:
                return 0
            jobs = list(await session.scalars(select(Job).where(Job.id.in_(ids))))
            wanted: dict[str, set[uuid.UUID]] = {"guide": set(), "offer": set()}
            for job in jobs:
                with contextlib.suppress(KeyError, ValueError, TypeError):
                    wanted[job.payload["type"]].add(uuid.UUID(job.payload["id"]))
            changes: list[tuple[str, dict[str, Any] | None]] = []
            for kind, model in (("guide", Guide), ("offer", MentorshipOffer)):
                if not wanted[kind]:
                    continue
                found = {
                    e.id: e for e in (await session.scalars(select(model).where(model.id.in_(wanted[kind])))).unique()
                }
                for entry_id in wanted[kind]:
                    entry = found.get(entry_id)
                    changes.append((str(entry_id), snapshot_of(entry) if entry is not None else None))
        self.held.append((self.writer.hand_over(self.queue, changes), ids))
        return len(ids)

    async def _forget_committed(self) -> None:
        """Job rows go only once their changes are committed to the index: a crash before that replays them."""
        if not self.held or self.writer is None:
            return
        committed = self.writer.committed
        done = [job_id for number, ids in self.held if number <= committed for job_id in ids]
        if not done:
            return
        self.held = [(number, ids) for number, ids in self.held if number > committed]
        async with self.sessions() as session:
            await session.execute(delete(Job).where(Job.id.in_(done)))
            await session.commit()

    async def close(self) -> None:
        if self.process is not None:
            await asyncio.to_thread(self.process.stop)
        if self.writer is not None:
            # While a rebuild runs, what is pending stays for the rebuild's replay, as before: no commit.
            await asyncio.to_thread(self.writer.stop, self.rebuilding is None)
            await self._forget_committed()
        if self.writer_lock is not None:
            # Only now: the indexing process, or this step's writer, has committed and let the index go.
            self.writer_lock.release()


def step_in_process(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> Indexer:
    """The step as `IndexerProcess` runs it: it shares no interpreter with the inbox step, so it never waits for it."""
    return Indexer(settings, sessions, yield_to_inbox=False)
