"""POST /inbox: check, verify, store once, 202. Processing happens later, in the worker."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from litestar import Request, Response, Router, post
from litestar.datastructures import State
from sqlalchemy import bindparam, select
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from server.db import fetch_all, utcnow
from server.errors import ProblemError, has_nul
from server.federation import keys, vocab
from server.federation.fetch import Fetcher, FetchError, instance_fetcher
from server.federation.signatures import SignatureError, claimed_key_id, key_owner, verify_request
from server.models import ActorKey
from server.settings import Settings, host_of

log = logging.getLogger("kith.federation")

# A peer's cached key, read for every request it signs: on SQLite a quick read on the loop, no transaction.
_CACHED_KEY = select(ActorKey.public_key_pem).where(
    ActorKey.key_id == bindparam("key_id"), ActorKey.private_key_pem.is_(None)
)


class RecentKeys:
    """The peers' public keys this process read from actor_keys in the last MEMORY_SECONDS, by keyId.

    A peer signs every delivery with the same key: reading it for each request cost PostgreSQL a pooled
    connection per request, which a stream of deliveries used up, leaving the API's reads waiting for one. What
    is remembered changes no answer: a key that stops verifying is forgotten and fetched again (verify_request
    asks once more with refresh), and a peer that is removed is refused before its key is looked at.
    """

    MEMORY_SECONDS = 60.0
    MAX_KEYS = 1000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._keys: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def get(self, key_id: str) -> str | None:
        at, pem = self._keys.get(key_id, (float("-inf"), None))
        return pem if self.clock() - at < self.MEMORY_SECONDS else None

    def put(self, key_id: str, pem: str) -> None:
        self._keys[key_id] = (self.clock(), pem)
        self._keys.move_to_end(key_id)
        while len(self._keys) > self.MAX_KEYS:
            self._keys.popitem(last=False)

    def forget(self, key_id: str) -> None:
        self._keys.pop(key_id, None)


class KeyStore:
    """Public keys of peers' actors: remembered a while (RecentKeys), cached in actor_keys, fetched (signed, from
    peers only) when missing.

    A session is opened only to fetch a key: the cached one, read for nearly every request, needs none."""

    def __init__(self, settings: Settings, state: State) -> None:
        self.settings = settings
        self.state = state

    async def __call__(self, key_id: str, refresh: bool) -> str | None:
        recent: RecentKeys = self.state.recent_keys
        if refresh:
            recent.forget(key_id)
        else:
            if pem := recent.get(key_id):
                return pem
            cached = await fetch_all(self.state.engine, _CACHED_KEY, {"key_id": key_id}, quick=True)
            if cached and cached[0][0]:
                recent.put(key_id, str(cached[0][0]))
                return str(cached[0][0])
        async with self.state.sessionmaker() as session:
            fetcher = await instance_fetcher(session, self.settings, self.state.http_client)
            await session.commit()  # no transaction is held while the peer answers
            pem = await self.state.key_fetches.fetch(
                key_id, host_of(key_owner(key_id)), lambda: _fetch_key(fetcher, key_id)
            )
            if pem is not None:
                await _remember(session, key_id, key_owner(key_id), pem)
        return pem


async def _remember(session: AsyncSession, key_id: str, owner: str, pem: str) -> None:
    key = await session.scalar(select(ActorKey).where(ActorKey.key_id == key_id))
    if key is None:
        session.add(ActorKey(key_id=key_id, owner_uri=owner, public_key_pem=pem))
    elif key.private_key_pem is None:
        key.public_key_pem, key.fetched_at = pem, utcnow()
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()


async def _fetch_key(fetcher: Fetcher, key_id: str) -> str | None:
    try:
        return _owned_key(vocab.parse_object(await fetcher.get_key_owner(key_owner(key_id))), key_id)
    except (FetchError, vocab.VocabError):
        return None


def _owned_key(actor: vocab.APObject | None, key_id: str) -> str | None:
    """The PEM of `key_id` when the actor document vouches for it: the key is the actor's own (its owner is the
    actor, and the actor is the keyId's document), and an RSA key is strong enough. Another actor's key must
    not sign for this one (CVE-2024-23832)."""
    if not isinstance(actor, vocab.Actor) or actor.id != key_owner(key_id):
        return None
    key = next((k for k in actor.public_keys if k.id == key_id), None)
    if key is None or key.owner != actor.id or not keys.strong_enough(key.pem):
        return None
    return key.pem


async def receive(request: Request[Any, Any, Any], settings: Settings, state: State) -> Response[Any]:
    body = await request.body()
    try:
        key_id = claimed_key_id(
            request.method, _path_with_query(request), request.headers, url_scheme=request.url.scheme
        )
    except SignatureError as exc:
        raise ProblemError(401, f"Signature rejected: {exc.reason}") from exc
    if key_id is None:
        raise ProblemError(401, "Inbox requests must carry an HTTP signature.")
    signer_host = host_of(key_owner(key_id))
    # Checked before any key fetch: a stranger must not make us send requests anywhere.
    if signer_host not in settings.peer_hosts:
        raise ProblemError(403, f"{signer_host or 'the signer'} is not a peer of this instance.")
    # Per peer host, counted only once the signature verifies: a stranger naming a peer's key cannot spend
    # that peer's allowance. A peer over it is turned away before verifying, and retries after Retry-After.
    state.limiter.refuse_if_spent("inbox", signer_host)
    try:
        verified = await verify_request(
            request.method, _path_with_query(request), request.headers, body, KeyStore(settings, state),
            url_scheme=request.url.scheme, expected_host=settings.host,
        )  # fmt: skip
    except SignatureError as exc:
        raise ProblemError(401, f"Signature rejected: {exc.reason}") from exc
    # The allowlist was checked against the keyId we read; it must be the key that was verified.
    if verified.key_id != key_id:
        raise ProblemError(401, "Signature rejected: more than one keyId in the signature headers.")
    state.limiter.check("inbox", signer_host)
    payload = _parse(body)
    # An activity id names its origin: a peer may only send its own, or it could shadow another's by id.
    if host_of(payload["id"]) != signer_host:
        raise ProblemError(403, f"The activity id is not on the signer's host {signer_host}.")
    # The key vouches for one actor: a peer's key must not speak for another actor, even on its own host.
    if _actor_id(payload.get("actor")) != key_owner(verified.key_id):
        raise ProblemError(403, "The activity's actor is not the owner of the key that signed it.")
    try:
        await state.inbox_writer.store(payload["id"], signer_host, payload)
    except (IntegrityError, DataError) as exc:
        log.error("the inbox could not store %s from %s: %s", payload["id"], signer_host, exc)
        raise ProblemError(400, "The activity could not be stored.") from exc
    except (SQLAlchemyError, OSError) as exc:  # the database could not be reached, or not in time: come back
        log.warning("the inbox could not store %s from %s now: %s", payload["id"], signer_host, exc)
        raise ProblemError(503, "The activity could not be stored now.", headers={"Retry-After": "30"}) from exc
    return Response(None, status_code=202)


def _actor_id(actor: object) -> object:
    """The id an activity's `actor` names, whether given as a URI, an embedded object or a list of one."""
    if isinstance(actor, list) and len(actor) == 1:
        actor = actor[0]
    return actor.get("id") if isinstance(actor, dict) else actor


