"""Peering with the instances in `peers`: follow them, backfill their history, keep pulling, report health."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import msgspec
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.service import AccountService
from server.db import utcnow
from server.errors import has_nul
from server.federation import mapping, outbox, vocab
from server.federation.fetch import Fetcher, FetchError, instance_fetcher
from server.federation.handlers import entry_services
from server.federation.processing import apply_stored
from server.jobs import claim
from server.models import Delivery, InboxItem, Job, Peer
from server.queues import JOBS, PENDING, fail, move
from server.settings import Settings, host_of

log = logging.getLogger("kith.federation")
Progress = Callable[[int], None]
MAX_PAGES = 10_000
# A backfill of a large peer takes a while; another worker must not start the same one meanwhile.
_LEASE = timedelta(minutes=30)
PAGE_TRIES = 2
# A page's items are leased to the backfill that stored them while it applies them.
_PAGE_LEASE = timedelta(minutes=5)


class PeerStatus(msgspec.Struct):
    host: str
    base_url: str
    state: str
    followed_back: bool
    last_success_at: datetime | None
    last_error: str | None
    queue_depth: int
    entries_received: int
    lag_seconds: float


async def sync_peers(session: AsyncSession, settings: Settings, fetcher: Fetcher, only: str | None = None) -> None:
    """Make the peers table match the config: follow the configured peers, unfollow the removed ones."""
    existing = {peer.host: peer for peer in await session.scalars(select(Peer))}
    for base_url in settings.peers:
        host = host_of(base_url)
        if only and host != only:
            continue
        peer = existing.get(host)
        if peer is None:
            peer = Peer(host=host, base_url=base_url)
            session.add(peer)
        if peer.state in ("removed", "rejected"):
            peer.state = "pending"
            await _mark_former(session, settings, host, False)
        await session.commit()  # what is written so far does not wait for the peer to answer
        try:
            await _discover(peer, fetcher)
        except (FetchError, vocab.VocabError) as exc:
            peer.last_error, peer.last_error_at = getattr(exc, "reason", str(exc)), utcnow()
            continue
        if peer.state != "following":
            await _follow(session, settings, peer)
    for host, peer in existing.items():
        if host not in settings.peer_hosts and peer.state != "removed" and not only:
            await _unfollow(session, settings, peer)
    await session.commit()


async def _discover(peer: Peer, fetcher: Fetcher) -> None:
    if peer.actor_uri and peer.inbox_url:
        return
    jrd = await fetcher.get_json(
        f"{peer.base_url}/.well-known/webfinger?resource=acct:{peer.host}@{peer.host}", "application/jrd+json"
    )
    links = jrd.get("links") if isinstance(jrd.get("links"), list) else []
    actor_uri = next((link.get("href") for link in links if isinstance(link, dict) and link.get("rel") == "self"), None)
    if not isinstance(actor_uri, str):
        raise FetchError(f"{peer.host} has no instance actor in WebFinger")
    actor = vocab.parse_object(await fetcher.get_object(actor_uri))
    inbox = mapping.inbox_on(actor, peer.host) if isinstance(actor, vocab.Actor) else None
    if inbox is None or host_of(actor.id) != peer.host:
        raise FetchError(f"{actor_uri} is not an actor of {peer.host} with an inbox there")
    peer.actor_uri = actor.id
    peer.inbox_url = inbox
    peer.outbox_url = actor.outbox


async def _follow(session: AsyncSession, settings: Settings, peer: Peer) -> None:
    follow = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": outbox.new_activity_uri(settings),
        "type": "Follow",
        "actor": f"{settings.base_url}/actor",
        "object": peer.actor_uri,
    }
    await outbox.send(session, settings, follow, inbox_url=peer.inbox_url or "", peer_host=peer.host)
    peer.follow_activity_uri = follow["id"]
    peer.updated_at = utcnow()


async def _unfollow(session: AsyncSession, settings: Settings, peer: Peer) -> None:
    if peer.inbox_url and peer.follow_activity_uri:
        undo = {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": outbox.new_activity_uri(settings),
            "type": "Undo",
            "actor": f"{settings.base_url}/actor",
            "object": {
                "id": peer.follow_activity_uri,
                "type": "Follow",
                "actor": f"{settings.base_url}/actor",
                "object": peer.actor_uri,
            },
        }
        await outbox.send(session, settings, undo, inbox_url=peer.inbox_url, peer_host=peer.host)
    peer.state, peer.followed_back, peer.updated_at = "removed", False, utcnow()
    await _mark_former(session, settings, peer.host, True)


async def _mark_former(session: AsyncSession, settings: Settings, host: str, former: bool) -> None:
    for service in entry_services(session, settings):
        await service.mark_former_peer(host, former)


async def backfill(
    session: AsyncSession, peer: Peer, fetcher: Fetcher, *, full: bool, progress: Progress | None = None
) -> int:
    """Apply every activity of the peer's outbox we have not seen; returns how many. A pull (full=False) stops at
    known ground.

    Page by page, newest first. A page's new activities are stored as inbox items and applied at once, through
    the same step as the worker's inbox (`_apply_page`), instead of waiting for the worker. In a full backfill
    the next page loads while the current one is applied; only this coroutine writes, so loading never waits
    for SQLite's write lock, nor applying for loading.
    """
    host = peer.host
    outbox_url = peer.outbox_url or f"{peer.base_url}/outbox"
    collection = await fetcher.get_object(outbox_url)
    first = collection.get("first")
    first = first.get("id") if isinstance(first, dict) else first
    received = 0
    upcoming = _load(fetcher, first)
    try:
        for _ in range(MAX_PAGES):
            if upcoming is None:
                break
            page = await upcoming
            next_url = page.get("next")
            # A full backfill loads the next page while this one is applied; a pull first sees whether it must.
            upcoming = _load(fetcher, next_url) if full else None
            items = [item for item in page.get("orderedItems") or [] if _from_peer(item, host)]
            new = await _apply_page(session, fetcher, host, items)
            received += new
            if progress:
                progress(len(items))
            if not full:
                if new == 0 and items:
                    break
                upcoming = _load(fetcher, next_url)
    finally:
        if upcoming is not None and not upcoming.done():
            upcoming.cancel()
            with contextlib.suppress(asyncio.CancelledError, FetchError, httpx.HTTPError):
                await upcoming
    await session.refresh(peer)
    peer.backfilled_at = utcnow()
    peer.last_success_at = utcnow()
    await session.commit()
    return received


def _load(fetcher: Fetcher, url: Any) -> asyncio.Future[dict[str, Any]] | None:
    return asyncio.ensure_future(fetcher.get_object(url)) if isinstance(url, str) else None


async def _apply_page(session: AsyncSession, fetcher: Fetcher, host: str, items: list[dict[str, Any]]) -> int:
    """Store the page's activities not stored yet, then apply them as the worker applies any stored activity;
    returns how many were new. Stored leased to this backfill, so the worker leaves them alone meanwhile."""
    for _ in range(PAGE_TRIES):
        try:
            # What is unseen is decided under the write lock (the first statement writes, see apply_stored),
            # since a push may have stored some of the page meanwhile.
            await session.execute(update(Peer).where(Peer.host == host).values(last_success_at=utcnow()))
            ids = await _store(session, host, await _unseen(session, items), leased=True)
            await session.commit()
            break
        except DBAPIError as exc:  # e.g. a unique clash with a push on PostgreSQL: none of it stays
            await session.rollback()
            log.warning("storing a page of %s's outbox failed (%s); trying again", host, exc.__class__.__name__)
    else:
        # Still clashing: store what is unseen now for the worker, in a transaction of its own, and go on.
        ids = await _store(session, host, await _unseen(session, items), leased=False)
        await session.commit()
        return len(ids)
    if not ids:
        return 0
    try:
        await apply_stored(session, fetcher.settings, fetcher, ids)
    except DBAPIError as exc:
        # None of it stays; the worker's inbox step applies the stored items, a batch at a time.
        await session.rollback()
        log.warning("applying a page of %s's outbox failed (%s); left to the worker", host, exc.__class__.__name__)
        await session.execute(update(InboxItem).where(InboxItem.id.in_(ids)).values(locked_until=None))
        await session.commit()
    return len(ids)


def _from_peer(item: Any, host: str) -> bool:
    # As the inbox requires of a pushed activity: an http(s) id on the peer's host, and no NUL anywhere (PostgreSQL
    # cannot store it: such an item would fail the page's insert on every pull).
    activity_id = item.get("id") if isinstance(item, dict) else None
    return vocab.is_http_id(activity_id) and host_of(activity_id) == host and not has_nul(msgspec.json.encode(item))


async def _unseen(session: AsyncSession, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items not stored as inbox items yet, once each, oldest first (a page lists newest first), so that a
    Create is applied before its Update."""
    ids = [item["id"] for item in items]
    known = set(await session.scalars(select(InboxItem.activity_uri).where(InboxItem.activity_uri.in_(ids))))
    return list({item["id"]: item for item in reversed(items) if item["id"] not in known}.values())


