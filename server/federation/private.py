"""Mentorship across instances: a request, its answers and its thread, addressed to one person only.

The exchange has FEP-0837's shape. The requester's actor sends `Offer` whose object is the request (an
`Agreement` `inReplyTo` the mentorship offer); the mentor's actor answers `TentativeAccept` (received, pending),
then `Accept` or `Reject` (with the Kith `status`: "declined" by the mentor or "refused" by the offer's rules,
and a `summary` saying why); `Undo` of the Offer withdraws it; each message is a `Note` `inReplyTo` the request.
Every one is addressed to the other party only: never Public, never in an outbox collection (outbox.send),
never indexed. docs/federation.md shows each shape.

Two halves: `on_request_event` hears the request service's events and sends what the other party's instance
needs; the handlers below apply what a peer sends, through the same service.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.schemas import RemotePerson
from server.db import utcnow
from server.errors import ProblemError, conflict
from server.federation import mapping, outbox, vocab
from server.markdown import render
from server.mentorship import events, schemas
from server.mentorship.requests import RequestService
from server.models import DeletedObject, MentorshipMessage, MentorshipOffer, MentorshipRequest, Peer, User
from server.settings import Settings, host_of

log = logging.getLogger("kith.federation")


# --- sending ---------------------------------------------------------------------------------------------


async def on_request_event(session: AsyncSession, settings: Settings, event: events.RequestEvent) -> None:
    """Send the other party's instance what this step means to it; nothing when both parties are here."""
    request = event.request
    offer = request.offer
    asking_out = request.local and not offer.local  # our person, a peer's offer
    answering = offer.local and not request.local  # a peer's person, our offer
    if event.step == "asked" and asking_out:
        await _send_offer(session, settings, request)
    elif event.step == "asked" and answering:
        await _send_answer(session, settings, request, "TentativeAccept")
    elif event.step in ("accepted", "declined", "refused") and answering:
        await _send_answer(session, settings, request, "Accept" if event.step == "accepted" else "Reject")
    elif event.step == "withdrawn" and asking_out:
        await _send_undo(session, settings, request)
    elif event.step == "message" and event.message is not None and event.message.local:
        await _send_message(session, settings, request, event.message)


async def _send_offer(session: AsyncSession, settings: Settings, request: MentorshipRequest) -> None:
    offer, requester = request.offer, request.requester
    assert request.activity_uri is not None  # named by the request service when it asks a peer
    activity_uri = request.activity_uri
    agreement = {
        "id": request.uri,
        "type": "Agreement",
        "attributedTo": requester.uri,
        "inReplyTo": offer.uri,
        "to": [offer.mentor.uri],
        **mapping.content(_html(request.message), request.message),
        "published": mapping.iso(request.created_at),
    }
    document = _activity(settings, activity_uri, "Offer", requester.uri, offer.mentor.uri, agreement)
    document["target"] = offer.uri
    await _deliver(session, settings, document, offer.mentor.uri, required=True)


async def _send_answer(session: AsyncSession, settings: Settings, request: MentorshipRequest, kind: str) -> None:
    await answer(session, settings, request.offer.mentor.uri, request.requester.uri, request.activity_uri or "",
                 kind, status=request.state, reason=request.reason)  # fmt: skip


async def answer(
    session: AsyncSession, settings: Settings, mentor: str, requester: str, offer_activity: str, kind: str,
    *, status: str = "", reason: str = "",
) -> None:  # fmt: skip
    """Answer an Offer: TentativeAccept, Accept, or Reject with its status and reason."""
    document = _activity(settings, outbox.new_activity_uri(settings), kind, mentor, requester, offer_activity)
    if kind == "Reject":
        document["status"] = status if status in ("declined", "refused") else "refused"
        if reason:
            document["summary"] = reason
    await _deliver(session, settings, document, requester)


async def _send_undo(session: AsyncSession, settings: Settings, request: MentorshipRequest) -> None:
    requester, mentor = request.requester, request.offer.mentor
    offered = {"id": request.activity_uri, "type": "Offer", "actor": requester.uri, "object": request.uri}
    document = _activity(settings, outbox.new_activity_uri(settings), "Undo", requester.uri, mentor.uri, offered)
    await _deliver(session, settings, document, mentor.uri)


