"""Mentorship requests and their private threads: the only code that writes them, for local and remote writes.

The offer's instance decides (capacity, duplicates, closed or gone offers); the requester's instance keeps a copy
that follows what it is told. Every step is recorded as a request event (server/mentorship/events.py): federation
carries it to the other party's instance, notifications tell the local people concerned.
"""

from __future__ import annotations

import uuid
from typing import Literal
from uuid import UUID

from sqlalchemy import func, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from server import changes
from server.accounts.security import Principal
from server.accounts.service import AccountService
from server.communities import rules as community_rules
from server.db import new_id, utcnow
from server.errors import conflict, forbidden, not_found
from server.mentorship import events, schemas
from server.mentorship.request_reads import RequestReads, message_schema
from server.mentorship.rules import (
    LIVE_STATES,
    MAX_WAITING,
    THREAD_STATES,
    WAITING_STATES,
    answered_from,
    message_body,
)
from server.models import MentorshipMessage, MentorshipOffer, MentorshipRequest, User
from server.settings import Settings, host_of

__all__ = ["RequestService", "message_schema", "refuse_with_deleted_offer"]


class RequestService(RequestReads):
    """Every write of a request and its thread; the reads are RequestReads'."""

    # a local person's writes

    async def ask(self, principal: Principal, offer_id: UUID, message: str) -> MentorshipRequest:
        """Ask for a seat. A local offer decides at once; a remote one is asked on its instance (`sending`)."""
        offer = await self.offers.get(offer_id)
        if not principal.can_write:
            raise forbidden("Asking for mentorship needs a write token.")
        if offer.mentor_id == principal.user_id:
            raise forbidden("You cannot ask for your own mentorship offer.")
        if offer.former_peer:
            raise forbidden(f"{offer.instance} is no longer a peer of this instance; ask there: {offer.url}")
        requester = await self.session.get(User, principal.user_id)
        assert requester is not None
        if offer.local:
            community_rules.not_moved(offer.community)  # its mentor now answers on the new home
            self._check_open(offer)
        await self._check_new(offer, requester)
        request_id = new_id()
        request = MentorshipRequest(
            id=request_id, uri=f"{self.settings.base_url}/mentorship/requests/{request_id}", offer=offer,
            requester=requester, message=message.strip(), state="pending" if offer.local else "sending",
            local=True, activity_uri=None if offer.local else self._new_offer_activity(),
        )  # fmt: skip
        self.session.add(request)
        await self.session.flush()
        await events.record(self.session, self.settings, events.RequestEvent("asked", request, requester))
        await self.session.commit()
        return request

    async def retry(self, principal: Principal, request_id: UUID) -> MentorshipRequest:
        """Send a request that could not be delivered once more."""
        request = await self.get(principal, request_id)
        if request.requester_id != principal.user_id or not principal.can_write:
            raise forbidden("Only the person who asked can send a request again.")
        if request.state != "failed":
            raise conflict(f"This request is {request.state}; only a failed one is sent again.")
        await self._check_new(request.offer, request.requester, besides=request.id)
        if not await self._transition(request, ("failed",), "sending"):
            raise conflict("This request is being sent again already.")
        request.activity_uri = self._new_offer_activity()  # a new Offer: answers refer to the newest
        await events.record(self.session, self.settings, events.RequestEvent("asked", request, request.requester))
        await self.session.commit()
        return request

    async def decide(
        self, principal: Principal, request_id: UUID, decision: Literal["accepted", "declined"]
    ) -> MentorshipRequest:
        request = await self.get(principal, request_id)
        offer = request.offer
        if not principal.can_write or offer.mentor_id != principal.user_id and not principal.is_admin:
            raise forbidden("Only the mentor can accept or decline a request.")
        if not offer.local:
            raise forbidden(f"This offer lives on {offer.instance}; its mentor answers there.")
        await self._lock_offer(offer)
        if not await self._transition(request, ("pending",), decision):
            raise conflict(f"This request is already {request.state}.")
        if decision == "accepted" and not await self._take_seat(offer):
            await self.session.rollback()
            raise conflict("Every seat of this offer is taken.")
        await self.offers.announce_seats(offer, decision == "accepted")
        mentor = await self.session.get(User, principal.user_id)
        await events.record(self.session, self.settings, events.RequestEvent(decision, request, mentor))
        if offer.seats_taken >= offer.capacity:
            # The last seat is gone: whoever still waits hears so now, not after waiting for an answer in vain.
            await refuse_waiting(
                self.session, self.settings, offer.id, ("pending",), "Every seat of this offer is taken."
            )
        await self.session.commit()
        return request

    async def withdraw(self, principal: Principal, request_id: UUID) -> MentorshipRequest:
        request = await self.get(principal, request_id)
        if request.requester_id != principal.user_id or not principal.can_write:
            raise forbidden("Only the person who asked can withdraw a request.")
        if not await self._withdraw(request):
            raise conflict(f"This request is already {request.state}.")
        await self.session.commit()
        return request

    async def post_message(self, principal: Principal, request_id: UUID, body_markdown: str) -> MentorshipMessage:
        request = await self.get(principal, request_id)
        author = await self.session.get(User, principal.user_id)
        assert author is not None
        if not principal.can_write or author.id not in (request.requester_id, request.offer.mentor_id):
            raise forbidden("Only the mentor and the person who asked write in this thread.")
        if request.state not in THREAD_STATES:
            raise conflict(f"This request is {request.state}: it has not reached the mentor, so there is no thread.")
        if request.offer.deleted_at is not None:
            raise conflict("This offer was deleted; its threads are closed.")
        message_id = new_id()
        message = MentorshipMessage(
            id=message_id, uri=f"{self.settings.base_url}/mentorship/messages/{message_id}", request_id=request.id,
            author=author, local=True, **message_body(body_markdown),
        )  # fmt: skip
        self.session.add(message)
        await self.session.flush()
        await events.record(self.session, self.settings, events.RequestEvent("message", request, author, message))
        await self.session.commit()
        return message

    # a peer's writes: the caller's transaction, committed by the caller; a refusal is a ProblemError whose
    # detail the protocol sends back as the reason

    async def receive(self, remote: schemas.RemoteRequest, signer_host: str) -> MentorshipRequest | None:
        """A peer's person asks for one of our offers; None when it is a repeat of one we have."""
        if host_of(remote.uri) != signer_host or host_of(remote.requester.uri) != signer_host:
            raise forbidden("a peer can only ask in the name of its own people")
        known = await self.session.scalar(select(MentorshipRequest).where(MentorshipRequest.uri == remote.uri))
        if known is not None:
            if known.local or known.requester.uri != remote.requester.uri:
                raise forbidden("the request belongs to someone else")
            known.activity_uri = remote.activity_uri  # sent again: answers refer to the newest Offer
            return None
        offer = await self._local_offer(remote.offer_uri)
        requester = await AccountService(self.session, self.settings).apply_remote_person(remote.requester)
        if offer.mentor_id == requester.id:
            raise forbidden("a mentor cannot ask for their own offer")
        self._check_open(offer)
        await self._check_new(offer, requester)
        request = MentorshipRequest(
            uri=remote.uri, offer=offer, requester=requester, message=remote.message.strip()[:5000],
            state="pending", local=False, activity_uri=remote.activity_uri,
            created_at=min(remote.published or utcnow(), utcnow()),
        )  # fmt: skip
        self.session.add(request)
        await self.session.flush()
        await events.record(self.session, self.settings, events.RequestEvent("asked", request, requester))
        return request

    async def receive_withdrawal(self, activity_uri: str, actor_uri: str) -> MentorshipRequest | None:
        """The requester's instance says they withdrew; None when there is nothing to withdraw any more."""
        request = await self._remote_request(activity_uri)
        if request.requester.uri != actor_uri:
            raise forbidden("only the person who asked can withdraw the request")
        return request if await self._withdraw(request) else None

    async def receive_answer(
        self, activity_uri: str, actor_uri: str, state: str, reason: str = ""
    ) -> MentorshipRequest | None:
        """The offer's instance answers a request of ours: received (pending), accepted, declined or refused.
        None when the answer changes nothing (a repeat, or news older than what we know)."""
        request = await self.session.scalar(
            select(MentorshipRequest).where(
                MentorshipRequest.activity_uri == activity_uri, MentorshipRequest.local.is_(True)
            )
        )
        if request is None or request.offer.local:
            raise not_found("Mentorship request")
        if actor_uri != request.offer.mentor.uri:
            raise forbidden("only the mentor of the offer answers a request")
        if not await self._transition(request, answered_from(state), state, reason[:500]):
            return None
        step: events.Step = "received" if state == "pending" else state  # type: ignore[assignment]
        await events.record(self.session, self.settings, events.RequestEvent(step, request, request.offer.mentor))
        return request

    async def receive_message(self, remote: schemas.RemoteMessage, signer_host: str) -> MentorshipMessage | None:
        """A message a party wrote on a peer; None for a repeat."""
        if host_of(remote.uri) != signer_host or host_of(remote.author_uri) != signer_host:
            raise forbidden("a peer can only send messages of its own people")
        if await self.session.scalar(select(MentorshipMessage.id).where(MentorshipMessage.uri == remote.uri)):
            return None
        request = await self.session.scalar(
            select(MentorshipRequest).where(MentorshipRequest.uri == remote.request_uri)
        )
        if request is None:
            raise not_found("Mentorship request")
        parties = {request.requester.uri: request.requester, request.offer.mentor.uri: request.offer.mentor}
        author = parties.get(remote.author_uri)
        if author is None or author.local:
            raise forbidden("the author is not the remote party of this request")
        if request.offer.local and request.offer.deleted_at is not None:
            raise conflict("This offer no longer exists.")
        message = MentorshipMessage(
            uri=remote.uri, request_id=request.id, author=author, local=False,
            created_at=min(remote.published or utcnow(), utcnow()), **message_body(remote.body_markdown),
        )  # fmt: skip
        self.session.add(message)
        await self.session.flush()
        await events.record(self.session, self.settings, events.RequestEvent("message", request, author, message))
        return message

    async def delivery_failed(self, activity_uri: str) -> None:
        """The request's Offer could not be delivered: it shows failed, with a way to send it again."""
        request = await self.session.scalar(
            select(MentorshipRequest).where(
                MentorshipRequest.activity_uri == activity_uri, MentorshipRequest.state == "sending"
            )
        )
        if request is None:
            return
        if not await self._transition(
            request, ("sending",), "failed", f"{request.offer.instance} could not be reached."
        ):
            return
        await events.record(self.session, self.settings, events.RequestEvent("failed", request, None))

    # the rules

    def _check_open(self, offer: MentorshipOffer) -> None:
        if offer.status != "open":
            raise conflict("This offer is closed.")
        if offer.seats_taken >= offer.capacity:
            raise conflict("This offer is full.")

    async def _check_new(self, offer: MentorshipOffer, requester: User, besides: UUID | None = None) -> None:
        existing = await self.session.scalar(
            select(MentorshipRequest.id).where(
                MentorshipRequest.offer_id == offer.id,
                MentorshipRequest.requester_id == requester.id,
                MentorshipRequest.state.in_(LIVE_STATES),
                MentorshipRequest.id != besides if besides else true(),
            )
        )
        if existing is not None:
            raise conflict("You have already asked for this offer.")
        await self._check_waiting(requester)

    async def _check_waiting(self, requester: User) -> None:
        waiting = await self.session.scalar(
            select(func.count()).where(
                MentorshipRequest.requester_id == requester.id, MentorshipRequest.state.in_(WAITING_STATES)
            )
        )
        if (waiting or 0) >= MAX_WAITING:
            raise conflict(f"You have {MAX_WAITING} requests waiting for an answer; withdraw one or wait.")

    async def _lock_offer(self, offer: MentorshipOffer) -> None:
        """Lock the offer's row before any of its requests' (PostgreSQL; SQLite has one writer anyway): every
        write that touches both takes them in this order, so two answers at once wait instead of deadlocking."""
        await self.session.execute(select(MentorshipOffer.id).where(MentorshipOffer.id == offer.id).with_for_update())

    async def _take_seat(self, offer: MentorshipOffer) -> bool:
        # One guarded UPDATE: two accepts racing for the last seat cannot both win.
        taken = await self.session.execute(
            update(MentorshipOffer)
            .where(MentorshipOffer.id == offer.id, MentorshipOffer.seats_taken < MentorshipOffer.capacity)
            .values(seats_taken=MentorshipOffer.seats_taken + 1, updated_at=utcnow())
        )
        return bool(taken.rowcount)

    async def _withdraw(self, request: MentorshipRequest) -> bool:
        """Withdraw a live request; False when it is not live any more. The seat it held is freed only if the
        state this withdrawal replaced was accepted, whatever an answer racing with it did."""
        offer = request.offer
        await self._lock_offer(offer)
        held_seat = await self._transition(request, ("accepted",), "withdrawn")
        if not held_seat and not await self._transition(request, ("sending", "pending"), "withdrawn"):
            return False
        freed = held_seat and offer.local
        if freed:
            await self.session.execute(
                update(MentorshipOffer)
                .where(MentorshipOffer.id == offer.id, MentorshipOffer.seats_taken > 0)
                .values(seats_taken=MentorshipOffer.seats_taken - 1, updated_at=utcnow())
            )
        await self.offers.announce_seats(offer, freed)
        await events.record(self.session, self.settings, events.RequestEvent("withdrawn", request, request.requester))
        return True

    async def _local_offer(self, uri: str) -> MentorshipOffer:
        offer = await self.session.scalar(select(MentorshipOffer).where(MentorshipOffer.uri == uri))
        if offer is None or not offer.local or offer.deleted_at is not None:
            raise conflict("This offer no longer exists.")
        return offer

    async def _remote_request(self, activity_uri: str) -> MentorshipRequest:
        request = await self.session.scalar(
            select(MentorshipRequest).where(
                MentorshipRequest.activity_uri == activity_uri, MentorshipRequest.local.is_(False)
            )
        )
        if request is None:
            raise not_found("Mentorship request")
        if request.offer.deleted_at is not None:
            raise conflict("This offer no longer exists.")
        return request

    async def _transition(
        self, request: MentorshipRequest, sources: tuple[str, ...], state: str, reason: str = ""
    ) -> bool:
        return await transition(self.session, request, sources, state, reason)

    def _new_offer_activity(self) -> str:
        """The id of the Offer that carries a request of ours to the offer's instance; its answers name it."""
        return f"{self.settings.base_url}/activities/{uuid.uuid4()}"


