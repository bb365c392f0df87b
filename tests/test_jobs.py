"""The claim is the heart of the worker: a row goes to exactly one worker, and comes back after a crash."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select

from server.db import create_engine, create_sessionmaker, utcnow
from server.jobs import Worker, claim, wake
from server.models import InboxItem, Job
from server.queues import DELIVERIES, INBOX, JOBS, fail, move, retry_delay
from server.search.indexing import INBOX_BACKLOG, MAX_DEFER_SECONDS, Indexer
from tests.support.search import indexing_settings


def _run(coro):
    return asyncio.run(coro)


async def _with_sessions(url, work):
    engine = create_engine(url)
    try:
        return await work(create_sessionmaker(engine))
    finally:
        await engine.dispose()


def test_concurrent_claims_never_share_a_row(database_url):
    async def work(sessions):
        async with sessions() as session:
            await session.execute(delete(Job).where(Job.kind == "claim-test"))
            session.add_all(Job(kind="claim-test") for _ in range(40))
            await session.commit()

        async def one_worker():
            claimed = []
            async with sessions() as session:
                while ids := await claim(session, Job, Job.kind == "claim-test", limit=3):
                    claimed.extend(ids)
            return claimed

        results = await asyncio.gather(*(one_worker() for _ in range(4)))
        flat = [i for r in results for i in r]
        assert len(flat) == 40
        assert len(set(flat)) == 40

    _run(_with_sessions(database_url, work))


def test_expired_lease_is_claimed_again(database_url):
    async def work(sessions):
        async with sessions() as session:
            job = Job(kind="lease-test")
            session.add(job)
            await session.commit()
            first = await claim(session, Job, Job.kind == "lease-test", lease=timedelta(milliseconds=1))
            assert first == [job.id]
            await asyncio.sleep(0.05)
            assert await claim(session, Job, Job.kind == "lease-test") == [job.id]
            assert await claim(session, Job, Job.kind == "lease-test") == []

    _run(_with_sessions(database_url, work))


def test_retry_backs_off_and_gives_up_after_three_days(database_url):
    async def work(sessions):
        async with sessions() as session:
            job = Job(kind="retry-test")
            session.add(job)
            await session.commit()
            fail(JOBS, job, "boom")
            assert job.state == "pending" and job.attempts == 1
            assert job.next_attempt_at > utcnow() + timedelta(seconds=20)
            job.created_at = utcnow() - timedelta(days=4)
            fail(JOBS, job, "still failing")
            assert job.state == "failed"
            await session.commit()
            assert (await session.scalar(select(Job.state).where(Job.id == job.id))) == "failed"

    _run(_with_sessions(database_url, work))


def test_a_row_moves_only_through_its_queues_transitions():
    job = Job(kind="graph-test", state="pending", attempts=0, locked_until=utcnow())
    move(job, JOBS["finished"])
    assert job.state == "done" and job.finished_at is not None and job.locked_until is None
    with pytest.raises(ValueError, match="cannot take it"):
        move(job, JOBS["finished"])  # a finished job is not finished again
    assert DELIVERIES.states == {"pending", "sent", "failed"}
    assert INBOX.states == {"pending", "done", "rejected", "failed"}
    assert JOBS.states == {"pending", "done", "failed"}


def test_retry_delay_doubles_from_30s_to_6h():
    assert timedelta(seconds=24) <= retry_delay(1) <= timedelta(seconds=36)
    assert timedelta(seconds=48) <= retry_delay(2) <= timedelta(seconds=72)
    assert retry_delay(30) <= timedelta(hours=6) * 1.2


# --- the indexing step: its own writer thread, and it yields to an inbox backlog ----------


async def _index_jobs(sessions) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(Job).where(Job.kind == "index"))


def test_index_jobs_go_only_after_the_writer_thread_committed_them(fresh_database, tmp_path):
    settings = indexing_settings(fresh_database, tmp_path)

    async def work(sessions):
        async with sessions() as session:
            session.add_all(Job(kind="index", payload={"type": "guide", "id": str(uuid.uuid4())}) for _ in range(3))
            await session.commit()
        indexer = Indexer(settings, sessions)
        try:
            assert await indexer() == 3
            deadline = time.monotonic() + 15
            while await _index_jobs(sessions):
                assert time.monotonic() < deadline, "the index jobs were never committed"
                await asyncio.sleep(0.05)
                await indexer()
            # The rows went, so the thread must have committed the batch first.
            assert indexer.queue.commits >= 1
            assert indexer.writer.committed >= 1
        finally:
            await indexer.close()

    _run(_with_sessions(fresh_database, work))


def test_indexing_waits_while_inbox_items_pile_up_but_not_for_long(fresh_database, tmp_path):
    settings = indexing_settings(fresh_database, tmp_path)

    async def work(sessions):
        async with sessions() as session:
            session.add_all(
                InboxItem(activity_uri=f"http://peer.test/activities/{n}", signer_host="peer.test", payload={})
                for n in range(INBOX_BACKLOG)
            )
            session.add(Job(kind="index", payload={"type": "guide", "id": str(uuid.uuid4())}))
            await session.commit()
        indexer = Indexer(settings, sessions)
        try:
            assert await indexer() == 0  # a backfill is being applied: the index waits
            async with sessions() as session:
                job = await session.scalar(select(Job).where(Job.kind == "index"))
                assert job.locked_until is None
            indexer.last_take -= MAX_DEFER_SECONDS  # ...but only so long
            assert await indexer() == 1
            async with sessions() as session:
                await session.execute(delete(InboxItem).where(InboxItem.signer_host == "peer.test"))
                await session.commit()
        finally:
            await indexer.close()
        assert await _index_jobs(sessions) == 0  # closing commits what the writer held

    _run(_with_sessions(fresh_database, work))


def test_indexing_runs_as_usual_without_a_backlog(fresh_database, tmp_path):
    settings = indexing_settings(fresh_database, tmp_path)

    async def work(sessions):
        async with sessions() as session:
            session.add(InboxItem(activity_uri="http://peer.test/activities/one", signer_host="peer.test", payload={}))
            session.add(Job(kind="index", payload={"type": "offer", "id": str(uuid.uuid4())}))
            await session.commit()
        indexer = Indexer(settings, sessions)
        try:
            assert await indexer() == 1
        finally:
            await indexer.close()

    _run(_with_sessions(fresh_database, work))


def test_a_napping_worker_wakes_at_once_when_work_is_stored_for_it():
    async def work():
        ticks: asyncio.Queue[float] = asyncio.Queue()

        async def step() -> int:
            ticks.put_nowait(time.monotonic())
            return 0

        worker = Worker([step], idle_seconds=30)  # without a wake-up, the second tick would be 30 s away
        task = asyncio.create_task(worker.run())
        try:
            async with asyncio.timeout(5):
                await ticks.get()
            await asyncio.sleep(0.05)  # napping now
            woken = time.monotonic()
            wake()
            async with asyncio.timeout(5):
                assert await ticks.get() - woken < 1
        finally:
            worker.stop()
            async with asyncio.timeout(5):
                await task  # stop wakes it too: it does not finish its nap first

    _run(work())


def test_a_worker_starts_its_steps_before_their_first_tick_and_closes_them_when_it_stops():
    events: list[str] = []

    class Step:
        worker: Worker

        async def start(self) -> None:
            events.append("start")

        async def __call__(self) -> int:
            events.append("tick")
            if events.count("tick") == 2:
                self.worker.stop()
            return 0

        async def close(self) -> None:
            events.append("close")

    async def work():
        step = Step()
        step.worker = Worker([step], idle_seconds=0.01)
        async with asyncio.timeout(5):
            await step.worker.run()

    _run(work())
    assert events == ["start", "tick", "tick", "close"]
