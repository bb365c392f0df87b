"""Apply a verified incoming activity: one dispatch over (activity type, object type).

Protocol only. Each handler checks origin (every id it touches is on the signer's host), maps the vocabulary to
the domain's remote structs (mapping.py), and calls the same domain service the REST API writes through. The
documents an activity needs were fetched before its transaction opened (processing.py); `fetch` serves them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.schemas import RemotePerson
from server.communities.service import CommunityService
from server.db import utcnow
from server.errors import ProblemError
from server.federation import mapping, moves, outbox, private, vocab
from server.federation.fetch import FetchError
from server.guides.service import GuideService
from server.mentorship.service import MentorshipService
from server.models import Activity, Community, DeletedObject, Job, Peer, User
from server.settings import Settings, host_of

ObjectFetcher = Callable[[str], Awaitable[dict[str, Any]]]


class Rejected(Exception):
    """The activity is well-formed enough to answer but will never be applied; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Context:
    def __init__(
        self, session: AsyncSession, settings: Settings, signer_host: str, fetch: ObjectFetcher | None
    ) -> None:
        self.session = session
        self.settings = settings
        self.signer_host = signer_host
        self.fetch = fetch

    def require_origin(self, uri: str, what: str) -> None:
        # Remote objects cannot claim another host: that would be impersonation.
        if host_of(uri) != self.signer_host:
            raise Rejected(f"{what} {uri!r} is not on the signer's host {self.signer_host}")


async def handle(
    session: AsyncSession,
    settings: Settings,
    payload: dict[str, Any],
    signer_host: str,
    fetch: ObjectFetcher | None = None,
    *,
    activity: vocab.Activity | None = None,
) -> str:
    """Apply one activity and say what happened; raise Rejected for what must never apply.

    `fetch` serves the documents fetched before the transaction opened (processing.Documents); without it,
    only what the activity embeds is used. `activity` is the payload already parsed, when the caller has it.
    """
    if activity is None:
        activity = parse(payload)
    ctx = Context(session, settings, signer_host, fetch)
    ctx.require_origin(activity.actor, "actor")
    handler = _HANDLERS.get(activity.type)
    if handler is None:
        return f"ignored {activity.type}"
    return await handler(ctx, activity)


def parse(payload: dict[str, Any]) -> vocab.Activity:
    try:
        return vocab.parse_activity(payload)
    except vocab.VocabError as exc:
        raise Rejected(exc.reason) from exc


# --- following ------------------------------------------------------------------------


async def _follow(ctx: Context, activity: vocab.Activity) -> str:
    peer = await _peer(ctx)
    our_actor = f"{ctx.settings.base_url}/actor"
    accepted = activity.object_id == our_actor and ctx.signer_host in ctx.settings.peer_hosts
    inbox = peer.inbox_url if peer else None
    if inbox is None:
        inbox = await _actor_inbox(ctx, activity.actor)
    reply = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": outbox.new_activity_uri(ctx.settings),
        "type": "Accept" if accepted else "Reject",
        "actor": our_actor,
        "object": {"id": activity.id, "type": "Follow", "actor": activity.actor, "object": activity.object_id},
    }
    await outbox.send(ctx.session, ctx.settings, reply, inbox_url=inbox, peer_host=ctx.signer_host)
    if accepted and peer is None:
        # Their Follow can arrive before our own peer sync has run: the config is what counts.
        base_url = ctx.settings.peers[ctx.settings.peer_hosts.index(ctx.signer_host)]
        peer = Peer(host=ctx.signer_host, base_url=base_url, inbox_url=inbox)
        ctx.session.add(peer)
    if accepted and peer is not None:
        peer.followed_back = True
        peer.inbox_url = peer.inbox_url or inbox
        peer.updated_at = utcnow()
    return reply["type"].lower() + "ed follow"


async def _accept_or_reject(ctx: Context, activity: vocab.Activity) -> str:
    if await private.is_request_answer(ctx.session, activity):
        return await _private(private.receive_answer(ctx.session, ctx.settings, activity))
    peer = await _peer(ctx)
    if peer is None:
        raise Rejected(f"no peering with {ctx.signer_host}")
    inner = activity.object
    follow_id = inner.id if isinstance(inner, vocab.Activity) else activity.object_id
    if follow_id != peer.follow_activity_uri:
        # Sync retries may have sent several Follows before the first answer came: any of ours counts.
        ours = await ctx.session.scalar(
            select(Activity.uri).where(
                Activity.uri == follow_id, Activity.type == "Follow", Activity.object_uri == peer.actor_uri
            )
        )
        if ours is None:
            return "ignored answer to a follow we did not send"
        peer.follow_activity_uri = follow_id
    if activity.type == "Accept":
        was_following = peer.state == "following"
        peer.state = "following"
        if not was_following:
            ctx.session.add(Job(kind="backfill", payload={"host": peer.host}))
    else:
        peer.state = "rejected"
    peer.updated_at = utcnow()
    return f"follow {peer.state}"


