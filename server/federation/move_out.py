"""Moving a local community to its new home on a peer: the protocol side.

The old instance checks the link first: it fetches the target Group (from configured peers only) and moves only
to a Group that names this one in `alsoKnownAs`, so nobody can move a community to a home that does not claim it.
Then, in one transaction, the community is marked moved, the Move goes to the outbox with a delivery to every
following peer, and a job is queued that learns, from the new home's outbox, where each entry went (each new
entry names its old uri in `formerUri`): the old pages redirect to the new ones from then on.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
from litestar import Controller, Request, get, post
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server import jobs
from server.accounts.deps import require, require_writer
from server.accounts.security import Principal
from server.communities import schemas
from server.communities.moving import MoveService
from server.communities.service import CommunityService
from server.db import utcnow
from server.errors import ProblemError, invalid
from server.federation import mapping
from server.federation.fetch import Fetcher, FetchError, instance_fetcher
from server.federation.inbox import KeyStore
from server.federation.outbox import new_activity_uri
from server.federation.signatures import SignatureError, claimed_key_id, key_owner, verify_request
from server.models import Activity, Community, Delivery, Job, Peer
from server.openapi_docs import WRITE, problems
from server.queues import JOBS, fail, move
from server.settings import Settings, host_of

log = logging.getLogger("kith.federation")

LEARN_JOB = "move-learn"
# Pages of the new home's outbox read per attempt: about 10,000 activities.
MAX_PAGES = 100


async def start_move(
    session: AsyncSession, settings: Settings, client: httpx.AsyncClient, principal: Principal, ref: str, target: str
) -> Community:
    """Move the local community `ref` to the Group `target`, or refuse and change nothing."""
    moves = MoveService(session, settings)
    await moves.movable(principal, ref, target)
    fetcher = await instance_fetcher(session, settings, client)
    await session.commit()  # no transaction is held while the peer answers
    try:
        document = await fetcher.get_object(target)
    except FetchError as exc:
        raise ProblemError(502, f"The new home's Group could not be fetched: {exc.reason}") from exc
    if document.get("type") != "Group":
        raise invalid("target", f"{target} is a {str(document.get('type'))[:40]}, not a community's Group")
    community = await moves.movable(principal, ref, target)  # again: it may have moved while we waited
    peers = list(
        await session.scalars(
            select(Peer).where(
                Peer.followed_back.is_(True), Peer.inbox_url.is_not(None), Peer.host.in_(settings.peer_hosts)
            )
        )
    )
    await moves.begin(community, target, claims(document), [peer.host for peer in peers])
    activity = _move_activity(settings, community, target)
    session.add(activity)
    await session.flush()
    for peer in peers:
        session.add(Delivery(activity_seq=activity.seq, inbox_url=peer.inbox_url, peer_host=peer.host))
    session.add(Job(kind=LEARN_JOB, payload={"community_id": str(community.id)}))
    await session.commit()
    jobs.wake()
    log.info("community %s moved to %s; the Move goes to %d peers", community.uri, target, len(peers))
    return community


def claims(document: dict[str, Any]) -> list[str]:
    """The ids a document's `alsoKnownAs` names: one id, a list of them, or objects with ids."""
    value = document.get("alsoKnownAs") or []
    items = value if isinstance(value, list) else [value]
    ids = [item.get("id") if isinstance(item, dict) else item for item in items]
    return [i for i in ids if isinstance(i, str)]


def _move_activity(settings: Settings, community: Community, target: str) -> Activity:
    uri = new_activity_uri(settings)
    now = utcnow()
    payload = {
        "@context": mapping.context(settings.base_url),
        "id": uri,
        "type": "Move",
        "actor": community.uri,
        "object": community.uri,
        "target": target,
        "to": [mapping.PUBLIC],
        "cc": [f"{community.uri}/followers"],
        "published": mapping.iso(now),
    }
    return Activity(
        uri=uri, type="Move", actor_uri=community.uri, object_type="community", object_uri=community.uri,
        community_uri=community.uri, public=True, payload=payload, created_at=now,
    )  # fmt: skip


async def delivered(session: AsyncSession, settings: Settings, payload: dict[str, Any], host: str) -> None:
    """A delivery reached `host`: when it was a Move, that peer has been told (move-status shows it)."""
    if payload.get("type") == "Move" and isinstance(payload.get("object"), str):
        await MoveService(session, settings).mark_notified(payload["object"], host)


