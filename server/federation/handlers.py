"""Apply a verified incoming activity: one dispatch over (activity type, object type).

Every handler first checks origin, then writes through the same models the local services use,
marked as remote. Remote HTML is never trusted: content is rendered from markdown source when
there is one, and sanitized always.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, NamedTuple

from slugify import slugify
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db import new_id, utcnow
from server.federation import outbox, vocab
from server.federation.fetch import FetchError
from server.guides.service import free_slug
from server.markdown import render, sanitize
from server.models import Activity, Community, DeletedObject, Guide, Job, MentorshipOffer, Peer, User
from server.refs import key_of
from server.settings import Settings, host_of

ObjectFetcher = Callable[[str], Awaitable[dict[str, Any]]]

MAX_TITLE = 200
MAX_BODY_BYTES = 200 * 1024
MAX_LABELS = 20
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


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

    `activity` is the payload already parsed, when the caller has it.
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
    if not isinstance(inner, vocab.Activity) or inner.type != "Follow":
        return "ignored undo"
    ctx.require_origin(inner.actor, "undone follow's actor")
    peer = await _peer(ctx)
    if peer is not None:
        peer.followed_back = False
        peer.updated_at = utcnow()
    return "unfollowed"


# --- entries --------------------------------------------------------------------------


async def _create_or_update(ctx: Context, activity: vocab.Activity) -> str:
    obj = activity.object
    if obj is None or isinstance(obj, vocab.Activity):
        obj = await _fetch_object(ctx, activity.object_id)
    ctx.require_origin(obj.id, "object")
    if await ctx.session.scalar(select(DeletedObject.id).where(DeletedObject.uri == obj.id)):
        return "ignored: object was deleted"
    if isinstance(obj, vocab.Actor) and obj.type == "Group":
        return await _upsert_community(ctx, obj)
    if isinstance(obj, vocab.Post) and obj.mentorship is not None:
        return await _upsert_offer(ctx, obj)
    if isinstance(obj, vocab.Post) and obj.type in ("Article", "Page"):
        return await _upsert_guide(ctx, obj)
    return f"ignored {activity.type} of {obj.type}"


async def _delete(ctx: Context, activity: vocab.Activity) -> str:
    uri = activity.object_id
    ctx.require_origin(uri, "deleted object")
    for model in (Guide, MentorshipOffer, Community):
        entry = await ctx.session.scalar(select(model).where(model.uri == uri))
        if entry is not None:
            if entry.deleted_at is None:
                entry.deleted_at = utcnow()
                if model is not Community:
                    ctx.session.add(Job(kind="index", payload={"type": _kind(entry), "id": str(entry.id)}))
                await _received(ctx)
            return "deleted"
    # Deleted before we saw it: remember, so a Create that arrives late changes nothing.
    if not await ctx.session.scalar(select(DeletedObject.id).where(DeletedObject.uri == uri)):
        ctx.session.add(DeletedObject(uri=uri))
    return "tombstoned unseen object"


def _kind(entry: Guide | MentorshipOffer) -> str:
    return "guide" if isinstance(entry, Guide) else "offer"


async def _upsert_community(ctx: Context, group: vocab.Actor) -> str:
    community = await ctx.session.scalar(select(Community).where(Community.uri == group.id))
    if community is not None and not _newer(group.updated or group.published, community.updated_at):
        return "ignored stale community"
    slug = slugify(group.preferred_username or "", max_length=64) or slugify(group.id.rsplit("/", 1)[-1])[:64]
    if not slug:
        raise Rejected("group has no usable preferredUsername")
    name = _text(group.name or slug, 100, "community name")
    fields = {
        "name": name,
        "description": _text(_plain(group.summary or ""), 5000, "community description"),
        "color": group.color.lower() if group.color and _COLOR.match(group.color) else "#5a6b7b",
        "links": [
            {"title": (link.name or link.href)[:100], "url": link.href}
            for link in group.links[:20]
            if link.href.startswith(("http://", "https://"))
        ],  # fmt: skip
        "url": _same_host_url(ctx, group.url, group.id),
        "updated_at": group.updated or group.published or utcnow(),
    }
    if community is None:
        clash = await ctx.session.scalar(
            select(Community).where(Community.slug == slug, Community.instance == ctx.signer_host)
        )
        if clash is not None:
            raise Rejected(f"{ctx.signer_host} already has a community {slug!r} with another id")
        community = Community(
            uri=group.id, slug=slug, local=False, instance=ctx.signer_host,
            created_at=group.published or utcnow(), **fields,
        )  # fmt: skip
        ctx.session.add(community)
    else:
        for key, value in fields.items():
            setattr(community, key, value)
        community.deleted_at = None
    await _received(ctx)
    return "community stored"


async def _upsert_guide(ctx: Context, post: vocab.Post) -> str:
    guide = await ctx.session.scalar(select(Guide).where(Guide.uri == post.id))
    if guide is not None and (
        guide.deleted_at is not None or not _newer(post.updated or post.published, guide.updated_at)
    ):
        return "ignored stale guide"
    community = await _community_of(ctx, post)
    author = await _author_of(ctx, post)
    fields = _guide_fields(ctx.signer_host, post, guide)
    if guide is None:
        slug = await free_slug(ctx.session, community, post.slug or fields["title"])
        guide = Guide(
            uri=post.id, community=community, author=author, slug=slug, status="published", local=False,
            instance=ctx.signer_host, created_at=post.published or utcnow(), **fields,
        )  # fmt: skip
        ctx.session.add(guide)
        await ctx.session.flush()
    else:
        if guide.community_id != community.id:
            raise Rejected("a guide cannot move to another community")
        for key, value in fields.items():
            setattr(guide, key, value)
    ctx.session.add(Job(kind="index", payload={"type": "guide", "id": str(guide.id)}))
    await _received(ctx)
    return "guide stored"


def _guide_fields(signer_host: str, post: vocab.Post, guide: Guide | None) -> dict[str, Any]:
    """A guide's columns from a remote Article: limits checked, HTML rendered from the markdown source."""
    markdown, html = _body(post)
    tags = _labels([t.name or "" for t in post.tags if t.type == "Hashtag"], "tags")
    return {
        "title": _text(post.name or "", MAX_TITLE, "title", required=True),
        "summary": _text(_plain(post.summary or ""), 500, "summary"),
        "body_markdown": markdown,
        "body_html": html,
        "tags": tags,
        "tags_key": key_of(tags),
        "license": _text(post.license or "unspecified", 64, "license"),
        "revision": post.revision or ((guide.revision + 1) if guide else 1),
        "derived_from": post.derived_from,
        "url": _same_url(signer_host, post.url, post.id),
        "updated_at": post.updated or post.published or utcnow(),
    }


