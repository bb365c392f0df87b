"""The worker's index writer thread: short slices and pauses while the worker has inbox items to apply."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from server.db import create_engine, create_sessionmaker
from server.models import InboxItem, Job
from server.search.indexing import BACKLOG_BATCH, INBOX_BACKLOG, MAX_DEFER_SECONDS, Indexer
from server.search.writer_thread import IndexWriterThread
from tests.support.search import indexing_settings


class RecordingQueue:
    """Stands in for `IndexWriterQueue`: records what the thread hands it, never commits."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.pending = 0

    def add(self, doc: Any) -> None:
        self.calls.append(("add", doc.id))

    def delete(self, doc_id: str) -> None:
        self.calls.append(("delete", doc_id))

    def flush_if_due(self) -> bool:
        return False

    def flush(self) -> int:
        return 0


def _snapshot(n: int) -> dict[str, Any]:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    return {
        "id": f"guide-{n}", "type": "guide", "title": f"Guide {n}", "url": f"https://x.example/{n}",
        "community": "c", "community_name": "C", "instance": "x.example", "origin": "local",
        "created_at": when, "updated_at": when, "summary": "", "markdown": "Some *words*.", "tags": [],
        "status": "published", "author": "ann",
    }  # fmt: skip


def _run_changes(busy: bool, changes: list[tuple[str, dict[str, Any] | None]]) -> tuple[IndexWriterThread, list]:
    pauses: list[float] = []
    thread = IndexWriterThread(slice_docs=2, pause=pauses.append)
    thread.busy = busy
    queue = RecordingQueue()
    try:
        number = thread.hand_over(queue, changes)  # type: ignore[arg-type]
        deadline = time.monotonic() + 10
        while thread.committed < number:
            assert time.monotonic() < deadline, "the thread never took the changes"
            time.sleep(0.01)
    finally:
        thread.stop()
    assert queue.calls == [("add" if snap else "delete", doc_id) for doc_id, snap in changes]
    return thread, pauses


def test_writer_thread_pauses_between_slices_while_the_worker_is_busy() -> None:
    changes = [(f"guide-{n}", _snapshot(n)) for n in range(4)] + [("gone", None)]

    thread, pauses = _run_changes(True, changes)

    assert thread.slices == 3  # 2 + 2 + 1
    assert len(pauses) == 2  # between slices, not after the last
    assert all(0 <= p <= 0.5 for p in pauses)


def test_writer_thread_does_not_pause_without_a_backlog() -> None:
    changes = [(f"guide-{n}", _snapshot(n)) for n in range(5)]

    thread, pauses = _run_changes(False, changes)

    assert thread.slices == 3
    assert pauses == []


def test_indexer_takes_a_small_batch_when_its_wait_runs_out_during_a_backlog(fresh_database: str, tmp_path: Path):
    settings = indexing_settings(fresh_database, tmp_path)

    async def work() -> None:
        engine = create_engine(fresh_database)
        sessions = create_sessionmaker(engine)
        try:
            async with sessions() as session:
                session.add_all(
                    InboxItem(activity_uri=f"http://peer.test/activities/{n}", signer_host="peer.test", payload={})
                    for n in range(INBOX_BACKLOG)
                )
                session.add_all(
                    Job(kind="index", payload={"type": "guide", "id": str(uuid.uuid4())})
                    for _ in range(BACKLOG_BATCH + 7)
                )
                await session.commit()
            indexer = Indexer(settings, sessions)
            try:
                assert await indexer() == 0  # waiting for the backlog
                assert indexer.writer is not None and indexer.writer.busy
                indexer.last_take -= MAX_DEFER_SECONDS
                assert await indexer() == BACKLOG_BATCH  # not the usual 500
                assert await indexer() == 0  # and then waits again
            finally:
                await indexer.close()
            async with sessions() as session:
                left = await session.scalar(select(func.count()).select_from(Job).where(Job.kind == "index"))
            assert left == 7
        finally:
            await engine.dispose()

    asyncio.run(work())