async def _store(session: AsyncSession, host: str, fresh: list[dict[str, Any]], *, leased: bool) -> list[Any]:
    """Store activities of the peer (oldest first) as inbox items; returns their ids."""
    now = utcnow()
    rows = [
        InboxItem(
            activity_uri=item["id"],
            signer_host=host,
            payload=item,
            received_at=_later(now, offset),
            locked_until=now + _PAGE_LEASE if leased else None,
        )  # fmt: skip
        for offset, item in enumerate(fresh)
    ]
    session.add_all(rows)
    await session.flush()
    return [row.id for row in rows]


def _later(now: datetime, offset: int) -> datetime:
    return now + timedelta(microseconds=offset)


class PeerJobs:
    """Worker step: backfill jobs, plus the first sync and the periodic pull that back up push delivery."""

    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession], client: httpx.AsyncClient):
        self.settings = settings
        self.sessions = sessions
        self.client = client
        self.next_sync = 0.0
        self.sync_backoff = 2.0
        # Pull once at start: whatever peers pushed while this instance was down is caught up at once.
        self.last_pull = float("-inf")

    async def __call__(self) -> int:
        done = 0
        async with self.sessions() as session:
            if time.monotonic() >= self.next_sync:
                await self._sync(session)
                done += 1
            if time.monotonic() - self.last_pull >= self.settings.pull_interval_seconds:
                self.last_pull = time.monotonic()
                await self._schedule_pulls(session)
            for job_id in await claim(session, Job, kind="peer-sync", limit=10):
                job = await session.get(Job, job_id)
                assert job is not None
                fetcher = await instance_fetcher(session, self.settings, self.client)
                await sync_peers(session, self.settings, fetcher, only=job.payload.get("host"))
                move(job, JOBS["finished"])
                await session.commit()
                done += 1
            for job_id in await claim(session, Job, kind="backfill", limit=1, lease=_LEASE):
                await self._run(session, job_id)
                done += 1
        return done

    async def _sync(self, session: AsyncSession) -> None:
        """Sync at start; while a configured peer is not yet following (it may be down), try again, backing off."""
        await sync_peers(session, self.settings, await instance_fetcher(session, self.settings, self.client))
        states = set(await session.scalars(select(Peer.state).where(Peer.host.in_(self.settings.peer_hosts))))
        if states <= {"following"} and len(states) <= len(self.settings.peer_hosts):
            self.next_sync = float("inf")
        else:
            self.next_sync = time.monotonic() + self.sync_backoff
            self.sync_backoff = min(self.sync_backoff * 2, 300.0)

    async def _schedule_pulls(self, session: AsyncSession) -> None:
        following = await session.scalars(
            select(Peer.host).where(Peer.state == "following", Peer.host.in_(self.settings.peer_hosts))
        )
        waiting = {
            job.payload.get("host")
            for job in await session.scalars(select(Job).where(Job.kind == "backfill", Job.state == PENDING))
        }
        for host in following:
            if host not in waiting:  # one queued pull per peer is enough, even while it is down
                session.add(Job(kind="backfill", payload={"host": host, "full": False}))
        await session.commit()

    async def _run(self, session: AsyncSession, job_id: Any) -> None:
        job = await session.get(Job, job_id)
        assert job is not None
        peer = await session.scalar(select(Peer).where(Peer.host == job.payload.get("host")))
        try:
            if peer is None or peer.host not in self.settings.peer_hosts:
                raise FetchError("not a configured peer any more")
            fetcher = await instance_fetcher(session, self.settings, self.client)
            await backfill(session, peer, fetcher, full=bool(job.payload.get("full", True)))
        except (FetchError, httpx.HTTPError) as exc:
            await session.rollback()
            job = await session.get(Job, job_id)
            assert job is not None
            fail(JOBS, job, getattr(exc, "reason", str(exc)), permanent=peer is None)
            if peer is not None:
                peer.last_error, peer.last_error_at = job.last_error, utcnow()
        else:
            move(job, JOBS["finished"])
        await session.commit()


