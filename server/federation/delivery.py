"""Deliver queued activities: sign, POST, then mark sent, retry later, or give up."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db import utcnow
from server.federation import move_out, private
from server.federation.keys import key_id_for, local_key
from server.federation.signatures import sign_request
from server.jobs import claim
from server.models import Activity, Delivery, Peer
from server.queues import DELIVERIES, MAX_RETRY, fail, move
from server.settings import Settings, host_of

BATCH = 20
# A peer that answers these may succeed on a later try; any other 4xx will never accept it.
RETRYABLE_4XX = {401, 408, 429}


@dataclass(frozen=True)
class Outcome:
    delivery_id: object
    ok: bool
    permanent: bool
    error: str
    wait: timedelta | None = None  # what the peer asked for in Retry-After


def classify(status: int) -> tuple[bool, bool]:
    """(delivered, permanent failure) for an HTTP status."""
    if 200 <= status < 300:
        return True, False
    if 400 <= status < 500 and status not in RETRYABLE_4XX:
        return False, True
    return False, False


def asked_to_wait(response: httpx.Response) -> timedelta | None:
    """Retry-After on a 429 or 503, in seconds or as an HTTP date. Capped at the longest backoff: a peer may
    ask for patience, not for silence."""
    value = response.headers.get("retry-after", "").strip()
    if response.status_code not in (429, 503) or not value:
        return None
    if value.isdigit():
        wait = timedelta(seconds=int(value))
    else:
        try:
            wait = parsedate_to_datetime(value) - utcnow()
        except (TypeError, ValueError):
            return None
    return min(max(wait, timedelta(0)), MAX_RETRY)


class Deliverer:
    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession], client: httpx.AsyncClient):
        self.settings = settings
        self.sessions = sessions
        self.client = client

    async def __call__(self) -> int:
        async with self.sessions() as session:
            ids = await claim(session, Delivery, limit=BATCH)
            if not ids:
                return 0
            rows = (
                await session.execute(
                    select(Delivery, Activity.payload)
                    .join(Activity, Activity.seq == Delivery.activity_seq)
                    .where(Delivery.id.in_(ids))
                )
            ).all()
            # In a session of its own: when another worker makes an actor's key at the same moment, `local_key`
            # rolls its session back, which would expire the deliveries loaded here.
            async with self.sessions() as key_session:
                keys = await self._signing_keys(key_session, {payload.get("actor") for _, payload in rows})
            outcomes = await asyncio.gather(*(self._send(delivery, payload, keys) for delivery, payload in rows))
            await self._record(session, {d.id: (d, payload) for d, payload in rows}, outcomes)
            return len(rows)

    async def _signing_keys(self, session: AsyncSession, actors: set[Any]) -> dict[str, str]:
        """The private key of each local actor among `actors`. An activity is signed by its own actor, never by
        the instance on its behalf: a receiver takes an activity only from the actor whose key signed it."""
        local = sorted(a for a in actors if isinstance(a, str) and a.startswith(self.settings.base_url + "/"))
        return {actor: (await local_key(session, actor)).private_key_pem or "" for actor in local}

    async def _send(self, delivery: Delivery, payload: dict, keys: dict[str, str]) -> Outcome:
        # A removed peer still gets the Undo(Follow) that tells it so, and nothing else.
        if delivery.peer_host not in self.settings.peer_hosts and payload.get("type") != "Undo":
            return Outcome(delivery.id, False, True, "no longer a configured peer")
        if host_of(delivery.inbox_url) != delivery.peer_host:
            # Checked when the inbox was learned, and again here: rows from before that check, or written by hand.
            return Outcome(delivery.id, False, True, f"the inbox is not on the peer's host {delivery.peer_host}")
        actor = payload.get("actor")
        if actor not in keys:
            return Outcome(delivery.id, False, True, f"the activity's actor {actor!r} is not a local actor")
        body = json.dumps(payload).encode()
        headers = sign_request(
            "POST", delivery.inbox_url, body, key_id_for(actor), keys[actor],
            {"Content-Type": "application/activity+json", "Accept": "application/activity+json"},
        )  # fmt: skip
        try:
            async with asyncio.timeout(30):
                response = await self.client.post(delivery.inbox_url, content=body, headers=headers)
        except (httpx.HTTPError, TimeoutError) as exc:
            return Outcome(delivery.id, False, False, f"{exc.__class__.__name__}: {exc}")
        ok, permanent = classify(response.status_code)
        error = "" if ok else f"HTTP {response.status_code}: {response.text[:300]}"
        return Outcome(delivery.id, ok, permanent, error, asked_to_wait(response))

    async def _record(self, session: AsyncSession, deliveries: dict, outcomes: list[Outcome]) -> None:
        succeeded: set[str] = set()
        errors: dict[str, str] = {}  # the batch's last error for each peer
        for outcome in outcomes:
            delivery, payload = deliveries[outcome.delivery_id]
            if outcome.ok:
                delivery.attempts += 1
                move(delivery, DELIVERIES["sent"])
                succeeded.add(delivery.peer_host)
                await move_out.delivered(session, self.settings, payload, delivery.peer_host)
            else:
                fail(DELIVERIES, delivery, outcome.error, permanent=outcome.permanent)
                if outcome.wait and delivery.next_attempt_at is not None:
                    delivery.next_attempt_at = max(delivery.next_attempt_at, utcnow() + outcome.wait)
                if delivery.state == DELIVERIES["give_up"].target:
                    await private.delivery_given_up(session, self.settings, payload)
                errors[delivery.peer_host] = outcome.error
        await session.commit()
        # Once per peer and batch, after the deliveries' commit: a peer's row is shared by every worker delivering
        # to it, and updated with each delivery inside the batch's transaction, its lock made the workers take turns.
        for host in succeeded:
            await _peer_health(session, host, success=True)
        for host, error in errors.items():
            await _peer_health(session, host, error=error)
        await session.commit()


async def _peer_health(session: AsyncSession, host: str, *, success: bool = False, error: str = "") -> None:
    now = utcnow()
    values = {"last_success_at": now} if success else {"last_error": error[:2000], "last_error_at": now}
    await session.execute(update(Peer).where(Peer.host == host).values(**values))
