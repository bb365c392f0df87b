"""The rules of a mentorship offer, for a local mentor's write and a peer's alike."""

from __future__ import annotations

from typing import Any

from server.db import utcnow
from server.errors import invalid
from server.guides import rules as guide_rules
from server.mentorship import schemas
from server.refs import key_of
from server.rules import clean_text, normalize_labels

MAX_AVAILABILITY = 500
MAX_CAPACITY = 1000
FORMATS = ("one_to_one", "group")
STATUSES = ("open", "closed")


def title(value: str) -> str:
    return guide_rules.title(value)  # an offer's title reads like a guide's


def availability(value: str) -> str:
    return clean_text("availability", value, MAX_AVAILABILITY)


def capacity(value: int, seats_taken: int) -> int:
    if value < seats_taken:
        raise invalid("capacity", f"{seats_taken} seats are taken; capacity cannot go below that")
    return value


def remote_fields(remote: schemas.RemoteOffer) -> dict[str, Any]:
    """A peer's offer's columns, through the same rules as a local write. Where the peer's value is outside
    what Kith knows (a format, a capacity), the default stands in: the offer is still worth showing."""
    guide_rules.body(remote.description_markdown, remote.description_html, remote=True)
    topics = normalize_labels("topics", remote.topics, strict=False)
    languages = normalize_labels("languages", remote.languages, strict=False)
    seats = remote.capacity if remote.capacity and 1 <= remote.capacity <= MAX_CAPACITY else 1
    return {
        "title": title(remote.title),
        "description_markdown": remote.description_markdown,
        "description_html": remote.description_html,
        "topics": topics,
        "topics_key": key_of(topics),
        "languages": languages,
        "languages_key": key_of(languages),
        "format": remote.format if remote.format in FORMATS else "one_to_one",
        "capacity": seats,
        "seats_taken": min(max(remote.seats_taken or 0, 0), seats),
        "availability": availability(remote.availability),
        "status": remote.status if remote.status in STATUSES else "open",
        "url": remote.url,
        "updated_at": remote.updated or remote.published or utcnow(),
    }