async def transition(
    session: AsyncSession, request: MentorshipRequest, sources: tuple[str, ...], state: str, reason: str = ""
) -> bool:
    """Move `request` to `state` only if the database still has it in one of `sources`: of two answers at once
    (a double submit, the mentor's accept and a withdrawal arriving) only one applies, and the other is told."""
    now = utcnow()
    moved = await session.execute(
        update(MentorshipRequest)
        .where(MentorshipRequest.id == request.id, MentorshipRequest.state.in_(sources))
        .values(state=state, reason=reason, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if not moved.rowcount:
        await session.refresh(request)
        return False
    set_committed_value(request, "state", state)
    set_committed_value(request, "reason", reason)
    set_committed_value(request, "updated_at", now)
    return True


async def refuse_with_deleted_offer(session: AsyncSession, settings: Settings, change: changes.Change) -> None:
    """A deleted local offer answers whoever still waits for it: their requests are refused, with the reason."""
    if change.kind != "offer" or change.verb != "Delete" or not change.local:
        return
    await refuse_waiting(session, settings, change.entry_id, WAITING_STATES, "The mentor deleted this offer.")


async def refuse_waiting(
    session: AsyncSession, settings: Settings, offer_id: UUID, states: tuple[str, ...], reason: str
) -> None:
    """Refuse, with `reason`, the offer's requests still in `states`, each told as the mentor's answer."""
    waiting = await session.scalars(
        select(MentorshipRequest).where(MentorshipRequest.offer_id == offer_id, MentorshipRequest.state.in_(states))
    )
    for request in list(waiting):
        if await transition(session, request, states, "refused", reason):
            await events.record(session, settings, events.RequestEvent("refused", request, request.offer.mentor))
