"""The Whoosh schema of the search index and the analyzers behind it."""

from __future__ import annotations

from collections.abc import Iterator

from whoosh import fields
from whoosh.analysis import CommaSeparatedTokenizer, CompositeAnalyzer, Filter, IDAnalyzer, LowercaseFilter, Token

from .engine import FastText

# Bump whenever the schema or an analyzer changes: an index written with
# another version fails `index_ok` and gets rebuilt instead of being read
# with analyzers that no longer match its terms. Version 3: the date fields
# are no longer indexed (`SortableDate`). (`FastText` changed nothing: it
# writes exactly the postings the plain TEXT fields wrote.) Version 4: each
# segment also holds a compact copy of its longer posting lists
# (`engine/postings.py`); a version 3 index would still be read correctly, only
# slower, and is rebuilt to get them.
SCHEMA_VERSION = 5

# Fields an unqualified query word is looked up in.
DEFAULT_FIELDS = ("title", "summary", "body", "tags", "topics")
# Text fields whose stored text feeds the snippet, in order of preference.
SNIPPET_FIELDS = ("body", "summary", "title")
# The stored field each snippet field's text is read from: only the start of a
# body is stored (see `documents.EXCERPT_CHARS`), as loading and highlighting
# whole bodies for every hit of a page was most of a search's cost.
SNIPPET_SOURCES = {"body": "excerpt", "summary": "summary", "title": "title"}
# ID fields usable as exact filters and facets.
ID_FIELDS = ("type", "community", "instance", "origin", "status")


class RequireWordCharFilter(Filter):
    """Drops tokens that contain no letter or digit.

    Keyword fields keep punctuation ("c++", ".net"), so without this a stray
    `*` or `-` in a query would become a required keyword term matching
    nothing, instead of being ignored like in the text fields.
    """

    def __call__(self, tokens: Iterator[Token]) -> Iterator[Token]:
        for token in tokens:
            if any(ch.isalnum() for ch in token.text):
                yield token


def keyword_analyzer() -> CompositeAnalyzer:
    """Comma-separated, lowercased keywords (tags may contain spaces)."""
    return CommaSeparatedTokenizer() | LowercaseFilter() | RequireWordCharFilter()


def _keyword_field() -> fields.KEYWORD:
    return fields.KEYWORD(
        stored=True,
        lowercase=True,
        commas=True,
        scorable=True,
        analyzer=keyword_analyzer(),
    )


def _id_field() -> fields.ID:
    # Lowercased on both sides, so filters and `field:value` ignore case.
    return fields.ID(stored=True, analyzer=IDAnalyzer(lowercase=True))


class SortableDate(fields.DATETIME):
    """A date that is stored and sortable (a column), but not searchable.

    No query can name these fields (see `query.QUERY_FIELDS`), and browsing sorts on the column, so the
    eight index terms a DATETIME writes per value for range queries were never read: they were a third of
    the terms of every small segment the worker commits.
    """

    indexed = False


def build_schema() -> fields.Schema:
    """Return a fresh schema object for the search index."""
    return fields.Schema(
        id=fields.ID(stored=True, unique=True),
        title=FastText(stored=True, field_boost=3.0, spelling=True),
        summary=FastText(stored=True),
        body=FastText(),
        excerpt=fields.STORED(),
        tags=_keyword_field(),
        topics=_keyword_field(),
        languages=_keyword_field(),
        type=_id_field(),
        community=_id_field(),
        instance=_id_field(),
        origin=_id_field(),
        status=_id_field(),
        community_name=fields.STORED(),
        url=fields.STORED(),
        author=fields.STORED(),
        created_at=SortableDate(stored=True, sortable=True),
        updated_at=SortableDate(stored=True, sortable=True),
    )


SCHEMA = build_schema()