async def _upsert_offer(ctx: Context, post: vocab.Post) -> str:
    offer = await ctx.session.scalar(select(MentorshipOffer).where(MentorshipOffer.uri == post.id))
    if offer is not None and (
        offer.deleted_at is not None or not _newer(post.updated or post.published, offer.updated_at)
    ):
        return "ignored stale offer"
    details = post.mentorship
    assert details is not None
    community = await _community_of(ctx, post)
    mentor = await _author_of(ctx, post)
    markdown, html = _body(post)
    topics = _labels(list(details.topics), "topics")
    languages = _labels(list(details.languages), "languages")
    capacity = details.capacity if details.capacity and 1 <= details.capacity <= 1000 else 1
    fields = {
        "title": _text(post.name or "", MAX_TITLE, "title", required=True),
        "description_markdown": markdown,
        "description_html": html,
        "topics": topics,
        "topics_key": key_of(topics),
        "languages": languages,
        "languages_key": key_of(languages),
        "format": details.format if details.format in ("one_to_one", "group") else "one_to_one",
        "capacity": capacity,
        "seats_taken": min(max(details.seats_taken or 0, 0), capacity),
        "availability": _text(details.availability or "", 500, "availability"),
        "status": details.status if details.status in ("open", "closed") else "open",
        "url": _same_host_url(ctx, post.url, post.id),
        "updated_at": post.updated or post.published or utcnow(),
    }
    if offer is None:
        offer = MentorshipOffer(
            uri=post.id, community=community, mentor=mentor, local=False, instance=ctx.signer_host,
            created_at=post.published or utcnow(), **fields,
        )  # fmt: skip
        ctx.session.add(offer)
        await ctx.session.flush()
    else:
        for key, value in fields.items():
            setattr(offer, key, value)
        offer.version += 1
    ctx.session.add(Job(kind="index", payload={"type": "offer", "id": str(offer.id)}))
    await _received(ctx)
    return "offer stored"


