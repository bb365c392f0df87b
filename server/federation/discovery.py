"""The ActivityPub surface people's servers read: WebFinger, NodeInfo, actors, objects, collections.

Object URLs negotiate: AS2 JSON for ActivityPub Accept headers, the human page otherwise.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, Response, Router, get
from litestar.response import Redirect
from sqlalchemy import Text, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server import __version__
from server.communities.moving import MoveService
from server.errors import ProblemError, not_found
from server.federation import mapping, move_out
from server.federation.keys import local_key, public_key_document
from server.models import Activity, Community, Guide, MentorshipOffer, Peer, User
from server.refs import split_ref
from server.settings import Settings

AS_JSON = "application/activity+json"
JRD_JSON = "application/jrd+json"
OUTBOX_PAGE = 100
# A peer reads at most 1 MB a document (fetch.MAX_BYTES): a page of long guides stops short of that.
OUTBOX_PAGE_BYTES = 512_000

KITH_CONTEXT = {
    "@context": {
        "kith": "https://kith.dev/ns#",
        "as": "https://www.w3.org/ns/activitystreams#",
        "MentorshipOffer": "kith:MentorshipOffer",
        "license": {"@id": "kith:license", "@type": "@id"},
        "slug": "kith:slug",
        "revision": {"@id": "kith:revision", "@type": "http://www.w3.org/2001/XMLSchema#integer"},
        "derivedFrom": {"@id": "kith:derivedFrom", "@type": "@id"},
        "color": "kith:color",
        "topics": {"@id": "kith:topics", "@container": "@set"},
        "languages": {"@id": "kith:languages", "@container": "@set"},
        "format": "kith:format",
        "capacity": {"@id": "kith:capacity", "@type": "http://www.w3.org/2001/XMLSchema#integer"},
        "seatsTaken": {"@id": "kith:seatsTaken", "@type": "http://www.w3.org/2001/XMLSchema#integer"},
        "availability": "kith:availability",
        "status": "kith:status",
        # Moving a community (as Mastodon moves accounts): ActivityStreams terms, and Kith's own former uri.
        "alsoKnownAs": {"@id": "as:alsoKnownAs", "@type": "@id"},
        "movedTo": {"@id": "as:movedTo", "@type": "@id"},
        "formerUri": {"@id": "kith:formerUri", "@type": "@id"},
    }
}


def wants_activitypub(request: Request[Any, Any, Any]) -> bool:
    accept = request.headers.get("accept", "").lower()
    return "application/activity+json" in accept or "application/ld+json" in accept


def as_response(document: dict[str, Any], status_code: int = 200) -> Response[dict[str, Any]]:
    return Response(document, media_type=AS_JSON, status_code=status_code, headers={"Vary": "Accept"})


def _with_context(settings: Settings, document: dict[str, Any]) -> dict[str, Any]:
    return {"@context": mapping.context(settings.base_url), **document}


def instance_actor_uri(settings: Settings) -> str:
    return f"{settings.base_url}/actor"


async def _actor(db: AsyncSession, settings: Settings, document: dict[str, Any]) -> dict[str, Any]:
    key = await local_key(db, document["id"])
    document = {
        **document,
        "publicKey": public_key_document(document["id"], key),
        "endpoints": {"sharedInbox": f"{settings.base_url}/inbox"},
    }
    return _with_context(settings, document)


@get("/.well-known/webfinger", media_type=JRD_JSON)
async def webfinger(resource: str, db: AsyncSession, settings: Settings) -> Response[dict[str, Any]]:
    name, host = _parse_resource(resource, settings)
    if host != settings.host:
        raise not_found(f"Resource {resource!r}")
    if name == settings.host:
        actor_uri, profile = instance_actor_uri(settings), settings.base_url
    elif community := await _local_community(db, name):
        actor_uri, profile = community.uri, community.url
    elif user := await db.scalar(select(User).where(User.username == name, User.local.is_(True))):
        actor_uri, profile = user.uri, user.url
    else:
        raise not_found(f"Resource {resource!r}")
    document = {
        "subject": f"acct:{name}@{settings.host}",
        "aliases": [actor_uri],
        "links": [
            {"rel": "self", "type": AS_JSON, "href": actor_uri},
            {"rel": "http://webfinger.net/rel/profile-page", "type": "text/html", "href": profile},
        ],
    }
    return Response(document, media_type=JRD_JSON, headers={"Access-Control-Allow-Origin": "*"})


def _parse_resource(resource: str, settings: Settings) -> tuple[str, str]:
    if resource.startswith("acct:"):
        name, _, host = resource[5:].rpartition("@")
        if not name:
            raise ProblemError(400, "resource must look like acct:name@host")
        return name.lower(), host.lower()
    prefix = settings.base_url + "/"
    if resource == f"{settings.base_url}/actor":
        return settings.host, settings.host
    for marker in ("c/", "u/"):
        if resource.startswith(prefix + marker):
            return resource[len(prefix + marker) :].lower(), settings.host
    raise ProblemError(400, "resource must be acct:name@host or an actor URL of this instance")


@get("/.well-known/nodeinfo", media_type="application/json")
async def nodeinfo_links(settings: Settings) -> dict[str, Any]:
    return {
        "links": [
            {"rel": "http://nodeinfo.diaspora.software/ns/schema/2.1", "href": f"{settings.base_url}/nodeinfo/2.1"}
        ]
    }


@get("/nodeinfo/2.1", media_type='application/json; profile="http://nodeinfo.diaspora.software/ns/schema/2.1#"')
async def nodeinfo(db: AsyncSession, settings: Settings) -> dict[str, Any]:
    users = await db.scalar(select(func.count()).select_from(User).where(User.local.is_(True))) or 0
    guides = await db.scalar(
        select(func.count()).select_from(Guide).where(Guide.local.is_(True), Guide.deleted_at.is_(None))
    )
    return {
        "version": "2.1",
        "software": {"name": "kith", "version": __version__, "homepage": settings.base_url},
        "protocols": ["activitypub"],
        "services": {"inbound": [], "outbound": ["atom1.0"]},
        "openRegistrations": False,
        "usage": {"users": {"total": users}, "localPosts": guides or 0},
        "metadata": {"nodeName": settings.instance_name, "nodeDescription": settings.instance_description},
    }


@get("/ns", media_type="application/ld+json")
async def kith_context() -> dict[str, Any]:
    return KITH_CONTEXT


@get("/actor")
async def instance_actor(request: Request[Any, Any, Any], db: AsyncSession, settings: Settings) -> Response[Any]:
    if not wants_activitypub(request):
        return Redirect(settings.base_url + "/")
    base = settings.base_url
    document = {
        "id": instance_actor_uri(settings),
        "type": "Application",
        "preferredUsername": settings.host,
        "name": settings.instance_name,
        "summary": settings.instance_description,
        "url": base + "/",
        "inbox": f"{base}/inbox",
        "outbox": f"{base}/outbox",
        "followers": f"{base}/followers",
        "following": f"{base}/following",
        "manuallyApprovesFollowers": True,
    }
    return as_response(await _actor(db, settings, document))


@get("/c/{ref:str}")
async def community_actor(ref: str, request: Request[Any, Any, Any]) -> Response[Any]:
    # No injected session or settings: the page reads without a session, and the actor opens its own.
    settings: Settings = request.app.state.settings
    if not wants_activitypub(request):
        # The same URL is a person's page: the web serves it (app.py hands its handlers over in app.state.people_pages).
        page = request.app.state.people_pages["community"]
        return await page(request, None, settings, ref)  # local, or remote as slug@host
    async with request.app.state.sessionmaker() as db:
        community = await _local_community(db, ref, include_deleted=True)
        if community is None:
            raise not_found("Community")
        if community.deleted_at is not None:
            return as_response(_tombstone(settings, community.uri, "Group", community.deleted_at), 410)
        await move_out.note_signed_fetch(request, db, settings, community)
        return as_response(await _actor(db, settings, mapping.group(community)))


@get("/u/{username:str}")
async def person_actor(
    username: str, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings
) -> Response[Any]:
    user = await db.scalar(select(User).where(User.username == username.lower(), User.local.is_(True)))
    if user is None:
        raise not_found("Person")
    if not wants_activitypub(request):
        return Redirect(f"{settings.base_url}/")
    document = {
        **mapping.person(user),
        "inbox": f"{user.uri}/inbox",
        "outbox": f"{user.uri}/outbox",
        "followers": f"{user.uri}/followers",
    }
    return as_response(await _actor(db, settings, document))


@get("/guides/{guide_id:uuid}")
async def guide_object(
    guide_id: UUID, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings
) -> Response[Any]:
    guide = await db.get(Guide, guide_id)
    if guide is None or not guide.local or guide.status == "draft" and guide.deleted_at is None:
        raise not_found("Guide")
    if not wants_activitypub(request):
        return Redirect(f"{settings.base_url}/c/{guide.community.slug}/guides/{guide.slug}")
    if guide.deleted_at is not None:
        return as_response(_tombstone(settings, guide.uri, "Article", guide.deleted_at), 410)
    return as_response(_with_context(settings, mapping.article(guide, await _moved_to(db, settings, guide))))


@get("/mentorship/offers/{offer_id:uuid}")
async def offer_object(
    offer_id: UUID, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings
) -> Response[Any]:
    if not wants_activitypub(request):
        return await request.app.state.people_pages["offer"](request, db, settings, offer_id)
    offer = await db.get(MentorshipOffer, offer_id)
    if offer is None or not offer.local:
        raise not_found("Mentorship offer")
    if offer.deleted_at is not None:
        return as_response(_tombstone(settings, offer.uri, "MentorshipOffer", offer.deleted_at), 410)
    return as_response(_with_context(settings, mapping.offer(offer, await _moved_to(db, settings, offer))))


async def _moved_to(db: AsyncSession, settings: Settings, entry: Guide | MentorshipOffer) -> str | None:
    """Where an entry of a moved community went: the same entry on the new home once known, else the new home."""
    if not entry.community.moved_to:
        return None
    place = await MoveService(db, settings).new_place(entry.uri)
    return place.new_uri if place else entry.community.moved_to


@get("/activities/{activity_id:str}")
async def activity_object(activity_id: str, db: AsyncSession, settings: Settings) -> Response[Any]:
    activity = await db.scalar(
        select(Activity).where(Activity.uri == f"{settings.base_url}/activities/{activity_id}", Activity.public)
    )
    if activity is None:
        raise not_found("Activity")
    return as_response(activity.payload)


@get("/outbox")
async def instance_outbox(
    db: AsyncSession, settings: Settings, page: bool = False, before: int | None = None
) -> Response[Any]:
    return as_response(await _outbox(db, settings, f"{settings.base_url}/outbox", None, page, before))


@get("/c/{ref:str}/outbox")
async def community_outbox(
    ref: str, db: AsyncSession, settings: Settings, page: bool = False, before: int | None = None
) -> Response[Any]:
    community = await _local_community(db, ref)
    if community is None:
        raise not_found("Community")
    return as_response(await _outbox(db, settings, f"{community.uri}/outbox", community.uri, page, before))


async def _outbox(
    db: AsyncSession, settings: Settings, collection: str, community_uri: str | None, page: bool, before: int | None
) -> dict[str, Any]:
    """Newest first; `before` is the cursor (an activity sequence number), so pages never shift."""
    scope = [Activity.public.is_(True)]
    if community_uri:
        scope.append(Activity.community_uri == community_uri)
    if not page and before is None:
        total = await db.scalar(select(func.count()).select_from(Activity).where(*scope))
        return _with_context(
            settings,
            {"id": collection, "type": "OrderedCollection", "totalItems": total, "first": f"{collection}?page=true"},
        )
    # The stored JSON's length: ASCII (json.dumps escapes the rest), so never less than the bytes it is sent as.
    query = select(Activity, func.length(cast(Activity.payload, Text))).where(*scope)
    if before is not None:
        query = query.where(Activity.seq < before)
    rows = (await db.execute(query.order_by(Activity.seq.desc()).limit(OUTBOX_PAGE + 1))).all()
    items: list[Activity] = []
    size = 0
    for activity, length in rows[:OUTBOX_PAGE]:
        size += length or 0
        if items and size > OUTBOX_PAGE_BYTES:
            break
        items.append(activity)
    more = len(rows) > len(items)
    page_id = f"{collection}?page=true" + (f"&before={before}" if before is not None else "")
    document: dict[str, Any] = {
        "id": page_id,
        "type": "OrderedCollectionPage",
        "partOf": collection,
        "orderedItems": [a.payload for a in items],
    }
    if more:
        document["next"] = f"{collection}?page=true&before={items[-1].seq}"
    return _with_context(settings, document)


@get("/followers")
async def instance_followers(db: AsyncSession, settings: Settings) -> Response[Any]:
    total = await db.scalar(select(func.count()).select_from(Peer).where(Peer.followed_back.is_(True)))
    return as_response(
        _with_context(
            settings, {"id": f"{settings.base_url}/followers", "type": "OrderedCollection", "totalItems": total}
        )
    )


@get("/c/{ref:str}/followers")
async def community_followers(ref: str, db: AsyncSession, settings: Settings) -> Response[Any]:
    community = await _local_community(db, ref)
    if community is None:
        raise not_found("Community")
    document = {"id": f"{community.uri}/followers", "type": "OrderedCollection", "totalItems": 0}
    return as_response(_with_context(settings, document))


async def _local_community(db: AsyncSession, ref: str, *, include_deleted: bool = False) -> Community | None:
    slug, host = split_ref(ref, "")
    if host:
        return None  # remote communities have their own actor documents on their own instance
    query = select(Community).where(Community.slug == slug, Community.local.is_(True))
    if not include_deleted:
        query = query.where(Community.deleted_at.is_(None))
    return await db.scalar(query)


def _tombstone(settings: Settings, uri: str, former_type: str, deleted: Any) -> dict[str, Any]:
    return _with_context(settings, mapping.tombstone(uri, former_type, deleted))


federation_router = Router(
    path="/",
    route_handlers=[
        webfinger,
        nodeinfo_links,
        nodeinfo,
        kith_context,
        instance_actor,
        community_actor,
        person_actor,
        guide_object,
        offer_object,
        activity_object,
        instance_outbox,
        community_outbox,
        instance_followers,
        community_followers,
    ],  # fmt: skip
    include_in_schema=False,
)