async def _undo(ctx: Context, activity: vocab.Activity) -> str:
    inner = activity.object
    if isinstance(inner, vocab.Activity) and inner.type == "Offer":
        ctx.require_origin(inner.actor, "withdrawn request's actor")
        return await _private(private.receive_undo(ctx.session, ctx.settings, activity))
    if not isinstance(inner, vocab.Activity) or inner.type != "Follow":
        return "ignored undo"
    ctx.require_origin(inner.actor, "undone follow's actor")
    peer = await _peer(ctx)
    if peer is not None:
        peer.followed_back = False
        peer.updated_at = utcnow()
    return "unfollowed"


# --- entries: check origin, map the vocabulary, call the domain service ------------------------------------


async def _create_or_update(ctx: Context, activity: vocab.Activity) -> str:
    obj = activity.object
    if obj is None or isinstance(obj, vocab.Activity):
        obj = await _fetch_object(ctx, activity.object_id)
    ctx.require_origin(obj.id, "object")
    if activity.type == "Create" and isinstance(obj, vocab.Post) and await private.is_thread_message(ctx.session, obj):
        return await _private(private.receive_message(ctx.session, ctx.settings, activity, obj, ctx.signer_host))
    if await ctx.session.scalar(select(DeletedObject.id).where(DeletedObject.uri == obj.id)):
        return "ignored: object was deleted"
    if isinstance(obj, vocab.Actor) and obj.type == "Group":
        remote = mapping.remote_community(obj, ctx.signer_host)
        outcome = await _domain(ctx, CommunityService(ctx.session, ctx.settings).apply_remote(remote))
        return await moves.noticed(ctx, obj) if obj.moved_to else outcome
    if isinstance(obj, vocab.Post) and (obj.mentorship is not None or obj.type in ("Article", "Page")):
        offers = MentorshipService(ctx.session, ctx.settings)
        guides = GuideService(ctx.session, ctx.settings)
        kind, service = ("offer", offers) if obj.mentorship is not None else ("guide", guides)
        # A repeat or an older version changes nothing, and needs nothing stored or fetched for it.
        if not await service.is_news(obj.id, obj.updated or obj.published):
            return f"ignored stale {kind}"
        await _ensure_communities(ctx, obj)
        author = await _author(ctx, obj)
        if obj.mentorship is not None:
            return await _domain(ctx, offers.apply_remote(mapping.remote_offer(obj, ctx.signer_host, author)))
        return await _domain(ctx, guides.apply_remote(mapping.remote_guide(obj, ctx.signer_host, author)))
    return f"ignored {activity.type} of {obj.type}"


async def _delete(ctx: Context, activity: vocab.Activity) -> str:
    uri = activity.object_id
    ctx.require_origin(uri, "deleted object")
    for service in entry_services(ctx.session, ctx.settings):
        deleted = await service.apply_remote_delete(uri, ctx.signer_host)
        if deleted is not None:
            if deleted:
                await _received(ctx)
            return "deleted"
    # Deleted before we saw it: remember, so a Create that arrives late changes nothing.
    if not await ctx.session.scalar(select(DeletedObject.id).where(DeletedObject.uri == uri)):
        ctx.session.add(DeletedObject(uri=uri))
    return "tombstoned unseen object"


def entry_services(
    session: AsyncSession, settings: Settings
) -> tuple[GuideService, MentorshipService, CommunityService]:
    """The services of a peer's entries, entries before their communities (which they refer to)."""
    return GuideService(session, settings), MentorshipService(session, settings), CommunityService(session, settings)


async def _move(ctx: Context, activity: vocab.Activity) -> str:
    try:
        return await moves.receive(ctx, activity)
    except moves.Refused as exc:
        raise Rejected(exc.reason) from exc


# --- mentorship requests: private, between two people (private.py) ------------------------------------