# --- helpers --------------------------------------------------------------------------


def _newer(incoming: datetime | None, stored: datetime) -> bool:
    """Last writer wins on `updated`; an equal timestamp is a repeat, not news."""
    return incoming is not None and incoming > stored


def _text(value: str, limit: int, field: str, *, required: bool = False) -> str:
    value = " ".join(value.split()) if limit <= MAX_TITLE else value.strip()
    if required and not value:
        raise Rejected(f"{field} is empty")
    if len(value) > limit:
        raise Rejected(f"{field} is longer than {limit} characters")
    return value


def _plain(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", sanitize(html)).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")


def _labels(values: list[str], field: str) -> list[str]:
    labels: list[str] = []
    for value in values:
        label = " ".join(value.strip().lower().lstrip("#").split())[:50].replace("|", "")
        if label and label not in labels:
            labels.append(label)
    if len(labels) > MAX_LABELS:
        raise Rejected(f"more than {MAX_LABELS} {field}")
    return labels


def _body(post: vocab.Post) -> tuple[str, str]:
    """Markdown source when the sender gives it; otherwise their HTML, sanitized."""
    if post.source is not None and (post.source.media_type or "text/markdown") == "text/markdown":
        markdown = post.source.content
        html = render(markdown)
    else:
        html = sanitize(post.content or next(iter(post.content_map.values()), ""))
        markdown = _plain(html)
    if len(markdown.encode()) > MAX_BODY_BYTES or len(html.encode()) > 2 * MAX_BODY_BYTES:
        raise Rejected("body is larger than 200 KB")
    return markdown, html


def _same_host_url(ctx: Context, url: str | None, fallback: str) -> str:
    return _same_url(ctx.signer_host, url, fallback)


def _same_url(signer_host: str, url: str | None, fallback: str) -> str:
    if url and url.startswith(("http://", "https://")) and host_of(url) == signer_host:
        return url
    return fallback


async def _community_of(ctx: Context, post: vocab.Post) -> Community:
    candidates = list(post.audience) + [uri for uri in post.attributed_to if uri not in post.audience]
    for uri in candidates:
        if host_of(uri) != ctx.signer_host:
            continue
        community = await ctx.session.scalar(select(Community).where(Community.uri == uri))
        if community is None and ctx.fetch is not None and uri in post.audience:
            document = await _fetch_object(ctx, uri)
            if isinstance(document, vocab.Actor) and document.type == "Group":
                await _upsert_community(ctx, document)
                community = await ctx.session.scalar(select(Community).where(Community.uri == uri))
        if community is not None:
            if community.deleted_at is not None:
                raise Rejected("its community was deleted")
            return community
    raise Rejected("no community of the signer's instance is its audience")


async def _author_of(ctx: Context, post: vocab.Post) -> User:
    people = [uri for uri in post.attributed_to if uri not in post.audience]
    if not people:
        raise Rejected("no author in attributedTo")
    uri = people[0]
    ctx.require_origin(uri, "author")
    user = await ctx.session.scalar(select(User).where(User.uri == uri))
    if user is not None:
        return user
    username, display_name, url = uri.rstrip("/").rsplit("/", 1)[-1], "", uri
    embedded = post.embedded.get(uri)
    person = embedded if isinstance(embedded, vocab.Actor) else None
    if person is None and ctx.fetch is not None:
        try:
            fetched = await _fetch_object(ctx, uri)
            person = fetched if isinstance(fetched, vocab.Actor) else None
        except Rejected:
            person = None  # a name from the URL is still a faithful attribution
    if person is not None:
        username = person.preferred_username or username
        display_name = person.name or ""
        url = _same_host_url(ctx, person.url, uri)
    username = (slugify(username, max_length=64, separator="_") or "someone")[:64]
    taken = await ctx.session.scalar(select(User.id).where(User.username == username, User.instance == ctx.signer_host))
    if taken is not None:
        username = f"{username[:55]}_{hashlib.sha256(uri.encode()).hexdigest()[:8]}"
    user = User(
        username=username, instance=ctx.signer_host, display_name=display_name[:100] or username,
        password_hash=None, local=False, uri=uri, url=url,
    )  # fmt: skip
    ctx.session.add(user)
    await ctx.session.flush()
    return user