class MoveController(Controller):
    path = "/api/v1/communities"
    tags = ["Communities"]

    @post(
        "/{ref:str}/move",
        operation_id="moveCommunity",
        status_code=202,
        summary="Move a community to its new home on a peer (moderator)",
        responses=WRITE | problems(409, 502),
    )
    async def move_community(
        self, ref: str, data: schemas.MoveCreate, request: Request[Any, Any, Any], db: AsyncSession,
        settings: Settings, principal: Principal | None,
    ) -> schemas.Community:  # fmt: skip
        client = request.app.state.http_client
        community = await start_move(db, settings, client, require_writer(principal), ref, data.target)
        return await CommunityService(db, settings).to_schema(community)

    @get(
        "/{ref:str}/move",
        operation_id="getCommunityMove",
        summary="Where a community moved or came from, and which peers have heard (moderator)",
        responses=problems(401, 403, 404),
    )
    async def get_move(
        self, ref: str, db: AsyncSession, settings: Settings, principal: Principal | None
    ) -> schemas.MoveStatus:
        communities = CommunityService(db, settings)
        await communities.require_moderator(require(principal), await communities.get_local(ref))
        return await MoveService(db, settings).status(ref)


class MoveLearner:
    """Worker step: learns where a moved community's entries went, from the new home's outbox, until every one
    is known (retried with the queue's backoff while the new home is down or has not published them all)."""

    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession], client: httpx.AsyncClient):
        self.settings = settings
        self.sessions = sessions
        self.client = client

    async def __call__(self) -> int:
        done = 0
        async with self.sessions() as session:
            for job_id in await jobs.claim(session, Job, kind=LEARN_JOB, limit=1):
                job = await session.get(Job, job_id)
                assert job is not None
                try:
                    unknown = await self._learn(session, uuid.UUID(str(job.payload.get("community_id"))))
                except (FetchError, ValueError) as exc:
                    await session.rollback()
                    job = await session.get(Job, job_id)
                    assert job is not None
                    fail(JOBS, job, str(exc))
                else:
                    if unknown:
                        fail(JOBS, job, f"{unknown} entries not yet found on the new home")
                    else:
                        move(job, JOBS["finished"])
                await session.commit()
                done += 1
        return done

    async def _learn(self, session: AsyncSession, community_id: uuid.UUID) -> int:
        """How many entries are still unknown after reading the new home's outbox once."""
        moves = MoveService(session, self.settings)
        community = await session.get(Community, community_id)
        if community is None or not community.moved_to:
            return 0
        target = community.moved_to
        fetcher = await instance_fetcher(session, self.settings, self.client)
        await session.commit()
        found = await read_new_places(fetcher, target)
        community = await session.get(Community, community_id)
        assert community is not None
        learnt = await moves.learn(community, found)
        await session.commit()
        unknown = await moves.unknown_count(community_id)
        log.info("learnt %d new places for %s; %d still unknown", learnt, community.uri, unknown)
        return unknown


async def read_new_places(fetcher: Fetcher, target: str) -> list[tuple[str, str, str]]:
    """(old uri, new uri, new page) for every entry in the new home's outbox that names its former uri."""
    group = await fetcher.get_object(target)
    outbox = group.get("outbox")
    if not isinstance(outbox, str) or host_of(outbox) != host_of(target):
        raise FetchError(f"{target} has no outbox on its own host")
    collection = await fetcher.get_object(outbox)
    page: Any = collection.get("first")
    found: list[tuple[str, str, str]] = []
    for _ in range(MAX_PAGES):
        if isinstance(page, str):
            if host_of(page) != host_of(target):
                break
            page = await fetcher.get_object(page)
        if not isinstance(page, dict):
            break
        for item in page.get("orderedItems") or []:
            entry = item.get("object") if isinstance(item, dict) else None
            if isinstance(entry, dict) and all(isinstance(entry.get(k), str) for k in ("formerUri", "id")):
                url = entry.get("url") if isinstance(entry.get("url"), str) else entry["id"]
                found.append((entry["formerUri"], entry["id"], url))
        page = page.get("next")
        if page is None:
            break
    return found


async def note_signed_fetch(
    request: Request[Any, Any, Any], db: AsyncSession, settings: Settings, group: Community
) -> None:
    """On the new home: a peer's instance actor fetching a linked Group with a valid signature is checking a
    Move (or following the new home), which is what move-status calls acknowledged. A fetch that is unsigned,
    badly signed or not from a peer is answered all the same, and noted nowhere."""
    if not group.local or not group.also_known_as:
        return
    query = request.scope.get("query_string", b"").decode("latin-1")
    path = request.url.path + (f"?{query}" if query else "")
    try:
        key_id = claimed_key_id(request.method, path, request.headers, url_scheme=request.url.scheme)
        if key_id is None:
            return
        owner = key_owner(key_id)
        host = host_of(owner)
        if host not in settings.peer_hosts or owner != f"{_base_of(owner)}/actor":
            return
        await verify_request(
            request.method, path, request.headers, b"", KeyStore(db, settings, request.app.state),
            url_scheme=request.url.scheme, expected_host=settings.host,
        )  # fmt: skip
    except SignatureError as exc:
        log.info("unverified fetch of %s: %s", group.uri, exc.reason)
        return
    group = await db.get(Community, group.id) or group  # the key store may have committed and expired it
    await MoveService(db, settings).acknowledge(group, host)


def _base_of(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"
