"""Mentorship requests and their private threads: the only code that writes them, for local and remote writes.

The offer's instance decides (capacity, duplicates, closed or gone offers); the requester's instance keeps a copy
that follows what it is told. Every step is recorded as a request event (server/mentorship/events.py): federation
carries it to the other party's instance, notifications tell the local people concerned.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server import changes
from server.accounts.security import Principal
from server.accounts.service import AccountService, person_ref
from server.db import new_id, utcnow
from server.errors import conflict, forbidden, invalid, not_found
from server.markdown import render
from server.mentorship import events, schemas
from server.mentorship.service import MentorshipService, request_schema
from server.models import MentorshipMessage, MentorshipOffer, MentorshipRequest, User
from server.pagination import keyset, split_page
from server.settings import Settings, host_of

# A request holds (or waits for) a seat in these states: one per person per offer.
LIVE_STATES = ("sending", "pending", "accepted")
# Waiting for an answer; a person may have this many at once, so one person cannot flood the mentors.
WAITING_STATES = ("sending", "pending")
MAX_WAITING = 20
MAX_MESSAGE_BYTES = 10 * 1024
# Reached the mentor: only then is there a thread on both sides to write in.
THREAD_STATES = ("pending", "accepted", "declined", "withdrawn")


def message_schema(message: MentorshipMessage) -> schemas.Message:
    return schemas.Message(
        id=message.id, uri=message.uri, author=person_ref(message.author), body_markdown=message.body_markdown,
        body_html=message.body_html, created_at=message.created_at,
    )  # fmt: skip


class RequestService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        self.offers = MentorshipService(session, settings)

    def schema(self, request: MentorshipRequest) -> schemas.MentorshipRequest:
        return request_schema(request, self.settings)

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
            self._check_open(offer)
        await self._check_new(offer, requester)
        request_id = new_id()
        request = MentorshipRequest(
            id=request_id, uri=f"{self.settings.base_url}/mentorship/requests/{request_id}", offer=offer,
            requester=requester, message=message.strip(), state="pending" if offer.local else "sending",
            local=True,
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
        await self._check_waiting(request.requester)
        self._move(request, "sending")
        await events.record(self.session, self.settings, events.RequestEvent("asked", request, request.requester))
        await self.session.commit()
        return request

    async def decide(self, principal: Principal, request_id: UUID, decision: str) -> MentorshipRequest:
        request = await self.get(principal, request_id)
        offer = request.offer
        if not principal.can_write or offer.mentor_id != principal.user_id and not principal.is_admin:
            raise forbidden("Only the mentor can accept or decline a request.")
        if not offer.local:
            raise forbidden(f"This offer lives on {offer.instance}; its mentor answers there.")
        if request.state != "pending":
            raise conflict(f"This request is already {request.state}.")
        if decision == "accepted" and not await self._take_seat(offer):
            await self.session.rollback()
            raise conflict("Every seat of this offer is taken.")
        self._move(request, decision)
        await self.offers.announce_seats(offer, decision == "accepted")
        mentor = await self.session.get(User, principal.user_id)
        await events.record(self.session, self.settings, events.RequestEvent(decision, request, mentor))  # type: ignore[arg-type]
        if offer.seats_taken >= offer.capacity:
            await self._refuse_waiting(offer, mentor)
        await self.session.commit()
        return request

    async def _refuse_waiting(self, offer: MentorshipOffer, mentor: User | None) -> None:
        """The last seat is gone: whoever still waits hears so now, rather than waiting for an answer that
        cannot come."""
        waiting = await self.session.scalars(
            select(MentorshipRequest).where(
                MentorshipRequest.offer_id == offer.id, MentorshipRequest.state == "pending"
            )
        )
        for request in list(waiting):
            self._move(request, "refused", "Every seat of this offer is taken.")
            await events.record(self.session, self.settings, events.RequestEvent("refused", request, mentor))

    async def withdraw(self, principal: Principal, request_id: UUID) -> MentorshipRequest:
        request = await self.get(principal, request_id)
        if request.requester_id != principal.user_id or not principal.can_write:
            raise forbidden("Only the person who asked can withdraw a request.")
        if request.state not in LIVE_STATES:
            raise conflict(f"This request is already {request.state}.")
        await self._withdraw(request)
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
        message_id = new_id()
        message = MentorshipMessage(
            id=message_id, uri=f"{self.settings.base_url}/mentorship/messages/{message_id}", request_id=request.id,
            author=author, local=True, **self._body(body_markdown),
        )  # fmt: skip
        self.session.add(message)
        await self.session.flush()
        await events.record(self.session, self.settings, events.RequestEvent("message", request, author, message))
        await self.session.commit()
        return message

    # reads

    async def get(self, principal: Principal | None, request_id: UUID) -> MentorshipRequest:
        """A request its parties, the moderators of a local offer's community and admins may see; 404 to others,
        so that nobody learns a private request exists."""
        request = await self.session.get(MentorshipRequest, request_id)
        if request is None or principal is None or not await self.may_see(principal, request):
            raise not_found("Mentorship request")
        return request

    async def may_see(self, principal: Principal, request: MentorshipRequest) -> bool:
        if principal.is_admin or principal.user_id in (request.requester_id, request.offer.mentor_id):
            return True
        offer = request.offer
        return offer.local and await self.offers.communities.role(principal, offer.community) == "moderator"

    async def messages(
        self, principal: Principal, request_id: UUID, limit: int, cursor: str | None
    ) -> tuple[list[schemas.Message], str | None]:
        """The thread, newest first."""
        request = await self.get(principal, request_id)
        query = select(MentorshipMessage).where(MentorshipMessage.request_id == request.id)
        rows = list((await self.session.scalars(keyset(query, MentorshipMessage, limit, cursor))).unique())
        page, next_cursor = split_page(rows, limit)
        return [message_schema(m) for m in page], next_cursor

    async def for_offer(
        self, principal: Principal, offer_id: UUID, limit: int, cursor: str | None
    ) -> tuple[list[schemas.MentorshipRequest], str | None]:
        offer = await self.offers.get(offer_id)
        if not await self.offers.is_mentor_or_moderator(principal, offer):
            raise forbidden("Only the mentor or a moderator can see the requests for this offer.")
        query = select(MentorshipRequest).where(MentorshipRequest.offer_id == offer.id)
        return await self._page(query, limit, cursor)

    async def mine(
        self, principal: Principal, mine: bool, limit: int, cursor: str | None
    ) -> tuple[list[schemas.MentorshipRequest], str | None]:
        """mine=true: the requests I made; mine=false: the requests on offers I mentor (from anywhere)."""
        if mine:
            query = select(MentorshipRequest).where(MentorshipRequest.requester_id == principal.user_id)
        else:
            mentored = select(MentorshipOffer.id).where(MentorshipOffer.mentor_id == principal.user_id)
            query = select(MentorshipRequest).where(MentorshipRequest.offer_id.in_(mentored.scalar_subquery()))
        return await self._page(query, limit, cursor)

    async def _page(self, query, limit: int, cursor: str | None):  # type: ignore[no-untyped-def]
        rows = list((await self.session.scalars(keyset(query, MentorshipRequest, limit, cursor))).unique())
        page, next_cursor = split_page(rows, limit)
        return [self.schema(r) for r in page], next_cursor

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
            created_at=remote.published or utcnow(),
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
        if request.state not in LIVE_STATES:
            return None
        await self._withdraw(request)
        return request

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
        allowed = {"pending": ("sending", "failed"), "accepted": ("sending", "failed", "pending")}.get(
            state, ("sending", "failed", "pending", "accepted")
        )
        if request.state not in allowed:
            return None
        self._move(request, state, reason[:500])
        step = "received" if state == "pending" else state
        await events.record(self.session, self.settings, events.RequestEvent(step, request, request.offer.mentor))  # type: ignore[arg-type]
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
            created_at=min(remote.published or utcnow(), utcnow()), **self._body(remote.body_markdown),
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
        self._move(request, "failed", f"{request.offer.instance} could not be reached.")
        await events.record(self.session, self.settings, events.RequestEvent("failed", request, None))

    # the rules

    def _check_open(self, offer: MentorshipOffer) -> None:
        if offer.status != "open":
            raise conflict("This offer is closed.")
        if offer.seats_taken >= offer.capacity:
            raise conflict("This offer is full.")

    async def _check_new(self, offer: MentorshipOffer, requester: User) -> None:
        existing = await self.session.scalar(
            select(MentorshipRequest.id).where(
                MentorshipRequest.offer_id == offer.id,
                MentorshipRequest.requester_id == requester.id,
                MentorshipRequest.state.in_(LIVE_STATES),
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

    async def _take_seat(self, offer: MentorshipOffer) -> bool:
        # One guarded UPDATE: two accepts racing for the last seat cannot both win.
        taken = await self.session.execute(
            update(MentorshipOffer)
            .where(MentorshipOffer.id == offer.id, MentorshipOffer.seats_taken < MentorshipOffer.capacity)
            .values(seats_taken=MentorshipOffer.seats_taken + 1, updated_at=utcnow())
        )
        return bool(taken.rowcount)

    async def _withdraw(self, request: MentorshipRequest) -> None:
        offer = request.offer
        freed = request.state == "accepted" and offer.local
        if freed:
            await self.session.execute(
                update(MentorshipOffer)
                .where(MentorshipOffer.id == offer.id, MentorshipOffer.seats_taken > 0)
                .values(seats_taken=MentorshipOffer.seats_taken - 1, updated_at=utcnow())
            )
        self._move(request, "withdrawn")
        await self.offers.announce_seats(offer, freed)
        await events.record(self.session, self.settings, events.RequestEvent("withdrawn", request, request.requester))

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

    def _move(self, request: MentorshipRequest, state: str, reason: str = "") -> None:
        request.state = state
        request.reason = reason
        request.updated_at = utcnow()

    def _body(self, body_markdown: str) -> dict[str, str]:
        text = body_markdown.strip()
        if not text:
            raise invalid("body_markdown", "must not be empty")
        if len(text.encode()) > MAX_MESSAGE_BYTES:
            raise invalid("body_markdown", f"must be at most {MAX_MESSAGE_BYTES // 1024} KB")
        return {"body_markdown": text, "body_html": render(text)}


async def refuse_with_deleted_offer(session: AsyncSession, settings: Settings, change: changes.Change) -> None:
    """A deleted local offer answers whoever still waits for it: their requests are refused, with the reason."""
    if change.kind != "offer" or change.verb != "Delete" or not change.local:
        return
    waiting = await session.scalars(
        select(MentorshipRequest).where(
            MentorshipRequest.offer_id == change.entry_id, MentorshipRequest.state.in_(WAITING_STATES)
        )
    )
    for request in list(waiting):
        request.state, request.reason, request.updated_at = "refused", "The mentor deleted this offer.", utcnow()
        await events.record(session, settings, events.RequestEvent("refused", request, request.offer.mentor))