async def _fetch_object(ctx: Context, uri: str) -> vocab.APObject:
    if ctx.fetch is None:
        raise Rejected(f"object {uri!r} is not embedded")
    ctx.require_origin(uri, "object")
    try:
        return vocab.parse_object(await ctx.fetch(uri))
    except FetchError as exc:
        raise Rejected(exc.reason) from exc
    except vocab.VocabError as exc:
        raise Rejected(exc.reason) from exc


async def _actor_inbox(ctx: Context, actor_uri: str) -> str:
    document = await _fetch_object(ctx, actor_uri)
    if not isinstance(document, vocab.Actor) or not (document.shared_inbox or document.inbox):
        raise Rejected("the follower has no inbox")
    return document.shared_inbox or document.inbox or ""


async def _peer(ctx: Context) -> Peer | None:
    return await ctx.session.scalar(select(Peer).where(Peer.host == ctx.signer_host))


async def _received(ctx: Context) -> None:
    peer = await _peer(ctx)
    if peer is not None:
        peer.entries_received += 1
        peer.last_received_at = utcnow()


# --- many new guides at once ----------------------------------------------------------


class NewGuides:
    """Creates of guides this instance has never seen, taken from a batch of inbox items and written together.

    A backfill brings thousands of them. One at a time, each costs a dozen round trips (tombstone, guide,
    community, author, slug, peer); here the lookups are one IN query per table for the whole batch and the
    writes one flush. Only the plain case is taken: a new guide whose community and author are already known
    here. Anything else (updates, offers, unknown communities or authors, an activity failing a check) is
    left to `handle`, which applies the same rules one activity at a time, so the outcome is the same.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.staged: list[_Staged] = []
        self._tombstoned: set[str] = set()
        self._existing: set[str] = set()
        self._communities: dict[str, Community] = {}
        self._authors: dict[str, User] = {}
        self._peers: dict[str, Peer] = {}

    async def look_up(self, activities: list[vocab.Activity]) -> None:
        """Everything the guide Creates among `activities` refer to; call again after other writes."""
        objects: set[str] = set()
        refs: set[str] = set()
        for activity in activities:
            post = _new_guide_post(activity)
            if post is not None:
                objects.add(post.id)
                refs.update(post.audience, post.attributed_to)
        if not objects:
            return  # nothing for the batch: spare the queries
        session = self.session
        self._tombstoned = set(await session.scalars(select(DeletedObject.uri).where(DeletedObject.uri.in_(objects))))
        self._existing = set(await session.scalars(select(Guide.uri).where(Guide.uri.in_(objects))))
        communities = await session.scalars(select(Community).where(Community.uri.in_(refs)))
        self._communities = {community.uri: community for community in communities}
        self._authors = {user.uri: user for user in await session.scalars(select(User).where(User.uri.in_(refs)))}
        self._peers = {peer.host: peer for peer in await session.scalars(select(Peer))}

    def stage(self, activity: vocab.Activity, signer_host: str) -> bool:
        """Take the activity into the batch when it is the plain case; False leaves it to `handle`."""
        post = _new_guide_post(activity)
        # Origin first, as in handle: the actor and the object must both be on the signer's host.
        if post is None or host_of(activity.actor) != signer_host or host_of(post.id) != signer_host:
            return False
        if post.id in self._tombstoned or post.id in self._existing:
            return False
        community = self._community(post, signer_host)
        people = [uri for uri in post.attributed_to if uri not in post.audience]
        author = self._authors.get(people[0]) if people and host_of(people[0]) == signer_host else None
        if community is None or author is None:
            return False
        try:
            fields = _guide_fields(signer_host, post, None)
        except Rejected:
            return False  # `handle` rejects it with the same reason, in its own savepoint
        self.staged.append(_Staged(post, signer_host, community, author, fields))
        self._existing.add(post.id)
        return True

    def _community(self, post: vocab.Post, signer_host: str) -> Community | None:
        # The same choice as _community_of: the first known community of the signer among the candidates.
        for uri in [*post.audience, *(uri for uri in post.attributed_to if uri not in post.audience)]:
            if host_of(uri) != signer_host:
                continue
            community = self._communities.get(uri)
            if community is None and uri in post.audience:
                return None  # _community_of would fetch it
            if community is not None:
                return community if community.deleted_at is None else None
        return None

    async def write(self) -> int:
        """Insert the staged guides with their index jobs; returns how many."""
        staged, self.staged = self.staged, []
        if not staged:
            return 0
        slugs = await self._slugs(staged)
        guides: list[dict[str, Any]] = []
        jobs: list[dict[str, Any]] = []
        received: dict[str, int] = {}
        for entry, slug in zip(staged, slugs, strict=True):
            guide_id = new_id()
            guides.append(
                {
                    "id": guide_id, "uri": entry.post.id, "community_id": entry.community.id,
                    "author_id": entry.author.id, "slug": slug, "status": "published", "local": False,
                    "instance": entry.signer_host, "created_at": entry.post.published or utcnow(), **entry.fields,
                }
            )  # fmt: skip
            jobs.append({"kind": "index", "payload": {"type": "guide", "id": str(guide_id)}})
            received[entry.signer_host] = received.get(entry.signer_host, 0) + 1
        # Bulk inserts: one executemany per table, without the unit of work's per-object bookkeeping.
        await self.session.execute(insert(Guide), guides)
        await self.session.execute(insert(Job), jobs)
        now = utcnow()
        for host, count in received.items():
            if (peer := self._peers.get(host)) is not None:
                peer.entries_received += count
                peer.last_received_at = now
        await self.session.flush()
        return len(staged)

    async def _slugs(self, staged: list[_Staged]) -> list[str]:
        """free_slug for every staged guide with one query, probing further only where a slug is taken."""
        bases = [slugify(entry.post.slug or entry.fields["title"], max_length=100, word_boundary=True) or "guide"
                 for entry in staged]  # fmt: skip
        community_ids = {entry.community.id for entry in staged}
        taken: dict[Any, set[str]] = {community_id: set() for community_id in community_ids}
        rows = await self.session.execute(
            select(Guide.community_id, Guide.slug).where(Guide.community_id.in_(community_ids), Guide.slug.in_(bases))
        )
        for community_id, slug in rows:
            taken[community_id].add(slug)
        probed: set[tuple[Any, str]] = set()
        slugs = []
        for entry, base in zip(staged, bases, strict=True):
            used = taken[entry.community.id]
            slug = base
            if base in used:
                if (entry.community.id, base) not in probed:
                    probed.add((entry.community.id, base))
                    numbered = select(Guide.slug).where(
                        Guide.community_id == entry.community.id, Guide.slug.like(f"{base}-%")
                    )
                    used.update(await self.session.scalars(numbered))
                n = 2
                while f"{base}-{n}" in used:
                    n += 1
                slug = f"{base}-{n}"
            used.add(slug)
            slugs.append(slug)
        return slugs


class _Staged(NamedTuple):
    post: vocab.Post
    signer_host: str
    community: Community
    author: User
    fields: dict[str, Any]


def _new_guide_post(activity: vocab.Activity) -> vocab.Post | None:
    """The embedded Article or Page of a Create or Update, the only kind NewGuides takes."""
    obj = activity.object
    if activity.type not in ("Create", "Update") or not isinstance(obj, vocab.Post) or obj.mentorship is not None:
        return None
    return obj if obj.type in ("Article", "Page") else None


def referenced_actors(payload: dict[str, Any]) -> list[str]:
    """The http(s) ids of the communities and people a Create or Update's embedded object names (`audience`,
    `attributedTo`), read without parsing or checking anything: a hint of what applying it may fetch."""
    obj = payload.get("object")
    if payload.get("type") not in ("Create", "Update") or not isinstance(obj, dict):
        return []
    uris: list[str] = []
    for key in ("audience", "attributedTo"):
        value = obj.get(key)
        for entry in value if isinstance(value, list) else [value]:
            uri = entry.get("id") if isinstance(entry, dict) else entry
            if vocab.is_http_id(uri):
                uris.append(uri)
    return uris[:MAX_LABELS]


_HANDLERS: dict[str, Callable[[Context, vocab.Activity], Awaitable[str]]] = {
    "Follow": _follow,
    "Accept": _accept_or_reject,
    "Reject": _accept_or_reject,
    "Undo": _undo,
    "Create": _create_or_update,
    "Update": _create_or_update,
    "Delete": _delete,
}