async def _send_message(
    session: AsyncSession, settings: Settings, request: MentorshipRequest, message: MentorshipMessage
) -> None:
    author = message.author
    other = request.offer.mentor if author.id == request.requester_id else request.requester
    if other.local:
        return
    note = {
        "id": message.uri,
        "type": "Note",
        "attributedTo": author.uri,
        "to": [other.uri],
        "inReplyTo": request.uri,
        "context": request.uri,
        **mapping.content(message.body_html, message.body_markdown),
        "published": mapping.iso(message.created_at),
    }
    document = _activity(settings, outbox.new_activity_uri(settings), "Create", author.uri, other.uri, note)
    await _deliver(session, settings, document, other.uri, required=True)


def _activity(settings: Settings, uri: str, kind: str, actor: str, to: str, obj: Any) -> dict[str, Any]:
    return {
        "@context": mapping.context(settings.base_url),
        "id": uri,
        "type": kind,
        "actor": actor,
        "to": [to],
        "object": obj,
        "published": mapping.iso(utcnow()),
    }


async def _deliver(
    session: AsyncSession, settings: Settings, document: dict[str, Any], to: str, *, required: bool = False
) -> None:
    """Queue the activity for the inbox of the person `to`'s instance: only a configured peer's.

    When that instance is not a peer (any more, or not yet answering), what a person asks or writes is refused
    (`required`); an answer or a withdrawal is not sent, and the local change it reports stands.
    """
    host = host_of(to)
    inbox = await session.scalar(select(Peer.inbox_url).where(Peer.host == host, Peer.host.in_(settings.peer_hosts)))
    if inbox is None:
        if required:
            raise conflict(f"{host} is not a peer of this instance (or has not answered yet); try again later.")
        log.warning("not sending %s to %s: it is not a peer of this instance", document["type"], host)
        return
    await outbox.send(session, settings, document, inbox_url=inbox, peer_host=host)


def _html(markdown: str) -> str:
    return render(markdown) if markdown.strip() else ""


# --- receiving -------------------------------------------------------------------------------------------


class Refused(Exception):
    """The peer's activity is refused for good: `reason` goes back to it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def receive_offer(
    session: AsyncSession, settings: Settings, activity: vocab.Activity, signer_host: str, requester: RemotePerson
) -> str:
    """A peer's person asks for one of our offers. Whatever refuses it (the offer's rules, a request withdrawn
    before it arrived) is answered with Reject and the reason, and changes nothing else; a repeat is answered
    with the request's present state."""
    agreement = activity.object
    if not isinstance(agreement, vocab.Post) or agreement.type != "Agreement" or agreement.in_reply_to is None:
        raise Refused("an Offer must carry the request: an Agreement inReplyTo the mentorship offer")
    if agreement.is_public or activity.is_public:
        raise Refused("a mentorship request is private: it must not be addressed to Public")
    if mapping.author_uri(agreement) != activity.actor:
        raise Refused("the request's attributedTo is not the actor")
    mentor = await _local_mentor(session, agreement.in_reply_to)
    if mentor is None:
        raise Refused("the request is not for a mentorship offer of this instance")
    markdown, _html_body = mapping.body(agreement)
    remote = schemas.RemoteRequest(
        uri=agreement.id, activity_uri=activity.id, offer_uri=agreement.in_reply_to, requester=requester,
        message=markdown, published=agreement.published,
    )  # fmt: skip
    try:
        if await session.scalar(select(DeletedObject.id).where(DeletedObject.uri == agreement.id)):
            raise conflict("This request was withdrawn before it arrived.")
        async with session.begin_nested():
            request = await RequestService(session, settings).receive(remote, signer_host)
    except ProblemError as exc:
        await answer(session, settings, mentor.uri, activity.actor, activity.id, "Reject", status="refused",
                     reason=exc.detail)  # fmt: skip
        return f"refused request: {exc.detail}"
    if request is None:
        known = await session.scalar(select(MentorshipRequest).where(MentorshipRequest.uri == agreement.id))
        assert known is not None
        kind = {"pending": "TentativeAccept", "accepted": "Accept"}.get(known.state, "Reject")
        await _send_answer(session, settings, known, kind)
        return f"repeated request, answered {known.state}"
    return "request stored"


