"""A running worker indexes in a process of its own: the only writer, started again if it dies, stopped cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from server.db import create_engine, create_sessionmaker
from server.jobs import Worker
from server.models import InboxItem, Job
from server.search import SearchIndex, indexing
from server.search.indexing import BATCH, INBOX_BACKLOG, Indexer, index_path
from server.settings import Settings
from tests.support.search import indexing_settings


async def _add_index_jobs(sessions, count: int) -> None:
    async with sessions() as session:
        session.add_all(Job(kind="index", payload={"type": "guide", "id": str(uuid.uuid4())}) for _ in range(count))
        await session.commit()


async def _index_jobs(sessions) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(Job).where(Job.kind == "index"))


async def _no_jobs(sessions) -> bool:
    return await _index_jobs(sessions) == 0


async def _until(check, what: str) -> None:
    """Wait until `check()` (a value, or an awaitable of one) is true."""
    deadline = time.monotonic() + 30
    while not ((await result) if inspect.isawaitable(result := check()) else result):
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def _running_worker(settings: Settings) -> AsyncIterator[tuple[Indexer, Any, Callable[[], Awaitable[None]]]]:
    """A worker with only the indexing step, running: its step, a sessionmaker, and how to stop it."""
    engine = create_engine(settings.database_url)
    sessions = create_sessionmaker(engine)
    indexer = Indexer(settings, sessions)
    worker = Worker([indexer], idle_seconds=0.05)
    running = asyncio.create_task(worker.run())

    async def stop() -> None:
        worker.stop()
        await asyncio.wait_for(running, 30)

    try:
        yield indexer, sessions, stop
    finally:
        if not running.done():
            await stop()
        await engine.dispose()


def _generation(settings: Settings) -> int:
    index = SearchIndex(index_path(settings))
    try:
        return index.open().latest_generation()
    finally:
        index.close()


def test_a_running_worker_indexes_in_a_process_of_its_own_and_starts_it_again_when_it_dies(
    fresh_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexing, "available_cores", lambda: 2)
    settings = indexing_settings(fresh_database, tmp_path)
    first_generation = _generation(settings)

    async def work() -> None:
        async with _running_worker(settings) as (indexer, sessions, stop):
            await _add_index_jobs(sessions, 3)
            await _until(lambda: _no_jobs(sessions), "the indexing process never committed the jobs")
            assert indexer.process is not None and indexer.process.pid is not None
            assert indexer.queue is None and indexer.writer is None  # nothing is written from this process
            assert _generation(settings) > first_generation  # committed to the index before the rows went

            dead = indexer.process.pid
            os.kill(dead, signal.SIGKILL)
            await _add_index_jobs(sessions, 2)
            await _until(lambda: _no_jobs(sessions), "the jobs were lost with the process")
            assert indexer.process.starts == 2 and indexer.process.pid != dead
            await stop()
            assert indexer.process.pid is None  # stopped with the worker

    asyncio.run(work())


def test_stopping_the_worker_commits_what_the_indexing_process_holds(
    fresh_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexing, "available_cores", lambda: 2)
    settings = indexing_settings(fresh_database, tmp_path)

    async def work() -> None:
        async with _running_worker(settings) as (_, sessions, stop):
            await _add_index_jobs(sessions, 5)

            async def claimed() -> bool:
                async with sessions() as session:
                    free = select(func.count()).select_from(Job).where(Job.locked_until.is_(None))
                    return await session.scalar(free) == 0

            await _until(claimed, "the indexing process never claimed the jobs")
            await stop()  # at once: the commit is due only after a second
            assert await _index_jobs(sessions) == 0

    asyncio.run(work())


def test_an_index_to_build_is_built_in_the_worker_first_then_the_process_takes_over(
    fresh_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new instance has no index: building it waits for no process to start, so search is ready at once."""
    monkeypatch.setattr(indexing, "available_cores", lambda: 2)
    settings = indexing_settings(fresh_database, tmp_path)
    path = index_path(settings)
    shutil.rmtree(path)  # no index at all, as on a new instance
    ready_at_start: list[bool] = []
    ensure_running = indexing.IndexerProcess.ensure_running

    def recording(process) -> None:  # type: ignore[no-untyped-def]
        if process.starts == 0:
            ready_at_start.append(indexing.searchable(path))
        ensure_running(process)

    monkeypatch.setattr(indexing.IndexerProcess, "ensure_running", recording)

    async def work() -> None:
        async with _running_worker(settings) as (indexer, sessions, _):
            await _until(lambda: indexer.process is not None, "the step never moved to its process")
            assert ready_at_start == [True]  # built before the process was started
            assert indexer.queue is None and indexer.writer is None
            generation = _generation(settings)
            await _add_index_jobs(sessions, 2)
            await _until(lambda: _no_jobs(sessions), "the indexing process never committed the jobs")
            assert _generation(settings) > generation

    asyncio.run(work())


def test_one_core_keeps_indexing_in_the_worker(fresh_database: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(indexing, "available_cores", lambda: 1)
    settings = indexing_settings(fresh_database, tmp_path)

    async def work() -> None:
        engine = create_engine(fresh_database)
        sessions = create_sessionmaker(engine)
        indexer = Indexer(settings, sessions)
        try:
            await indexer.start()
            assert indexer.process is None
            await _add_index_jobs(sessions, 2)
            assert await indexer() == 2
        finally:
            await indexer.close()
            await engine.dispose()

    asyncio.run(work())


def test_the_indexing_process_does_not_wait_for_an_inbox_backlog(fresh_database: str, tmp_path: Path) -> None:
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
                await session.commit()
            await _add_index_jobs(sessions, BATCH + 1)
            indexer = Indexer(settings, sessions, yield_to_inbox=False)  # as `IndexerProcess` runs it
            try:
                assert await indexer() == BATCH  # a whole batch at once: no waiting, no small batches
                assert indexer.writer is not None and not indexer.writer.busy
            finally:
                await indexer.close()
            assert await _index_jobs(sessions) == 1
        finally:
            await engine.dispose()

    asyncio.run(work())
