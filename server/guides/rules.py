"""The rules of a guide, for a local write and a peer's alike: limits, slugs, who may edit, what peers hear."""

from __future__ import annotations

import re
from typing import Any, Protocol
from uuid import UUID

from slugify import slugify

from server.db import utcnow
from server.errors import invalid
from server.guides import schemas
from server.refs import key_of
from server.rules import clean_text, normalize_labels

MAX_TITLE = 200
MAX_SUMMARY = 500
MAX_LICENSE = 64
MAX_BODY_BYTES = 200 * 1024
DEFAULT_LICENSE = "CC-BY-4.0"
# The labels of the conflict blocks a taken upstream change leaves in the editor (see adaptation.merge).
OURS_LABEL = "your text"
THEIRS_LABEL = "upstream revision"
_CONFLICT_LINE = re.compile(rf"^(<{{7}} {OURS_LABEL}|>{{7}} {THEIRS_LABEL} \d+)[ \t]*\r?$", re.MULTILINE)


def title(value: str) -> str:
    return clean_text("title", value, MAX_TITLE, one_line=True, required=True)


def summary(value: str) -> str:
    return clean_text("summary", value, MAX_SUMMARY)


def license_(value: str) -> str:
    return clean_text("license", value, MAX_LICENSE, one_line=True)


def body(markdown: str, html: str, *, remote: bool = False) -> None:
    """A body within the limit. A person must write something, and their HTML is ours, rendered from it; a
    peer's guide may be a title alone, and its HTML is bounded too: without markdown source it sends HTML, and
    markup can be most of it."""
    if len(markdown.encode()) > MAX_BODY_BYTES or (remote and len(html.encode()) > 2 * MAX_BODY_BYTES):
        raise invalid("body_markdown", "must be at most 200 KB")
    if not remote and not markdown.strip():
        raise invalid("body_markdown", "must not be blank")


def is_public(status: str) -> bool:
    return status == "published"


def change_verb(was_public: bool, now_public: bool) -> str:
    """A draft becoming public is news to peers; a public guide going back to draft leaves them."""
    return {(False, True): "Create", (True, False): "Delete"}.get((was_public, now_public), "Update")


class Person(Protocol):
    """Whoever acts: a token's principal, or a signed-in viewer of the pages."""

    @property
    def user_id(self) -> UUID: ...
    @property
    def is_admin(self) -> bool: ...


def edit_right(who: Person | None, author_id: UUID) -> bool | None:
    """Whether `who` may edit a guide by `author_id`, where that is known without their role in the guide's
    community; None when it takes the role (see may_edit)."""
    if who is None:
        return False
    if who.is_admin or author_id == who.user_id:
        return True
    return None


def may_edit(who: Person | None, author_id: UUID, role: str | None) -> bool:
    """The author, an admin, or a moderator of the guide's community (`role` is who's role there)."""
    known = edit_right(who, author_id)
    return known if known is not None else role == "moderator"


def slug_base(text: str) -> str:
    return slugify(text, max_length=100, word_boundary=True) or "guide"


def first_free_slug(base: str, taken: set[str]) -> str:
    """`base`, or `base-2`, `base-3`, ...: the first that no other guide of the community uses."""
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def remote_fields(remote: schemas.RemoteGuide, revision: int) -> dict[str, Any]:
    """A peer's guide's columns, through the same rules as a local write; `revision` is our copy's, 0 if new."""
    body(remote.body_markdown, remote.body_html, remote=True)
    tags = normalize_labels("tags", remote.tags, strict=False)
    return {
        "title": title(remote.title),
        "summary": summary(remote.summary),
        "body_markdown": remote.body_markdown,
        "body_html": remote.body_html,
        "tags": tags,
        "tags_key": key_of(tags),
        "license": license_(remote.license or "unspecified"),
        "revision": remote.revision or revision + 1,
        "derived_from": remote.derived_from,
        "url": remote.url,
        "updated_at": remote.updated or remote.published or utcnow(),
    }


# adaptations


def _license_terms(license: str) -> set[str]:
    return {term for term in re.split(r"[^A-Z0-9]+", license.upper()) if term}


def adaptable(license: str) -> None:
    """A guide whose license forbids derivatives (Creative Commons ND, or all rights reserved) is not adapted."""
    if "ND" in _license_terms(license) or "allrightsreserved" in re.sub(r"[^a-z]", "", license.lower()):
        raise invalid("derived_from", f"the original's license ({license}) does not allow adaptations")


def adaptation_license(upstream_license: str, requested: str | None) -> str:
    """A share-alike original (CC-BY-SA, CC-BY-NC-SA) makes its adaptations keep its license, at every edit."""
    if "SA" in _license_terms(upstream_license):
        if requested is not None and requested != upstream_license:
            raise invalid(
                "license", f"must stay {upstream_license}: the original is share-alike, so its adaptations keep it"
            )
        return upstream_license
    return requested or DEFAULT_LICENSE


def no_conflict_blocks(markdown: str) -> None:
    """A merge's conflict blocks are resolved by a person before the text is saved."""
    if _CONFLICT_LINE.search(markdown):
        raise invalid(
            "body_markdown",
            "still has conflict blocks from the upstream change: keep the lines you want from each side and remove "
            f"the “<<<<<<< {OURS_LABEL}”, “=======” and “>>>>>>> {THEIRS_LABEL}” lines",
        )