async def request_sync(session: AsyncSession, settings: Settings, host: str) -> Job:
    """Queue a re-follow (when not following) and a full backfill of a configured peer; the worker does both."""
    host = host.lower()
    if host not in settings.peer_hosts:
        raise LookupError(host)
    peer = await session.scalar(select(Peer).where(Peer.host == host))
    if peer is None:
        peer = Peer(host=host, base_url=settings.peers[settings.peer_hosts.index(host)])
        session.add(peer)
    if peer.state != "following":
        session.add(Job(kind="peer-sync", payload={"host": host}))
    job = Job(kind="backfill", payload={"host": host, "full": True})
    session.add(job)
    await session.commit()
    return job


async def peer_statuses(session: AsyncSession) -> list[PeerStatus]:
    now = utcnow()
    rows = await session.execute(
        select(Delivery.peer_host, func.count(), func.min(Delivery.created_at))
        .where(Delivery.state == PENDING)
        .group_by(Delivery.peer_host)
    )
    queues = {host: (count, oldest) for host, count, oldest in rows}
    statuses = []
    for peer in await session.scalars(select(Peer).order_by(Peer.host)):
        depth, oldest = queues.get(peer.host, (0, None))
        statuses.append(
            PeerStatus(
                host=peer.host,
                base_url=peer.base_url,
                state=peer.state,
                followed_back=peer.followed_back,
                last_success_at=peer.last_success_at,
                last_error=peer.last_error,
                queue_depth=depth,
                entries_received=peer.entries_received,
                lag_seconds=round((now - oldest).total_seconds(), 1) if oldest else 0.0,
            )  # fmt: skip
        )
    return statuses


async def purge(session: AsyncSession, settings: Settings, host: str) -> int:
    """Remove everything a former peer brought in; refused while it is still configured."""
    removed = 0
    for service in entry_services(session, settings):
        removed += await service.purge_instance(host)
    await AccountService(session, settings).purge_instance(host)
    await session.execute(delete(Peer).where(Peer.host == host))
    await session.commit()
    return removed
