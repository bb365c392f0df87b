"""Pure functions between Kith and ActivityStreams: models to documents, and a peer's objects to the domain's
remote structs. No I/O, no sessions."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from server.accounts.schemas import RemotePerson
from server.communities.schemas import RemoteCommunity
from server.federation import vocab
from server.guides.schemas import RemoteGuide
from server.markdown import render, sanitize
from server.mentorship.schemas import RemoteOffer
from server.models import Community, Guide, MentorshipOffer, User
from server.settings import host_of

AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
SECURITY_CONTEXT = "https://w3id.org/security/v1"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


def context(base_url: str) -> list[Any]:
    return [AS_CONTEXT, SECURITY_CONTEXT, f"{base_url}/ns"]


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def person(user: User) -> dict[str, Any]:
    return {
        "id": user.uri,
        "type": "Person",
        "preferredUsername": user.username,
        "name": user.display_name or user.username,
        "url": user.url,
        "published": iso(user.created_at),
    }


def group(community: Community) -> dict[str, Any]:
    base = community.uri
    return {
        "id": community.uri,
        "type": "Group",
        "preferredUsername": community.slug,
        "name": community.name,
        "summary": community.description,
        "url": community.url,
        "color": community.color,
        "attachment": [
            {"type": "Link", "name": link.get("title", ""), "href": link.get("url", "")}
            for link in community.links or []
        ],
        "inbox": f"{base}/inbox",
        "outbox": f"{base}/outbox",
        "followers": f"{base}/followers",
        "published": iso(community.created_at),
        "updated": iso(community.updated_at),
        **moved(community.also_known_as or [], community.moved_to),
    }


def moved(also_known_as: list[str], moved_to: str | None) -> dict[str, Any]:
    """A move's terms, as Mastodon uses them: the ids an object had before (on the new home), and where it is now
    (on the old instance, once moved)."""
    terms: dict[str, Any] = {}
    if also_known_as:
        terms["alsoKnownAs"] = list(also_known_as)
    if moved_to:
        terms["movedTo"] = moved_to
    return terms


def former(entry: Guide | MentorshipOffer, moved_to: str | None) -> dict[str, Any]:
    """An entry of a moved community: on the new home, the uri it had on the old instance; there, where it went."""
    terms = moved([entry.former_uri] if entry.former_uri else [], moved_to)
    if entry.former_uri:
        terms["formerUri"] = entry.former_uri
    return terms


def article(guide: Guide, moved_to: str | None = None) -> dict[str, Any]:
    return {
        "id": guide.uri,
        "type": "Article",
        "name": guide.title,
        "summary": guide.summary,
        **content(guide.body_html, guide.body_markdown),
        "tag": [{"type": "Hashtag", "name": f"#{tag}"} for tag in guide.tags],
        "license": guide.license,
        "slug": guide.slug,
        "revision": guide.revision,
        "derivedFrom": guide.derived_from,
        **_published_in(guide.community, guide.author, guide),
        **former(guide, moved_to),
    }


def offer(entry: MentorshipOffer, moved_to: str | None = None) -> dict[str, Any]:
    return {
        "id": entry.uri,
        "type": "MentorshipOffer",
        "name": entry.title,
        **content(entry.description_html, entry.description_markdown),
        "topics": list(entry.topics),
        "languages": list(entry.languages),
        "format": entry.format,
        "capacity": entry.capacity,
        "seatsTaken": entry.seats_taken,
        "availability": entry.availability,
        "status": entry.status,
        **_published_in(entry.community, entry.mentor, entry),
        **former(entry, moved_to),
    }


def content(html: str, markdown: str) -> dict[str, Any]:
    """The rendered HTML, and the markdown it came from, which a Kith peer renders itself."""
    return {"content": html, "mediaType": "text/html", "source": {"content": markdown, "mediaType": "text/markdown"}}


def _published_in(community: Community, author: User, entry: Guide | MentorshipOffer) -> dict[str, Any]:
    """A public post of a person in a community (FEP-1b12): attributed to both, its audience the community."""
    return {
        "attributedTo": [author.uri, community.uri],
        "audience": community.uri,
        "to": [PUBLIC],
        "cc": [f"{community.uri}/followers"],
        "url": entry.url,
        "published": iso(entry.created_at),
        "updated": iso(entry.updated_at),
    }


def tombstone(uri: str, former_type: str, deleted: datetime) -> dict[str, Any]:
    return {"id": uri, "type": "Tombstone", "formerType": former_type, "deleted": iso(deleted)}


def activity(
    base_url: str, activity_uri: str, verb: str, actor_uri: str, obj: dict[str, Any], published: datetime
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "@context": context(base_url),
        "id": activity_uri,
        "type": verb,
        "actor": actor_uri,
        "object": obj,
        "to": [PUBLIC],
        "published": iso(published),
    }
    if audience := obj.get("audience"):
        document["audience"] = audience
        document["cc"] = [f"{audience}/followers"]
    return document


# --- vocabulary -> domain: what a peer's object says, for the domain service to keep -----------------------
# Protocol only: which field carries what, and that every URL a peer gives stays on its own host. The domain
# services' rules decide what is kept (limits, labels, defaults).


def remote_person(uri: str, host: str, person: vocab.Actor | None) -> RemotePerson:
    """A person from their actor document, or from their id alone when there is none: still a faithful name."""
    username = uri.rstrip("/").rsplit("/", 1)[-1]
    if person is None:
        return RemotePerson(uri=uri, instance=host, username=username, url=uri)
    return RemotePerson(
        uri=uri, instance=host, username=person.preferred_username or username, display_name=person.name or "",
        url=same_host_url(host, person.url, uri),
    )  # fmt: skip


def remote_community(group: vocab.Actor, host: str) -> RemoteCommunity:
    return RemoteCommunity(
        uri=group.id, instance=host, url=same_host_url(host, group.url, group.id),
        slug_hint=group.preferred_username or "", name=group.name or "", description=plain(group.summary or ""),
        color=group.color, links=[(link.name or "", link.href) for link in group.links],
        published=group.published, updated=group.updated,
    )  # fmt: skip


def remote_guide(post: vocab.Post, host: str, author: RemotePerson) -> RemoteGuide:
    markdown, html = body(post)
    return RemoteGuide(
        uri=post.id, instance=host, url=same_host_url(host, post.url, post.id), community_uris=homes(post),
        audience=list(post.audience), author=author, title=post.name or "", summary=plain(post.summary or ""),
        body_markdown=markdown, body_html=html, tags=[t.name or "" for t in post.tags if t.type == "Hashtag"],
        license=post.license or "", slug_hint=post.slug, revision=post.revision, derived_from=post.derived_from,
        published=post.published, updated=post.updated, former_uri=post.former_uri,
    )  # fmt: skip


def remote_offer(post: vocab.Post, host: str, mentor: RemotePerson) -> RemoteOffer:
    details = post.mentorship
    assert details is not None  # the caller dispatches on it
    markdown, html = body(post)
    return RemoteOffer(
        uri=post.id, instance=host, url=same_host_url(host, post.url, post.id), community_uris=homes(post),
        mentor=mentor, title=post.name or "", description_markdown=markdown, description_html=html,
        topics=list(details.topics), languages=list(details.languages), format=details.format,
        capacity=details.capacity, seats_taken=details.seats_taken, availability=details.availability or "",
        status=details.status, published=post.published, updated=post.updated, former_uri=post.former_uri,
    )  # fmt: skip


def homes(post: vocab.Post) -> list[str]:
    """The communities a post may belong to, in the order they count: its audience, then the rest it is
    attributed to (FEP-1b12 puts the group in both; older senders only in attributedTo)."""
    return list(post.audience) + [uri for uri in post.attributed_to if uri not in post.audience]


def author_uri(post: vocab.Post) -> str | None:
    """Who wrote it: the first of attributedTo that is not one of its communities."""
    return next((uri for uri in post.attributed_to if uri not in post.audience), None)


def body(post: vocab.Post) -> tuple[str, str]:
    """(markdown, HTML): rendered from the markdown source when the sender gives it (remote HTML is never
    trusted as it is); otherwise their HTML, sanitized, with a plain-text stand-in for the markdown."""
    if post.source is not None and (post.source.media_type or "text/markdown") == "text/markdown":
        return post.source.content, render(post.source.content)
    html = sanitize(post.content or next(iter(post.content_map.values()), ""))
    return plain(html), html


def plain(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", sanitize(html)).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")


def inbox_on(actor: vocab.Actor, host: str) -> str | None:
    """Where to deliver to an actor of `host`: its shared inbox, else its own, whichever is on `host` itself. An
    inbox elsewhere is never used: a peer must not point our deliveries at another server."""
    return next((url for url in (actor.shared_inbox, actor.inbox) if url and host_of(url) == host), None)


def same_host_url(host: str, url: str | None, fallback: str) -> str:
    """A peer's link to the page of one of its objects, when it is on its own host; its id otherwise."""
    if url and url.startswith(("http://", "https://")) and host_of(url) == host:
        return url
    return fallback