async def receive_answer(session: AsyncSession, settings: Settings, activity: vocab.Activity) -> str:
    """The mentor's instance answers one of our requests."""
    offered = activity.object.id if isinstance(activity.object, vocab.Activity) else activity.object_id
    if activity.type == "TentativeAccept":
        state = "pending"
    elif activity.type == "Accept":
        state = "accepted"
    else:
        state = "declined" if activity.status == "declined" else "refused"
    reason = (activity.summary or "")[:500] if state in ("declined", "refused") else ""
    try:
        request = await RequestService(session, settings).receive_answer(offered, activity.actor, state, reason)
    except ProblemError as exc:
        raise Refused(exc.detail) from exc
    return f"request {state}" if request is not None else "ignored answer that changes nothing"


async def is_request_answer(session: AsyncSession, activity: vocab.Activity) -> bool:
    """Whether an Accept or Reject answers one of our mentorship requests rather than a Follow."""
    inner = activity.object
    if isinstance(inner, vocab.Activity):
        return inner.type == "Offer"
    if activity.type == "TentativeAccept":
        return True
    found = await session.scalar(
        select(MentorshipRequest.id).where(MentorshipRequest.activity_uri == activity.object_id)
    )
    return found is not None


async def receive_undo(session: AsyncSession, settings: Settings, activity: vocab.Activity) -> str:
    offered = activity.object
    assert isinstance(offered, vocab.Activity)  # handlers route only an Undo of an embedded Offer here
    known = await session.scalar(select(MentorshipRequest.id).where(MentorshipRequest.activity_uri == offered.id))
    if known is None:
        # Withdrawn before its Offer arrived (each is retried on its own schedule): remember, so that the Offer
        # arriving late is refused instead of taking a seat for someone who no longer wants it.
        if host_of(offered.object_id) == host_of(activity.actor) and not await session.scalar(
            select(DeletedObject.id).where(DeletedObject.uri == offered.object_id)
        ):
            session.add(DeletedObject(uri=offered.object_id))
        return "withdrawn before it arrived"
    try:
        request = await RequestService(session, settings).receive_withdrawal(offered.id, activity.actor)
    except ProblemError as exc:
        raise Refused(exc.detail) from exc
    return "request withdrawn" if request is not None else "ignored withdrawal of a closed request"


async def receive_message(
    session: AsyncSession, settings: Settings, activity: vocab.Activity, note: vocab.Post, signer_host: str
) -> str:
    if note.is_public or activity.is_public:
        raise Refused("a message on a mentorship request is private: it must not be addressed to Public")
    if mapping.author_uri(note) != activity.actor or note.in_reply_to is None:
        raise Refused("a message must be attributed to the actor and inReplyTo its request")
    markdown, html = mapping.body(note)
    remote = schemas.RemoteMessage(
        uri=note.id, request_uri=note.in_reply_to, author_uri=activity.actor, body_markdown=markdown,
        body_html=html, published=note.published,
    )  # fmt: skip
    try:
        message = await RequestService(session, settings).receive_message(remote, signer_host)
    except ProblemError as exc:
        raise Refused(exc.detail) from exc
    return "message stored" if message is not None else "ignored repeated message"


async def is_thread_message(session: AsyncSession, note: vocab.Post) -> bool:
    if note.type != "Note" or note.in_reply_to is None:
        return False
    found = await session.scalar(select(MentorshipRequest.id).where(MentorshipRequest.uri == note.in_reply_to))
    return found is not None


async def delivery_given_up(session: AsyncSession, settings: Settings, payload: dict[str, Any]) -> None:
    """A request that never reached the mentor's instance shows failed, with a way to send it again."""
    if payload.get("type") == "Offer" and isinstance(payload.get("id"), str):
        await RequestService(session, settings).delivery_failed(payload["id"])


async def _local_mentor(session: AsyncSession, offer_uri: str) -> User | None:
    """The mentor of one of this instance's offers (deleted ones too: they answer with a refusal)."""
    return await session.scalar(
        select(User)
        .join(MentorshipOffer, MentorshipOffer.mentor_id == User.id)
        .where(MentorshipOffer.uri == offer_uri, MentorshipOffer.local.is_(True))
    )
