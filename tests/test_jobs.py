"""The claim is the heart of the worker: a row goes to exactly one worker, and comes back after a crash."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import delete, select

from server.db import create_engine, create_sessionmaker, utcnow
from server.jobs import claim, retry_delay, schedule_retry
from server.models import Job


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
            schedule_retry(job, "boom")
            assert job.state == "pending" and job.attempts == 1
            assert job.next_attempt_at > utcnow() + timedelta(seconds=20)
            job.created_at = utcnow() - timedelta(days=4)
            schedule_retry(job, "still failing")
            assert job.state == "failed"
            await session.commit()
            assert (await session.scalar(select(Job.state).where(Job.id == job.id))) == "failed"

    _run(_with_sessions(database_url, work))


def test_retry_delay_doubles_from_30s_to_6h():
    assert timedelta(seconds=24) <= retry_delay(1) <= timedelta(seconds=36)
    assert timedelta(seconds=48) <= retry_delay(2) <= timedelta(seconds=72)
    assert retry_delay(30) <= timedelta(hours=6) * 1.2