def _path_with_query(request: Request[Any, Any, Any]) -> str:
    query = request.scope.get("query_string", b"").decode("latin-1")
    return request.url.path + (f"?{query}" if query else "")


def _parse(body: bytes) -> dict[str, Any]:
    """The activity, or a 400 that says what is wrong: nothing a peer sends may end as a 500 or a stored item
    that can never be applied (PostgreSQL cannot store NUL in text; a deep document is never walked)."""
    if has_nul(body):
        raise ProblemError(400, "The activity must not contain NUL characters.")
    try:
        payload = dict(vocab.load_document(body))
    except vocab.VocabError as exc:
        raise ProblemError(400, f"The body is not an acceptable activity: {exc.reason}.") from exc
    if not vocab.is_http_id(payload.get("id")):
        raise ProblemError(400, "The activity needs an http(s) id.")
    return payload


@post("/inbox", status_code=202)
async def shared_inbox(request: Request[Any, Any, Any], settings: Settings, state: State) -> Response[Any]:
    return await receive(request, settings, state)


@post("/actor/inbox", status_code=202)
async def instance_inbox(request: Request[Any, Any, Any], settings: Settings, state: State) -> Response[Any]:
    return await receive(request, settings, state)


@post("/c/{ref:str}/inbox", status_code=202)
async def community_inbox(ref: str, request: Request[Any, Any, Any], settings: Settings, state: State) -> Response[Any]:
    return await receive(request, settings, state)


@post("/u/{username:str}/inbox", status_code=202)
async def person_inbox(
    username: str, request: Request[Any, Any, Any], settings: Settings, state: State
) -> Response[Any]:
    return await receive(request, settings, state)


inbox_router = Router(
    path="/", route_handlers=[shared_inbox, instance_inbox, community_inbox, person_inbox], include_in_schema=False
)
