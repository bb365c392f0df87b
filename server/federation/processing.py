"""From a stored activity to the domain services: one path for the inbox, a backfill and the periodic pull.

Every received activity is stored first (an InboxItem, unique on its id: a repeat is a no-op), then applied in
three steps: read the batch, fetch what it needs from the peer (no transaction open: a slow peer must not hold
SQLite's write lock, nor a PostgreSQL transaction), then apply it in one transaction, plain new guides together
and everything else one activity at a time in its own savepoint.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.federation import mapping, moves, vocab
from server.federation.fetch import Fetcher, FetchError, instance_fetcher
from server.federation.handlers import Rejected, count_received, handle, parse
from server.guides.batch import RemoteGuideBatch
from server.guides.schemas import RemoteGuide
from server.guides.service import GuideService
from server.jobs import claim
from server.models import Community, DeletedObject, InboxItem, User
from server.queues import INBOX, fail, move
from server.settings import Settings, host_of

log = logging.getLogger("kith.federation")
BATCH = 100
# After a batch short of BATCH, the step lets this long pass before it claims again. A batch of a few items costs
# nearly what a full one does (the claim, the lookups, the commits, the writer's lock on SQLite); under a steady
# stream, claiming again at once applied it a handful of items at a time, the worker spending its time on that
# overhead. Items wait at most this much longer to be applied.
GATHER_SECONDS = 0.2
# Documents a batch needs (objects sent by reference, unknown communities and authors) fetched side by side.
FETCH_AT_ONCE = 8
# At most this many of the ids an object names are fetched ahead for it: a sender cannot make us fetch more.
MAX_NAMED = 20


class InboxProcessor:
    """Worker step: apply the stored activities that are due, a batch at a time."""

    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession], client: httpx.AsyncClient):
        self.settings = settings
        self.sessions = sessions
        self.client = client
        self._next_claim = 0.0

    async def __call__(self) -> int:
        if time.monotonic() < self._next_claim:
            return 0
        async with self.sessions() as session:
            ids = await claim(session, InboxItem, limit=BATCH)
            if not ids:
                return 0
            if len(ids) < BATCH:
                self._next_claim = time.monotonic() + GATHER_SECONDS
            fetcher = await instance_fetcher(session, self.settings, self.client)
            await session.commit()
            await apply_stored(session, self.settings, fetcher, ids)
            return len(ids)


async def apply_stored(session: AsyncSession, settings: Settings, fetcher: Fetcher, ids: Sequence[Any]) -> None:
    """Apply the stored activities `ids` (leased to the caller) in the order they were received, and commit."""
    query = select(InboxItem).where(InboxItem.id.in_(ids)).order_by(InboxItem.received_at)
    items = list(await session.scalars(query))
    parsed = [_parsed(item) for item in items]
    documents = await Documents.gather(session, fetcher, items, parsed)
    # The batch's first statement is a write, so it holds SQLite's write lock from the start. A transaction
    # opened by a SAVEPOINT and reading first fails at its first write, without waiting, when another
    # connection (the web process storing an incoming activity, another worker) committed in between.
    await session.execute(
        update(InboxItem)
        .where(InboxItem.id.in_(ids))
        .values(attempts=InboxItem.attempts)
        .execution_options(synchronize_session=False)
    )
    await Applier(session, settings, documents).apply_all(items, parsed)
    await session.commit()


def _parsed(item: InboxItem) -> vocab.Activity | None:
    try:
        return parse(item.payload)
    except Rejected:
        return None  # `handle` meets it again in the item's own try, and says why


class Documents:
    """What a batch of activities needs from their peers, fetched before its transaction opens; served to the
    handlers while it is open, which never touch the network themselves."""

    def __init__(self) -> None:
        self.found: dict[str, dict[str, Any]] = {}
        self.failed: dict[str, FetchError] = {}

    @classmethod
    async def gather(
        cls,
        session: AsyncSession,
        fetcher: Fetcher,
        items: Sequence[InboxItem],
        parsed: Sequence[vocab.Activity | None],
    ) -> Documents:
        """Each item asks only its signer's host (the handlers reject anything else): first for the objects it
        sends by reference (always: an Update by reference is news of a known object) and the actor of a Follow
        (its inbox is where the answer goes), and for the communities and people its object names that are not
        known here; then for those that the objects fetched by reference name, on the same host."""
        documents = cls()
        objects: set[str] = set()
        actors: set[str] = set()
        for item, activity in zip(items, parsed, strict=True):
            if activity is None:
                continue
            own = _on(item.signer_host)
            if activity.type in ("Create", "Update") and not isinstance(activity.object, vocab.APObject):
                objects.update(own([activity.object_id]))
            if activity.type == "Follow":
                objects.update(own([activity.actor]))
            if activity.type == "Move":
                objects.update(own([activity.object_id]))  # what the Group says now, not what the Move says
            # A moved Group's new home, on another peer (the fetcher reaches configured peers only), for a Group
            # of the signer's own: a Move the handler will refuse fetches nothing.
            if own([activity.object_id]):
                objects.update(uri for uri in moves.targets(activity) if host_of(uri) != fetcher.settings.host)
            actors.update(own(_named(item.payload.get("object"))))
        await documents._fetch(session, fetcher, objects, actors)
        named = {
            uri
            for document in documents.found.values()
            for uri in _on(host_of(str(document.get("id"))))(_named(document))
        }
        # A Group sent by reference that says it moved: where to, for verifying the move (moves.py).
        moved = {uri for document in documents.found.values() if (uri := moves.moved_to(document))}
        moved = {uri for uri in moved if host_of(uri) != fetcher.settings.host}
        tried = documents.found.keys() | documents.failed.keys()
        await documents._fetch(session, fetcher, moved - tried, named - tried)
        return documents

    async def _fetch(self, session: AsyncSession, fetcher: Fetcher, objects: set[str], actors: set[str]) -> None:
        """Fetch `objects`, and those of `actors` this instance does not know."""
        actors = actors - objects
        if actors:
            actors -= set(await session.scalars(select(Community.uri).where(Community.uri.in_(actors))))
        if actors:
            actors -= set(await session.scalars(select(User.uri).where(User.uri.in_(actors))))
        await session.commit()  # no transaction stays open while the peer answers, not even a read
        limit = asyncio.Semaphore(FETCH_AT_ONCE)

        async def one(uri: str) -> None:
            async with limit:
                try:
                    self.found[uri] = await fetcher.get_object(uri)
                except FetchError as exc:
                    self.failed[uri] = exc
                except httpx.HTTPError as exc:
                    self.failed[uri] = FetchError(f"{uri}: {exc.__class__.__name__}")

        await asyncio.gather(*(one(uri) for uri in sorted(objects | actors)))

    async def get(self, uri: str) -> dict[str, Any]:
        document = self.found.get(uri)
        if document is not None:
            return document
        raise self.failed.get(uri) or FetchError(f"{uri} was not fetched")


class Applier:
    """Applies received activities in order in one transaction: plain new guides together, the rest singly."""

    def __init__(self, session: AsyncSession, settings: Settings, documents: Documents) -> None:
        self.session = session
        self.settings = settings
        self.documents = documents

    async def apply_all(self, items: Sequence[InboxItem], parsed: Sequence[vocab.Activity | None]) -> None:
        """Apply the items in order: new guides that are the plain case written together (`RemoteGuideBatch`),
        everything else one at a time, the guides taken so far written before it.

        An object that more than one item of the batch touches (a Create and its Update, a Delete before a
        Create) is always applied one item at a time, so the order between them holds.
        """
        touched = Counter(activity.object_id for activity in parsed if activity is not None)
        candidates: dict[int, RemoteGuide] = {}
        for position, (item, activity) in enumerate(zip(items, parsed, strict=True)):
            post = _new_guide_post(activity, item) if activity is not None else None
            if post is not None and touched[post.id] == 1 and (remote := _remote_guide(post, item.signer_host)):
                candidates[position] = remote
        tombstoned = set(
            await self.session.scalars(
                select(DeletedObject.uri).where(DeletedObject.uri.in_([r.uri for r in candidates.values()]))
            )
        )
        candidates = {position: r for position, r in candidates.items() if r.uri not in tombstoned}
        batch = GuideService(self.session, self.settings).remote_batch()
        await batch.look_up(list(candidates.values()))
        taken: list[InboxItem] = []
        for position, (item, activity) in enumerate(zip(items, parsed, strict=True)):
            remote = candidates.get(position)
            if remote is not None and batch.take(remote):
                taken.append(item)
                continue
            await self._write(batch, taken)
            taken = []
            await self._apply(item, activity)
            # What this item wrote (a community, an author) may make later guides plain.
            await batch.look_up([r for later, r in candidates.items() if later > position])
        await self._write(batch, taken)

    async def _write(self, batch: RemoteGuideBatch, taken: list[InboxItem]) -> None:
        if not taken:
            return
        try:
            async with self.session.begin_nested():
                await batch.write()
        except Exception:  # noqa: BLE001 - e.g. a unique clash with another worker: apply them one by one
            log.warning("writing %d new guides together failed; applying them one at a time", len(taken))
            for item in taken:
                await self._apply(item, None)
            return
        for item in taken:
            move(item, INBOX["applied"], note="guide stored")
        for host, count in Counter(item.signer_host for item in taken).items():
            await count_received(self.session, host, count)

    async def _apply(self, item: InboxItem, activity: vocab.Activity | None) -> None:
        # A savepoint per item: one bad activity must not undo the rest of the batch.
        try:
            async with self.session.begin_nested():
                outcome = await handle(
                    self.session, self.settings, item.payload, item.signer_host, self.documents.get, activity=activity
                )
        except Rejected as exc:
            move(item, INBOX["rejected"], note=exc.reason)
            log.info("rejected %s from %s: %s", item.activity_uri, item.signer_host, exc.reason)
        except (FetchError, httpx.HTTPError) as exc:
            fail(INBOX, item, str(exc))
        except Exception as exc:  # noqa: BLE001 - keep the item for a later try and say why
            log.exception("failed to apply %s", item.activity_uri)
            fail(INBOX, item, f"{exc.__class__.__name__}: {exc}")
        else:
            move(item, INBOX["applied"], note=outcome)


def _named(obj: Any) -> list[str]:
    """The http(s) ids of the communities and people an object names (`audience`, `attributedTo`), read without
    parsing or checking anything: a hint of what applying it may need."""
    if not isinstance(obj, dict):
        return []
    uris: list[str] = []
    for key in ("audience", "attributedTo"):
        value = obj.get(key)
        for entry in value if isinstance(value, list) else [value]:
            uri = entry.get("id") if isinstance(entry, dict) else entry
            if vocab.is_http_id(uri):
                uris.append(uri)
    return uris[:MAX_NAMED]


def _on(host: str) -> Callable[[Iterable[str]], list[str]]:
    return lambda uris: [uri for uri in uris if host_of(uri) == host]


def _remote_guide(post: vocab.Post, host: str) -> RemoteGuide | None:
    """The guide the batch may take, when its author is named and on its own host; the one-at-a-time path
    says why another is refused."""
    author = mapping.author_uri(post)
    if author is None or host_of(author) != host:
        return None
    person = post.embedded.get(author)
    return mapping.remote_guide(
        post, host, mapping.remote_person(author, host, person if isinstance(person, vocab.Actor) else None)
    )


def _new_guide_post(activity: vocab.Activity, item: InboxItem) -> vocab.Post | None:
    """The embedded Article or Page of a Create or Update from its own host: the kind written in runs."""
    obj = activity.object
    if activity.type not in ("Create", "Update") or not isinstance(obj, vocab.Post) or obj.mentorship is not None:
        return None
    if obj.type not in ("Article", "Page"):
        return None
    # Origin first, as in handle: the actor and the object must both be on the signer's host.
    if host_of(activity.actor) != item.signer_host or host_of(obj.id) != item.signer_host:
        return None
    return obj
