"""The rules of a mentorship offer and of a request for it, for local and remote writes alike."""

from __future__ import annotations

from typing import Any

from server.db import utcnow
from server.errors import invalid
from server.guides import rules as guide_rules
from server.markdown import render
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


# A request holds (or waits for) a seat in these states: one per person per offer.
LIVE_STATES = ("sending", "pending", "accepted")
# Waiting for an answer; a person may have this many at once, so one person cannot flood the mentors.
WAITING_STATES = ("sending", "pending")
MAX_WAITING = 20
MAX_MESSAGE_BYTES = 10 * 1024
# Reached the mentor: only then is there a thread on both sides to write in.
THREAD_STATES = ("pending", "accepted", "declined", "withdrawn")
# What an answer from the offer's instance may move a request of ours from. Answers can arrive out of order
# and twice: a later state is never undone by an earlier one arriving late, nor a final one by a repeat.
_ANSWERED_FROM = {
    "pending": ("sending", "failed"),
    "accepted": ("sending", "failed", "pending"),
    "declined": ("sending", "failed", "pending", "accepted"),
    "refused": ("sending", "failed", "pending", "accepted"),
}


def answered_from(answer: str) -> tuple[str, ...]:
    return _ANSWERED_FROM[answer]


def message_body(body_markdown: str) -> dict[str, str]:
    """A message's markdown, within the limit, and its HTML, rendered here whoever wrote it."""
    text = body_markdown.strip()
    if not text:
        raise invalid("body_markdown", "must not be empty")
    if len(text.encode()) > MAX_MESSAGE_BYTES:
        raise invalid("body_markdown", f"must be at most {MAX_MESSAGE_BYTES // 1024} KB")
    return {"body_markdown": text, "body_html": render(text)}
