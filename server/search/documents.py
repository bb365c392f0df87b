"""What the index stores: `SearchDocument`, and markdown flattened to plain text."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from html.parser import HTMLParser
from typing import Any, Literal

import msgspec
from markdown_it import MarkdownIt
from markdown_it.token import Token

# How much of a body is stored for snippets: the rest is indexed, not stored.
EXCERPT_CHARS = 2_000

EntryType = Literal["guide", "offer"]
Origin = Literal["local", "remote"]


class SearchDocument(msgspec.Struct, kw_only=True, frozen=True):
    """One guide or mentorship offer, flattened for the index.

    `community` is a community ref (`slug` for local, `slug@host` for remote)
    and `instance` the host the entry comes from, so results can always be
    attributed to their origin.
    """

    id: str
    type: EntryType
    title: str
    url: str
    community: str
    instance: str
    origin: Origin
    created_at: datetime
    updated_at: datetime
    summary: str = ""
    body: str = ""
    tags: list[str] = []
    topics: list[str] = []
    languages: list[str] = []
    community_name: str = ""
    status: str = ""
    author: str = ""

    def __post_init__(self) -> None:
        # Structs are not validated on construction, only when decoded;
        # check what would otherwise fail deep inside Whoosh or index garbage.
        if self.type not in ("guide", "offer"):
            raise ValueError(f"type must be 'guide' or 'offer', not {self.type!r}")
        if self.origin not in ("local", "remote"):
            raise ValueError(f"origin must be 'local' or 'remote', not {self.origin!r}")
        for name in ("created_at", "updated_at"):
            value = getattr(self, name)
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(f"{name} must be a timezone-aware datetime")


def _keywords(values: list[str]) -> str:
    # The keyword fields split on commas, so a comma inside a value would
    # split one tag into two.
    cleaned = (" ".join(v.replace(",", " ").split()).lower() for v in values)
    return ",".join(v for v in cleaned if v)


def _naive_utc(value: datetime) -> datetime:
    # Whoosh's DATETIME field compares against a naive epoch.
    return value.astimezone(UTC).replace(tzinfo=None)


def _ref(value: str) -> str:
    return value.strip().lower()


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The start of text, at most limit characters, cut between words."""
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit + 1)
    return text[: cut if cut > 0 else limit].rstrip()


def document_fields(doc: SearchDocument) -> dict[str, Any]:
    """Map a document to the keyword arguments of Whoosh's `add_document`."""
    return {
        "id": doc.id,
        "type": doc.type,
        "title": doc.title,
        "summary": doc.summary,
        "body": doc.body,
        "excerpt": excerpt(doc.body),
        "tags": _keywords(doc.tags),
        "topics": _keywords(doc.topics),
        "languages": _keywords(doc.languages),
        "community": _ref(doc.community),
        "community_name": doc.community_name or doc.community,
        "instance": _ref(doc.instance),
        "origin": doc.origin,
        "status": _ref(doc.status),
        "url": doc.url,
        "author": doc.author,
        "created_at": _naive_utc(doc.created_at),
        "updated_at": _naive_utc(doc.updated_at),
    }


# Markdown to plain text


@cache
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


class _HTMLText(HTMLParser):
    """Collects the text of an HTML fragment, skipping script and style."""

    _SKIP = frozenset({"script", "style"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _html_text(html: str) -> str:
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    return " ".join(parser.parts)


def _inline_text(children: list[Token]) -> str:
    out: list[str] = []
    for child in children:
        if child.type in ("text", "code_inline", "image"):
            # An image's content is its alt text, which is worth finding.
            out.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            out.append("\n" if child.type == "hardbreak" else " ")
        # Inline HTML tags and link/emphasis markers carry no words.
    return "".join(out)


def _block_text(token: Token) -> str | None:
    if token.type == "inline":
        return _inline_text(token.children or [])
    if token.type in ("fence", "code_block"):
        return token.content
    if token.type == "html_block":
        return _html_text(token.content)
    return None


def markdown_to_text(md: str) -> str:
    """Flatten markdown to plain text: one line per block, no markup.

    Code is kept (people search for commands and identifiers), and raw HTML
    is reduced to its text.
    """
    lines: list[str] = []
    for token in _markdown().parse(md or ""):
        text = _block_text(token)
        if text is None:
            continue
        for line in text.splitlines():
            line = " ".join(line.split())
            if line:
                lines.append(line)
    return "\n".join(lines)


def document_from(snapshot: dict[str, Any]) -> SearchDocument:
    """The document for an entry's snapshot (plain values, `markdown` still to be flattened)."""
    fields = dict(snapshot)
    return SearchDocument(body=markdown_to_text(fields.pop("markdown")), **fields)