async def _offer(ctx: Context, activity: vocab.Activity) -> str:
    agreement = activity.object
    if not isinstance(agreement, vocab.Post):
        raise Rejected("an Offer must embed the request it carries")
    ctx.require_origin(agreement.id, "request")
    requester = await _author(ctx, agreement)
    return await _private(private.receive_offer(ctx.session, ctx.settings, activity, ctx.signer_host, requester))


async def _private(step: Awaitable[str]) -> str:
    try:
        return await step
    except private.Refused as exc:
        raise Rejected(exc.reason) from exc


async def _domain(ctx: Context, write: Awaitable[str]) -> str:
    """The domain service's outcome; what its rules refuse is refused to the peer, with their reason."""
    try:
        outcome = await write
    except ProblemError as exc:
        raise Rejected(exc.detail) from exc
    if outcome.endswith("stored"):
        await _received(ctx)
    return outcome


async def _ensure_communities(ctx: Context, post: vocab.Post) -> None:
    """The post's community, stored first from its document when it is new here: the first audience of the
    signer that is known, or else can be fetched as a Group, is the post's home (CommunityService.remote_home)."""
    for uri in post.audience:
        if host_of(uri) != ctx.signer_host or ctx.fetch is None:
            continue
        if await ctx.session.scalar(select(Community.id).where(Community.uri == uri)) is not None:
            return
        document = await _fetch_object(ctx, uri)
        if isinstance(document, vocab.Actor) and document.type == "Group":
            remote = mapping.remote_community(document, ctx.signer_host)
            await _domain(ctx, CommunityService(ctx.session, ctx.settings).apply_remote(remote))
            return


async def _author(ctx: Context, post: vocab.Post) -> RemotePerson:
    uri = mapping.author_uri(post)
    if uri is None:
        raise Rejected("no author in attributedTo")
    ctx.require_origin(uri, "author")
    person = post.embedded.get(uri)
    if not isinstance(person, vocab.Actor) and ctx.fetch is not None:
        known = await ctx.session.scalar(select(User.id).where(User.uri == uri))
        if known is None:
            try:
                person = await _fetch_object(ctx, uri)
            except Rejected:
                person = None  # a name from the URL is still a faithful attribution
    return mapping.remote_person(uri, ctx.signer_host, person if isinstance(person, vocab.Actor) else None)


async def _fetch_object(ctx: Context, uri: str) -> vocab.APObject:
    if ctx.fetch is None:
        raise Rejected(f"object {uri!r} is not embedded")
    ctx.require_origin(uri, "object")
    try:
        document = vocab.parse_object(await ctx.fetch(uri))
    except FetchError as exc:
        raise Rejected(exc.reason) from exc
    except vocab.VocabError as exc:
        raise Rejected(exc.reason) from exc
    # What a peer answers for its own URL must be its own too, wherever a redirect led.
    ctx.require_origin(document.id, "fetched object")
    return document


async def _actor_inbox(ctx: Context, actor_uri: str) -> str:
    document = await _fetch_object(ctx, actor_uri)
    inbox = mapping.inbox_on(document, ctx.signer_host) if isinstance(document, vocab.Actor) else None
    if inbox is None:
        raise Rejected(f"the follower has no inbox on {ctx.signer_host}")
    return inbox


async def _peer(ctx: Context) -> Peer | None:
    return await ctx.session.scalar(select(Peer).where(Peer.host == ctx.signer_host))


async def _received(ctx: Context) -> None:
    await count_received(ctx.session, ctx.signer_host, 1)


async def count_received(session: AsyncSession, host: str, count: int) -> None:
    """Count entries received from a peer. In SQL, not on a loaded Peer: a backfill's session lives across many
    commits while the worker's inbox step counts too, and a stale attribute would overwrite its count."""
    await session.execute(
        update(Peer)
        .where(Peer.host == host)
        .values(entries_received=Peer.entries_received + count, last_received_at=utcnow())
        .execution_options(synchronize_session=False)
    )


_HANDLERS: dict[str, Callable[[Context, vocab.Activity], Awaitable[str]]] = {
    "Follow": _follow,
    "Accept": _accept_or_reject,
    "TentativeAccept": _accept_or_reject,
    "Reject": _accept_or_reject,
    "Offer": _offer,
    "Undo": _undo,
    "Create": _create_or_update,
    "Update": _create_or_update,
    "Delete": _delete,
    "Move": _move,
}
