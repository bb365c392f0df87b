"""Pure functions from Kith models to ActivityStreams documents. No I/O, no sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from server.models import Community, Guide, MentorshipOffer, User

AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
SECURITY_CONTEXT = "https://w3id.org/security/v1"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


def context(base_url: str) -> list[Any]:
    return [AS_CONTEXT, SECURITY_CONTEXT, f"{base_url}/ns"]


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def person(user: User) -> dict[str, Any]:
    return {
        "id": user.uri,
        "type": "Person",
        "preferredUsername": user.username,
        "name": user.display_name or user.username,
        "url": user.url,
        "published": _iso(user.created_at),
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
        "published": _iso(community.created_at),
        "updated": _iso(community.updated_at),
    }


def article(guide: Guide) -> dict[str, Any]:
    community = guide.community
    return {
        "id": guide.uri,
        "type": "Article",
        "name": guide.title,
        "summary": guide.summary,
        "content": guide.body_html,
        "mediaType": "text/html",
        "source": {"content": guide.body_markdown, "mediaType": "text/markdown"},
        "tag": [{"type": "Hashtag", "name": f"#{tag}"} for tag in guide.tags],
        "attributedTo": [guide.author.uri, community.uri],
        "audience": community.uri,
        "to": [PUBLIC],
        "cc": [f"{community.uri}/followers"],
        "url": guide.url,
        "license": guide.license,
        "slug": guide.slug,
        "revision": guide.revision,
        "derivedFrom": guide.derived_from,
        "published": _iso(guide.created_at),
        "updated": _iso(guide.updated_at),
    }


def offer(entry: MentorshipOffer) -> dict[str, Any]:
    community = entry.community
    return {
        "id": entry.uri,
        "type": "MentorshipOffer",
        "name": entry.title,
        "content": entry.description_html,
        "mediaType": "text/html",
        "source": {"content": entry.description_markdown, "mediaType": "text/markdown"},
        "topics": list(entry.topics),
        "languages": list(entry.languages),
        "format": entry.format,
        "capacity": entry.capacity,
        "seatsTaken": entry.seats_taken,
        "availability": entry.availability,
        "status": entry.status,
        "attributedTo": [entry.mentor.uri, community.uri],
        "audience": community.uri,
        "to": [PUBLIC],
        "cc": [f"{community.uri}/followers"],
        "url": entry.url,
        "published": _iso(entry.created_at),
        "updated": _iso(entry.updated_at),
    }


def tombstone(uri: str, former_type: str, deleted: datetime) -> dict[str, Any]:
    return {"id": uri, "type": "Tombstone", "formerType": former_type, "deleted": _iso(deleted)}


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
        "published": _iso(published),
    }
    if audience := obj.get("audience"):
        document["audience"] = audience
        document["cc"] = [f"{audience}/followers"]
    return document
