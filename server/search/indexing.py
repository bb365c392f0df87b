"""The bridge from the database to the index: documents for entries, the worker's indexing step, rebuilds.

Only public entries are indexed (published guides, offers that are not deleted), so nobody can find a
draft or a deleted entry. The worker is the only writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db import utcnow
from server.jobs import claim
from server.models import Guide, Job, MentorshipOffer
from server.search import IndexWriterQueue, SearchDocument, SearchIndex, index_ok, markdown_to_text
from server.search import rebuild as rebuild_index
from server.search.storage import read_current
from server.settings import Settings

log = logging.getLogger("kith.search")
REBUILDING = "REBUILDING"
BATCH = 500
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
    if entry.deleted_at is not None or entry.community.deleted_at is not None:
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
        return SearchDocument(
            type="guide", summary=entry.summary, body=markdown_to_text(entry.body_markdown), tags=list(entry.tags),
            status=entry.status, author=entry.author.username, **common,
        )  # fmt: skip
    return SearchDocument(
        type="offer", body=markdown_to_text(entry.description_markdown), topics=list(entry.topics),
        languages=list(entry.languages), status=entry.status, author=entry.mentor.username, **common,
    )  # fmt: skip


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
    """`kith reindex`: build a fresh generation from the database and swap it in while search keeps serving.

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


class Indexer:
    """Worker step: applies index jobs in batches and commits at most every second or 500 documents."""

    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self.sessions = sessions
        self.path = index_path(settings)
        self.queue: IndexWriterQueue | None = None
        self.rebuilding: asyncio.Task[int] | None = None
        self.held: list[Any] = []

    async def __call__(self) -> int:
        if self.queue is None:
            await self._start()
        assert self.queue is not None
        done = await self._take_jobs()
        if self.rebuilding is not None:
            if not self.rebuilding.done():
                return done  # changes wait in the queue; the rebuild replays them onto the new generation
            await self._finish_rebuild()
        if self.queue.pending and await asyncio.to_thread(self.queue.flush_if_due) or not self.queue.pending:
            await self._forget_held()
        return done

    async def _start(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        marker = self.path / REBUILDING
        needs_rebuild = marker.exists() or not await asyncio.to_thread(index_ok, self.path)
        if needs_rebuild:
            marker.touch()
        index = await asyncio.to_thread(SearchIndex, self.path)
        self.queue = IndexWriterQueue(index)
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

    async def _take_jobs(self) -> int:
        assert self.queue is not None
        async with self.sessions() as session:
            ids = await claim(session, Job, Job.kind == "index", limit=BATCH)
            if not ids:
                return 0
            jobs = list(await session.scalars(select(Job).where(Job.id.in_(ids))))
            wanted: dict[str, set[uuid.UUID]] = {"guide": set(), "offer": set()}
            for job in jobs:
                with contextlib.suppress(KeyError, ValueError, TypeError):
                    wanted[job.payload["type"]].add(uuid.UUID(job.payload["id"]))
            for kind, model in (("guide", Guide), ("offer", MentorshipOffer)):
                found = {
                    e.id: e for e in (await session.scalars(select(model).where(model.id.in_(wanted[kind])))).unique()
                }
                for entry_id in wanted[kind]:
                    entry = found.get(entry_id)
                    document = document_for(entry) if entry is not None else None
                    if document is None:
                        self.queue.delete(str(entry_id))
                    else:
                        self.queue.add(document)
        self.held.extend(ids)
        return len(ids)

    async def _forget_held(self) -> None:
        """Job rows go only once their changes are committed to the index: a crash before that replays them."""
        if not self.held:
            return
        held, self.held = self.held, []
        async with self.sessions() as session:
            await session.execute(delete(Job).where(Job.id.in_(held)))
            await session.commit()

    async def close(self) -> None:
        if self.queue is not None and self.rebuilding is None:
            await asyncio.to_thread(self.queue.flush)
            await self._forget_held()
